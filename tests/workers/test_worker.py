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
from tests.demo.helpers import shops_like, truth_of
from tests.queue.conftest import REDIS_URL, _drop_prefix
from tests.servers import (
    DemoServer,
    create_database,
    drop_database,
    free_port,
    pg_url,
    require_program,
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


# --- politeness, drain and a Redis restart, with real worker processes -------------------------


def _cluster_env(
    tmp_path: Path, server: DemoServer, database: str, prefix: str, redis: str
) -> dict[str, str]:
    return {
        **os.environ,
        "PRICEFLEET_DATABASE_URL": pg_url(database),
        "PRICEFLEET_REDIS_URL": redis,
        "PRICEFLEET_QUEUE_PREFIX": prefix,
        "PRICEFLEET_DEMO_URL": server.url,
        "PRICEFLEET_RECIPES_DIR": str(tmp_path / "recipes"),
    }


def _limited_recipe(tmp_path: Path, rate: float, concurrency: int) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir(exist_ok=True)
    recipe = yaml.safe_load((RECIPES / "demo-jsonld.yaml").read_text())
    recipe["politeness"] = {"requests_per_second": rate, "max_concurrency": concurrency}
    (folder / "demo-jsonld.yaml").write_text(yaml.safe_dump(recipe))


async def _shop_stats(server: DemoServer) -> dict[str, object]:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/_stats") as answer:
        stats: dict[str, object] = (await answer.json())["shops"]["jsonld"]
    return stats


def _worker(env: dict[str, str], log: Path, *options: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "pricefleet", "worker", "--visibility", "5", *options]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)


async def _wait_exit(process: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return await asyncio.to_thread(process.wait, seconds)
    except subprocess.TimeoutExpired:
        return None


def _redis_server(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


@pytest.mark.timeout(600)
async def test_four_workers_keep_one_sites_limits(tmp_path: Path) -> None:
    """Four worker processes on one site limited to 20 requests/s and 4 at once: the shop never
    sees more, and the crawl completes."""
    require_server("127.0.0.1", 6379, "Redis")
    server = start_demo("--products", "300", "--seed", str(SEED), "--day", str(DAY))
    name = await create_database()
    prefix = f"pftest-{secrets.token_hex(4)}"
    _limited_recipe(tmp_path, rate=20, concurrency=4)
    env = _cluster_env(tmp_path, server, name, prefix, REDIS_URL)
    store = Store.from_url(pg_url(name))
    queue = JobQueue.from_url(REDIS_URL, prefix=prefix)
    log = tmp_path / "workers.log"
    try:
        await store.upgrade()
        recipes = {r.id: r for r in recipes_for(server, ("jsonld",))}
        await Scheduler(queue, store, recipes).tick()
        workers = [_worker(env, log, "--burst", "--concurrency", "8") for _ in range(4)]
        for process in workers:
            assert await _wait_exit(process, 400) == 0, log.read_text()[-3000:]
        await assert_matches_truth(store, server, "jsonld", 300, SEED, DAY)
        seen = await _shop_stats(server)
        assert seen["peak_requests_per_second"] <= 20, seen  # type: ignore[operator]
        assert seen["peak_concurrency"] <= 4, seen  # type: ignore[operator]
    finally:
        await queue.close()
        await store.close()
        server.stop()
        await _drop_prefix(prefix)
        await drop_database(name)


@pytest.mark.timeout(600)
async def test_sigterm_drains_a_worker_process(small_shop: DemoServer, tmp_path: Path) -> None:
    """SIGTERM mid-crawl: the process exits 0 within its grace period, holding no lease, and
    what it acked is stored."""
    _limited_recipe(tmp_path, rate=50, concurrency=8)
    env = {
        **os.environ,
        "PRICEFLEET_DATA_DIR": str(tmp_path / "data"),
        "PRICEFLEET_DEMO_URL": small_shop.url,
        "PRICEFLEET_RECIPES_DIR": str(tmp_path / "recipes"),
    }
    store = Store.from_url(f"sqlite:///{tmp_path / 'data' / 'pricefleet.db'}")
    queue = JobQueue.from_url(f"sqlite:///{tmp_path / 'data' / 'queue.db'}")
    log = tmp_path / "worker.log"
    try:
        await store.upgrade()
        recipes = {r.id: r for r in recipes_for(small_shop, ("jsonld",))}
        await Scheduler(queue, store, recipes).tick()
        process = _worker(env, log, "--grace", "20")
        for _ in range(600):
            if (await queue.stats())["demo-jsonld"].acked_total >= 30:
                break
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert await _wait_exit(process, 25) == 0, log.read_text()[-3000:]
        stats = (await queue.stats())["demo-jsonld"]
        assert stats.leased == 0
        assert stats.acked_total >= 30
        assert stats.queued + stats.delayed > 0  # stopped mid-crawl
    finally:
        await queue.close()
        await store.close()


@pytest.mark.timeout(900)
async def test_redis_restart_mid_crawl_is_reconciled(
    small_shop: DemoServer, tmp_path: Path
) -> None:
    """Redis (no persistence) restarted mid-crawl: workers ride out the outage, the scheduler
    starts the lost crawl again, and the store ends equal to the truth."""
    binary = Path("/usr/bin/redis-server")
    require_program(binary, "redis-server")
    port = free_port()
    command = [
        str(binary),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    redis = _redis_server(command)
    url = f"redis://127.0.0.1:{port}/0"
    name = await create_database()
    _limited_recipe(tmp_path, rate=40, concurrency=8)
    env = _cluster_env(tmp_path, small_shop, name, "pf", url)
    log = tmp_path / "workers.log"
    store = Store.from_url(pg_url(name))
    queue = JobQueue.from_url(url)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        await asyncio.sleep(0.5)
        await store.upgrade()
        recipes = {r.id: r for r in recipes_for(small_shop, ("jsonld",))}
        scheduler = Scheduler(queue, store, recipes, tick=1.0)
        await scheduler.tick()
        workers = [_worker(env, log, "--concurrency", "8") for _ in range(2)]
        for _ in range(600):
            if (await queue.stats())["demo-jsonld"].acked_total >= 40:
                break
            await asyncio.sleep(0.1)
        redis.kill()
        redis.wait()
        await asyncio.sleep(2)
        redis = _redis_server(command)
        await asyncio.sleep(1)
        assert await queue.stats() == {}  # everything was lost
        ids = [t["id"] for t in truth_of(shops_like(300, SEED)["jsonld"], DAY, small_shop.url)]
        deadline = time.monotonic() + 400
        while True:
            await scheduler.tick()  # reconciles: the crawl's mark is gone with the rest
            stored = [await store.get_product("demo-jsonld", pid) for pid in ids]
            if all(stored) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        await assert_matches_truth(store, small_shop, "jsonld", 300, SEED, DAY)
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            assert await _wait_exit(process, 60) == 0, log.read_text()[-3000:]
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
        await queue.close()
        await store.close()
        redis.kill()
        redis.wait()
        await drop_database(name)
