"""Precomputed trending (PostgreSQL's view, SQLite's table of migration 0006) answers as the
query computed per call does, as of the last `refresh_trending`."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from pricefleet.store.records import Direction
from pricefleet.store.sql import SqlStore
from pricefleet.store.sqlite import SqliteStore
from tests.store.factories import SITES, sighting

PRICES = ("0.90", "1.00", "1.20", "1.80", "2.00", "2.40")


async def _live(store: SqlStore, days: int, direction: Direction, site: str | None) -> list:
    """The per-call query every backend falls back to (windows without a precomputed one)."""
    async with store.writer.connect() as conn:
        return await SqlStore._trending(store, conn, days, direction, 50, site)


async def test_precomputed_moves_answer_as_the_live_query(sql_store: SqlStore) -> None:
    """Every window, direction and site: the same moves in the same order (ties included);
    SQLite refreshes a few products per transaction here, to cover its chunks' edges."""
    if isinstance(sql_store, SqliteStore):
        sql_store.TRENDING_CHUNK = 7  # 30 products a site: 4 full chunks and a last of 2
    await sql_store.upsert_sites(SITES)
    now = datetime.now(UTC)
    rng = random.Random(7)
    # 60 products, each priced at some of these moments (days ago): moves inside and across
    # every window, products that moved back, products that never moved.
    moments = [now - timedelta(days=d) for d in (120, 60, 20, 3, 0.5)]
    for when in moments:
        batch = [
            sighting(f"p{n:02d}", rng.choice(PRICES), when, site_id=SITES[n % 2].id)
            for n in range(60)
            if when == moments[0] or rng.random() < 0.6
        ]
        await sql_store.ingest(batch)
    await sql_store.refresh_trending()
    await sql_store.refresh_trending()  # replaces the moves it made (no duplicates)
    for days in sql_store.TRENDING_WINDOWS:
        for direction in Direction:
            for site in (None, SITES[1].id):
                moves = await sql_store.trending(days, direction=direction, limit=50, site_id=site)
                live = await _live(sql_store, days, direction, site)
                assert [
                    (m.site_id, m.product_id, m.old_price, m.new_price, m.since) for m in moves
                ] == [
                    (r["site_id"], r["product_id"], r["old_price"], r["new_price"], r["since"])
                    for r in live
                ], (days, direction, site)
    assert await sql_store.trending(7, limit=50)  # the data has moves to compare


async def test_sqlite_moves_are_as_of_the_last_refresh(tmp_path: Path) -> None:
    """Never refreshed, SQLite computes trending per call; once refreshed it reads the table,
    which (as PostgreSQL's view) changes at the next refresh only."""
    store = SqliteStore.create(f"sqlite:///{tmp_path / 'pf.db'}")
    try:
        await store.upgrade()
        await store.upsert_sites(SITES)
        now = datetime.now(UTC)
        old, recent = now - timedelta(days=10), now - timedelta(days=1)
        await store.ingest([sighting("p1", "2.00", old), sighting("p2", "1.00", old)])
        await store.ingest([sighting("p1", "1.50", recent), sighting("p2", "0.90", recent)])
        assert [m.product_id for m in await store.trending(7)] == ["p1", "p2"]  # per call
        await store.refresh_trending()
        async with store.writer.connect() as conn:
            rows = await conn.execute(text("SELECT product_id, days FROM price_moves"))
            assert sorted(rows.all()) == [("p1", 7), ("p2", 7)]
        await store.ingest([sighting("p2", "1.00", now - timedelta(minutes=1))])  # back again
        assert [m.product_id for m in await store.trending(7)] == ["p1", "p2"]
        await store.refresh_trending()
        assert [m.product_id for m in await store.trending(7)] == ["p1"]
        rises = await store.trending(1, direction=Direction.RISES)
        assert [(m.product_id, m.since) for m in rises] == [("p2", recent)]
        assert [m.product_id for m in await store.trending(5)] == ["p1"]  # per call
    finally:
        await store.close()
