"""`keep_running`: a supervised child is restarted when it exits, and on stop it goes with
everything it started, even when it or its own children ignore SIGTERM."""

from __future__ import annotations

import asyncio
import os
import subprocess
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


# A gated child: says when it started, waits at the gate, then says what the gate said.
_GATED = """
import sys, time
from pricefleet.workers.children import wait_for_gate
print("waiting", flush=True)
print("go" if wait_for_gate() else "stopped", flush=True)
"""


def test_gated_children_wait_until_the_gate_opens() -> None:
    from pricefleet.workers.children import gated_output, open_gate, start_gated

    children = start_gated([[sys.executable, "-c", _GATED]] * 2)
    for child in children:  # both started and are held at the gate
        assert child.stdout is not None
        assert child.stdout.readline() == b"waiting\n"
    time.sleep(0.2)
    assert all(child.poll() is None for child in children)
    open_gate(children)
    assert [gated_output(child) for child in children] == [b"go\n", b"go\n"]
    assert [child.returncode for child in children] == [0, 0]


def test_a_gated_child_stops_when_the_pipe_closes_without_the_gate_opening() -> None:
    from pricefleet.workers.children import gated_output, start_gated

    (child,) = start_gated([[sys.executable, "-c", _GATED]])
    assert child.stdin is not None
    child.stdin.close()  # what a parent that fails before opening the gate leaves
    assert gated_output(child) == b"waiting\nstopped\n"
    assert child.returncode == 0


def test_a_gated_child_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    # The parent (a process of its own) starts a gated child and is SIGKILLed: the child ends
    # (SIGTERM from the kernel, or end of file at the gate), and never goes on.
    child_script = tmp_path / "child.py"
    child_script.write_text(
        "import sys\nsys.stdout = open(sys.argv[1], 'w', buffering=1)\n" + _GATED
    )
    out = tmp_path / "child.out"
    parent_script = tmp_path / "parent.py"
    parent_script.write_text(
        "import sys, time\n"
        "from pricefleet.workers.children import start_gated\n"
        f"(child,) = start_gated([[sys.executable, {str(child_script)!r}, {str(out)!r}]])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, str(parent_script)], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    with parent.stdout:
        pid = int(parent.stdout.readline())
    for _ in range(200):
        if _lines(out) == ["waiting"]:
            break
        time.sleep(0.05)
    assert _lines(out) == ["waiting"]
    parent.kill()
    parent.wait()
    for _ in range(200):
        if not _alive(pid):
            break
        time.sleep(0.05)
    assert not _alive(pid)
    assert "go" not in _lines(out)
