"""jobmanager_nb: a notebook-native job manager (a Python port of Ghost's job manager).

Public names are imported lazily so that ``import jobmanager_nb`` stays cheap (every offloaded
worker process imports it) and never imports IPython or ipywidgets.
"""

from __future__ import annotations

__version__ = "0.1.0"
