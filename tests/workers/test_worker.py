"""Workers and the scheduler against the real demo shops, real queues and real stores.

In-process runs check the job flow on both queue backends; the crash tests start real worker
processes and SIGKILL them while they crawl.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from pricefleet.models import JobKind
from pricefleet.queue import JobQueue, NewJob
from pricefleet.store import Store
from pricefleet.store.sql import SqlStore
from pricefleet.workers.scheduler import Scheduler
from pricefleet.workers.worker import Worker, WorkerOptions
from tests.crawl.truth import RECIPES, assert_matches_truth, recipes_for
from tests.queue.conftest import REDIS_URL, _drop_prefix
from tests.servers import (
    DemoServer,
    create_database,
    drop_database,
    pg_url,
    require_server,
    start_demo,
)

SEED, DAY = 11, 2


@pytest.fixture(scope="module")
def small_shop() -> Iterator[DemoServer]:
    """The demo shops with 300 products each."""
    server = start_demo("--products", "300", "--seed", str(SEED), "--day", str(DAY))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "redis"])
async def queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobQueue]:
    """An empty queue on each backend."""
    if request.param == "sqlite":
        made = JobQueue.from_url(f"sqlite:///{tmp_path / 'queue.db'}")
        yield made
        await made.close()
        return
    require_server("127.0.0.1", 6379, "Redis")
    prefix = f"pftest-{secrets.token_hex(4)}"
    made = JobQueue.from_url(REDIS_URL, prefix=prefix)
    try:
        yield made
    finally:
        await made.close()
        await _drop_prefix(prefix)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """An empty embedded store."""
    made = Store.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    await made.upgrade()
    yield made
    await made.close()


async def test_scheduled_crawl_through_the_queue_is_complete(
    small_shop: DemoServer, queue: JobQueue, store: Store
) -> None:
    """The scheduler starts the crawls, a burst worker drains them: every product as its truth,
    no job left behind, and a second tick starts nothing."""
    recipes = {r.id: r for r in recipes_for(small_shop, ("jsonld", "api"))}
    scheduler = Scheduler(queue, store, recipes)
    report = await scheduler.tick()
    assert sorted(report.started) == ["demo-api", "demo-jsonld"]
    assert (await scheduler.tick()).started == []  # same instant: not again
    worker = Worker(queue, store, recipes, WorkerOptions(concurrency=16, burst=True))
    result = await asyncio.wait_for(worker.run(), 300)
    assert result.failed == 0
    assert result.acked == result.leased
    for shop in ("jsonld", "api"):
        await assert_matches_truth(store, small_shop, shop, 300, SEED, DAY)
    for stats in (await queue.stats()).values():
        assert (stats.depth, stats.dead) == (0, 0)


async def test_a_poison_job_goes_dead_and_the_site_goes_on(
    small_shop: DemoServer, queue: JobQueue, store: Store
) -> None:
    """A job that always fails ends in the dead letters with its error after its attempts;
    the rest of the site is crawled."""
    recipes = {r.id: r for r in recipes_for(small_shop, ("jsonld",))}
    await Scheduler(queue, store, recipes).tick()
    poison = f"{small_shop.url}/jsonld/p/999999999/"
    await queue.enqueue([NewJob("demo-jsonld", poison, JobKind.PRODUCT, poison, max_attempts=2)])
    worker = Worker(queue, store, recipes, WorkerOptions(concurrency=16, burst=True))
    result = await asyncio.wait_for(worker.run(), 300)
    assert result.failed == 2
    ((dead, error),) = await queue.dead("demo-jsonld")
    assert dead.url == poison
    assert "404" in error
    await assert_matches_truth(store, small_shop, "jsonld", 300, SEED, DAY)


async def test_sigterm_drains_in_flight_jobs(
    small_shop: DemoServer, queue: JobQueue, store: Store
) -> None:
    """Stopping a worker mid-crawl finishes and acks what it runs, releases nothing it
    finished, and a second worker completes the crawl."""
    recipes = {r.id: r for r in recipes_for(small_shop, ("jsonld",))}
    await Scheduler(queue, store, recipes).tick()
    worker = Worker(queue, store, recipes, WorkerOptions(concurrency=8, grace=30))
    running = asyncio.create_task(worker.run())
    for _ in range(600):  # polling a counter: there is no event to wait on
        if worker.report.acked >= 20:
            break
        await asyncio.sleep(0.05)
    worker.stop()
    first = await asyncio.wait_for(running, 60)
    stats = (await queue.stats())["demo-jsonld"]
    assert stats.leased == 0
    assert first.acked + first.released + first.failed == first.leased
    second = Worker(queue, store, recipes, WorkerOptions(concurrency=16, burst=True))
    await asyncio.wait_for(second.run(), 300)
    await assert_matches_truth(store, small_shop, "jsonld", 300, SEED, DAY)


# --- real processes, killed ---------------------------------------------------------------------

CRASH_PRODUCTS = 5_000


@pytest.fixture(scope="module")
def crash_shop() -> Iterator[DemoServer]:
    """The demo shops with 5,000 products each."""
    server = start_demo("--products", str(CRASH_PRODUCTS), "--seed", str(SEED), "--day", str(DAY))
    yield server
    server.stop()


def _recipes_dir(tmp_path: Path, server: DemoServer) -> Path:
    """The jsonld recipe alone, with a generous rate (the crash test is about loss, not pace)."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    recipe = yaml.safe_load((RECIPES / "demo-jsonld.yaml").read_text())
    recipe["politeness"] = {"requests_per_second": 1000, "max_concurrency": 32}
    (folder / "demo-jsonld.yaml").write_text(yaml.safe_dump(recipe))
    return folder


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "pricefleet",
        "worker",
        "--burst",
        "--concurrency",
        "16",
        "--visibility",
        "4",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)


async def _crash_crawl(
    server: DemoServer, tmp_path: Path, env: dict[str, str], workers: int, kills: int
) -> None:
    """Start `workers` worker processes on a scheduled crawl, SIGKILL a random one every
    second or so `kills` times (restarting it), then let them drain; the store must equal the
    truth with exactly one history row per product and the queue hold nothing."""
    env = {**os.environ, **env, "PRICEFLEET_DEMO_URL": server.url}
    env["PRICEFLEET_RECIPES_DIR"] = str(_recipes_dir(tmp_path, server))
    store_url = (
        env.get("PRICEFLEET_DATABASE_URL") or f"sqlite:///{tmp_path / 'data' / 'pricefleet.db'}"
    )
    queue_url = env.get("PRICEFLEET_REDIS_URL") or f"sqlite:///{tmp_path / 'data' / 'queue.db'}"
    store = Store.from_url(store_url)
    queue = JobQueue.from_url(queue_url, prefix=env.get("PRICEFLEET_QUEUE_PREFIX", "pf"))
    log = tmp_path / "workers.log"
    try:
        await store.upgrade()
        recipes = {r.id: r for r in recipes_for(server, ("jsonld",))}
        await Scheduler(queue, store, recipes).tick()
        running = [_start_worker(env, log) for _ in range(workers)]
        rng = random.Random(7)
        killed = 0
        while killed < kills:
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            victim = rng.randrange(workers)
            if running[victim].poll() is None:
                running[victim].send_signal(signal.SIGKILL)
                running[victim].wait()
                killed += 1
            running[victim] = _start_worker(env, log)
        deadline = time.monotonic() + 400
        for process in running:
            while process.poll() is None:
                assert time.monotonic() < deadline, "workers did not drain the queue"
                await asyncio.sleep(0.2)
            assert process.returncode == 0, log.read_text()[-3000:]
        stats = (await queue.stats())["demo-jsonld"]
        assert (stats.queued, stats.delayed, stats.leased, stats.dead) == (0, 0, 0, 0)
        checked = await assert_matches_truth(store, server, "jsonld", CRASH_PRODUCTS, SEED, DAY)
        assert checked == CRASH_PRODUCTS
        assert isinstance(store, SqlStore)
        async with store.writer.connect() as conn:
            rows = await conn.scalar(text("SELECT count(*) FROM price_observations"))
        assert rows == CRASH_PRODUCTS  # no duplicate history
    finally:
        await queue.close()
        await store.close()


@pytest.mark.timeout(900)
async def test_workers_killed_20_times_on_redis_lose_nothing(
    crash_shop: DemoServer, tmp_path: Path
) -> None:
    """Three workers on Redis and PostgreSQL, SIGKILLed 20 times: the truth, once."""
    require_server("127.0.0.1", 6379, "Redis")
    name = await create_database()
    prefix = f"pftest-{secrets.token_hex(4)}"
    try:
        env = {
            "PRICEFLEET_DATABASE_URL": pg_url(name),
            "PRICEFLEET_REDIS_URL": REDIS_URL,
            "PRICEFLEET_QUEUE_PREFIX": prefix,
        }
        await _crash_crawl(crash_shop, tmp_path, env, workers=3, kills=20)
    finally:
        await _drop_prefix(prefix)
        await drop_database(name)


@pytest.mark.timeout(900)
async def test_workers_killed_on_sqlite_lose_nothing(
    crash_shop: DemoServer, tmp_path: Path
) -> None:
    """Two workers on the embedded profile, SIGKILLed 20 times: the truth, once."""
    env = {"PRICEFLEET_DATA_DIR": str(tmp_path / "data")}
    await _crash_crawl(crash_shop, tmp_path, env, workers=2, kills=20)
