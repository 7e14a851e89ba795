"""The core never imports the notebook face: IPython and ipywidgets stay out of `import jobmanager_nb`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jobmanager_nb"
NOTEBOOK_FACE = PACKAGE / "notebook"


def test_importing_the_package_imports_neither_ipython_nor_ipywidgets():
    code = (
        "import sys, jobmanager_nb\n"
        "from jobmanager_nb import JobManager, worker, parse_schedule, MemoryStore, TinyDBStore\n"
        "print(sorted(m for m in ('IPython', 'ipywidgets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_notebook_face_modules_import_ipython_or_ipywidgets():
    for path in PACKAGE.rglob("*.py"):
        imported = _imported_top_levels(path)
        for module in ("IPython", "ipywidgets"):
            if module in imported:
                assert NOTEBOOK_FACE in path.parents, f"{path.relative_to(PACKAGE.parent)} imports {module}"


def test_the_plain_text_dashboard_imports_neither_ipython_nor_ipywidgets():
    code = (
        "import sys\n"
        "from jobmanager_nb.notebook.text import render_text\n"
        "print(sorted(m for m in ('IPython', 'ipywidgets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_the_old_module_paths_still_export_the_notebook_face():
    from jobmanager_nb import magics, widgets
    from jobmanager_nb.notebook import extension, rows, table, text
    from jobmanager_nb.notebook import magics as magics_class

    assert widgets.JobTable is table.JobTable and widgets.JobRow is rows.JobRow
    assert widgets.render_text is text.render_text and widgets.css_slug is text.css_slug
    assert magics.JobManagerMagics is magics_class.JobManagerMagics
    assert magics.load_ipython_extension is extension.load_ipython_extension
    assert magics.unload_ipython_extension is extension.unload_ipython_extension
    for module in (widgets, magics):
        assert all(getattr(module, name, None) is not None for name in module.__all__)


# The layers of docs/architecture.md, bottom up: a module may import its own layer and the ones below.
LAYERS: list[tuple[str, set[str]]] = [
    ("plain data and time", {"errors", "clock", "lifecycle", "model", "events", "interrupts"}),
    ("schedules", {"schedules"}),
    ("the one-off store", {"store"}),
    (
        "running jobs",
        {"jobs", "capture", "loops", "timers", "waiting", "executors", "worker", "processes"},
    ),
    ("the manager", {"state", "inline", "manager", "handle", "session"}),
    ("the notebook face", {"notebook", "magics", "widgets"}),  # notebook/; magics and widgets re-export it
]


def _unit(path: Path) -> str:
    """The layer unit a file belongs to: its subpackage, or its module name."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imported_units(path: Path) -> set[str]:
    units: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "jobmanager_nb":
                continue
            if len(parts) > 1:
                units.add(parts[1])
            else:  # from jobmanager_nb import capture
                units.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "jobmanager_nb" and len(parts) > 1:
                    units.add(parts[1])
    return units


def test_every_module_imports_only_its_own_layer_and_the_ones_below():
    rank = {unit: i for i, (_, units) in enumerate(LAYERS) for unit in units}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue  # the package's lazy re-exports name every layer
        unit = _unit(path)
        assert unit in rank, f"{path.relative_to(PACKAGE.parent)} is in no layer of docs/architecture.md"
        for imported in _imported_units(path):
            if imported in rank:
                assert rank[imported] <= rank[unit], (
                    f"{path.relative_to(PACKAGE.parent)} ({LAYERS[rank[unit]][0]}) imports "
                    f"jobmanager_nb.{imported} ({LAYERS[rank[imported]][0]}), a layer above it"
                )


def test_every_public_name_resolves_from_the_package():
    import jobmanager_nb

    public = set(jobmanager_nb.__all__)
    assert {"parse_schedule", "next_fire_times", "describe_schedule", "InvalidScheduleError"} <= public
    assert {"JobManager", "JobHandle", "worker", "get_manager", "MemoryStore", "TinyDBStore"} <= public
    missing = [name for name in jobmanager_nb.__all__ if getattr(jobmanager_nb, name, None) is None]
    assert missing == []


DASK_MODULES = {PACKAGE / "executors" / "dask.py", PACKAGE / "executors" / "dask_worker.py"}


def test_only_the_dask_executor_modules_import_distributed_or_dask():
    for path in PACKAGE.rglob("*.py"):
        imported = _imported_top_levels(path)
        for module in ("distributed", "dask"):
            if module in imported:
                assert path in DASK_MODULES, f"{path.relative_to(PACKAGE.parent)} imports {module}"


def test_running_offloaded_jobs_locally_never_imports_distributed():
    code = (
        "import sys, jobmanager_nb\n"
        "from jobmanager_nb import JobManager\n"
        "from jobmanager_nb.executors import ProcessExecutor\n"
        "m = JobManager(executors={'spare': ProcessExecutor()})\n"
        "m.add_job('json:dumps', name='j', data=[1], executor='spare')\n"
        "print(m.wait('j', 30).result)\n"
        "m.close()\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('distributed', 'dask')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["[1]", "[]"], out.stderr
