"""Child processes: started, kept running, stopped, and never outliving their parent.

A supervisor (`pricefleet run`, `autoscale`, `demo`) stops its children on SIGTERM; but killed
with SIGKILL it cannot, and an orphaned worker or API server would keep running (and keep its
port). On Linux the kernel sends the child SIGTERM when its parent dies (`PR_SET_PDEATHSIG`),
so it drains and exits as on a normal stop. Elsewhere this does nothing.

`keep_running` is the restart loop of one supervised child (the API server of `pricefleet run`,
each process of `pricefleet run --cluster`). Each child leads its own process group, so a child
that does not stop in time is killed with everything it started (a server's worker processes
among them), not only the process the supervisor knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Child",
    "die_with_parent",
    "gated_output",
    "keep_running",
    "kill_gated",
    "open_gate",
    "start_gated",
    "wait_for_gate",
]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Loaded here, in the parent: between fork and exec the child only makes one foreign call
# (no dlopen, no imports), which keeps `preexec_fn` safe beside the parent's threads.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent() -> None:
    """`preexec_fn` of a child: SIGTERM it when the process that started it dies."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


# Gated children: started at once, so that their start-up (imports) overlaps their parent's,
# but held at `wait_for_gate` until the parent is ready for them (`crawl --processes`: the
# store migrated). A parent that fails or dies closes the pipe instead: they see end of file
# and stop, and a child already past the gate gets SIGTERM when its parent dies.
_GO = b"go\n"


def start_gated(commands: Sequence[Sequence[str]]) -> list[subprocess.Popen[bytes]]:
    """Start each command now, with a pipe to its standard input (the gate) and from its
    standard output."""
    return [
        subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=die_with_parent,  # one foreign call, loaded before the fork
        )
        for command in commands
    ]


def open_gate(children: Sequence[subprocess.Popen[bytes]]) -> None:
    """Let every child of `start_gated` go on past `wait_for_gate`."""
    for child in children:
        assert child.stdin is not None
        child.stdin.write(_GO)
        child.stdin.close()


def wait_for_gate() -> bool:
    """In a child of `start_gated`: block until the parent opens the gate; False when the
    parent closed the pipe without opening it (it failed, or died)."""
    return sys.stdin.buffer.readline() == _GO


def gated_output(child: subprocess.Popen[bytes]) -> bytes:
    """Everything a child of `start_gated` writes to its standard output, once it has ended
    (blocks: run it in a thread)."""
    assert child.stdout is not None
    with child.stdout:
        output = child.stdout.read()
    child.wait()
    return output


def kill_gated(children: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGKILL the children still running, and reap them."""
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()


@dataclass(frozen=True)
class Child:
    """One supervised process: a name for the logs, its command and its environment (None:
    this process's)."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = field(default=None, repr=False)


async def keep_running(
    child: Child,
    stopping: asyncio.Event,
    *,
    restart_after: float = 1.0,
    stop_timeout: float = 30.0,
) -> None:
    """Run `child` until `stopping` is set, starting it again `restart_after` seconds after
    each exit; on stop, SIGTERM it and, after `stop_timeout` seconds, SIGKILL its process
    group (it and whatever it started that is still in the group)."""
    while not stopping.is_set():
        process = await asyncio.create_subprocess_exec(
            *child.argv,
            env=dict(child.env) if child.env is not None else None,
            preexec_fn=die_with_parent,
            start_new_session=True,  # its own process group: see the module's docstring
        )
        log.info("%s started (pid %d)", child.name, process.pid)
        waiting = asyncio.create_task(process.wait())
        stop = asyncio.create_task(stopping.wait())
        await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set() and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(waiting), stop_timeout)
            except TimeoutError:
                log.warning(
                    "%s did not stop in %.0f s; killing its process group",
                    child.name,
                    stop_timeout,
                )
        # Whatever is left in its group (everything, after a timeout; after an exit, what it
        # started and did not wait for, such as a server's workers holding its port) goes.
        _kill_group(process.pid)
        await waiting
        if stopping.is_set():
            return
        stop.cancel()
        log.warning("%s exited with %s; starting it again", child.name, process.returncode)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), restart_after)


def _kill_group(leader: int) -> None:
    """SIGKILL the process group `leader` led (its id stays reserved while any member lives)."""
    with contextlib.suppress(ProcessLookupError):  # nobody left in it
        os.killpg(leader, signal.SIGKILL)
