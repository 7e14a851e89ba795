"""The core never imports the notebook face: IPython and ipywidgets stay out of `import jobmanager_nb`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jobmanager_nb"
NOTEBOOK_FACE = {"magics.py": "IPython", "widgets.py": "ipywidgets"}


def test_importing_the_package_imports_neither_ipython_nor_ipywidgets():
    code = (
        "import sys, jobmanager_nb\n"
        "from jobmanager_nb import JobManager, worker, parse_schedule, MemoryStore, TinyDBStore\n"
        "print(sorted(m for m in ('IPython', 'ipywidgets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_the_worker_module_stays_light():
    code = (
        "import sys, jobmanager_nb.worker\n"
        "heavy = ('IPython', 'ipywidgets', 'tinydb', 'croniter', 'cloudpickle', 'psutil', 'asyncio')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
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
                allowed = NOTEBOOK_FACE.get(path.name) == module or (
                    path.name in NOTEBOOK_FACE and path.parent == PACKAGE
                )
                assert allowed, f"{path.relative_to(PACKAGE.parent)} imports {module}"
