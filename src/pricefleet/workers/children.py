"""Child processes that do not outlive their parent.

A supervisor (`pricefleet run`, `autoscale`, `demo`) stops its children on SIGTERM; but killed
with SIGKILL it cannot, and an orphaned worker or API server would keep running (and keep its
port). On Linux the kernel sends the child SIGTERM when its parent dies (`PR_SET_PDEATHSIG`),
so it drains and exits as on a normal stop. Elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import signal
import sys

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1
# Loaded here, in the parent: between fork and exec the child only makes one foreign call
# (no dlopen, no imports), which keeps `preexec_fn` safe beside the parent's threads.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent() -> None:
    """`preexec_fn` of a child: SIGTERM it when the process that started it dies."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
