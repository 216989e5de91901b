"""Faults appear at their configured rates; the meter sees what a shop's access log would."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest

from pricefleet.demo.meter import Meter
from tests.demo.helpers import shops_like, truth_of
from tests.servers import DemoServer, start_demo


async def _stats(http: aiohttp.ClientSession, server: DemoServer) -> dict[str, Any]:
    async with http.get(f"{server.url}/_stats") as answer:
        data: dict[str, Any] = await answer.json()
        return data


def _urls(server: DemoServer, shop: str, products: int, seed: int) -> list[str]:
    return [t["url"] for t in truth_of(shops_like(products, seed)[shop], 1, server.url)]


async def test_faults_appear_at_their_configured_rates(
    own_demo: list[DemoServer], http: aiohttp.ClientSession
) -> None:
    """5xx, 429 (with Retry-After) and truncated bodies show up at the rates asked for."""
    spec = "jsonld:5xx=0.2,429=0.1;microdata:truncate=0.25"
    server = start_demo("--products", "200", "--seed", "3", "--day", "1", "--faults", spec)
    own_demo.append(server)
    urls = _urls(server, "jsonld", 200, 3)
    statuses: Counter[int] = Counter()
    for n in range(600):
        async with http.get(urls[n % len(urls)]) as answer:
            await answer.read()
            statuses[answer.status] += 1
            if answer.status == 429:
                assert answer.headers["Retry-After"] == "1"
    errors = statuses[500] + statuses[502] + statuses[503]
    assert 80 <= errors <= 160  # 120 expected; binomial sd ≈ 10
    assert 30 <= statuses[429] <= 90  # 60 expected; sd ≈ 7
    assert statuses[200] == 600 - errors - statuses[429]
    assert min(statuses[500], statuses[502], statuses[503]) > 0

    truncated = 0
    for url in _urls(server, "microdata", 200, 3) * 2:
        try:
            async with http.get(url) as answer:
                await answer.read()
        except aiohttp.ClientPayloadError:
            truncated += 1
    assert 60 <= truncated <= 140  # 100 expected; sd ≈ 8.7

    stats = (await _stats(http, server))["shops"]
    assert stats["jsonld"]["faults"] == {"429": statuses[429], "5xx": errors}
    assert stats["microdata"]["faults"] == {"truncate": truncated}
    assert stats["plain"]["faults"] == {}


async def test_slow_and_hung_answers(
    own_demo: list[DemoServer], http: aiohttp.ClientSession
) -> None:
    """`slow` answers late but whole; `hang` never answers, so the client's timeout fires."""
    server = start_demo("--products", "50", "--slow-seconds", "0.4", "--hang-seconds", "30")
    own_demo.append(server)
    url = _urls(server, "plain", 50, 1)[0]
    started = time.monotonic()
    async with http.get(url + "&fault=slow") as answer:
        assert answer.status == 200
        assert b"product-detail" in await answer.read()
    assert time.monotonic() - started >= 0.4
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(url + "&fault=hang", timeout=aiohttp.ClientTimeout(total=1)) as answer:
            await answer.read()
    async with http.get(url) as answer:  # the server is still fine
        assert answer.status == 200
    for _ in range(50):  # the hung request is let go once the client gave up
        stats = (await _stats(http, server))["shops"]["plain"]
        if stats["in_flight"] == 0:
            break
        await asyncio.sleep(0.1)
    assert stats["in_flight"] == 0
    assert stats["faults"] == {"hang": 1, "slow": 1}


async def test_faults_change_at_run_time(
    own_demo: list[DemoServer], http: aiohttp.ClientSession
) -> None:
    """PUT /_faults replaces the rates at once; a bad spec is refused with a reason."""
    server = start_demo("--products", "50")
    own_demo.append(server)
    url = f"{server.url}/api/api/categories/"
    async with http.put(f"{server.url}/_faults", json={"spec": "api:429=1"}) as answer:
        assert answer.status == 200
    async with http.get(url) as answer:
        assert answer.status == 429
    async with http.put(f"{server.url}/_faults", json={"spec": "api:explode=1"}) as answer:
        assert answer.status == 400
        assert "explode" in await answer.text()
    async with http.put(f"{server.url}/_faults", json={"spec": ""}) as answer:
        assert (await answer.json()) == {"rates": {}}
    async with http.get(url) as answer:
        assert answer.status == 200


async def test_clock_moves_every_shop_to_another_day(
    own_demo: list[DemoServer], http: aiohttp.ClientSession
) -> None:
    """PUT /_clock sets the demo day for every page; a bad day is refused."""
    server = start_demo("--products", "100", "--seed", "5", "--day", "1")
    own_demo.append(server)
    shop = shops_like(100, 5)["api"]
    later = {t["id"]: t["price"] for t in truth_of(shop, 45, server.url)}
    moved = [t for t in truth_of(shop, 1, server.url) if t["price"] != later[t["id"]]]
    assert moved
    url = f"{server.url}/api/api/products/{moved[0]['id']}/"
    async with http.get(url) as answer:
        assert (await answer.json())["price_instructions"]["unit_price"] == moved[0]["price"]
    async with http.put(f"{server.url}/_clock", json={"day": 45}) as answer:
        assert await answer.json() == {"day": 45, "fixed": True}
    async with http.get(url) as answer:
        assert (await answer.json())["price_instructions"]["unit_price"] == later[moved[0]["id"]]
    async with http.put(f"{server.url}/_clock", json={"day": -3}) as answer:
        assert answer.status == 400
    async with http.put(f"{server.url}/_clock", data=b"{not json") as answer:
        assert answer.status == 400
    async with http.put(f"{server.url}/_clock", json={"day": None}) as answer:
        assert (await answer.json())["fixed"] is False  # back on the real clock


async def test_meter_counts_peak_concurrency_and_rate(
    own_demo: list[DemoServer], http: aiohttp.ClientSession
) -> None:
    """The meter reports the busiest second, the most open requests and robots violations."""
    server = start_demo("--products", "100", "--slow-seconds", "0.5")
    own_demo.append(server)
    urls = _urls(server, "jsonld", 100, 1)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=6)) as limited:

        async def fetch(url: str) -> None:
            async with limited.get(url) as answer:
                await answer.read()

        await asyncio.gather(*(fetch(f"{u}?fault=slow") for u in urls[:12]))
    stats = (await _stats(http, server))["shops"]["jsonld"]
    assert stats["peak_concurrency"] == 6
    assert stats["requests"] == 12
    assert stats["in_flight"] == 0

    async with http.delete(f"{server.url}/_stats") as answer:
        assert answer.status == 200
    for url in urls[:10]:  # paced at 4 per second
        async with http.get(url) as answer:
            await answer.read()
        await asyncio.sleep(0.25)
    paced = (await _stats(http, server))["shops"]["jsonld"]
    assert paced["requests"] == 10
    assert paced["peak_requests_per_second"] <= 5
    for url in urls[:30]:  # a burst, well within one second
        async with http.get(url) as answer:
            await answer.read()
    burst = (await _stats(http, server))["shops"]["jsonld"]
    assert burst["peak_requests_per_second"] >= 25
    assert burst["disallowed_requests"] == 0
    for path in ("/jsonld/cart?add=100001", "/jsonld/c/leche/?sort=price", "/jsonld/c/leche/"):
        async with http.get(server.url + path) as answer:
            await answer.read()
    assert (await _stats(http, server))["shops"]["jsonld"]["disallowed_requests"] == 2


async def test_meter_sees_a_crawlers_connections_but_never_more(
    own_demo: list[DemoServer],
) -> None:
    """Fast pages on 16 busy connections overlap in the meter, up to 16 and no further."""
    server = start_demo("--products", "200")
    own_demo.append(server)
    urls = _urls(server, "microdata", 200, 1)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as limited:

        async def fetch(url: str) -> None:
            async with limited.get(url) as answer:
                await answer.read()

        await asyncio.gather(*(fetch(u) for u in urls))
        stats = (await _stats(limited, server))["shops"]["microdata"]
    assert stats["requests"] == len(urls)
    assert 4 <= stats["peak_concurrency"] <= 16


def test_meter_window_is_one_second() -> None:
    """Requests more than a second apart never share the window; those within it do."""
    now = [0.0]
    meter = Meter(clock=lambda: now[0])
    shop = meter.shop("x")
    for step in range(10):
        now[0] = step * 0.3  # 0, 0.3, 0.6, 0.9 share a second; 1.0 later the first drops out
        shop.started(meter.clock())
        shop.finished(200)
    assert shop.peak_rps == 4
    assert shop.peak_concurrency == 1
    assert meter.as_dict()["shops"]["x"]["statuses"] == {"200": 10}
