"""`QueueLimiter`: the fetcher's request pacing, backed by the queue's per-site GCRA.

A worker's jobs already took their rate slot when they were leased, so the first request a job
makes is paid for. Everything else a job sends (robots.txt, a retry, a redirect hop) takes a
slot from the same limiter through `JobQueue.acquire`, so all workers on all machines together
keep to the site's rate (cluster-wide on Redis). The credit is per asyncio task: `prepaid()`
marks the current job's first request as paid.

The fetcher passes each request's rate, which robots.txt's `Crawl-delay` may have lowered below
the recipe's: the first time it does, the site's lease pacing in the queue is lowered to match,
so leases (not only the extra requests) keep the shop's Crawl-delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import replace

from pricefleet.queue.base import JobQueue, SiteLimits

__all__ = ["QueueLimiter", "prepaid"]

_credit: ContextVar[bool] = ContextVar("pricefleet_request_credit", default=False)
#: Longest single sleep while waiting for a slot, so a rate raised meanwhile is noticed.
_MAX_WAIT = 1.0


def prepaid() -> None:
    """The next request of the current task was paid for by its lease."""
    _credit.set(True)


class QueueLimiter:
    """A `fetch.RateLimiter` on the queue's pacing, with a job's lease as its first slot.

    `limits` are the sites' lease limits as the worker set them (from the recipes)."""

    def __init__(self, queue: JobQueue, limits: Mapping[str, SiteLimits] | None = None) -> None:
        self.queue = queue
        self.limits = dict(limits or {})

    async def acquire(self, site_id: str, rate: float, burst: int) -> None:
        """Use the task's credit if it has one; else wait for a slot of the site and take it."""
        known = self.limits.get(site_id)
        if known is not None and 0 < rate < known.rate:
            # A Crawl-delay: the site's leases slow down too, for every worker.
            lowered = replace(known, rate=rate, burst=min(known.burst, max(1, burst)))
            self.limits[site_id] = lowered
            await self.queue.set_limits(site_id, lowered)
        if _credit.get():
            _credit.set(False)
            return
        while True:
            wait = await self.queue.acquire(site_id, rate, burst)
            if wait <= 0:
                return
            await asyncio.sleep(min(wait, _MAX_WAIT))
