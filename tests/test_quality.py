"""ruff and mypy --strict run clean on the package (part of the one test command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_clean():
    out = _run("ruff", "check", "jobmanager_nb", "tests", "benchmarks")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_is_clean():
    out = _run("mypy", "--strict", "jobmanager_nb")
    assert out.returncode == 0, out.stdout + out.stderr
