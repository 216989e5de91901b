"""What a cache miss costs in Redis (cluster profile): one lookup, and tag sets only for the
tags that invalidation drops entries by."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from pricefleet.api.cache import Kind
from tests.api.conftest import REDIS_URL, Api
from tests.store.factories import at, sighting

pytestmark = pytest.mark.parametrize("settings", ["cluster"], indirect=True)


@contextlib.asynccontextmanager
async def _watched(prefix: str) -> AsyncIterator[list[str]]:
    """The commands Redis runs on this test's keys while the context is open (MONITOR on the
    shared server, filtered by the test's own prefix), e.g. `GET t123:cache:search:q=x`."""
    seen: list[str] = []
    client = aioredis.Redis.from_url(REDIS_URL)
    ready = asyncio.Event()

    async def listen() -> None:
        async with client.monitor() as monitor:
            ready.set()
            async for info in monitor.listen():
                if prefix in info["command"]:
                    seen.append(info["command"])

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 5)
    try:
        yield seen
        # MONITOR lags its commands a little: a marker command closes the window.
        await client.get(f"{prefix}:end-of-watch")
        for _ in range(100):
            if any("end-of-watch" in command for command in seen):
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()


async def test_a_miss_looks_in_redis_once(api: Api) -> None:
    """The fast path looked in both tiers and missed: the route builds without a second
    Redis GET; the next request is a hit from memory (no Redis GET at all)."""
    await api.ctx.store.ingest([sighting("p1", "1.00", at(0))])
    prefix = api.settings.queue_prefix
    async with _watched(prefix) as seen:
        assert (await api.client.get("/v1/search?q=leche")).status_code == 200
    gets = [c for c in seen if c.startswith("GET") and ":cache:search:" in c]
    assert len(gets) == 1, seen
    async with _watched(prefix) as seen:
        assert (await api.client.get("/v1/search?q=leche")).status_code == 200
    assert not [c for c in seen if ":cache:search:" in c], seen


async def test_only_product_tags_have_tag_sets(api: Api) -> None:
    """Entries carry their site and kind tags in headers, but only product tags (what
    invalidation drops by) get a tag set, in Redis and in memory: a set per site or kind would
    gather every key of it and never shrink."""
    await api.ctx.store.ingest([sighting("p1", "1.00", at(0)), sighting("p2", "2.00", at(0))])
    for path in (
        "/v1/products/shop-a/p1",
        "/v1/products/shop-a/p1/history",
        "/v1/products?site=shop-a",
        "/v1/products?limit=5",
        "/v1/search?q=leche",
    ):
        response = await api.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Tag"], path  # the tags still go out for a CDN
    prefix = api.settings.queue_prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        tag_sets = sorted(
            [k.decode() async for k in client.scan_iter(match=f"_tag:{prefix}:cache:*")]
        )
    finally:
        await client.aclose()
    assert tag_sets == [f"_tag:{prefix}:cache:product:shop-a:p1"]
    assert api.ctx.cache._memory.tags() == ["product:shop-a:p1"]
    # …and invalidation by product still drops the product's entries in both tiers.
    await api.ctx.cache.invalidate(["product:shop-a:p1"])
    assert api.ctx.cache.peek("product:shop-a:p1:") is None
    with pytest.raises(ValueError, match="not registered"):
        await api.ctx.cache.invalidate(["site:shop-a"])


async def test_a_lookup_during_invalidation_does_not_bring_the_old_entry_back(api: Api) -> None:
    """A request that misses memory while the event's invalidation is deleting the Redis
    entries must not copy the old entry from Redis back into memory (where it would stay for
    the product TTL, an hour)."""
    await api.ctx.store.ingest([sighting("p1", "1.00", at(0))])
    assert (await api.client.get("/v1/products/shop-a/p1")).status_code == 200
    cache, key = api.ctx.cache, "product:shop-a:p1:"
    assert cache.peek(key) is not None
    for _ in range(5):  # a few times: the interleaving depends on when each call yields
        await asyncio.gather(
            cache.invalidate(["product:shop-a:p1"]),
            cache.lookup(Kind.PRODUCT, key),
            cache.lookup(Kind.PRODUCT, key),
        )
        assert cache.peek(key) is None
        assert await cache.lookup(Kind.PRODUCT, key) is None  # nor in Redis
        assert (await api.client.get("/v1/products/shop-a/p1")).status_code == 200
        assert cache.peek(key) is not None  # cached again for the next round
