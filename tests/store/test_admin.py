"""`db backup`, `restore`, `prune` and `stats`: on SQLite and on the real PostgreSQL, and through
the command line as a user runs it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select, text

from pricefleet.config import Settings
from pricefleet.errors import InvalidQuery, StoreError
from pricefleet.store import admin
from pricefleet.store.base import Store
from pricefleet.store.migrate import head_revision
from pricefleet.store.postgres import PostgresStore
from pricefleet.store.records import Sighting
from pricefleet.store.sharded import ShardedStore
from pricefleet.store.sql import SqlStore
from pricefleet.store.tables import price_observations, product_state, products
from tests.servers import create_database, drop_database, pg_url, require_program
from tests.store.factories import SITES, T0, sighting

#: The cluster profile needs a Redis URL beside PostgreSQL; these commands never contact it.
REDIS = "redis://127.0.0.1:6379/0"
PG_DUMP = Path("/usr/bin/pg_dump")
GTIN = "8410000000009"  # a valid EAN-13: both shops' offers join one match group


def day(n: float) -> datetime:
    """T0 plus some days."""
    return T0 + timedelta(days=n)


@dataclass
class Databases:
    """Makes empty databases of one backend, and drops them after the test."""

    backend: str
    tmp: Path
    made: list[str] = field(default_factory=list)

    async def new(self) -> Settings:
        """Settings for a new, empty database (not migrated)."""
        if self.backend == "sqlite":
            path = self.tmp / f"db{len(self.made)}" / "pricefleet.db"
            self.made.append(str(path))
            return Settings(database_url=f"sqlite:///{path}", redis_url=None)
        name = await create_database()
        self.made.append(name)
        return Settings(database_url=pg_url(name), redis_url=REDIS)

    async def drop(self) -> None:
        """Drop the PostgreSQL databases made (SQLite files go with tmp_path)."""
        if self.backend == "postgresql":
            for name in self.made:
                await drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
async def databases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Databases]:
    """Empty databases on each backend, as many as a test asks for."""
    if request.param == "postgresql":
        require_program(PG_DUMP, "postgresql-client-15")
    made = Databases(request.param, tmp_path)
    try:
        yield made
    finally:
        await made.drop()


async def _migrated(settings: Settings) -> SqlStore:
    store = Store.from_url(settings.effective_database_url)
    assert isinstance(store, SqlStore)
    await store.upgrade()
    await store.upsert_sites(SITES)
    return store


@pytest.fixture
async def source(databases: Databases) -> AsyncIterator[tuple[Settings, SqlStore]]:
    """A migrated database with the two shops, its settings and a store on it."""
    settings = await databases.new()
    store = await _migrated(settings)
    try:
        yield settings, store
    finally:
        await store.close()


async def _ingest_runs(store: Store, runs: dict[tuple[str, str], list[tuple[float, str]]]) -> None:
    """Each product's (day, price) sightings, ingested in time order."""
    moments = sorted({d for points in runs.values() for d, _ in points})
    for moment in moments:
        batch = [
            sighting(product, price, day(d), site_id=site)
            for (site, product), points in runs.items()
            for d, price in points
            if d == moment
        ]
        await store.ingest(batch)


async def _everything(store: SqlStore) -> dict[tuple[str, str], Any]:
    """Every product row (with its state row) and its whole history, read straight from the
    tables, by product."""
    obs = price_observations.c
    async with store.writer.connect() as conn:
        state = [c for c in product_state.c if c.name not in ("site_id", "id")]
        rows = await conn.execute(
            select(products, *state)
            .join_from(
                products,
                product_state,
                (product_state.c.site_id == products.c.site_id)
                & (product_state.c.id == products.c.id),
            )
            .order_by(products.c.site_id, products.c.id)
        )
        found = {(r.site_id, r.id): {"product": dict(r._mapping), "history": []} for r in rows}
        history = await conn.execute(
            select(price_observations).order_by(obs.site_id, obs.product_id, obs.observed_at)
        )
        for r in history:
            key = (r.site_id, r.product_id)
            found.setdefault(key, {"product": None, "history": []})["history"].append(
                dict(r._mapping)
            )
    return found


def _assert_consistent(everything: dict[tuple[str, str], Any]) -> None:
    """Each product has a history, ordered and well-formed, and its current state is the last."""
    for key, seen in everything.items():
        product, rows = seen["product"], seen["history"]
        assert product is not None, key
        assert rows, key
        starts = [r["observed_at"] for r in rows]
        assert starts == sorted(set(starts)), key
        assert all(r["last_seen"] >= r["observed_at"] for r in rows), key
        assert product["price"] == rows[-1]["price"], key
        assert product["price_changed_at"] == rows[-1]["observed_at"], key


def _leftovers(folder: Path) -> list[str]:
    """Temporary files a backup left behind."""
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# --- backup and restore ----------------------------------------------------------------------


async def test_backup_while_writing_restores_one_consistent_moment(
    databases: Databases, source: tuple[Settings, SqlStore], tmp_path: Path
) -> None:
    """A backup taken while a writer goes on holds exactly the batches committed before some
    instant during the backup: each batch whole or not at all, in order, every history true."""
    settings, store = source
    seeded = [f"s{i}" for i in range(1000)]
    for n, price in enumerate(["1.00", "1.20", "0.90"]):
        await store.ingest([sighting(p, price, day(n), name=f"Leche {p} entera") for p in seeded])
    seeded_before = await _everything(store)

    committed = 0
    stop = asyncio.Event()
    progress = asyncio.Condition()

    async def write() -> None:
        # Each batch adds product w{i} and moves "hot" to a price of its own, at its own time.
        nonlocal committed
        while not stop.is_set():
            i = committed
            await store.ingest(
                [
                    sighting(f"w{i}", "2.00", day(10 + i / 1000)),
                    sighting("hot", f"{3 + i / 10000:.4f}", day(10 + i / 1000)),
                ]
            )
            async with progress:
                committed = i + 1
                progress.notify_all()

    async def written(count: int) -> None:
        async with progress:
            await progress.wait_for(lambda: committed >= count)

    writer = asyncio.create_task(write())
    try:
        await asyncio.wait_for(written(5), 30)
        before = committed
        info = await admin.backup(settings, tmp_path / "snapshot.bak")
        after = committed
        await asyncio.wait_for(written(after + 5), 30)  # the writer went on after the backup
    finally:
        stop.set()
        await writer
    assert info.backend == databases.backend
    assert info.revision == head_revision()
    assert info.size_bytes == info.path.stat().st_size > 0
    assert _leftovers(tmp_path) == []

    target = await databases.new()
    assert await admin.restore(target, info.path) == head_revision()
    restored = Store.from_url(target.effective_database_url)
    assert isinstance(restored, SqlStore)
    try:
        everything = await _everything(restored)
        _assert_consistent(everything)
        written_ids = {p for (_, p) in everything if p.startswith("w")}
        k = len(written_ids)
        assert before <= k <= after  # the snapshot instant lies inside the backup
        assert written_ids == {f"w{i}" for i in range(k)}  # a prefix of the batches, whole
        hot = everything[("shop-a", "hot")]["history"]
        assert [r["observed_at"] for r in hot] == [day(10 + i / 1000) for i in range(k)]
        assert hot[-1]["price"] == Decimal(f"{3 + (k - 1) / 10000:.4f}")
        assert {key: v for key, v in everything.items() if key in seeded_before} == seeded_before
        hits = await restored.search("leche s17 entera")
        assert [h.item["id"] for h in hits] == ["s17"]  # the search index came along
        counted = await admin.stats(target)
        assert (counted["products"], counted["observations"]) == (1000 + k + 1, 3000 + 2 * k)
    finally:
        await restored.close()


async def test_restore_replaces_what_changed_since_the_backup(
    databases: Databases, source: tuple[Settings, SqlStore], tmp_path: Path
) -> None:
    """Restoring into the same database brings it back to the backup, whatever came since:
    new products, new history, new partitions."""
    settings, store = source
    await _ingest_runs(
        store,
        {("shop-a", "p1"): [(0, "1.00"), (2, "1.10")], ("shop-b", "p2"): [(1, "5.00")]},
    )
    then = await _everything(store)
    info = await admin.backup(settings, tmp_path / "then.bak")
    await _ingest_runs(
        store,
        {("shop-a", "p1"): [(3, "1.30")], ("shop-a", "p3"): [(3, "2.00")]},
    )
    if isinstance(store, PostgresStore):  # partitions the backup does not know
        assert await store.ensure_partitions(today=date(2031, 1, 1), months_ahead=1)
    await admin.restore(settings, info.path)
    assert await _everything(store) == then
    assert [h.item["id"] for h in await store.search("producto p1")] == ["p1"]
    await admin.restore(settings, info.path)  # again: still the same
    assert await _everything(store) == then


async def test_restore_refuses_what_is_not_a_backup(
    databases: Databases, source: tuple[Settings, SqlStore], tmp_path: Path
) -> None:
    """A text file, an unrelated SQLite file, another backend's backup or a missing file are
    refused with a clear message, and the database is left as it was."""
    settings, store = source
    await store.ingest([sighting("p1", "1.00", day(0))])
    junk = tmp_path / "notes.txt"
    junk.write_text("shopping list: milk\n")
    with pytest.raises(StoreError, match="not a pricefleet backup"):
        await admin.restore(settings, junk)
    with pytest.raises(StoreError, match="no backup file"):
        await admin.restore(settings, tmp_path / "missing.bak")
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    if databases.backend == "sqlite":
        with pytest.raises(StoreError, match="no alembic_version"):
            await admin.restore(settings, other)
        fake_dump = tmp_path / "fake.dump"
        fake_dump.write_bytes(b"PGDMP\x01\x0e\x00" + b"\x00" * 100)
        with pytest.raises(StoreError, match="PostgreSQL dump"):
            await admin.restore(settings, fake_dump)
    else:
        with pytest.raises(StoreError, match="SQLite backup"):
            await admin.restore(settings, other)
        truncated = tmp_path / "truncated.dump"
        whole = (await admin.backup(settings, tmp_path / "whole.dump")).path.read_bytes()
        truncated.write_bytes(whole[:20])
        with pytest.raises(StoreError, match="not a readable pricefleet backup"):
            await admin.restore(settings, truncated)
    assert (await store.get_product("shop-a", "p1")) is not None


async def test_restore_refuses_a_backup_from_newer_code(
    databases: Databases, source: tuple[Settings, SqlStore], tmp_path: Path
) -> None:
    """A backup at a schema revision this code does not know is refused, naming both."""
    settings, store = source
    await store.ingest([sighting("p1", "1.00", day(0))])
    async with store.writer.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'f00d_future'"))
    info = await admin.backup(settings, tmp_path / "future.bak")
    assert info.revision == "f00d_future"
    target = await databases.new()
    kept = await _migrated(target)
    try:
        await kept.ingest([sighting("mine", "9.00", day(0))])
        with pytest.raises(StoreError, match=r"'f00d_future'.*newer pricefleet") as refused:
            await admin.restore(target, info.path)
        assert head_revision() in str(refused.value)
        assert await kept.get_product("shop-a", "mine") is not None
        assert await kept.get_product("shop-a", "p1") is None
    finally:
        await kept.close()


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_a_failed_restore_leaves_the_database_as_it_was(
    databases: Databases, source: tuple[Settings, SqlStore], tmp_path: Path
) -> None:
    """The PostgreSQL restore runs in one transaction: when it fails part-way (here a view of
    someone else's depends on a table the restore must replace), nothing of it stays."""
    settings, store = source
    await store.ingest([sighting("p1", "1.00", day(0))])
    info = await admin.backup(settings, tmp_path / "b.dump")
    target = await databases.new()
    kept = await _migrated(target)
    try:
        await kept.ingest([sighting("mine", "9.00", day(0)), sighting("mine", "9.50", day(1))])
        async with kept.writer.begin() as conn:
            await conn.execute(text("CREATE VIEW their_names AS SELECT name FROM products"))
        before = await _everything(kept)
        with pytest.raises(StoreError, match=r"unchanged: psql: .*depend"):
            await admin.restore(target, info.path)
        assert await _everything(kept) == before
        async with kept.writer.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM their_names")) == 1
    finally:
        await kept.close()


async def test_restore_migrates_an_older_backup_to_head(
    databases: Databases, source: tuple[Settings, SqlStore], tmp_path: Path
) -> None:
    """Restoring a backup leaves the database at the head revision, ready to use."""
    settings, store = source
    await store.ingest([sighting("p1", "1.00", day(0))])
    info = await admin.backup(settings, tmp_path / "b.bak")
    target = await databases.new()  # never migrated: the backup brings the schema
    await admin.restore(target, info.path)
    restored = Store.from_url(target.effective_database_url)
    assert isinstance(restored, SqlStore)
    try:
        async with restored.writer.connect() as conn:
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        assert version == head_revision()
        await restored.ingest([sighting("p1", "1.50", day(1))])
        assert [r["price"] for r in await restored.history("shop-a", "p1")] == [
            Decimal("1.00"),
            Decimal("1.50"),
        ]
    finally:
        await restored.close()


async def test_backup_errors_are_clear(
    databases: Databases,
    source: tuple[Settings, SqlStore],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A missing folder, a missing database, a missing pg_dump and a failing dump each say so;
    no half-written file is left behind."""
    settings, _store = source
    with pytest.raises(StoreError, match="does not exist"):
        await admin.backup(settings, tmp_path / "nowhere" / "b.bak")
    with pytest.raises(StoreError, match="is a folder"):
        await admin.backup(settings, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    if databases.backend == "sqlite":
        gone = Settings(database_url=f"sqlite:///{tmp_path / 'gone.db'}", redis_url=None)
        with pytest.raises(StoreError, match="no database at"):
            await admin.backup(gone, out / "b.bak")
    else:
        missing = Settings(database_url=pg_url("pf_test_no_such_db"), redis_url=REDIS)
        with pytest.raises(StoreError, match=r"pg_dump failed.*pf_test_no_such_db"):
            await admin.backup(missing, out / "b.bak")
        dump = tmp_path / "b.dump"
        await admin.backup(settings, dump)
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        with pytest.raises(StoreError, match="pg_dump is not installed"):
            await admin.backup(settings, out / "b.bak")
        with pytest.raises(StoreError, match="pg_restore is not installed"):
            await admin.restore(settings, dump)
    assert not any(out.iterdir())


# --- prune -----------------------------------------------------------------------------------

#: Known histories (day, price) around a cutoff at day 100; each price differs from the last, so
#: each sighting is a history row.
RUNS: dict[tuple[str, str], list[tuple[float, str]]] = {
    ("shop-a", "a"): [(0, "1.00"), (40, "1.10"), (70, "1.20"), (110, "1.30")],
    ("shop-a", "b"): [(0, "2.00"), (100, "2.10"), (120, "2.20")],  # a row right at the cutoff
    ("shop-a", "c"): [(0, "3.00"), (50, "3.10")],  # nothing since: its last state stays
    ("shop-a", "d"): [(150, "4.00"), (160, "4.10")],  # all after the cutoff
    ("shop-a", "e"): [(5, "5.00")],  # one row, long ago
    ("shop-b", "f"): [(0, "6.00"), (30, "6.10"), (60, "6.20"), (90, "6.30"), (99.5, "6.40")],
}
#: What stays: the rows that began at or after the cutoff, and the last one before it.
KEPT = {
    "a": [70, 110],
    "b": [0, 100, 120],
    "c": [50],
    "d": [150, 160],
    "e": [5],
    "f": [99.5],
}
CUTOFF = day(100)
NOW = CUTOFF + timedelta(days=400)


async def _histories(store: Store, since: datetime | None = None) -> dict[str, Any]:
    return {product: await store.history(site, product, since=since) for site, product in RUNS}


async def test_prune_keeps_the_state_in_force_at_the_cutoff(
    source: tuple[Settings, SqlStore],
) -> None:
    """Prune deletes exactly the rows that ended before the cutoff; history from the cutoff on
    reads the same; a dry run changes nothing; a second prune finds nothing more."""
    settings, store = source
    await _ingest_runs(store, RUNS)
    since_before = await _histories(store, since=CUTOFF)
    products_before = [await store.get_product(*key) for key in RUNS]
    total = sum(len(points) for points in RUNS.values())
    expected_deleted = total - sum(len(rows) for rows in KEPT.values())

    preview = await admin.prune(settings, timedelta(days=400), now=NOW, dry_run=True)
    assert (preview.deleted, preview.kept, preview.dry_run) == (expected_deleted, 5, True)
    assert preview.cutoff == CUTOFF
    assert (await admin.stats(settings))["observations"] == total

    result = await admin.prune(settings, timedelta(days=400), now=NOW)
    assert (result.deleted, result.kept, result.dry_run) == (expected_deleted, 5, False)
    after = await _histories(store)
    assert {p: [r["observed_at"] for r in rows] for p, rows in after.items()} == {
        p: [day(d) for d in days] for p, days in KEPT.items()
    }
    for (_, product), points in RUNS.items():  # the rows kept are untouched
        by_start = {day(d): Decimal(price) for d, price in points}
        assert all(by_start[r["observed_at"]] == r["price"] for r in after[product])
    assert await _histories(store, since=CUTOFF) == since_before
    assert [await store.get_product(*key) for key in RUNS] == products_before

    again = await admin.prune(settings, timedelta(days=400), now=NOW)
    assert (again.deleted, again.kept) == (0, 5)
    assert await _histories(store) == after


@pytest.mark.parametrize("databases", ["postgresql"], indirect=True)
async def test_prune_drops_whole_partitions_that_hold_nothing_to_keep(
    source: tuple[Settings, SqlStore],
) -> None:
    """On PostgreSQL, a monthly partition ending by the cutoff goes whole when every row in it
    was superseded before the cutoff; one holding a state in force at the cutoff stays."""
    settings, store = source
    assert isinstance(store, PostgresStore)
    await store.ensure_partitions(today=date(2026, 1, 1), months_ahead=6)  # Jan … Jul 2026
    jan, feb, mar, may, jun = (datetime(2026, m, 10, tzinfo=UTC) for m in (1, 2, 3, 5, 6))
    cutoff = datetime(2026, 6, 15, tzinfo=UTC)
    for when, batch in [
        (jan, [("p1", "1.00"), ("p2", "2.00")]),
        (feb, [("p1", "1.10")]),
        (mar, [("p1", "1.20")]),
        (may, [("p2", "2.10")]),  # p2's state at the cutoff: May stays
        (jun, [("p1", "1.30")]),  # p1's state at the cutoff, in a partition that ends later
    ]:
        await store.ingest([sighting(p, price, when) for p, price in batch])
    since_before = {p: await store.history("shop-a", p, since=cutoff) for p in ("p1", "p2")}

    older_than = timedelta(days=30)
    now = cutoff + older_than
    preview = await admin.prune(settings, older_than, now=now, dry_run=True)
    gone = ("price_observations_2026_01", "price_observations_2026_02")
    gone += ("price_observations_2026_03", "price_observations_2026_04")
    assert (preview.deleted, preview.partitions_dropped) == (4, gone)
    result = await admin.prune(settings, older_than, now=now)
    assert (result.deleted, result.kept, result.partitions_dropped) == (4, 2, gone)
    partitions = {p["name"]: p["rows"] for p in (await admin.stats(settings))["partitions"]}
    assert not set(gone) & set(partitions)
    assert partitions["price_observations_2026_05"] == 1
    assert partitions["price_observations_2026_06"] == 1
    assert {p: await store.history("shop-a", p, since=cutoff) for p in ("p1", "p2")} == (
        since_before
    )
    late = datetime(2026, 2, 20, tzinfo=UTC)  # a late sighting for a dropped month still lands
    await store.ingest([sighting("p3", "7.00", late)])
    assert [r["observed_at"] for r in await store.history("shop-a", "p3")] == [late]


def test_ages_parse_or_say_what_is_expected() -> None:
    """`Nd`, `Nh`, `Nw`; anything else is refused with an example."""
    assert admin.parse_age("400d") == timedelta(days=400)
    assert admin.parse_age("36h") == timedelta(hours=36)
    assert admin.parse_age(" 2W ") == timedelta(weeks=2)
    for bad in ("400", "d", "1.5d", "-3d", "10m", "400 days", ""):
        with pytest.raises(InvalidQuery, match=r"e\.g\. 400d"):
            admin.parse_age(bad)
    for bad in ("0d", "999999w"):
        with pytest.raises(InvalidQuery, match="more than zero"):
            admin.parse_age(bad)


# --- stats -----------------------------------------------------------------------------------


async def test_stats_count_what_is_stored(
    databases: Databases, source: tuple[Settings, SqlStore]
) -> None:
    """Sites, products, history rows, matches, the span of the history and the size on disk."""
    settings, store = source
    empty = await admin.stats(settings)
    assert (empty["sites"], empty["products"], empty["observations"], empty["matches"]) == (
        2,
        0,
        0,
        0,
    )
    assert empty["oldest_observation"] is None
    await _ingest_runs(store, RUNS)
    await store.ingest(
        [
            sighting("g1", "1.00", day(200), gtin=GTIN),
            sighting("g2", "1.10", day(201), gtin=GTIN, site_id="shop-b"),
        ]
    )
    counted = await admin.stats(settings)
    assert counted["backend"] == databases.backend
    assert counted["revision"] == head_revision()
    assert counted["sites"] == 2
    assert counted["products"] == len(RUNS) + 2
    assert counted["observations"] == sum(len(p) for p in RUNS.values()) + 2
    assert counted["matches"] == 2
    assert (counted["oldest_observation"], counted["newest_observation"]) == (day(0), day(201))
    assert counted["last_seen"] == day(201)
    assert counted["size_bytes"] > 0
    if databases.backend == "postgresql":
        rows = {p["name"]: p["rows"] for p in counted["partitions"]}
        assert sum(rows.values()) == counted["observations"]
        assert rows["price_observations_default"] > 0  # older than the monthly partitions
    else:
        assert "partitions" not in counted
    with pytest.raises(StoreError, match="db upgrade"):
        await admin.stats(Settings(database_url="sqlite:////nonexistent/x.db", redis_url=None))


# --- shards ----------------------------------------------------------------------------------


async def test_prune_and_stats_cover_every_shard() -> None:
    """With PRICEFLEET_DATABASE_SHARDS, prune and stats run on each shard and add up; backup
    and restore, which work on one database, say so."""
    names = [await create_database() for _ in range(2)]
    try:
        entries = tuple(f"s{n}={pg_url(name)}" for n, name in enumerate(names))
        settings = Settings(database_shards=entries, redis_url=REDIS)
        async with ShardedStore.from_urls(entries) as sharded:
            await sharded.upgrade()
            await sharded.upsert_sites(SITES)
            await _ingest_runs(sharded, RUNS)
            counted = await admin.stats(settings)
            assert counted["observations"] == sum(len(p) for p in RUNS.values())
            assert counted["sites"] == 2
            assert set(counted["shards"]) == {"s0", "s1"}
            result = await admin.prune(settings, timedelta(days=400), now=NOW)
            assert (result.deleted, result.kept) == (7, 5)
            after = await _histories(sharded)
            assert {p: [r["observed_at"] for r in rows] for p, rows in after.items()} == {
                p: [day(d) for d in days] for p, days in KEPT.items()
            }
        with pytest.raises(StoreError, match="each shard on its own"):
            await admin.backup(settings, Path("/tmp/never.bak"))
    finally:
        for name in names:
            await drop_database(name)


# --- the command line ------------------------------------------------------------------------


Completed = subprocess.CompletedProcess[str]


def _cli(*args: str, env: dict[str, str]) -> Completed:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PRICEFLEET_")}
    return subprocess.run(
        [sys.executable, "-m", "pricefleet", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **env, "COLUMNS": "200"},
        check=False,
    )


def _recent_history() -> list[Sighting]:
    """p1 changed 30, 20 and 10 days ago and yesterday; p2 once, 30 days ago."""
    now = datetime.now(UTC).replace(microsecond=0)
    points = [(30, "1.00"), (20, "1.10"), (10, "1.20"), (1, "1.30")]
    rows = [sighting("p1", price, now - timedelta(days=d)) for d, price in points]
    return [*rows, sighting("p2", "2.00", now - timedelta(days=30))]


async def _seed(url: str) -> None:
    async with Store.from_url(url) as store:
        await store.upgrade()
        await store.upsert_sites(SITES)
        for one in _recent_history():
            await store.ingest([one])


async def _commands(*commands: tuple[dict[str, str], list[str]]) -> list[Completed]:
    """Run independent commands at once, each in its own process."""
    return list(await asyncio.gather(*(asyncio.to_thread(_cli, *a, env=e) for e, a in commands)))


async def test_cli_backup_stats_prune_restore_on_sqlite(tmp_path: Path) -> None:
    """Every db command through a real process, on the embedded SQLite file."""
    home = {"PRICEFLEET_DATA_DIR": str(tmp_path / "a")}
    elsewhere = {"PRICEFLEET_DATA_DIR": str(tmp_path / "b")}
    await _seed(f"sqlite:///{tmp_path / 'a' / 'pricefleet.db'}")
    backup = str(tmp_path / "a.bak")
    junk = tmp_path / "junk.bak"
    junk.write_text("not a database")

    (backed_up,) = await _commands((home, ["db", "backup", backup]))
    assert backed_up.returncode == 0, backed_up.stderr
    assert "backed up the sqlite database (revision" in backed_up.stderr

    as_json, table, preview, bad_age, restored, refused = await _commands(
        (home, ["db", "stats", "--json"]),
        (home, ["db", "stats"]),
        (home, ["db", "prune", "--older-than", "2w", "--dry-run"]),
        (home, ["db", "prune", "--older-than", "2 weeks"]),
        (elsewhere, ["db", "restore", backup]),
        (home, ["db", "restore", str(junk)]),
    )
    assert as_json.returncode == 0, as_json.stderr
    counted = orjson.loads(as_json.stdout)
    assert (counted["products"], counted["observations"]) == (2, 5)
    assert table.returncode == 0, table.stderr
    assert "observations" in table.stdout
    assert "pricefleet database" in table.stdout
    assert preview.returncode == 0, preview.stderr
    assert preview.stdout.startswith("would delete 1 history rows")
    assert bad_age.returncode == 2
    assert "not an age" in bad_age.stderr
    assert "400d" in bad_age.stderr
    assert restored.returncode == 0, restored.stderr
    assert f"at revision {head_revision()}" in restored.stderr
    assert refused.returncode == 2
    assert "not a pricefleet backup" in refused.stderr

    (pruned,) = await _commands((home, ["db", "prune", "--older-than", "2w"]))
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("deleted 1 history rows")
    assert "2 older rows stay" in pruned.stdout
    with closing(sqlite3.connect(tmp_path / "a" / "pricefleet.db")) as conn:
        assert conn.execute("SELECT count(*) FROM price_observations").fetchone() == (4,)
    with closing(sqlite3.connect(tmp_path / "b" / "pricefleet.db")) as conn:
        assert conn.execute("SELECT count(*) FROM price_observations").fetchone() == (5,)


async def test_cli_backup_restore_stats_prune_on_postgresql(tmp_path: Path) -> None:
    """The same commands with the cluster settings, on PostgreSQL."""
    require_program(PG_DUMP, "postgresql-client-15")
    names = [await create_database(), await create_database()]
    try:
        await _seed(pg_url(names[0]))
        source, target = (
            {"PRICEFLEET_DATABASE_URL": pg_url(name), "PRICEFLEET_REDIS_URL": REDIS}
            for name in names
        )
        dump = str(tmp_path / "pf.dump")
        (backed_up,) = await _commands((source, ["db", "backup", dump]))
        assert backed_up.returncode == 0, backed_up.stderr
        assert "backed up the postgresql database" in backed_up.stderr
        (restored,) = await _commands((target, ["db", "restore", dump]))
        assert restored.returncode == 0, restored.stderr
        as_json, table, preview = await _commands(
            (target, ["db", "stats", "--json"]),
            (target, ["db", "stats"]),
            (target, ["db", "prune", "--older-than", "2w", "--dry-run"]),
        )
        assert as_json.returncode == 0, as_json.stderr
        counted = orjson.loads(as_json.stdout)
        assert (counted["products"], counted["observations"]) == (2, 5)
        assert any(p["name"] == "price_observations_default" for p in counted["partitions"])
        assert "history partitions" in table.stdout
        assert "reltuples" in table.stdout
        assert preview.returncode == 0, preview.stderr
        assert preview.stdout.startswith("would delete 1 history rows")
    finally:
        for name in names:
            await drop_database(name)
