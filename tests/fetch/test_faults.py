"""Transient faults at the shop: retried with backoff until every page is in, within the retries."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from pricefleet.errors import RetryLater
from pricefleet.fetch import Fetcher
from pricefleet.fetch.retry import backoff_delay, parse_retry_after
from tests.fetch.helpers import own_shop, policy, product_urls, set_faults, stats
from tests.servers import DemoServer

MIX = "jsonld:5xx=0.1,429=0.05,hang=0.02,truncate=0.01"
#: Pacing out of the way where a test measures something else.
FAST: dict[str, Any] = {"requests_per_second": 200.0, "max_concurrency": 16}


async def test_every_page_arrives_through_the_fault_mix(own_demo: list[DemoServer]) -> None:
    """300 pages with 18 % of answers failing (5xx, 429, hangs, truncation): all 300 arrive."""
    server = own_shop(own_demo, "--faults", MIX, "--hang-seconds", "30")
    urls = product_urls(server, "jsonld", 300)
    # A page is lost only if all of its 1 + retries attempts fail: 300 · 0.18^9 ≈ 6e-5 with 8.
    site = policy(
        server, "jsonld", requests_per_second=400, max_concurrency=24, timeout=1.0, retries=8
    )
    started = time.monotonic()
    async with Fetcher() as fetcher:
        pages = await asyncio.gather(*(fetcher.fetch(url, site) for url in urls))
    took = time.monotonic() - started
    seen = stats(server, "jsonld")
    assert [page.url for page in pages] == urls
    assert all(page.status == 200 and page.body.endswith(b"</html>") for page in pages)
    faults = seen["faults"]
    assert set(faults) == {"5xx", "429", "hang", "truncate"}, faults
    # Every failed answer was followed by exactly one more attempt, and nothing else was sent:
    # 300 pages and robots.txt answered once each, plus one request per fault.
    assert seen["requests"] == 301 + sum(faults.values())
    attempts = sum(page.attempts for page in pages)
    assert 300 < attempts <= 300 + sum(faults.values())
    print(
        f"300/300 pages in {took:.1f} s, {attempts} attempts, faults {faults}, "
        f"most attempts for one page {max(page.attempts for page in pages)}"
    )


async def test_retry_after_is_honoured(own_demo: list[DemoServer]) -> None:
    """A 429 with Retry-After: 1 makes the next attempt wait 1 s, though backoff would not."""
    server = own_shop(own_demo, "--faults", "jsonld:429=1.0")
    url = product_urls(server, "jsonld", 1)[0]
    site = policy(server, "jsonld", obey_robots=False, retries=2, backoff_base=0.0, **FAST)
    async with Fetcher() as fetcher:
        started = time.monotonic()
        with pytest.raises(RetryLater) as refused:
            await fetcher.fetch(url, site)
        waited = time.monotonic() - started
    assert 2.0 <= waited < 2.6  # two waits of Retry-After: 1 between three attempts
    assert refused.value.after == 1.0  # the queue is told the shop's own figure
    assert stats(server, "jsonld")["statuses"] == {"429": 3}


async def test_without_retry_after_backoff_decides(own_demo: list[DemoServer]) -> None:
    """The control: 503s without Retry-After are retried at once when backoff_base is 0."""
    server = own_shop(own_demo, "--faults", "jsonld:5xx=1.0")
    url = product_urls(server, "jsonld", 1)[0]
    site = policy(server, "jsonld", obey_robots=False, retries=2, backoff_base=0.0, **FAST)
    async with Fetcher() as fetcher:
        started = time.monotonic()
        with pytest.raises(RetryLater, match="status 50"):
            await fetcher.fetch(url, site)
        assert time.monotonic() - started < 0.5
    assert stats(server, "jsonld")["requests"] == 3


async def test_retry_after_recovers_once_the_shop_does(own_demo: list[DemoServer]) -> None:
    """A shop answering 429 for a while: the fetch waits as asked and succeeds afterwards."""
    server = own_shop(own_demo, "--faults", "jsonld:429=1.0")
    url = product_urls(server, "jsonld", 1)[0]
    site = policy(server, "jsonld", obey_robots=False, retries=4, backoff_base=0.0, **FAST)

    async def heal() -> None:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(set_no_faults, server)

    async with Fetcher() as fetcher:
        healing = asyncio.create_task(heal())
        page = await fetcher.fetch(url, site)
        await healing
    assert page.status == 200
    assert page.attempts == 3  # 429 at 0 s and 1 s, 200 at 2 s
    assert 2.0 <= page.elapsed < 2.6


def set_no_faults(server: DemoServer) -> None:
    """Heal the shop."""
    set_faults(server, "")


async def test_truncated_bodies_are_retried(own_demo: list[DemoServer]) -> None:
    """Bodies cut short are never returned: each is fetched again, whole."""
    server = own_shop(own_demo, "--faults", "jsonld:truncate=0.4")
    clean = own_shop(own_demo)
    urls = product_urls(server, "jsonld", 25)
    site = policy(server, "jsonld", obey_robots=False, retries=8, backoff_base=0.0, **FAST)
    async with Fetcher() as fetcher:
        pages = await asyncio.gather(*(fetcher.fetch(url, site) for url in urls))
        truth = await asyncio.gather(
            *(fetcher.fetch(url.replace(server.url, clean.url), site) for url in urls)
        )
    truncated = stats(server, "jsonld")["faults"]["truncate"]
    assert truncated > 0
    assert sum(page.attempts for page in pages) == 25 + truncated
    # The same bytes as the healthy twin serves (its pages name its own port).
    assert [p.body.replace(server.url.encode(), clean.url.encode()) for p in pages] == [
        t.body for t in truth
    ]


async def test_hung_connections_time_out_and_are_retried(own_demo: list[DemoServer]) -> None:
    """A shop that never answers is given up after the policy timeout, then asked again."""
    server = own_shop(own_demo, "--faults", "jsonld:hang=0.3", "--hang-seconds", "60")
    urls = product_urls(server, "jsonld", 12)
    site = policy(
        server, "jsonld", obey_robots=False, timeout=0.5, retries=8, backoff_base=0.0, **FAST
    )
    started = time.monotonic()
    async with Fetcher() as fetcher:
        pages = await asyncio.gather(*(fetcher.fetch(url, site) for url in urls))
    hung = stats(server, "jsonld")["faults"]["hang"]
    assert hung > 0
    assert sum(page.attempts for page in pages) == 12 + hung
    retried = [page for page in pages if page.attempts > 1]
    assert all(page.elapsed >= 0.5 * (page.attempts - 1) for page in retried)
    assert time.monotonic() - started < 10  # not the shop's 60 s


def test_retry_after_reads_seconds_and_dates() -> None:
    """Retry-After as delta-seconds or an HTTP date; garbage is ignored."""
    now = 1_700_000_000.0
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:40 GMT", now=now) == 20.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_is_full_jitter_capped() -> None:
    """Backoff delays are uniform in [0, min(cap, base·2^n)]."""
    delays = [backoff_delay(n, 0.5, 30.0) for n in range(12) for _ in range(50)]
    assert all(0 <= d <= 30.0 for d in delays)
    assert max(backoff_delay(0, 0.5, 30.0) for _ in range(200)) <= 0.5
    assert max(backoff_delay(10, 0.5, 30.0) for _ in range(200)) > 15  # capped at 30, not 512
