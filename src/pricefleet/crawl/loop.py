"""The event loop of the crawling processes (`pricefleet crawl`, `pricefleet worker`).

A crawl is event-loop bound: every page is a few dozen callbacks, socket reads and timer
handles. uvloop (libuv, in C) runs the same asyncio programs with less CPU per callback and per
socket read than the standard library's loop, so it is used when installed (it comes with
`uvicorn[standard]` on Linux and macOS); elsewhere the standard loop runs the same code.

The garbage collector is set for a crawl's allocation pattern: every page makes thousands of
short-lived containers (parsed JSON, headers, records), nearly all freed by reference counting,
yet each 700 container allocations start a young collection that walks them, and each
tenth of those walks the middle generation. The objects made before the crawl starts (modules,
recipe, store; ~100,000 of them) are moved out of the collector's view (`gc.freeze`), and the
young generation is collected every `_YOUNG` allocations instead of 700, for the length of
the run only. Cycles are still collected, later; nothing else changes.

This module owns those choices. It must not know what runs on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["crawl_gc", "loop_factory", "run"]

T = TypeVar("T")

#: Allocations (net) between two young collections during a run (CPython's default: 700).
_YOUNG = 50_000


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when uvloop is installed, else None (the standard loop)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@contextlib.contextmanager
def crawl_gc() -> Iterator[None]:
    """The collector set for a crawl (see the module docstring), restored on exit. A process
    that froze objects of its own before keeps them frozen, and nothing more is frozen here
    (`gc.unfreeze` cannot tell whose objects it would thaw)."""
    thresholds = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.collect()  # nothing collectable is frozen
        gc.freeze()
    gc.set_threshold(_YOUNG, thresholds[1], thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if freeze:
            gc.unfreeze()


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the fastest loop available, with the collector set for a crawl."""
    with crawl_gc(), asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
