"""What only the Redis backend promises: Cluster-safe keys, cluster-wide gating, recovery."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from pricefleet.errors import QueueError
from pricefleet.models import JobKind
from pricefleet.queue import JobQueue, Lease, NewJob, Retention, SiteLimits
from pricefleet.queue.base import SEEN_SECONDS
from pricefleet.queue.redis import RedisQueue
from tests.servers import free_port, require_server

REDIS_URL = "redis://127.0.0.1:6379/0"

MakeRedis = Callable[..., RedisQueue]


def job(key: str, site: str = "shop-a", **options: object) -> NewJob:
    return NewJob(site, key, JobKind.PRODUCT, f"https://{site}.example/{key}", **options)  # type: ignore[arg-type]


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    """A plain client on the test Redis, to look at the keys."""
    require_server("127.0.0.1", 6379, "Redis")
    redis = aioredis.Redis.from_url(REDIS_URL)
    yield redis
    await redis.aclose()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own."""
    return f"pftest-{secrets.token_hex(4)}"


@pytest.fixture
async def make_redis(client: aioredis.Redis, prefix: str) -> AsyncIterator[MakeRedis]:
    """Opens RedisQueues on one shared prefix (two of them are two workers); drops it after."""
    opened: list[RedisQueue] = []

    def make(retention: Retention | None = None) -> RedisQueue:
        queue = JobQueue.from_url(REDIS_URL, prefix=prefix, retention=retention)
        assert isinstance(queue, RedisQueue)
        opened.append(queue)
        return queue

    try:
        yield make
    finally:
        for queue in opened:
            await queue.close()
        async for key in client.scan_iter(match=f"{prefix}:*", count=1_000):
            await client.delete(key)


async def _keys(client: aioredis.Redis, prefix: str) -> list[str]:
    return sorted([key.decode() async for key in client.scan_iter(match=f"{prefix}:*")])


async def test_every_key_of_a_site_shares_its_hash_tag(
    make_redis: MakeRedis, client: aioredis.Redis, prefix: str
) -> None:
    """Each site's keys live in one Cluster slot; only the set of sites is cross-site."""
    queue = make_redis()
    await queue.set_limits("shop-a", SiteLimits(rate=100, burst=5, concurrency=9))
    await queue.enqueue([job(str(n), site) for n in range(6) for site in ("shop-a", "shop-b")])
    await queue.enqueue([job("later", delay=60), job("x", run="r1"), job("y", "shop-b", run="r2")])
    leases = await queue.lease(8)
    await queue.ack(leases[:3])
    await queue.fail(leases[3], "boom", retry_after=60)
    await queue.fail(leases[4], "boom")
    await queue.hold("shop-b", 5)
    await queue.pause("shop-a")
    keys = await _keys(client, prefix)
    assert f"{prefix}:sites" in keys
    for site in ("shop-a", "shop-b"):
        own = [key for key in keys if key.startswith(f"{prefix}:{{{site}}}:")]
        assert len(own) >= 5
        assert {key_slot(key.encode()) for key in own} == {key_slot(site.encode())}
    assert len(keys) == 1 + sum(
        key.startswith((f"{prefix}:{{shop-a}}:", f"{prefix}:{{shop-b}}:")) for key in keys
    )


async def test_site_ids_with_braces_are_refused(make_redis: MakeRedis) -> None:
    """A brace in a site id would break the hash tag, so it is an error, not a silent misroute."""
    with pytest.raises(QueueError, match="braces"):
        await make_redis().enqueue([job("a", "shop{x}")])


async def test_many_workers_never_share_a_job(make_redis: MakeRedis) -> None:
    """Eight drainers on two clients, five sites: every job is leased and acked exactly once."""
    one, two = make_redis(), make_redis()
    await one.enqueue([job(str(n), f"shop-{n % 5}") for n in range(2_000)])
    seen: list[tuple[str, str]] = []

    async def drain(queue: JobQueue) -> None:
        while leases := await queue.lease(25):
            seen.extend((lease.site_id, lease.key) for lease in leases)
            assert await queue.ack(leases) == len(leases)

    await asyncio.gather(*(drain(queue) for queue in (one, two) * 4))
    assert len(seen) == 2_000
    assert len(set(seen)) == 2_000
    stats = await one.stats()
    assert sum(s.acked_total for s in stats.values()) == 2_000
    assert sum(s.depth for s in stats.values()) == 0


async def test_concurrency_limit_is_cluster_wide(make_redis: MakeRedis) -> None:
    """Two clients leasing at once together hold no more than the site's concurrency."""
    one, two = make_redis(), make_redis()
    await one.set_limits("shop-a", SiteLimits(concurrency=3))
    await one.enqueue([job(str(n)) for n in range(50)])
    held: list[Lease] = []
    for _ in range(5):
        batches = await asyncio.gather(*(queue.lease(10) for queue in (one, two, one, two)))
        held += [lease for batch in batches for lease in batch]
        assert len(held) <= 3
    assert len(held) == 3
    await two.ack(held[:2])
    assert len(await one.lease(10)) == 2


async def test_burst_is_shared_by_two_clients(make_redis: MakeRedis) -> None:
    """The GCRA state lives in Redis: a burst of 4 is spent once, whoever leases."""
    one, two = make_redis(), make_redis()
    await one.set_limits("shop-a", SiteLimits(rate=0.5, burst=4))
    await one.enqueue([job(str(n)) for n in range(20)])
    batches = await asyncio.gather(*(queue.lease(3) for queue in (one, two, one, two)))
    assert sum(len(batch) for batch in batches) == 4


async def test_expired_lease_with_no_attempts_left_goes_dead(make_redis: MakeRedis) -> None:
    """A job whose last attempt's lease expired lands in the dead letters, not back in line."""
    queue = make_redis()
    await queue.enqueue([job("a", max_attempts=1)])
    (lease,) = await queue.lease(1, visibility=0.2)
    await asyncio.sleep(0.3)
    assert await queue.lease(5) == []
    ((dead, error),) = await queue.dead("shop-a")
    assert (dead.key, dead.attempts, error) == ("a", 1, "lease expired")
    assert await queue.ack([lease]) == 0


async def test_order_is_exact_for_large_priorities_and_many_jobs(make_redis: MakeRedis) -> None:
    """Priorities far beyond a double's fraction still order, and FIFO holds across batches."""
    queue = make_redis()
    await queue.enqueue([job(f"n{n:04}") for n in range(500)])
    await queue.enqueue([job("top", priority=2**50), job("bottom", priority=-(2**50))])
    await queue.enqueue([job("top2", priority=2**50)])
    keys = [lease.key for lease in await queue.lease(1_000)]
    assert keys == ["top", "top2", *(f"n{n:04}" for n in range(500)), "bottom"]


async def test_released_job_keeps_its_place(make_redis: MakeRedis) -> None:
    """A released job goes back where it was in line, ahead of later jobs."""
    queue = make_redis()
    await queue.enqueue([job("a"), job("b"), job("c")])
    (first,) = await queue.lease(1)
    assert await queue.release([first]) == 1
    assert [lease.key for lease in await queue.lease(3)] == ["a", "b", "c"]


async def test_retention_trims_the_job_records(
    make_redis: MakeRedis, client: aioredis.Redis, prefix: str
) -> None:
    """Finished jobs past the retention count leave no record behind in Redis."""
    queue = make_redis(Retention(count=10, seconds=3_600))
    await queue.enqueue([job(str(n)) for n in range(50)])
    await queue.ack(await queue.lease(50))
    for suffix in ("data", "info"):
        assert await client.hlen(f"{prefix}:{{shop-a}}:{suffix}") == 10
    assert await client.zcard(f"{prefix}:{{shop-a}}:done") == 10


async def test_purge_deletes_every_key_of_the_site(
    make_redis: MakeRedis, client: aioredis.Redis, prefix: str
) -> None:
    """Purge leaves nothing of the site in Redis and forgets it; other sites stay."""
    queue = make_redis()
    await queue.set_limits("shop-a", SiteLimits(rate=5))
    await queue.enqueue([job("a"), job("b", delay=60, run="r*1"), job("c", "shop-b", run="r*1")])
    await queue.lease(1, sites=["shop-a"])
    await queue.purge("shop-a")
    keys = await _keys(client, prefix)
    assert not [key for key in keys if "{shop-a}" in key]
    assert f"{prefix}:{{shop-b}}:seen:r*1" in keys
    assert await queue.sites() == ["shop-b"]


async def test_a_lost_script_cache_is_reloaded(make_redis: MakeRedis) -> None:
    """After Redis forgot the scripts (a restart), single and pipelined calls load them again."""
    queue = make_redis()
    for script in queue._scripts.values():
        script.sha = "0" * 40  # what the server answers NOSCRIPT to
    assert await queue.enqueue([job("a"), job("b", "shop-b")]) == 2
    for script in queue._scripts.values():
        script.sha = "0" * 40
    assert sorted(lease.site_id for lease in await queue.lease(5)) == ["shop-a", "shop-b"]
    (stats,) = (await queue.stats(["shop-a"])).values()
    assert stats.leased == 1


async def test_unreachable_redis_raises_queue_error() -> None:
    """A Redis that does not answer is a QueueError naming where, without the password."""
    queue = RedisQueue(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(QueueError, match="unreachable") as caught:
            await queue.lease(10, sites=["shop-a"])
        assert "hunter2" not in str(caught.value)
        assert "127.0.0.1" in str(caught.value)
    finally:
        await queue.close()


async def test_dropped_connections_are_reconnected(
    make_redis: MakeRedis, client: aioredis.Redis, prefix: str
) -> None:
    """When Redis drops the queue's connections (a restart, a failover), calls carry on."""
    queue = make_redis()
    await queue.enqueue([job("a"), job("b")])
    mine = [c for c in await client.client_list() if c["name"] == f"pricefleet-queue-{prefix}"]
    assert mine
    for connection in mine:
        await client.client_kill_filter(_id=connection["id"])
    assert len(await queue.lease(5)) == 2


async def test_seen_keys_of_a_run_expire(
    make_redis: MakeRedis, client: aioredis.Redis, prefix: str
) -> None:
    """A run's seen set carries a time-to-live of SEEN_SECONDS, renewed as the run goes on."""
    queue = make_redis()
    await queue.enqueue([job("a", run="2024-01-01T00:00")])
    ttl = await client.ttl(f"{prefix}:{{shop-a}}:seen:2024-01-01T00:00")
    assert SEEN_SECONDS - 10 < ttl <= SEEN_SECONDS


async def test_a_broken_site_fails_only_its_callers(
    make_redis: MakeRedis, client: aioredis.Redis, prefix: str
) -> None:
    """A site whose keys Redis refuses (a key of the wrong type) fails the callers whose items
    its script held, whether merged with others or alone; the other callers are served."""
    queue = make_redis()
    await client.set(f"{prefix}:{{shop-x}}:info", "not a hash")
    calls = [queue.enqueue([job(f"k{n}")]) for n in range(4)]
    calls.insert(2, queue.enqueue([job("x", "shop-x")]))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[2], QueueError)
    assert "refused" in str(results[2])
    assert [r for n, r in enumerate(results) if n != 2] == [1, 1, 1, 1]
    leases = await queue.lease(10, sites=["shop-a"])
    bogus = Lease("shop-x", "x", JobKind.PRODUCT, "u", "t", 1, 5, 0.0)
    acks = await asyncio.gather(
        *(queue.ack([lease]) for lease in leases), queue.ack([bogus]), return_exceptions=True
    )
    assert acks[:4] == [1, 1, 1, 1]
    assert isinstance(acks[4], QueueError)
    with pytest.raises(QueueError, match="refused"):
        await queue.ack([bogus])  # alone: one script, no pipeline
