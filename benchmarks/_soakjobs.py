"""Job bodies for ``bench_soak.py``: every kind of ending, inline and offloaded (workers import this module)."""

from __future__ import annotations

import asyncio
import time

BIG = 10 << 20
"""Bytes of the local variable alive in a failing job's frame (10 MB, every page written)."""
PRINTED = 1 << 20
"""Characters a printing job prints (1 MB, in 16 lines of 64 KiB)."""
_LINE = "x" * (PRINTED // 16 - 1)


def ok() -> int:
    return 1


async def ok_async() -> int:
    await asyncio.sleep(0)
    return 1


def fail_big() -> None:
    """Fail with 10 MB alive in this frame: a traceback that pins its frames keeps them."""
    blob = b"\x01" * BIG
    raise ValueError(f"failed on purpose, {len(blob):,} bytes alive in the frame")


def print_line() -> None:
    print("refreshed")


def print_big() -> None:
    for _ in range(16):
        print(_LINE)


async def sleep_async() -> None:
    """Runs until it is cancelled or timed out (60 s at most)."""
    await asyncio.sleep(60)


def sleep_until_cancelled() -> None:
    """Offloaded: stops as soon as the parent cancels it (or times it out); 60 s at most."""
    from jobmanager_nb import worker

    worker.cancelled.wait(60)


def sleep_stubbornly() -> None:
    """Offloaded: ignores a cancel, so the manager kills it after ``kill_grace``."""
    time.sleep(60)
