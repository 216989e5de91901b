"""The scheduler's own upkeep beside the crawls: the trending moves are recomputed on its
period, on PostgreSQL (a materialised view nothing else refreshes) and SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pricefleet.queue import JobQueue
from pricefleet.store import Store
from pricefleet.workers.scheduler import TRENDING_MIN_SECONDS, Scheduler
from tests.servers import create_database, drop_database, pg_url
from tests.store.factories import SITES, sighting


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated store with the factory shops, on each backend."""
    name = None
    if request.param == "sqlite":
        made = Store.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        name = await create_database()
        made = Store.from_url(pg_url(name))
    try:
        await made.upgrade()
        await made.upsert_sites(SITES)
        yield made
    finally:
        await made.close()
        if name is not None:
            await drop_database(name)


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[JobQueue]:
    made = JobQueue.from_url(f"sqlite:///{tmp_path / 'queue.db'}")
    try:
        yield made
    finally:
        await made.close()


async def _moves(store: Store) -> list[str]:
    return [m.product_id for m in await store.trending(7)]


async def test_ticks_recompute_trending_on_their_period(store: Store, queue: JobQueue) -> None:
    """The first tick recomputes the moves; the next ones only once `trending_every` has
    passed; 0 turns it off."""
    now = datetime.now(UTC)
    await store.ingest([sighting("p1", "2.00", now - timedelta(days=10))])
    await store.ingest([sighting("p1", "1.50", now - timedelta(days=1))])
    scheduler = Scheduler(queue, store, {}, trending_every=3600)
    assert (await scheduler.tick()).trending
    assert await _moves(store) == ["p1"]
    await store.ingest([sighting("p2", "1.00", now - timedelta(days=10))])
    await store.ingest([sighting("p2", "0.50", now - timedelta(hours=2))])
    assert not (await scheduler.tick()).trending  # within the period
    scheduler.trending_every = 0.001
    assert (await scheduler.tick()).trending
    assert await _moves(store) == ["p2", "p1"]  # -50 %, then -25 %
    off = Scheduler(queue, store, {}, trending_every=0)
    assert not (await off.tick()).trending


async def test_a_cheap_refresh_comes_every_minute(store: Store, queue: JobQueue) -> None:
    """A refresh that takes little comes again after TRENDING_MIN_SECONDS, not after the
    whole `trending_every`; a slow one after TRENDING_COST_SHARE times its duration."""
    scheduler = Scheduler(queue, store, {}, trending_every=600)
    assert (await scheduler.tick()).trending
    assert not (await scheduler.tick()).trending
    scheduler._last_trending -= TRENDING_MIN_SECONDS  # a minute later
    assert (await scheduler.tick()).trending
    scheduler._trending_took = 10.0  # as if it had taken 10 s: 200 s apart
    scheduler._last_trending -= 150
    assert not (await scheduler.tick()).trending
    scheduler._last_trending -= 60
    assert (await scheduler.tick()).trending
