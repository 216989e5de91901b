"""`QueueLimiter`: the fetcher's request pacing, backed by the queue's per-site GCRA.

A worker's jobs already took their rate slot when they were leased, so the first request a job
makes is paid for. Everything else a job sends (robots.txt, a retry, a redirect hop) takes a
slot from the same limiter through `JobQueue.acquire`, so all workers on all machines together
keep to the site's rate (cluster-wide on Redis). The credit is per asyncio task: `prepaid()`
marks the current job's first request as paid.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

from pricefleet.queue.base import JobQueue

__all__ = ["QueueLimiter", "prepaid"]

_credit: ContextVar[bool] = ContextVar("pricefleet_request_credit", default=False)
#: Longest single sleep while waiting for a slot, so a rate raised meanwhile is noticed.
_MAX_WAIT = 1.0


def prepaid() -> None:
    """The next request of the current task was paid for by its lease."""
    _credit.set(True)


class QueueLimiter:
    """A `fetch.RateLimiter` on the queue's pacing, with a job's lease as its first slot."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    async def acquire(self, site_id: str, rate: float, burst: int) -> None:
        """Use the task's credit if it has one; else wait for a slot of the site and take it."""
        if _credit.get():
            _credit.set(False)
            return
        while True:
            wait = await self.queue.acquire(site_id, rate, burst)
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, _MAX_WAIT))
