"""The event loop of the crawling processes (`pricefleet crawl`, `pricefleet worker`).

A crawl is event-loop bound: every page is a few dozen callbacks, socket reads and timer
handles. uvloop (libuv, in C) runs the same asyncio programs with less CPU per callback and per
socket read than the standard library's loop, so it is used when installed (it comes with
`uvicorn[standard]` on Linux and macOS); elsewhere the standard loop runs the same code.

This module owns that choice. It must not know what runs on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "run"]

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when uvloop is installed, else None (the standard loop)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the fastest loop available."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
