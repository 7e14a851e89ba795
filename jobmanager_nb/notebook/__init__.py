"""The notebook face of jobmanager_nb: the ``%job`` family of magics and the live dashboard.

The only part of the package that imports IPython or ipywidgets, and the top layer: the core never imports
it, so ``import jobmanager_nb`` imports neither. ``jobmanager_nb.load_ipython_extension`` imports
:mod:`jobmanager_nb.notebook.extension` when IPython calls it, and the magics import the dashboard's widgets
when ``%jobs`` first shows them; this file imports nothing. Its modules, each explained by its own docstring:

The dashboard, :class:`~jobmanager_nb.notebook.table.JobTable`:

- ``text``: the table as plain text (``render_text``) and the wording both views share; imports neither
  IPython nor ipywidgets.
- ``styles``: the CSS (a grid that fits the cell, colours from the theme's variables), and the layouts and
  styles every row shares.
- ``rows``: one job's row (``JobRow``), the HTML of its cells, and the actions that apply to it.
- ``table``: ``JobTable``: subscribing to the manager, the flusher thread that coalesces updates, clicks.

The magics, :class:`~jobmanager_nb.notebook.magics.JobManagerMagics`:

- ``parsing``: reading a magic's line (``magic_arguments``, ``--at``, ``--data``), and mistakes as one-line
  ``UsageError`` messages.
- ``wording``: moments, durations and errors as the magics print them.
- ``cells``: a ``%%job`` or ``%%oneoff`` cell as something the manager can run, and the files kept for it.
- ``adding``, ``control``, ``status``, ``oneoffs``: the families of subcommands (adding jobs and cells;
  run, cancel, pause, resume, remove; the dashboard, list, log, wait, next; one-offs and rerun).
- ``magics``: the class: its settings, the manager it keeps, the magics' help and dispatch.
- ``extension``: ``load_ipython_extension`` and its exact inverse.

``jobmanager_nb.widgets`` and ``jobmanager_nb.magics`` remain as aliases that re-export the public names.
"""
