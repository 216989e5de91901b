"""What only the PostgreSQL backend has: fuzzy names, monthly partitions, the trending view."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest
from alembic import command
from sqlalchemy import event, text

from pricefleet.store.base import Store
from pricefleet.store.migrate import _config
from pricefleet.store.postgres import PostgresStore
from tests.servers import create_database, drop_database, pg_url
from tests.store.factories import SITES, at, sighting


@pytest.fixture
async def pg() -> AsyncIterator[PostgresStore]:
    """A migrated PostgreSQL store in a database of its own."""
    name = await create_database()
    store = Store.from_url(pg_url(name))
    assert isinstance(store, PostgresStore)
    try:
        await store.upgrade()
        await store.upsert_sites(SITES)
        yield store
    finally:
        await store.close()
        await drop_database(name)


async def test_typos_find_products_by_trigram_similarity(pg: PostgresStore) -> None:
    """A misspelt name that matches no word still finds the product (pg_trgm)."""
    await pg.ingest(
        [
            sighting("p1", "1.00", at(0), name="Leche entera Campo Real 1 L"),
            sighting("p2", "9.00", at(0), name="Jamón ibérico de bellota"),
        ]
    )
    assert await pg.search("lehce entera") == []  # strict by default, as on SQLite
    assert [h.item["id"] for h in await pg.search("lehce entera", fuzzy=True)] == ["p1"]
    assert [h.item["id"] for h in await pg.search("jamon iberco", fuzzy=True)] == ["p2"]


async def test_partitions_are_made_ahead_and_nothing_falls_outside(pg: PostgresStore) -> None:
    """Monthly partitions exist ahead of today; older rows land in the default partition."""
    created = await pg.ensure_partitions(today=date(2031, 1, 15), months_ahead=2)
    assert created == [
        "price_observations_2031_01",
        "price_observations_2031_02",
        "price_observations_2031_03",
    ]
    assert await pg.ensure_partitions(today=date(2031, 1, 15), months_ahead=2) == []
    await pg.ingest([sighting("p1", "1.00", at(0))])  # June 2026: no monthly partition
    async with pg.writer.connect() as conn:
        where = await conn.scalar(
            text("SELECT tableoid::regclass::text FROM price_observations WHERE product_id='p1'")
        )
        names = set(
            await conn.scalars(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'price_observations'"
                )
            )
        )
    assert where == "price_observations_default"
    assert {"price_observations_2031_01", "price_observations_default"} <= names
    assert (
        len([n for n in names if n != "price_observations_default"]) >= 4 + 3
    )  # upgrade made some


async def test_search_scans_from_the_first_page(pg: PostgresStore) -> None:
    """A search turns synchronised scans off in its transaction, before its statement: a
    sequential scan cut short by the candidate LIMIT then starts at the table's first page on
    every call (a big table's would start where the last scan stopped), so the same search
    ranks the same candidates every time."""
    sent: list[str] = []

    def grab(conn: object, cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    await pg.ingest([sighting("p1", "1.00", at(0), name="Leche entera")])
    event.listen(pg.writer.sync_engine, "before_cursor_execute", grab)
    try:
        assert [h.item["id"] for h in await pg.search("leche")] == ["p1"]
    finally:
        event.remove(pg.writer.sync_engine, "before_cursor_execute", grab)
    search = next(n for n, s in enumerate(sent) if "ts_rank_cd" in s)
    assert "SET LOCAL synchronize_seqscans = off" in sent[:search]


async def test_new_products_get_search_rows_from_one_statement_trigger(pg: PostgresStore) -> None:
    """New products become searchable through a statement trigger on `products` (migration
    0007; renames keep the row trigger), and down to 0006 and back they still do."""
    query = text(
        "SELECT tgname, (tgtype & 1) = 1 FROM pg_trigger "
        "WHERE tgrelid = 'products'::regclass AND tgname LIKE 'products_search_%' ORDER BY 1"
    )
    async with pg.writer.connect() as conn:
        triggers = (await conn.execute(query)).all()
    assert [tuple(t) for t in triggers] == [
        ("products_search_insert", False),  # FOR EACH STATEMENT
        ("products_search_update", True),  # FOR EACH ROW, WHEN name or brand changed
    ]
    await pg.ingest(
        [sighting(f"p{i}", "1.00", at(0), name=f"Leche entera {i}") for i in range(5)]
        + [sighting("b1", "2.00", at(0), site_id="shop-b", name="Queso", brand="La Leche")]
    )
    assert len(await pg.search("leche")) == 6
    await pg.ingest([sighting("p0", "1.00", at(5), name="Queso curado")])  # a rename
    assert sorted(h.item["id"] for h in await pg.search("queso")) == ["b1", "p0"]
    async with pg.writer.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(_config(sync), "0006"))
        assert [tuple(t) for t in (await conn.execute(query)).all()] == [
            ("products_search_insert", True),
            ("products_search_update", True),
        ]
    await pg.ingest([sighting("p9", "1.00", at(9), name="Leche fresca")])
    async with pg.writer.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), "head"))
    await pg.ingest([sighting("p10", "1.00", at(9), name="Leche fresca")])
    assert {h.item["id"] for h in await pg.search("leche fresca")} == {"p9", "p10"}


def _partition_scans(plan: object) -> list[tuple[str, int]]:
    """(partition, times its scan ran) for every scan of a search partition in a JSON plan."""
    found: list[tuple[str, int]] = []
    if isinstance(plan, dict):
        if str(plan.get("Relation Name", "")).startswith("product_search_p"):
            found.append((plan["Relation Name"], plan["Actual Loops"]))
        for value in plan.values():
            found += _partition_scans(value)
    elif isinstance(plan, list):
        for value in plan:
            found += _partition_scans(value)
    return found


async def test_search_rows_are_hash_partitioned(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 0008: the search rows are spread over 16 hash partitions; a search whose
    matches fill the candidates from the first partitions never scans the others, one with
    few matches scans them all; down to 0007 and back, every row is kept and found."""
    from pricefleet.store import postgres

    await pg.ingest(
        [sighting(f"p{i}", "1.00", at(0), name=f"Leche entera {i}") for i in range(150)]
    )
    await pg.ingest([sighting("r1", "2.00", at(0), name="Queso trufado")])
    counts = text(
        "SELECT c.relname, (SELECT count(*) FROM product_search s WHERE s.tableoid = c.oid) "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'product_search'::regclass"
    )
    async with pg.writer.connect() as conn:
        spread = {name: rows for name, rows in (await conn.execute(counts)).all()}
    assert len(spread) == 16
    assert sum(spread.values()) == 151
    assert min(spread.values()) > 0

    sent: list[tuple[str, object]] = []

    def grab(conn: object, cursor: object, statement: str, parameters: object, *_: object) -> None:
        if "ts_rank_cd" in statement:
            sent.append((statement, parameters))

    async def scans(q: str) -> list[tuple[str, int]]:
        sent.clear()
        event.listen(pg.writer.sync_engine, "before_cursor_execute", grab)
        try:
            await pg.search(q)
        finally:
            event.remove(pg.writer.sync_engine, "before_cursor_execute", grab)
        [(statement, parameters)] = sent
        async with pg.writer.connect() as conn:
            plan = await conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + statement,
                parameters,  # type: ignore[arg-type]
            )
            return _partition_scans(plan.scalar_one())

    monkeypatch.setattr(postgres, "SEARCH_CANDIDATES", 10)
    common = await scans("leche")
    assert len(common) == 16
    assert 0 < len([name for name, loops in common if loops]) < 16
    rare = await scans("trufado")
    assert len([name for name, loops in rare if loops]) == 16
    monkeypatch.undo()

    async with pg.writer.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(_config(sync), "0007"))
        kind = text("SELECT relkind::text FROM pg_class WHERE relname = 'product_search'")
        assert await conn.scalar(kind) == "r"  # a plain table again
        assert await conn.scalar(text("SELECT count(*) FROM product_search")) == 151
    assert len(await pg.search("leche", limit=200)) == 150
    async with pg.writer.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), "head"))
    assert len(await pg.search("leche", limit=200)) == 150
    assert [h.item["id"] for h in await pg.search("trufado")] == ["r1"]
