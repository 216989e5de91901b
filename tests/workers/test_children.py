"""`keep_running`: a supervised child is restarted when it exits, and on stop it goes with
everything it started, even when it or its own children ignore SIGTERM."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from pricefleet.workers.children import Child, keep_running
from tests.test_cli import _alive

# A child that starts a grandchild (both ignore SIGTERM unless told otherwise), writes the
# pids to a file, and sleeps: a server whose worker hangs in its shutdown.
_FAMILY = """
import os, signal, subprocess, sys, time
if sys.argv[2] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen(
    [sys.executable, "-c",
     "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"]
)
with open(sys.argv[1], "a") as out:
    out.write(f"{os.getpid()} {grandchild.pid}\\n")
time.sleep(600)
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def _pids(path: Path, lines: int) -> list[tuple[int, int]]:
    for _ in range(200):
        if len(text := _lines(path)) >= lines:
            return [(int(a), int(b)) for a, b in (line.split() for line in text)]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the child did not write {lines} line(s) of pids to {path}")


def _gone(pids: list[int], seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


async def _supervise(tmp_path: Path, mode: str, stop_timeout: float) -> list[tuple[int, int]]:
    out = tmp_path / "pids"
    stopping = asyncio.Event()
    child = Child("family", [sys.executable, "-c", _FAMILY, str(out), mode])
    running = asyncio.create_task(keep_running(child, stopping, stop_timeout=stop_timeout))
    try:
        pids = await _pids(out, 1)
        stopping.set()
        await asyncio.wait_for(running, stop_timeout + 10)
    finally:
        running.cancel()
    return pids


def test_a_child_ignoring_sigterm_is_killed_with_its_children(tmp_path: Path) -> None:
    [(child, grandchild)] = asyncio.run(_supervise(tmp_path, "ignore", stop_timeout=0.5))
    assert _gone([child, grandchild]) == []


def test_a_stopped_child_leaves_nothing_behind(tmp_path: Path) -> None:
    # The child stops on SIGTERM at once; the grandchild it started would be orphaned.
    [(child, grandchild)] = asyncio.run(_supervise(tmp_path, "stop", stop_timeout=30))
    assert _gone([child, grandchild]) == []


def test_a_child_that_exits_is_started_again(tmp_path: Path) -> None:
    out = tmp_path / "pids"

    async def run() -> list[tuple[int, int]]:
        stopping = asyncio.Event()
        child = Child("family", [sys.executable, "-c", _FAMILY, str(out), "stop"])
        running = asyncio.create_task(
            keep_running(child, stopping, restart_after=0.1, stop_timeout=5)
        )
        try:
            [(first, _)] = await _pids(out, 1)
            os.kill(first, 9)
            pids = await _pids(out, 2)
            stopping.set()
            await asyncio.wait_for(running, 15)
        finally:
            running.cancel()
        return pids

    pids = asyncio.run(run())
    assert pids[0][0] != pids[1][0]
    assert _gone([pid for pair in pids for pid in pair]) == []
