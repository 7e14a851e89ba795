"""binder/ gives mybinder.org what it needs to open the quickstart in JupyterLab with the package installed.

The slow test does what repo2docker does, in a fresh virtual environment: install binder/requirements.txt
(from the package index), run binder/postBuild from the repository root, then run the quickstart there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def _name(requirement: str) -> str:
    """The normalised project name of a requirement line (``nest_asyncio2>=1.7`` → ``nest-asyncio2``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _requirements() -> dict[str, str]:
    lines = [ln.strip() for ln in (BINDER / "requirements.txt").read_text().splitlines()]
    return {_name(ln): ln for ln in lines if ln and not ln.startswith("#")}


def test_binder_requirements_cover_the_package_dependencies_with_the_same_bounds() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {_name(dep): dep.split(";")[0].strip() for dep in project["dependencies"] if "win32" not in dep}
    listed = _requirements()
    assert {name: listed.get(name) for name in needed} == needed
    assert "jupyterlab" in listed and "ipywidgets" in listed
    dask_extra = {_name(dep): dep for dep in project["optional-dependencies"]["dask"]}
    assert {name: listed.get(name) for name in dask_extra} == dask_extra  # the scale-out notebook runs there too


def test_postbuild_is_an_executable_strict_bash_script_installing_the_package() -> None:
    post_build = BINDER / "postBuild"
    text = post_build.read_text()
    assert os.access(post_build, os.X_OK)
    assert text.startswith("#!/bin/bash\n") and "\nset -euo pipefail\n" in text
    assert "pip install --no-deps" in text and text.rstrip().endswith(" .")


def test_runtime_is_a_python_the_package_supports() -> None:
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-3\.(\d+)", runtime)
    assert match and int(match.group(1)) >= 10


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_binder_files_install_cleanly_in_a_fresh_environment_and_run_the_quickstart(tmp_path: Path) -> None:
    repo = tmp_path / "repo"  # what mybinder clones: the package, binder/ and the notebooks
    ignore = shutil.ignore_patterns("__pycache__", ".jobmanager", "*.egg-info")
    for folder in ("jobmanager_nb", "binder", "notebooks"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=ignore)
    for file in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / file, repo / file)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "JUPYTER", "IPYTHON"))},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "TMPDIR": str(tmp_path),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
    }

    def run(*args: str, cwd: Path = repo) -> str:
        done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    run("pip", "install", "-q", "-r", "binder/requirements.txt")
    run("binder/postBuild")

    code = "import jobmanager_nb, ipywidgets, jupyterlab; print(jobmanager_nb.__file__)"
    where = run("python", "-c", code, cwd=tmp_path).strip()
    assert Path(where).is_relative_to(venv), where  # installed into the environment, not run from the copy
    kernels = run("jupyter", "kernelspec", "list")
    assert str(venv) in kernels.split("python3", 1)[1].splitlines()[0]
    run("jupyter", "execute", "notebooks/quickstart.ipynb")
