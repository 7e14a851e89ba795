"""The dashboard's old address, kept so that ``from jobmanager_nb.widgets import JobTable`` still works: it lives in
:mod:`jobmanager_nb.notebook` (``table``, ``rows``, ``text``, ``styles``); new code imports from there."""

from jobmanager_nb.notebook.rows import ACTIONS, JobRow, actions_for
from jobmanager_nb.notebook.table import JobTable
from jobmanager_nb.notebook.text import countdown, css_slug, duration, render_text

__all__ = ["ACTIONS", "JobRow", "JobTable", "actions_for", "countdown", "css_slug", "duration", "render_text"]
