"""The magics' old address, kept so that ``from jobmanager_nb.magics import JobManagerMagics`` still works: they live
in :mod:`jobmanager_nb.notebook` (``magics``, ``extension`` and a module per family of subcommands)."""

from jobmanager_nb.notebook.extension import CELL_MAGICS as CELL_MAGICS
from jobmanager_nb.notebook.extension import LINE_MAGICS as LINE_MAGICS
from jobmanager_nb.notebook.extension import load_ipython_extension, unload_ipython_extension
from jobmanager_nb.notebook.magics import SUBCOMMANDS as SUBCOMMANDS
from jobmanager_nb.notebook.magics import JobManagerMagics

__all__ = ["JobManagerMagics", "load_ipython_extension", "unload_ipython_extension"]
