"""The narrow state row (migration 0005): what ingest writes where, read from the tables."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from alembic import command
from sqlalchemy import select, text

from pricefleet.models import Availability, PriceObservation, Product, SizeUnit
from pricefleet.store.bulk import Bulk
from pricefleet.store.ingest import _meta_hashes
from pricefleet.store.migrate import _config, schema_diff
from pricefleet.store.records import SortKey
from pricefleet.store.sql import SqlStore
from pricefleet.store.tables import price_observations, product_state, products
from tests.store.factories import SITES, at, sighting


async def _stored(store: SqlStore, product_id: str) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """The product's state row and its history rows (observed_at, price, last_seen), as stored."""
    obs, state = price_observations.c, product_state.c
    async with store.writer.connect() as conn:
        row = (await conn.execute(select(product_state).where(state.id == product_id))).one()
        history = await conn.execute(
            select(obs.observed_at, obs.price, obs.last_seen)
            .where(obs.product_id == product_id)
            .order_by(obs.observed_at)
        )
        return dict(row._mapping), [tuple(r) for r in history]


async def test_a_confirmed_state_moves_only_the_state_row(sql_store: SqlStore) -> None:
    """Sightings and touches that confirm the state move `last_seen` on the state row only;
    when the state changes, the row that ends gets its last sighting written."""
    await sql_store.upsert_sites(SITES)
    await sql_store.ingest([sighting("p1", "1.00", at(0))])
    await sql_store.ingest([sighting("p1", "1.00", at(10))])
    assert await sql_store.touch("shop-a", ["p1"], at(15)) == 1
    state, history = await _stored(sql_store, "p1")
    assert (state["last_seen"], state["price_changed_at"]) == (at(15), at(0))
    assert history == [(at(0), Decimal("1.00"), at(0))]  # not rewritten by confirmations
    rows = await sql_store.history("shop-a", "p1")
    assert [(r["observed_at"], r["last_seen"]) for r in rows] == [(at(0), at(15))]

    await sql_store.ingest([sighting("p1", "1.20", at(20))])
    state, history = await _stored(sql_store, "p1")
    assert history == [(at(0), Decimal("1.00"), at(15)), (at(20), Decimal("1.20"), at(20))]
    assert (state["price"], state["price_changed_at"], state["last_seen"]) == (
        Decimal("1.20"),
        at(20),
        at(20),
    )


async def test_metadata_is_rewritten_only_when_it_changes(sql_store: SqlStore) -> None:
    """The wide product row is written for a new product and for a newer sighting with other
    metadata; an older sighting's metadata never wins."""
    await sql_store.upsert_sites(SITES)
    await sql_store.ingest([sighting("p1", "1.00", at(0), name="Leche entera")])
    first, _ = await _stored(sql_store, "p1")
    await sql_store.ingest([sighting("p1", "1.00", at(10), name="Leche entera")])
    same, _ = await _stored(sql_store, "p1")
    assert same["meta_hash"] == first["meta_hash"] is not None
    await sql_store.ingest([sighting("p1", "1.00", at(20), name="Leche semidesnatada")])
    await sql_store.ingest([sighting("p1", "1.00", at(5), name="Leche vieja")])  # late
    renamed, _ = await _stored(sql_store, "p1")
    assert renamed["meta_hash"] != first["meta_hash"]
    product = await sql_store.get_product("shop-a", "p1")
    assert product is not None
    assert product["name"] == "Leche semidesnatada"
    assert (product["first_seen"], product["last_seen"]) == (at(0), at(20))


async def test_migration_0005_moves_the_state_of_stored_products(sql_store: SqlStore) -> None:
    """Products stored before 0005 keep their price state and sightings; their next sighting
    rewrites their metadata once (no hash yet) and then goes on as usual."""
    await sql_store.upsert_sites(SITES)
    await sql_store.ingest([sighting("p1", "1.00", at(0)), sighting("p2", "2.00", at(0))])
    await sql_store.ingest([sighting("p1", "1.50", at(10))])
    async with sql_store.writer.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(_config(sync), "0004"))
        moved = await conn.execute(text("SELECT id, price, last_seen FROM products ORDER BY id"))
        assert len(moved.all()) == 2
    async with sql_store.writer.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), "head"))
        assert await schema_diff(conn) == []
        assert await conn.scalar(select(product_state.c.meta_hash).limit(1)) is None
        assert await conn.scalar(select(products.c.id).order_by(products.c.id)) == "p1"
    product = await sql_store.get_product("shop-a", "p1")
    assert product is not None
    assert (product["price"], product["price_changed_at"]) == (Decimal("1.50"), at(10))
    assert (product["first_seen"], product["last_seen"]) == (at(0), at(10))
    await sql_store.ingest([sighting("p1", "1.50", at(20)), sighting("p2", "2.10", at(20))])
    rows = await sql_store.history("shop-a", "p1")
    assert [(r["observed_at"], r["price"], r["last_seen"]) for r in rows] == [
        (at(0), Decimal("1.00"), at(0)),
        (at(10), Decimal("1.50"), at(20)),
    ]
    page = await sql_store.list_products(sort=SortKey.PRICE)
    assert [item["id"] for item in page.items] == ["p1", "p2"]
    state, _ = await _stored(sql_store, "p2")
    assert state["meta_hash"] is not None


async def test_the_hot_path_converts_as_the_columns_bind(sql_store: SqlStore) -> None:
    """`Bulk.stored_states` and `stored_times` (the hot path's conversions, generated and in
    C calls) give what each column's own bind processor gives, for every kind of value."""
    amounts: list[Any] = [Decimal("1.00"), Decimal("2.34565"), Decimal("-0.5"), 7, None]
    observations = [
        PriceObservation(
            site_id="shop-a",
            product_id=f"p{n}",
            observed_at=at(n),
            price=amounts[n % 4],
            currency="EUR",
            availability=list(Availability)[n % len(Availability)],
            unit_price=amounts[(n + 1) % 5],
            unit=[None, *SizeUnit][n % (len(SizeUnit) + 1)],
            regular_price=amounts[(n + 2) % 5],
            is_discounted=n % 2 == 0,
            shop_unit_price=amounts[(n + 3) % 5],
            shop_unit=[None, "100 g"][n % 2],
        )
        for n in range(20)
    ]
    times = [at(0), at(0) + timedelta(microseconds=1), at(0).replace(microsecond=0)]
    async with sql_store.writer.connect() as conn:
        bulk = Bulk.of(conn)
        expected = [
            bulk.stored_state(
                (
                    o.price,
                    o.currency,
                    o.regular_price,
                    o.is_discounted,
                    o.unit_price,
                    o.unit.value if o.unit else None,
                    o.availability.value,
                    o.shop_unit_price,
                    o.shop_unit,
                )
            )
            for o in observations
        ]
        states = bulk.stored_states(observations)
        assert states == expected
        assert [list(map(type, s)) for s in states] == [list(map(type, s)) for s in expected]
        assert bulk.stored_times(times) == [bulk.stored_time(t) for t in times]


def test_metadata_hashes_keep_their_stored_values() -> None:
    """`meta_hash` values stay those already stored (blake2b of the metadata's JSON, computed
    per product before): a change would rewrite every product row once."""
    products = [
        Product(
            site_id="shop-a",
            id="p1",
            url="https://a.example/p1",
            name="Leche 1 l",
            brand="Vaca",
            gtin="8400202611233",
            size_value=Decimal("1.5"),
            size_unit=SizeUnit.L,
            raw={"b": 1, "a": [2, "x"]},
        ),
        Product(site_id="shop-a", id="p2", url="https://a.example/p2", name="Pan"),
    ]
    assert _meta_hashes(products) == (-7869353211502624369, -7475853262413443049)
