"""Concurrent single calls on one `JobQueue` (a worker's tasks, API handlers), on every backend:
they share round trips (group commit), and each caller gets what it would have got alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from pricefleet.models import JobKind
from pricefleet.queue import JobQueue, Lease, NewJob, SiteLimits
from pricefleet.queue.coalesce import Coalescer
from tests.queue.conftest import MakeQueue

_T = TypeVar("_T")


def job(key: str, site: str = "shop-a", **options: object) -> NewJob:
    return NewJob(site, key, JobKind.PRODUCT, f"https://{site}.example/{key}", **options)  # type: ignore[arg-type]


def _shared(queue: JobQueue) -> tuple[int, int]:
    """Round trips the queue's coalescers made, and the calls they carried."""
    coalescers = [c for c in vars(queue).values() if isinstance(c, Coalescer)]
    return sum(c.flushes for c in coalescers), sum(c.requests for c in coalescers)


async def _together(calls: list[Awaitable[_T]]) -> list[_T]:
    """The calls at once, as concurrent tasks (the first goes alone, the rest share)."""
    return await asyncio.gather(*calls)


async def test_concurrent_enqueues_dedup_like_sequential_ones(queue: JobQueue) -> None:
    """Each key two callers enqueue at once is new for exactly one of them; runs too."""
    before = _shared(queue)
    keys = [f"k{n % 20}" for n in range(40)]
    counts = await _together([queue.enqueue([job(key)]) for key in keys])
    flushes, calls = (a - b for a, b in zip(_shared(queue), before, strict=True))
    assert calls == 40
    assert flushes < calls  # they did share round trips
    assert sum(counts) == 20
    for key in set(keys):
        assert sorted(c for c, k in zip(counts, keys, strict=True) if k == key) == [0, 1]
    counts = await _together(
        [queue.enqueue([job(f"r{n % 5}", run="run-1"), job(f"r{n % 5}")]) for n in range(10)]
    )
    assert sum(counts) == 5  # in a run once; pending meanwhile anyway
    assert (await queue.stats())["shop-a"].queued == 25


async def test_concurrent_leases_take_the_best_jobs_each_once(queue: JobQueue) -> None:
    """Single leases at once get the highest priorities, each job to one caller, each caller
    at most what it asked for and only from the sites it named."""
    await queue.enqueue([job(f"p{n:02}", priority=n) for n in range(30)])
    await queue.enqueue([job(f"b{n}", "shop-b") for n in range(10)])
    asks = [queue.lease(1, sites=["shop-a"]) for _ in range(12)]
    asks += [queue.lease(3, sites=["shop-b"]) for _ in range(2)]
    asks += [queue.lease(2) for _ in range(4)]
    got = await _together(asks)
    assert [len(leases) for leases in got[:12]] == [1] * 12
    assert all(lease.site_id == "shop-b" for leases in got[12:14] for lease in leases)
    assert [len(leases) for leases in got[12:]] == [3, 3, 2, 2, 2, 2]
    tokens = [lease.token for leases in got for lease in leases]
    keys = [(lease.site_id, lease.key) for leases in got for lease in leases]
    assert len(set(tokens)) == len(tokens) == len(set(keys)) == 26
    # The twelve shop-a-only callers got twelve of shop-a's best; the best of all went first.
    first = [leases[0].key for leases in got[:12]]
    assert sorted(first, reverse=True) == first
    assert first[0] == "p29"
    stats = await queue.stats()
    assert stats["shop-a"].leased + stats["shop-b"].leased == 26


async def test_concurrent_leases_respect_concurrency(queue: JobQueue) -> None:
    """Merged leases of a site are gated as one: never more than its concurrency in flight."""
    await queue.set_limits("shop-a", SiteLimits(concurrency=3))
    await queue.enqueue([job(str(n)) for n in range(20)])
    got = await _together([queue.lease(1) for _ in range(20)])
    assert sum(len(leases) for leases in got) == 3
    assert (await queue.stats())["shop-a"].leased == 3
    await queue.ack([lease for leases in got for lease in leases][:1])
    got = await _together([queue.lease(1) for _ in range(10)])
    assert sum(len(leases) for leases in got) == 1


async def test_concurrent_leases_respect_the_rate(queue: JobQueue) -> None:
    """Merged leases take GCRA slots like sequential ones: a burst of 2, then one per slot."""
    await queue.set_limits("shop-a", SiteLimits(rate=2, burst=2))
    await queue.enqueue([job(str(n)) for n in range(20)])
    got = await _together([queue.lease(1) for _ in range(20)])
    assert sum(len(leases) for leases in got) == 2
    got = await _together([queue.lease(1) for _ in range(20)])
    assert sum(len(leases) for leases in got) == 0  # the next slot is half a second away


async def test_concurrent_acks_fails_and_releases_answer_each_caller(queue: JobQueue) -> None:
    """Each ack, fail and release at once counts for its own caller; a lease acked twice at
    once is accepted once; stale tokens are refused."""
    await queue.enqueue([job(f"a{n}") for n in range(6)] + [job("d", max_attempts=1)])
    await queue.enqueue([job(f"f{n}", "shop-b") for n in range(3)])
    leases = {lease.key: lease for lease in await queue.lease(20)}
    assert len(leases) == 10
    calls: list[Awaitable[Any]] = [queue.ack([leases[f"a{n}"]]) for n in range(4)]
    calls.append(queue.ack([leases["a0"]]))  # the same lease again
    calls.append(queue.release([leases["a4"], leases["a5"]]))
    calls.append(queue.fail(leases["d"], "boom"))
    calls += [queue.fail(leases[f"f{n}"], f"err {n}", retry_after=60) for n in range(3)]
    results = await _together(calls)
    assert sorted(results[0:5]) == [0, 1, 1, 1, 1]
    assert results[0] + results[4] == 1
    assert results[5] == 2
    assert results[6] is True  # one attempt: dead
    assert results[7:] == [False, False, False]
    stats = await queue.stats()
    assert (stats["shop-a"].done, stats["shop-a"].queued, stats["shop-a"].dead) == (4, 2, 1)
    assert (stats["shop-b"].delayed, stats["shop-b"].failed_total) == (3, 3)
    again = await _together([queue.ack([leases["a1"]]), queue.release([leases["a4"]])])
    assert again == [0, 0]  # stale now


async def test_concurrent_heartbeats_keep_only_each_callers_held_leases(queue: JobQueue) -> None:
    """Each caller's heartbeat returns its own leases still held, with their new expiry."""
    await queue.enqueue([job(str(n)) for n in range(6)])
    leases = await queue.lease(6, visibility=30)
    await queue.ack(leases[:2])
    kept = await _together([queue.heartbeat([lease], 120) for lease in leases])
    assert [len(k) for k in kept] == [0, 0, 1, 1, 1, 1]
    for lease, (extended,) in zip(leases[2:], kept[2:], strict=True):
        assert (extended.key, extended.token) == (lease.key, lease.token)
        assert extended.expires_at > lease.expires_at + 60


async def test_an_error_goes_to_its_caller_only(queue: JobQueue) -> None:
    """A caller whose jobs cannot be queued (a payload that is not JSON) gets the error, and
    none of its jobs is queued; the callers sharing its round trip are not disturbed."""
    bad = NewJob("shop-a", "bad", JobKind.PRODUCT, "https://a.example/bad", payload={"x": {1}})
    calls = [queue.enqueue([job(f"k{n}")]) for n in range(5)]
    calls.insert(3, queue.enqueue([job("ok-too"), bad]))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[3], TypeError)
    assert [r for n, r in enumerate(results) if n != 3] == [1] * 5
    keys = sorted(lease.key for lease in await queue.lease(20))
    assert keys == [f"k{n}" for n in range(5)]


async def test_a_cancelled_caller_does_not_break_the_others(queue: JobQueue) -> None:
    """Leases cancelled while waiting take nothing (or give it back); the rest are served,
    and every job is either held by a caller or leasable again."""
    await queue.enqueue([job(str(n)) for n in range(10)])
    tasks = [asyncio.create_task(queue.lease(1)) for _ in range(10)]
    await asyncio.sleep(0)
    for task in tasks[3:6]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    held = [r[0] for r in results if isinstance(r, list)]
    assert all(isinstance(r, asyncio.CancelledError) for r in results[3:6])
    assert len(held) == 7
    await asyncio.sleep(0.05)  # a lease cancelled in flight is released in the background
    rest = await queue.lease(10)
    assert len(rest) == 3
    assert {lease.key for lease in held} | {lease.key for lease in rest} == {
        str(n) for n in range(10)
    }


async def test_two_queues_with_many_tasks_never_share_a_job(make_queue: MakeQueue) -> None:
    """Two clients (two workers), each with many tasks leasing one job at a time, drain the
    queue with every job handed out and acked exactly once."""
    one, two = make_queue(), make_queue()
    await one.enqueue([job(str(n), f"shop-{n % 3}") for n in range(300)])
    seen: list[tuple[str, str]] = []
    acked = 0

    async def drain(queue: JobQueue) -> None:
        nonlocal acked
        while leases := await queue.lease(1):
            seen.extend((lease.site_id, lease.key) for lease in leases)
            accepted = await queue.ack(leases)
            acked += accepted

    await asyncio.gather(*(drain(q) for q in (one, two) for _ in range(16)))
    assert len(seen) == len(set(seen)) == 300
    assert acked == 300
    stats = await one.stats()
    assert sum(s.acked_total for s in stats.values()) == 300


@pytest.mark.parametrize("visibility", [0.3])
async def test_merged_leases_expire_and_recover(queue: JobQueue, visibility: float) -> None:
    """Leases handed out by a merged call lapse like any other: a crash mid-batch loses
    nothing, the jobs come back with an attempt counted."""
    await queue.enqueue([job(str(n)) for n in range(8)])
    got: list[list[Lease]] = await _together(
        [queue.lease(1, visibility=visibility) for _ in range(8)]
    )
    assert sum(len(leases) for leases in got) == 8
    await asyncio.sleep(visibility + 0.2)
    again = await queue.lease(20)
    assert sorted(lease.key for lease in again) == [str(n) for n in range(8)]
    assert {lease.attempts for lease in again} == {2}
