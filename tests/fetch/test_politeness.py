"""Politeness as the shop sees it: the GCRA rate, the concurrency cap, Crawl-delay, Disallow."""

from __future__ import annotations

import asyncio
import itertools
import math
import time

import pytest

from pricefleet.errors import BlockedURL
from pricefleet.fetch import Fetcher, LocalRateLimiter
from tests.fetch.helpers import own_shop, policy, product_urls, stats
from tests.servers import DemoServer


class RecordingLimiter:
    """A `RateLimiter` that remembers when each slot was granted (monotonic seconds)."""

    def __init__(self) -> None:
        self.inner = LocalRateLimiter()
        self.granted: list[float] = []

    async def acquire(self, site_id: str, rate: float, burst: int) -> None:
        """Wait for the real limiter, then note the time."""
        await self.inner.acquire(site_id, rate, burst)
        self.granted.append(time.monotonic())


def busiest_second(times: list[float]) -> int:
    """Most events in any half-open window (t − 1, t], as the demo shop's meter counts them."""
    times = sorted(times)
    best, start = 0, 0
    for end, now in enumerate(times):
        while times[start] <= now - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def gcra_bound(rate: float, burst: int) -> int:
    """Most GCRA grants in a half-open one-second window: n − 1 intervals of 1/rate, less the
    burst tolerance, must fit in under a second, so n < burst + rate."""
    return math.ceil(burst + rate) - 1


def arrival_bound(rate: float, burst: int) -> int:
    """Most arrivals the shop can count in its one-second window. A request reaches the shop
    some time d after its grant (connection set-up, scheduling): with d varying by less than one
    interval 1/rate, n arrivals in under a second need (n − 1)/rate − τ < 1 + 1/rate, so
    n < burst + rate + 1 — one more than at the grants, when a slower first request (a new
    connection) and a faster last one straddle the window's edge."""
    return gcra_bound(rate, burst) + 1


async def test_limiter_spaces_grants_as_gcra_promises() -> None:
    """Grants of 60 concurrent callers are spaced ≥ 1/rate apart after the burst."""
    limiter = LocalRateLimiter()
    rate, burst = 100.0, 3
    granted: list[float] = []

    async def take() -> None:
        await limiter.acquire("s", rate, burst)
        granted.append(time.monotonic())

    await asyncio.gather(*(take() for _ in range(60)))
    interval, tolerance = 1 / rate, (burst - 1) / rate
    for i in range(len(granted)):
        for j in range(i + 1, len(granted)):
            assert granted[j] - granted[i] >= (j - i) * interval - tolerance - 1e-9
    assert busiest_second(granted) <= gcra_bound(rate, burst) == 102
    assert granted[2] - granted[0] < interval  # the burst really is a burst


async def test_limiter_is_fair_and_cancellation_safe() -> None:
    """Waiters are served in arrival order, and a cancelled waiter takes no slot."""
    limiter = LocalRateLimiter()
    granted: dict[int, float] = {}

    async def take(n: int) -> None:
        await limiter.acquire("s", 10.0, 1)
        granted[n] = time.monotonic()

    tasks = []
    for n in range(6):
        tasks.append(asyncio.create_task(take(n)))
        await asyncio.sleep(0)  # arrive in order
    await asyncio.sleep(0.01)
    tasks[2].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert list(granted) == [0, 1, 3, 4, 5]
    # Five grants at 10/s: the last 4 intervals after the first (0.4 s), not 5 (0.5 s).
    assert 0.4 - 1e-6 <= granted[5] - granted[0] < 0.45


async def test_shop_sees_no_more_than_the_rate_and_the_concurrency(
    own_demo: list[DemoServer],
) -> None:
    """101 pages at rps=20, concurrency 3: the shop's busiest second ≤ 20, ≤ 3 at once."""
    # A third of the pages take 0.2 s, so the concurrency cap binds too, not only the rate.
    server = own_shop(own_demo, "--faults", "jsonld:slow=0.33", "--slow-seconds", "0.2")
    urls = product_urls(server, "jsonld", 101)
    limiter = RecordingLimiter()
    site = policy(server, "jsonld", requests_per_second=20, max_concurrency=3, burst=1)
    async with Fetcher(limiter=limiter) as fetcher:
        pages = await asyncio.gather(*(fetcher.fetch(url, site) for url in urls))
    assert all(page.status == 200 for page in pages)
    seen = stats(server, "jsonld")
    assert seen["requests"] == 102  # robots.txt once, then every page once
    assert len(limiter.granted) == 102
    # What GCRA promises, checked where it acts (the grant times) and where it matters (the shop).
    assert busiest_second(limiter.granted) <= gcra_bound(20, 1) == 20
    assert seen["peak_requests_per_second"] <= arrival_bound(20, 1) == 21
    assert seen["peak_concurrency"] <= 3
    assert seen["peak_concurrency"] == 3  # the cap was reached, so the test measured it
    print(
        f"rps=20, concurrency 3: shop saw peak {seen['peak_requests_per_second']} rps, "
        f"{seen['peak_concurrency']} open; busiest second at the grants "
        f"{busiest_second(limiter.granted)}"
    )


async def test_crawl_delay_lowers_the_rate(own_demo: list[DemoServer]) -> None:
    """robots.txt Crawl-delay 0.1 beats a policy of 20 rps: the shop sees ≤ 10 a second."""
    server = own_shop(own_demo, "--crawl-delay", "0.1")
    urls = product_urls(server, "microdata", 20)
    site = policy(server, "microdata", requests_per_second=20, burst=5, max_concurrency=4)
    limiter = RecordingLimiter()
    async with Fetcher(limiter=limiter) as fetcher:
        await asyncio.gather(*(fetcher.fetch(url, site) for url in urls))
    seen = stats(server, "microdata")
    assert seen["requests"] == 21
    granted = limiter.granted
    # robots.txt went at the policy's pace (nothing was known yet); every page 0.1 s after the
    # request before it, bursts included: Crawl-delay means one request per delay.
    assert min(b - a for a, b in itertools.pairwise(granted)) >= 0.1 - 1e-6
    assert busiest_second(granted) <= gcra_bound(10, 1) == 10
    assert seen["peak_requests_per_second"] <= arrival_bound(10, 1) == 11
    print(f"crawl-delay 0.1: shop saw peak {seen['peak_requests_per_second']} rps")


async def test_disallowed_paths_are_never_requested(own_demo: list[DemoServer]) -> None:
    """Paths robots.txt disallows raise BlockedURL and never reach the shop."""
    server = own_shop(own_demo)
    site = policy(server, "microdata")
    paths = ["/microdata/cart", "/microdata/account", "/microdata/c/leche/?page=1&sort=price"]
    async with Fetcher() as fetcher:
        for path in paths * 2:  # the second round is refused from the cached rules
            with pytest.raises(BlockedURL, match="disallows"):
                await fetcher.fetch(server.url + path, site)
    seen = stats(server, "microdata")
    assert seen["disallowed_requests"] == 0
    assert seen["requests"] == 1  # robots.txt, fetched once


async def test_robots_can_be_ignored_when_the_policy_says_so(own_demo: list[DemoServer]) -> None:
    """obey_robots=False fetches a disallowed page (for shops that allow us by contract)."""
    server = own_shop(own_demo)
    async with Fetcher() as fetcher:
        page = await fetcher.fetch(
            server.url + "/microdata/cart", policy(server, "microdata", obey_robots=False)
        )
    assert page.status == 200
    assert stats(server, "microdata")["disallowed_requests"] == 1
