"""Group commit for the queue backends: concurrent calls of one kind share a round trip.

A worker's tasks and the API's handlers call the queue one job at a time, concurrently, on one
`JobQueue`. Each such call alone costs a round trip (a Redis script, a SQLite transaction), and
round trips, not the server, bound the throughput of single-job calls. A `Coalescer` lets the
first call of a kind go at once, alone (no timer, no added latency when idle); calls arriving
while it is in flight wait, and when it returns they all go together in ONE batched round trip,
then the next group, and so on. Each caller gets its own answer from the batch.

What it promises its callers:

- **Own answers.** `flush` returns one result per request, in order; an `Exception` in a slot is
  raised to that caller only. An exception from `flush` itself reaches every caller of the batch.
- **Cancellation.** A caller cancelled while waiting is dropped before its batch goes. A caller
  cancelled while its batch is in flight cannot stop it (nor could it stop its own round trip
  before); its result goes to `orphan` (a lease is given back) and the other callers carry on.
- **One event loop.** State belongs to the running loop; a queue used from a new loop (tests,
  `asyncio.run` twice) starts afresh.

It must not know what the requests mean: merging them into one round trip that gives each its
sequential answer is the backend's `flush`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

_Req = TypeVar("_Req")
_Res = TypeVar("_Res")

#: Requests merged into one round trip at most (a bound on one Lua call's or transaction's work).
MAX_BATCH = 256


class Coalescer(Generic[_Req, _Res]):
    """Runs requests of one kind through `flush`, one round trip at a time, merging those that
    arrive while one is in flight."""

    def __init__(
        self,
        flush: Callable[[list[_Req]], Awaitable[Sequence[_Res | Exception]]],
        *,
        limit: int = MAX_BATCH,
        orphan: Callable[[_Res], Awaitable[object]] | None = None,
    ) -> None:
        self._flush = flush
        self._limit = limit
        self._orphan = orphan
        self._pending: deque[tuple[_Req, asyncio.Future[_Res]]] = deque()
        self._busy = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        #: Round trips made and requests they carried (how much sharing there was).
        self.flushes = 0
        self.requests = 0

    async def submit(self, request: _Req) -> _Res:
        """`request`'s answer, as if it had gone alone."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop: whatever the old one left is dead
            self._loop, self._task, self._busy = loop, None, False
            self._pending.clear()
        if not self._busy:
            # Idle: go at once, in the caller's own task (its cancellation is its own).
            self._busy = True
            self.flushes += 1
            self.requests += 1
            try:
                (result,) = await self._flush([request])
            finally:
                self._busy = False
                self._start()
            if isinstance(result, Exception):
                raise result
            return result
        future: asyncio.Future[_Res] = loop.create_future()
        self._pending.append((request, future))
        return await future

    def _start(self) -> None:
        """Send what waits, from a task of its own (no caller's cancellation can stop it)."""
        if self._pending and not self._busy and self._loop is not None:
            self._busy = True
            self._task = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch: list[tuple[_Req, asyncio.Future[_Res]]] = []
                while self._pending and len(batch) < self._limit:
                    request, future = self._pending.popleft()
                    if not future.done():  # cancelled while waiting: never sent
                        batch.append((request, future))
                if batch:
                    await self._send(batch)
        except asyncio.CancelledError:
            # The loop is shutting down: nobody waits any more.
            for _, future in self._pending:
                future.cancel()
            self._pending.clear()
            raise
        finally:
            self._busy = False
            self._task = None

    async def _send(self, batch: list[tuple[_Req, asyncio.Future[_Res]]]) -> None:
        self.flushes += 1
        self.requests += len(batch)
        try:
            results = await self._flush([request for request, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        orphans: list[_Res] = []
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller was cancelled while the batch was in flight
                if not isinstance(result, Exception):
                    orphans.append(result)
            elif isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
        if self._orphan is not None:
            for result in orphans:
                with contextlib.suppress(Exception):
                    await self._orphan(result)
