"""The fetcher's limiter on the queue: a job's first request is prepaid, the rest take slots,
and a Crawl-delay slows the site's leases down."""

from __future__ import annotations

import asyncio
import time

from pricefleet.models import JobKind
from pricefleet.queue import JobQueue, NewJob, SiteLimits
from pricefleet.queue.limiter import QueueLimiter, prepaid


async def test_first_request_is_prepaid_the_next_ones_wait(queue: JobQueue) -> None:
    """With the lease's slot as credit the first request goes at once; a second one in the same
    job waits for the site's next slot."""
    limits = SiteLimits(rate=5, burst=1)
    await queue.set_limits("shop", limits)
    limiter = QueueLimiter(queue, {"shop": limits})
    assert await queue.acquire("shop", 5, 1) == 0  # the lease's slot, taken
    prepaid()
    started = time.monotonic()
    await limiter.acquire("shop", 5, 1)
    assert time.monotonic() - started < 0.1
    await limiter.acquire("shop", 5, 1)
    assert time.monotonic() - started >= 0.15  # the next slot, 0.2 s after the first


async def test_a_crawl_delay_slows_the_leases(queue: JobQueue) -> None:
    """A request paced at a Crawl-delay's rate (2/s) lowers the site's lease rate from 100/s."""
    limits = SiteLimits(rate=100, burst=1, concurrency=0)
    await queue.set_limits("shop", limits)
    await queue.enqueue(
        [NewJob("shop", str(n), JobKind.PRODUCT, f"https://s.example/{n}") for n in range(50)]
    )
    limiter = QueueLimiter(queue, {"shop": limits})
    prepaid()
    await limiter.acquire("shop", 2, 1)
    assert limiter.limits["shop"].rate == 2
    got = 0
    start = time.monotonic()
    while time.monotonic() - start < 1.0:
        got += len(await queue.lease(50))
        await asyncio.sleep(0.02)
    assert got <= 3
