"""The circuit breaker against a shop that fails: open, refuse without sending, probe, close."""

from __future__ import annotations

import asyncio
import time

import pytest

from pricefleet.errors import CircuitOpen, RetryLater
from pricefleet.fetch import BreakerState, CircuitBreakers, Fetcher
from tests.fetch.helpers import own_shop, policy, product_urls, set_faults, stats
from tests.servers import DemoServer


async def test_breaker_opens_probes_and_closes(own_demo: list[DemoServer]) -> None:
    """3 failed fetches open the circuit; no request leaves while open; one probe after the
    cooldown, which re-opens on failure and closes once the shop has recovered."""
    server = own_shop(own_demo, "--faults", "jsonld:5xx=1.0")
    urls = product_urls(server, "jsonld", 10)
    site = policy(
        server,
        "jsonld",
        requests_per_second=200,
        obey_robots=False,
        retries=1,
        backoff_base=0.0,
        breaker_failures=3,
        breaker_cooldown=0.6,
    )
    async with Fetcher() as fetcher:
        for url in urls[:3]:
            assert fetcher.breaker_state("jsonld") is BreakerState.CLOSED
            with pytest.raises(RetryLater) as failed:
                await fetcher.fetch(url, site)
        assert fetcher.breaker_state("jsonld") is BreakerState.OPEN
        assert failed.value.after >= 0.5  # the queue is told to come back after the cooldown
        assert stats(server, "jsonld")["requests"] == 6  # 3 fetches × 2 attempts

        for url in urls[3:]:
            with pytest.raises(CircuitOpen) as refused:
                await fetcher.fetch(url, site)
        assert time.time() < refused.value.until <= time.time() + 0.6
        assert stats(server, "jsonld")["requests"] == 6  # nothing was sent while open

        await asyncio.sleep(0.65)
        assert fetcher.breaker_state("jsonld") is BreakerState.HALF_OPEN
        outcomes = await asyncio.gather(
            *(fetcher.fetch(url, site) for url in urls[:5]), return_exceptions=True
        )
        kinds = sorted(type(outcome).__name__ for outcome in outcomes)
        assert kinds == ["CircuitOpen"] * 4 + ["RetryLater"]  # exactly one probe, one attempt
        assert stats(server, "jsonld")["requests"] == 7
        assert fetcher.breaker_state("jsonld") is BreakerState.OPEN  # the probe failed

        set_faults(server, "")  # the shop recovers
        await asyncio.sleep(0.65)
        page = await fetcher.fetch(urls[0], site)
        assert page.status == 200
        assert fetcher.breaker_state("jsonld") is BreakerState.CLOSED
        pages = await asyncio.gather(*(fetcher.fetch(url, site) for url in urls))
        assert all(page.status == 200 for page in pages)
    assert stats(server, "jsonld")["requests"] == 7 + 1 + 10


def test_success_resets_the_failure_streak() -> None:
    """Only consecutive failures count: a success in between starts the count again."""
    now = [0.0]
    breakers = CircuitBreakers(clock=lambda: now[0])
    for _ in range(2):
        breakers.admit("s")
        breakers.failure("s", False, threshold=3, cooldown=5.0)
    breakers.success("s", False)
    for _ in range(2):
        breakers.failure("s", False, threshold=3, cooldown=5.0)
    assert breakers.state("s") is BreakerState.CLOSED
    breakers.failure("s", False, threshold=3, cooldown=5.0)
    assert breakers.state("s") is BreakerState.OPEN
    now[0] = 5.0
    assert breakers.state("s") is BreakerState.HALF_OPEN
    assert breakers.admit("s") is True  # the probe
    with pytest.raises(CircuitOpen):
        breakers.admit("s")  # only one at a time
    breakers.release("s", True)  # the probe ended without a verdict (cancelled)
    assert breakers.admit("s") is True
    breakers.success("s", True)
    assert breakers.state("s") is BreakerState.CLOSED
    assert breakers.admit("s") is False
