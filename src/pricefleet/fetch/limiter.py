"""Per-site request pacing: the `RateLimiter` interface and its in-process GCRA backend.

GCRA (generic cell rate algorithm) with emission interval T = 1/rate and tolerance
τ = (burst − 1)·T grants request k at time t_k only if t_k ≥ TAT − τ, then sets
TAT = max(TAT, t_k) + T. Hence any n grants span at least (n − 1)·T − τ seconds: in any window
of length L there are at most burst + L·rate of them, and in a half-open one-second window
(what a shop's access log counts) fewer than burst + rate.

The rate may change between calls (robots.txt's Crawl-delay is learnt after the first
request). We keep V = TAT − T, the virtual time of the last grant, and apply each caller's own
T: TAT = V + T. For a constant rate this is GCRA exactly; when the rate drops, the next grant
is already spaced by the new, longer interval.

This module owns pacing only. It must not know about HTTP, robots.txt or concurrency; the
queue adds a Redis backend (cluster-wide) behind the same `RateLimiter` protocol.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["LocalRateLimiter", "RateLimiter"]


class RateLimiter(Protocol):
    """Grants requests to a site at `rate` per second with bursts of `burst`.

    `rate` and `burst` are the caller's, per call: a site's rate drops once its robots.txt
    asks for a Crawl-delay, and the next grant must already respect the lower rate.
    """

    async def acquire(self, site_id: str, rate: float, burst: int) -> None:
        """Wait until the site has a free slot, and take it."""
        ...


class _Site:
    __slots__ = ("last", "lock")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.last = float("-inf")  # V: the virtual time of the last grant


class LocalRateLimiter:
    """GCRA in this process, on a monotonic clock.

    Fair: callers queue on an `asyncio.Lock`, which wakes waiters first come first served.
    Cancellation-safe: a slot is taken only after the wait has ended, so a caller cancelled
    while waiting consumes nothing. The grant time is the clock read after the wait, so a late
    wake-up delays the following grants instead of squeezing them together.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sites: dict[str, _Site] = {}

    async def acquire(self, site_id: str, rate: float, burst: int) -> None:
        """Wait for a slot of `site_id` at `rate` per second, bursts of `burst`, and take it."""
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst ≥ 1, got {rate=} {burst=}")
        site = self._sites.get(site_id)
        if site is None:
            site = self._sites[site_id] = _Site()
        interval = 1.0 / rate
        tolerance = (burst - 1) * interval
        async with site.lock:
            while True:
                now = self._clock()
                tat = site.last + interval
                wait = tat - tolerance - now
                if wait <= 0:
                    site.last = max(tat, now)
                    return
                await asyncio.sleep(wait)

    def next_free(self, site_id: str, rate: float, burst: int) -> float:
        """Seconds until `site_id` has a free slot (0 when it has one now); takes nothing."""
        site = self._sites.get(site_id)
        if site is None:
            return 0.0
        return max(0.0, site.last + 1 / rate - (burst - 1) / rate - self._clock())
