"""Invalidation racing other processes and builds: an old answer must not come back for a
whole TTL. Several `ApiCache`s on one real Redis stand for several API processes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from pricefleet.api.cache import ApiCache, Entry, Kind, make_entry, product_tag
from pricefleet.config import Settings
from tests.api.conftest import REDIS_URL

TAG = product_tag("shop-a", "p1")
KEY = "product:shop-a:p1"

cluster = pytest.mark.parametrize("settings", ["cluster"], indirect=True)


@pytest.fixture
async def caches(settings: Settings) -> AsyncIterator[list[ApiCache]]:
    """Three caches on the settings' Redis (cluster) or memory alone (embedded)."""
    made = [ApiCache(settings, name=f"race-{n}") for n in range(3)]
    for cache in made:
        await cache.init()
    try:
        yield made
    finally:
        for cache in made:
            await cache.close()


async def _old() -> Entry:
    return make_entry(b'{"price": "1.00"}', [TAG])


async def _entry(body: bytes) -> Entry:
    return make_entry(body, [TAG])


async def _pop_tag_sets(settings: Settings) -> None:
    """What a process deleting the tag does first (cashews pops the tag's set, then deletes
    the keys it held): the set gone, the keys still there."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        async for name in client.scan_iter(match=f"*{settings.queue_prefix}:cache:{TAG}*"):
            if await client.type(name) == b"set":
                await client.delete(name)
    finally:
        await client.aclose()


async def _in_redis(settings: Settings) -> bytes | None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        value: bytes | None = await client.get(f"{settings.queue_prefix}:cache:{KEY}")
        return value
    finally:
        await client.aclose()


@cluster
async def test_a_process_holding_the_entry_deletes_it_from_redis_itself(
    settings: Settings, caches: list[ApiCache]
) -> None:
    """Process A built the entry, B copied it. Another process popped the tag's set and has
    not deleted the keys yet when B handles the same event: B deletes the key it holds from
    Redis, so its next lookup misses instead of copying the old entry back (it stayed for the
    product's TTL, an hour, in a two-process test under load)."""
    a, b, _ = caches
    await a.get_or_build(Kind.PRODUCT, KEY, _old)
    assert await b.lookup(Kind.PRODUCT, KEY) is not None  # B's memory holds a copy
    await _pop_tag_sets(settings)
    await b.invalidate([TAG])
    assert await _in_redis(settings) is None
    assert await b.lookup(Kind.PRODUCT, KEY) is None


@cluster
async def test_a_process_not_holding_the_entry_does_not_copy_an_invalidated_one(
    settings: Settings, caches: list[ApiCache]
) -> None:
    """C never held the entry, so it has no key to delete, and the tag's set was already
    popped: the old entry still in Redis is older than C's invalidation, so C treats it as a
    miss (and builds again) instead of copying it into memory."""
    a, _, c = caches
    await a.get_or_build(Kind.PRODUCT, KEY, _old)
    await _pop_tag_sets(settings)
    await c.invalidate([TAG])
    assert await _in_redis(settings) is not None  # nobody deleted it yet
    assert await c.lookup(Kind.PRODUCT, KEY) is None
    assert c.peek(KEY) is None
    fresh = await c.get_or_build(
        Kind.PRODUCT, KEY, lambda: _entry(b'{"price": "0.75"}'), missed=True
    )
    assert fresh.body == b'{"price": "0.75"}'
    kept = await c.lookup(Kind.PRODUCT, KEY)  # built after the invalidation: kept
    assert kept is not None
    assert kept.body == b'{"price": "0.75"}'


async def test_an_answer_built_across_an_invalidation_is_not_kept(
    settings: Settings, caches: list[ApiCache]
) -> None:
    """A build that began before the invalidation may have read the old price: its caller
    gets it, but neither tier keeps it (on both profiles)."""
    cache = caches[0]

    async def build_while_invalidated() -> Entry:
        await cache.invalidate([TAG])  # the event arrives while the build reads
        return await _old()

    entry = await cache.get_or_build(Kind.PRODUCT, KEY, build_while_invalidated)
    assert entry.body == b'{"price": "1.00"}'
    assert cache.peek(KEY) is None
    if settings.redis_url is not None:
        assert await _in_redis(settings) is None
    # A build that begins after the invalidation is kept as usual.
    again = await cache.get_or_build(Kind.PRODUCT, KEY, lambda: _entry(b'{"price": "0.75"}'))
    assert cache.peek(KEY) == again


@cluster
async def test_an_answer_another_process_built_across_an_invalidation_is_not_copied(
    settings: Settings, caches: list[ApiCache]
) -> None:
    """A began building before the change and finished after C handled its event, then put
    the answer in Redis before handling the event itself: the answer counts as of when A began
    (`built_at`), before C's invalidation, so C does not copy it."""
    a, _, c = caches

    async def build_while_c_invalidates() -> Entry:
        await c.invalidate([TAG])
        return await _old()

    await a.get_or_build(Kind.PRODUCT, KEY, build_while_c_invalidates)
    assert await _in_redis(settings) is not None  # A has not handled the event yet
    assert await c.lookup(Kind.PRODUCT, KEY) is None
