"""Shared test setup: ``tests/`` is on ``sys.path`` so that job fixtures import as ``jobs.<module>``
(worker processes inherit the path, so they can import them too)."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
