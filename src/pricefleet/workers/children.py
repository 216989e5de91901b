"""Child processes: started, kept running, stopped, and never outliving their parent.

A supervisor (`pricefleet run`, `autoscale`, `demo`) stops its children on SIGTERM; but killed
with SIGKILL it cannot, and an orphaned worker or API server would keep running (and keep its
port). On Linux the kernel sends the child SIGTERM when its parent dies (`PR_SET_PDEATHSIG`),
so it drains and exits as on a normal stop. Elsewhere this does nothing.

`keep_running` is the restart loop of one supervised child (the API server of `pricefleet run`,
each process of `pricefleet run --cluster`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Child", "die_with_parent", "keep_running"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Loaded here, in the parent: between fork and exec the child only makes one foreign call
# (no dlopen, no imports), which keeps `preexec_fn` safe beside the parent's threads.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent() -> None:
    """`preexec_fn` of a child: SIGTERM it when the process that started it dies."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


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
    each exit; on stop, SIGTERM it and SIGKILL it after `stop_timeout` seconds."""
    while not stopping.is_set():
        process = await asyncio.create_subprocess_exec(
            *child.argv,
            env=dict(child.env) if child.env is not None else None,
            preexec_fn=die_with_parent,
        )
        log.info("%s started (pid %d)", child.name, process.pid)
        waiting = asyncio.create_task(process.wait())
        stop = asyncio.create_task(stopping.wait())
        await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(waiting, stop_timeout)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                        process.kill()
                    await waiting
            return
        stop.cancel()
        log.warning("%s exited with %s; starting it again", child.name, process.returncode)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), restart_after)
