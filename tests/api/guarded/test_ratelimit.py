"""Per-key rate limits: headers, 429s, window resets, per-scope limits, and the shared Redis
budget of several API instances (the cluster property)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import redis.asyncio
from prometheus_client import CollectorRegistry

from pricefleet.api.problems import Problem
from pricefleet.api.ratelimit import (
    RETURN_SECONDS,
    RateLimiter,
    RateLimitState,
    lease_size,
    storage_url,
)
from pricefleet.config import Settings
from pricefleet.store import Store
from tests.api.guarded.conftest import REDIS_URL, Api, bearer, client
from tests.servers import free_port

REDIS = "async+" + REDIS_URL


async def _until_allowed(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    """Ask again until the window lets the request through (at most 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        answer = await http.get("/products", headers=headers)
        if answer.status_code != 429 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.05)


async def test_headers_count_down_then_429(api: Api, keys: dict[str, str]) -> None:
    """Each admitted response carries RateLimit-Limit/Remaining/Reset; past the limit a 429
    problem says when to retry."""
    app = api.app(limits={"read": "3/minute"})
    async with client(app) as http:
        answers = [await http.get("/products", headers=bearer(keys["read"])) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["ratelimit-limit"] for a in answers] == ["3"] * 4
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(0 < int(a.headers["ratelimit-reset"]) <= 60 for a in answers)
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["status"] == 429
    assert "3 per 1 minute" in refused.json()["detail"]


async def test_window_resets(api: Api, keys: dict[str, str]) -> None:
    """After the window passes, the caller gets its full budget back."""
    app = api.app(limits={"read": "3/second"})
    headers = bearer(keys["read"])
    async with client(app) as http:
        # Until refused: on a busy machine four requests may straddle a window's end.
        statuses = []
        while 429 not in statuses and len(statuses) < 20:
            statuses.append((await http.get("/products", headers=headers)).status_code)
        assert statuses[-1] == 429
        assert statuses.count(200) >= 3
        again = await _until_allowed(http, headers)
    assert again.status_code == 200
    assert again.headers["ratelimit-remaining"] == "2"


async def test_each_key_and_each_address_has_its_own_budget(api: Api, keys: dict[str, str]) -> None:
    """One key's exhausted budget does not touch another key's; anonymous callers are counted
    per client address."""
    app = api.app(public_reads=True, limits={"read": "1/minute"})
    async with client(app) as http:
        assert (await http.get("/products", headers=bearer(keys["read"]))).status_code == 200
        assert (await http.get("/products", headers=bearer(keys["read"]))).status_code == 429
        assert (await http.get("/products", headers=bearer(keys["crawl"]))).status_code == 200
        assert (await http.get("/products")).status_code == 200
        assert (await http.get("/products")).status_code == 429
    async with client(app, "10.0.0.2") as other:
        assert (await other.get("/products")).status_code == 200


async def test_limits_are_per_scope(api: Api, keys: dict[str, str]) -> None:
    """Crawl routes have their own, configurable limit; using it up leaves reads alone."""
    app = api.app(limits={"crawl": "1/minute"})
    headers = bearer(keys["crawl"])
    async with client(app) as http:
        first = await http.post("/crawls", headers=headers)
        second = await http.post("/crawls", headers=headers)
        read = await http.get("/products", headers=headers)
    assert (first.status_code, second.status_code, read.status_code) == (200, 429, 200)
    assert first.headers["ratelimit-limit"] == "1"
    assert read.headers["ratelimit-limit"] == "100"


async def test_refused_requests_are_not_counted_before_auth(api: Api, keys: dict[str, str]) -> None:
    """401 and 403 answers come before the limit and carry no RateLimit headers."""
    app = api.app(limits={"read": "1/minute", "crawl": "1/minute"})
    async with client(app) as http:
        unauthorized = await http.get("/products")
        forbidden = await http.post("/crawls", headers=bearer(keys["read"]))
        allowed = await http.get("/products", headers=bearer(keys["read"]))
    assert (unauthorized.status_code, forbidden.status_code, allowed.status_code) == (
        401,
        403,
        200,
    )
    assert "ratelimit-limit" not in unauthorized.headers
    assert "ratelimit-limit" not in forbidden.headers


async def test_instances_sharing_redis_share_the_limit(
    store: Store, api: Api, keys: dict[str, str], redis_prefix: str
) -> None:
    """Two independent API instances on one Redis draw on one budget per key."""
    one, two = (
        api.app(limits={"read": "3/minute"}, storage=REDIS, prefix=redis_prefix) for _ in "12"
    )
    headers = bearer(keys["read"])
    async with client(one) as first, client(two) as second:
        statuses = [
            (await first.get("/products", headers=headers)).status_code,
            (await second.get("/products", headers=headers)).status_code,
            (await first.get("/products", headers=headers)).status_code,
            (await second.get("/products", headers=headers)).status_code,
        ]
        other_key = await second.get("/products", headers=bearer(keys["admin"]))
    assert statuses == [200, 200, 200, 429]
    assert other_key.status_code == 200


async def test_redis_window_resets(api: Api, keys: dict[str, str], redis_prefix: str) -> None:
    """On Redis too, the budget comes back when the window passes."""
    app = api.app(limits={"read": "3/second"}, storage=REDIS, prefix=redis_prefix)
    headers = bearer(keys["read"])
    async with client(app) as http:
        for _ in range(5):  # windows are clock-aligned seconds: the 4 requests must share one
            window = int(time.time())
            statuses = [
                (await http.get("/products", headers=headers)).status_code for _ in range(4)
            ]
            if int(time.time()) == window:
                break
            await asyncio.sleep(1)  # rolled over mid-sequence (a busy machine): start afresh
        assert statuses == [200, 200, 200, 429]
        again = await _until_allowed(http, headers)
    assert again.status_code == 200
    assert again.headers["ratelimit-limit"] == "3"


async def test_redis_down_lets_reads_through_and_counts_it(api: Api, keys: dict[str, str]) -> None:
    """With the limiter's Redis unreachable, reads pass unlimited (no RateLimit headers) and
    the failure is counted; crawl requests fail closed with a 503."""
    registry = CollectorRegistry()
    limiter = RateLimiter(
        {"read": "1/minute", "crawl": "1/minute", "admin": "1/minute"},
        storage=f"async+redis://127.0.0.1:{free_port()}/0",
        registry=registry,
    )
    app = api.app(limiter=limiter)
    async with client(app) as http:
        reads = [await http.get("/products", headers=bearer(keys["read"])) for _ in range(2)]
        crawl = await http.post("/crawls", headers=bearer(keys["crawl"]))
    assert [r.status_code for r in reads] == [200, 200]
    assert "ratelimit-limit" not in reads[0].headers
    assert crawl.status_code == 503
    assert crawl.headers["retry-after"] == "5"
    assert limiter.storage_errors == 3
    metric = "pricefleet_api_ratelimit_storage_errors_total"
    assert registry.get_sample_value(metric, {"scope": "read"}) == 2
    assert registry.get_sample_value(metric, {"scope": "crawl"}) == 1


def test_state_headers_round_up_the_reset() -> None:
    """RateLimit-Reset is whole seconds until the window resets, rounded up, never negative."""
    state = RateLimitState(limit=10, remaining=-1, reset=100.2)
    assert state.headers(now=99.0) == {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "2",
    }
    assert state.headers(now=200.0)["RateLimit-Reset"] == "0"


async def test_limiter_from_settings_per_profile() -> None:
    """Embedded counts in memory; the cluster profile counts in its Redis, under the queue
    prefix; per-scope overrides apply."""
    assert storage_url(None) == "async+memory://"
    assert storage_url("redis://r:6379/1") == "async+redis://r:6379/1"
    assert storage_url("rediss://r:6380/0") == "async+rediss://r:6380/0"
    assert storage_url("unix:///run/redis.sock") == "async+redis+unix:///run/redis.sock"
    settings = Settings(
        _env_file=None,
        database_url="postgresql://pg/pf",
        redis_url=REDIS_URL,
        rate_limit="50/minute",
        rate_limit_admin="5/minute",
    )
    limiter = RateLimiter.from_settings(settings)
    try:
        assert {scope: str(item) for scope, item in limiter.items.items()} == {
            "read": "50 per 1 minute",
            "crawl": "50 per 1 minute",
            "admin": "5 per 1 minute",
        }
    finally:
        await limiter.close()


async def _admitted(limiter: RateLimiter, caller: str, hits: int) -> int:
    """How many of `hits` concurrent requests of `caller` one limiter admits."""

    async def one() -> int:
        try:
            await limiter.hit("read", caller)
        except Problem as refused:
            return refused.status
        return 200

    statuses = await asyncio.gather(*(one() for _ in range(hits)))
    assert set(statuses) <= {200, 429}
    return statuses.count(200)


async def test_two_instances_never_admit_more_than_the_limit(redis_prefix: str) -> None:
    """Two limiters (two API instances) leasing batches from one Redis, hammered at once,
    admit at most the limit between them (no overshoot), and at least the limit less the
    slots one of them may hold unused ((P - 1) × (batch - 1))."""
    limit = 400
    batch = lease_size(limit)
    assert batch == 20
    one, two = (
        RateLimiter({"read": f"{limit}/hour"}, storage=REDIS, key_prefix=redis_prefix) for _ in "12"
    )
    try:
        counts = await asyncio.gather(
            *(_admitted(limiter, "key:k1", 150) for limiter in (one, two, one, two, one, two))
        )
        assert limit - (batch - 1) <= sum(counts) <= limit
        assert sum(counts[0::2]) > 0
        assert sum(counts[1::2]) > 0
    finally:
        await one.close()
        await two.close()


async def test_unused_leases_are_given_back(redis_prefix: str) -> None:
    """Slots one instance leased but no longer uses are given back shortly, so a caller that
    moves to another instance gets the whole budget there."""
    one, two = (
        RateLimiter({"read": "200/hour"}, storage=REDIS, key_prefix=redis_prefix) for _ in "12"
    )
    try:
        assert await _admitted(one, "key:k1", 3) == 3  # leased 10, holds 7
        await asyncio.sleep(RETURN_SECONDS * 3)
        assert await _admitted(two, "key:k1", 250) == 197
        state = await two.hit("read", "key:k2")
        assert state is not None
        assert state.remaining == 199
    finally:
        await one.close()
        await two.close()


async def test_embedded_counts_exactly() -> None:
    """In memory (one process), exactly the limit passes, however concurrent the requests."""
    limiter = RateLimiter({"read": "37/hour"})
    try:
        assert await _admitted(limiter, "ip:10.0.0.1", 100) == 37
        assert await _admitted(limiter, "ip:10.0.0.2", 10) == 10
    finally:
        await limiter.close()


async def test_remaining_stays_exact_across_give_backs(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One instance alone on Redis counts exactly, even when a request comes while its idle
    lease is being given back (the lease waits for the give-back, slowed down here)."""
    execute = redis.asyncio.client.Pipeline.execute

    async def slow_execute(self: redis.asyncio.client.Pipeline, *args: Any) -> Any:
        await asyncio.sleep(RETURN_SECONDS * 2)
        return await execute(self, *args)

    monkeypatch.setattr(redis.asyncio.client.Pipeline, "execute", slow_execute)
    limiter = RateLimiter({"read": "100/hour"}, storage=REDIS, key_prefix=redis_prefix)
    try:
        for n in range(1, 9):
            state = await limiter.hit("read", "key:k1")
            assert state is not None
            assert state.remaining == 100 - n
            await asyncio.sleep(RETURN_SECONDS * 2.5)
    finally:
        await limiter.close()
