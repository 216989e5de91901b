"""The `JobQueue` contract, run against every backend (SQLite file, real Redis)."""

from __future__ import annotations

import asyncio
import time

from pricefleet.models import JobKind
from pricefleet.queue import JobQueue, Lease, NewJob, Retention, SiteLimits
from tests.queue.conftest import MakeQueue


def job(key: str, site: str = "shop-a", **options: object) -> NewJob:
    return NewJob(site, key, JobKind.PRODUCT, f"https://{site}.example/{key}", **options)  # type: ignore[arg-type]


async def lease_all(queue: JobQueue, count: int = 1_000, **options: object) -> list[Lease]:
    return await queue.lease(count, **options)  # type: ignore[arg-type]


async def test_enqueue_dedups_pending_keys(queue: JobQueue) -> None:
    """A key already queued or leased is not queued again; a finished one is."""
    assert await queue.enqueue([job("a"), job("b"), job("a")]) == 2
    assert await queue.enqueue([job("a")]) == 0
    leases = await queue.lease(1)
    assert await queue.enqueue([job(leases[0].key)]) == 0  # leased: still pending
    assert await queue.ack(leases) == 1
    assert await queue.enqueue([job(leases[0].key)]) == 1  # finished: may run again
    assert (await queue.stats())["shop-a"].queued == 2


async def test_same_key_on_two_sites_is_two_jobs(queue: JobQueue) -> None:
    """Keys are per site."""
    assert await queue.enqueue([job("a", "shop-a"), job("a", "shop-b")]) == 2
    assert sorted(lease.site_id for lease in await lease_all(queue)) == ["shop-a", "shop-b"]
    assert await queue.sites() == ["shop-a", "shop-b"]


async def test_lease_returns_the_job_as_enqueued(queue: JobQueue) -> None:
    """Kind, URL, payload, priority and attempts travel with the lease."""
    await queue.enqueue(
        [NewJob("shop-a", "k", JobKind.SITEMAP, "https://a.example/s.xml", 3, 0, 7, {"n": [1]})]
    )
    (lease,) = await queue.lease(5, visibility=30)
    assert (lease.site_id, lease.key, lease.kind, lease.url) == (
        "shop-a",
        "k",
        JobKind.SITEMAP,
        "https://a.example/s.xml",
    )
    assert (lease.priority, lease.max_attempts, lease.attempts) == (3, 7, 1)
    assert lease.payload == {"n": [1]}
    assert lease.token
    assert 20 < lease.expires_at - time.time() <= 31


async def test_priority_first_then_fifo(queue: JobQueue) -> None:
    """Higher priority leases first; equal priorities in the order they were enqueued."""
    await queue.enqueue([job("low1"), job("high1", priority=5), job("low2")])
    await queue.enqueue([job("high2", priority=5), job("mid", priority=1)])
    keys = [lease.key for lease in await lease_all(queue)]
    assert keys == ["high1", "high2", "mid", "low1", "low2"]


async def test_a_leased_job_is_not_leased_again(queue: JobQueue) -> None:
    """Leases hand out each job once and respect the count."""
    await queue.enqueue([job(str(n)) for n in range(5)])
    first = await queue.lease(3)
    second = await queue.lease(10)
    assert len(first) == 3
    assert len(second) == 2
    assert not {lease.key for lease in first} & {lease.key for lease in second}
    assert await queue.lease(10) == []


async def test_delayed_jobs_wait_for_their_time(queue: JobQueue) -> None:
    """A delayed job is not leasable before its delay has passed."""
    await queue.enqueue([job("later", delay=0.6), job("now")])
    assert [lease.key for lease in await lease_all(queue)] == ["now"]
    assert (await queue.stats())["shop-a"].delayed == 1
    await asyncio.sleep(0.8)
    assert [lease.key for lease in await lease_all(queue)] == ["later"]


async def test_expired_lease_goes_back_and_counts_an_attempt(queue: JobQueue) -> None:
    """A worker that dies holding a lease loses the job to the next worker; its late ack is
    ignored."""
    await queue.enqueue([job("a")])
    (dead_worker,) = await queue.lease(1, visibility=0.3)
    await asyncio.sleep(0.5)
    (again,) = await queue.lease(1, visibility=30)
    assert again.key == "a"
    assert again.attempts == 2
    assert again.token != dead_worker.token
    assert await queue.ack([dead_worker]) == 0  # stale
    assert (await queue.stats())["shop-a"].leased == 1
    assert await queue.ack([again]) == 1
    stats = (await queue.stats())["shop-a"]
    assert (stats.leased, stats.done, stats.acked_total) == (0, 1, 1)


async def test_heartbeat_keeps_a_lease(queue: JobQueue) -> None:
    """A heartbeat extends a lease it still holds, and drops lost ones."""
    await queue.enqueue([job("a"), job("b")])
    leases = await queue.lease(2, visibility=0.4)
    await asyncio.sleep(0.2)
    kept = await queue.heartbeat(leases[:1], 30)
    assert [lease.key for lease in kept] == [leases[0].key]
    assert kept[0].expires_at > leases[0].expires_at + 10
    await asyncio.sleep(0.4)
    (retaken,) = await queue.lease(5)  # only the one without heartbeat came back
    assert retaken.key == leases[1].key
    assert await queue.heartbeat(leases[1:], 30) == []  # lost: someone else holds it
    assert await queue.ack(kept) == 1


async def test_fail_retries_with_backoff_then_goes_dead(queue: JobQueue) -> None:
    """Failures come back after a delay until max attempts, then wait in the dead letters with
    their last error; replay queues them again with fresh attempts."""
    await queue.enqueue([job("poison", max_attempts=3), job("fine")])
    leases = {lease.key: lease for lease in await lease_all(queue)}
    assert await queue.ack([leases["fine"]]) == 1
    assert await queue.fail(leases["poison"], "boom 1") is False
    stats = (await queue.stats())["shop-a"]
    assert (stats.queued, stats.delayed, stats.failed_total) == (0, 1, 1)
    assert await queue.lease(5) == []  # backing off (at least a second)
    for attempt in (2, 3):
        (lease,) = await _lease_when_due(queue)
        assert lease.attempts == attempt
        went_dead = await queue.fail(lease, f"boom {attempt}", retry_after=0)
        assert went_dead is (attempt == 3)
    assert await queue.lease(5) == []
    ((dead, error),) = await queue.dead("shop-a")
    assert (dead.key, error) == ("poison", "boom 3")
    assert (await queue.stats())["shop-a"].dead == 1


async def _lease_when_due(queue: JobQueue, within: float = 10.0) -> list[Lease]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        leases = await queue.lease(1)
        if leases:
            return leases
        await asyncio.sleep(0.1)
    raise AssertionError("no job became leasable")


async def test_replay_queues_dead_jobs_with_fresh_attempts(queue: JobQueue) -> None:
    """A replayed dead job is leasable again from attempt 1; the dead list empties."""
    await queue.enqueue([job("x", max_attempts=1), job("y", max_attempts=1)])
    for lease in await lease_all(queue):
        assert await queue.fail(lease, f"bad {lease.key}") is True
    assert {d.key for d, _ in await queue.dead("shop-a")} == {"x", "y"}
    assert await queue.replay("shop-a", ["x"]) == 1
    (lease,) = await lease_all(queue)
    assert (lease.key, lease.attempts) == ("x", 1)
    assert await queue.replay("shop-a") == 1
    assert [d.key for d, _ in await queue.dead("shop-a")] == []


async def test_a_dead_key_is_not_pending(queue: JobQueue) -> None:
    """Enqueueing a key whose job is dead queues it anew (dead letters are not pending)."""
    await queue.enqueue([job("x", max_attempts=1)])
    (lease,) = await lease_all(queue)
    await queue.fail(lease, "bad")
    assert await queue.enqueue([job("x")]) == 1
    (again,) = await lease_all(queue)
    assert again.attempts == 1


async def test_release_gives_jobs_back_without_an_attempt(queue: JobQueue) -> None:
    """A draining worker's released jobs are leasable at once, attempts unchanged."""
    await queue.enqueue([job("a"), job("b")])
    leases = await lease_all(queue)
    assert await queue.release(leases) == 2
    again = await lease_all(queue)
    assert sorted(lease.key for lease in again) == ["a", "b"]
    assert {lease.attempts for lease in again} == {1}
    assert await queue.release(leases) == 0  # stale tokens


async def test_pause_and_resume(queue: JobQueue) -> None:
    """A paused site gives nothing; other sites go on; resume restores it."""
    await queue.enqueue([job("a", "shop-a"), job("b", "shop-b")])
    await queue.pause("shop-a")
    assert [lease.site_id for lease in await lease_all(queue)] == ["shop-b"]
    assert (await queue.stats())["shop-a"].paused is True
    await queue.resume("shop-a")
    assert [lease.site_id for lease in await lease_all(queue)] == ["shop-a"]


async def test_hold_skips_a_site_for_a_while(queue: JobQueue) -> None:
    """A hold (open breaker, Retry-After) keeps the site out until it ends; a shorter hold
    does not cut a longer one."""
    await queue.enqueue([job("a"), job("b", "shop-b")])
    await queue.hold("shop-a", 0.6)
    await queue.hold("shop-a", 0.1)
    assert [lease.site_id for lease in await lease_all(queue)] == ["shop-b"]
    assert (await queue.stats())["shop-a"].hold_seconds > 0.2
    await asyncio.sleep(0.3)
    assert await lease_all(queue) == []
    await asyncio.sleep(0.5)
    assert [lease.key for lease in await lease_all(queue)] == ["a"]


async def test_concurrency_limit(queue: JobQueue) -> None:
    """No more than the site's concurrency is leased at once."""
    await queue.set_limits("shop-a", SiteLimits(concurrency=2))
    await queue.enqueue([job(str(n)) for n in range(6)] + [job("b", "shop-b")])
    leases = await lease_all(queue)
    assert sorted(lease.site_id for lease in leases) == ["shop-a", "shop-a", "shop-b"]
    await queue.ack([leases[0] if leases[0].site_id == "shop-a" else leases[1]])
    assert len(await lease_all(queue)) == 1


async def test_rate_limit_spaces_leases(queue: JobQueue) -> None:
    """At 20 jobs/s with bursts of 2, a second of greedy leasing gets about 2 + 20 jobs."""
    await queue.set_limits("shop-a", SiteLimits(rate=20, burst=2))
    await queue.enqueue([job(str(n)) for n in range(100)])
    got = len(await lease_all(queue))
    assert got == 2
    start = time.monotonic()
    while time.monotonic() - start < 1.0:
        got += len(await lease_all(queue))
        await asyncio.sleep(0.01)
    assert 18 <= got <= 25


async def test_rate_limit_is_shared_by_two_workers(make_queue: MakeQueue) -> None:
    """Two queue clients (two workers) share one site's rate: together never more than the
    rate allows (a busy machine may poll late and get fewer)."""
    one, two = make_queue(), make_queue()
    await one.set_limits("shop-a", SiteLimits(rate=20, burst=1))
    await one.enqueue([job(str(n)) for n in range(100)])
    got = 0
    start = time.monotonic()
    while time.monotonic() - start < 1.0:
        first, second = await asyncio.gather(one.lease(100), two.lease(100))
        got += len(first) + len(second)
        await asyncio.sleep(0.005)
    assert 10 <= got <= 22


async def test_two_workers_never_share_a_job(make_queue: MakeQueue) -> None:
    """Concurrent leases from two clients hand out every job exactly once."""
    one, two = make_queue(), make_queue()
    await one.enqueue([job(str(n), f"shop-{n % 3}") for n in range(300)])
    seen: list[tuple[str, str]] = []

    async def drain(queue: JobQueue) -> None:
        while leases := await queue.lease(7):
            seen.extend((lease.site_id, lease.key) for lease in leases)
            await queue.ack(leases)

    await asyncio.gather(drain(one), drain(two), drain(one), drain(two))
    assert len(seen) == 300
    assert len(set(seen)) == 300


async def test_lease_spreads_over_sites(queue: JobQueue) -> None:
    """A batch lease takes from every site with work, not only the first."""
    await queue.enqueue([job(f"a{n}", "shop-a") for n in range(50)])
    await queue.enqueue([job(f"b{n}", "shop-b") for n in range(50)])
    sites = {lease.site_id for lease in await queue.lease(10)}
    assert sites == {"shop-a", "shop-b"}


async def test_lease_only_from_the_sites_asked(queue: JobQueue) -> None:
    """`sites=` restricts leasing (a worker started with --sites)."""
    await queue.enqueue([job("a", "shop-a"), job("b", "shop-b")])
    assert [lease.site_id for lease in await queue.lease(5, sites=["shop-b"])] == ["shop-b"]


async def test_stats(queue: JobQueue) -> None:
    """Depth, in flight, oldest age and totals per site."""
    await queue.enqueue([job("a"), job("b"), job("c", delay=60)])
    await asyncio.sleep(0.2)
    assert len(await queue.lease(1)) == 1
    stats = (await queue.stats(["shop-a"]))["shop-a"]
    assert (stats.queued, stats.delayed, stats.leased, stats.dead) == (1, 1, 1, 0)
    assert stats.depth == 3
    assert stats.enqueued_total == 3
    assert 0.15 < stats.oldest_age < 30
    assert stats.paused is False
    assert (await queue.stats(["nobody"]))["nobody"].depth == 0  # named sites always answer


async def test_retention_keeps_the_newest_finished_jobs(make_queue: MakeQueue) -> None:
    """Finished jobs beyond the retention count are dropped; the totals still count them."""
    queue = make_queue(Retention(count=3, seconds=3_600))
    await queue.enqueue([job(str(n)) for n in range(5)])
    for lease in await queue.lease(5):
        assert await queue.ack([lease]) == 1
    stats = (await queue.stats())["shop-a"]
    assert (stats.done, stats.acked_total) == (3, 5)


async def test_retention_drops_old_finished_jobs(make_queue: MakeQueue) -> None:
    """Finished jobs older than the retention age are dropped."""
    queue = make_queue(Retention(count=1_000, seconds=0.2))
    await queue.enqueue([job("old")])
    await queue.ack(await queue.lease(1))
    await asyncio.sleep(0.4)
    await queue.enqueue([job("new")])
    await queue.ack(await queue.lease(1))
    assert (await queue.stats())["shop-a"].done == 1


async def test_purge_forgets_a_site(queue: JobQueue) -> None:
    """After purge the site has no jobs of any kind."""
    await queue.enqueue([job("a"), job("b", max_attempts=1)])
    leases = await queue.lease(2)
    await queue.fail(next(lease for lease in leases if lease.key == "b"), "x")
    await queue.purge("shop-a")
    assert await queue.lease(5) == []
    assert await queue.dead("shop-a") == []
    assert await queue.enqueue([job("a")]) == 1


async def test_a_run_takes_each_key_once(queue: JobQueue) -> None:
    """Within one run a key is enqueued once, even after it finished; a new run takes it
    again; jobs without a run dedup while pending only."""
    assert await queue.enqueue([job("p1", run="r1"), job("p2", run="r1")]) == 2
    await queue.ack(await lease_all(queue))
    assert await queue.enqueue([job("p1", run="r1"), job("p3", run="r1")]) == 1
    assert await queue.enqueue([job("p1", run="r2")]) == 1
    await queue.ack(await lease_all(queue))
    assert await queue.enqueue([job("p1")]) == 1
    assert await queue.enqueue([job("p1", run="r2")]) == 0


async def test_acquire_shares_the_lease_pacing(queue: JobQueue) -> None:
    """Extra requests take slots from the same GCRA as leases: after a burst, both wait."""
    await queue.set_limits("shop-a", SiteLimits(rate=10, burst=2))
    await queue.enqueue([job(str(n)) for n in range(10)])
    assert await queue.acquire("shop-a", 10, 2) == 0
    assert len(await queue.lease(10)) == 1  # the burst's second slot
    wait = await queue.acquire("shop-a", 10, 2)
    assert 0.05 < wait <= 0.1 + 1e-6
    await asyncio.sleep(wait)
    assert await queue.acquire("shop-a", 10, 2) == 0
    assert await queue.lease(10) == []
    assert await queue.acquire("shop-b", 0, 1) == 0  # unlimited


async def test_advance_moves_a_mark_once(make_queue: MakeQueue) -> None:
    """Of two clients advancing the same mark to the same value, exactly one succeeds."""
    one, two = make_queue(), make_queue()
    results = await asyncio.gather(
        one.advance("shop-a", "crawl", 100.0), two.advance("shop-a", "crawl", 100.0)
    )
    assert sorted(results) == [False, True]
    assert await one.advance("shop-a", "crawl", 99.0) is False
    assert await two.advance("shop-a", "crawl", 160.5) is True
    assert await one.advance("shop-a", "other", 1.0) is True


async def test_run_progress_counts_each_job_once(queue: JobQueue) -> None:
    """A run's figures: jobs enqueued under it (duplicates not), then acked and dead ones;
    a job without the run's payload does not count; an unknown run is None."""
    run = "crawl-1"
    jobs = [
        NewJob(
            "s",
            f"k{i}",
            JobKind.PRODUCT,
            f"http://s/{i}",
            max_attempts=1,
            run=run,
            payload={"run": run},
        )
        for i in range(4)
    ]
    assert await queue.enqueue([*jobs, jobs[0]]) == 4
    assert await queue.enqueue(jobs[:2]) == 0  # seen in this run already
    assert await queue.enqueue([NewJob("s", "other", JobKind.PRODUCT, "http://s/o")]) == 1
    progress = await queue.run_progress("s", run)
    assert progress is not None
    assert (progress.enqueued, progress.done, progress.dead, progress.pending) == (4, 0, 0, 4)
    leases = await queue.lease(10, sites=["s"])
    assert len(leases) == 5
    mine = [lease for lease in leases if lease.key != "other"]
    assert await queue.ack(mine[:2] + [lease for lease in leases if lease.key == "other"]) == 3
    assert await queue.ack(mine[:1]) == 0  # acked already: not counted twice
    assert await queue.fail(mine[2], "boom") is True  # one attempt: dead
    progress = await queue.run_progress("s", run)
    assert progress is not None
    assert (progress.enqueued, progress.done, progress.dead, progress.pending) == (4, 2, 1, 1)
    assert await queue.run_progress("s", "never") is None
