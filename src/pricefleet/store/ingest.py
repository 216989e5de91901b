"""The write hot path: upsert products, then record their sightings change-only, in one transaction.

Batch-shaped: one multi-row upsert, one query for the latest history row of every product, one
executemany per kind of change. Out-of-order and replayed sightings take a slower path that
reads the affected slice of history per product; the result is the same rows in any order.
Writers racing on the same products serialise on the product rows the upsert locks (keys are
sorted, so two batches never wait on each other in a cycle).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row as SqlRow
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from pricefleet.errors import UnknownSite
from pricefleet.match import gtin_group, normalize_gtin
from pricefleet.models import PriceObservation
from pricefleet.store.records import IngestResult, Sighting
from pricefleet.store.tables import STATE_COLUMNS, matches, price_observations, products
from pricefleet.store.timeline import Changes, Row, State, merge

__all__ = ["ingest"]

Key = tuple[str, str]
#: Product columns a newer sighting overwrites (the price state is set from history instead).
_META: tuple[str, ...] = (
    "url",
    "name",
    "brand",
    "gtin",
    "sku",
    "category_id",
    "size_value",
    "size_unit",
    "image_url",
    "raw",
)


def _state(observation: PriceObservation) -> State:
    return State(
        price=observation.price,
        currency=observation.currency,
        regular_price=observation.regular_price,
        is_discounted=observation.is_discounted,
        unit_price=observation.unit_price,
        unit=observation.unit.value if observation.unit else None,
        availability=observation.availability.value,
        shop_unit_price=observation.shop_unit_price,
        shop_unit=observation.shop_unit,
    )


def _row_of(record: SqlRow[Any]) -> Row:
    values = record._mapping
    return Row(
        observed_at=values["observed_at"],
        state=State(**{name: values[name] for name in STATE_COLUMNS}),
        last_seen=values["last_seen"],
    )


def _state_values(state: State) -> dict[str, Any]:
    return {name: getattr(state, name) for name in STATE_COLUMNS}


def _insert_for(conn: AsyncConnection) -> Callable[..., Any]:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _extreme(conn: AsyncConnection, name: str, *args: Any) -> ColumnElement[Any]:
    """least/greatest on PostgreSQL, the two-argument min/max scalar functions on SQLite."""
    if conn.dialect.name == "postgresql":
        return getattr(func, name)(*args)  # type: ignore[no-any-return]
    return getattr(func, "min" if name == "least" else "max")(*args)  # type: ignore[no-any-return]


def _product_rows(sightings: Sequence[Sighting]) -> list[dict[str, Any]]:
    """One upsert row per product: the newest sighting's fields, the span of all sightings."""
    newest: dict[Key, dict[str, Any]] = {}
    for sighting in sightings:
        product, seen = sighting.product, sighting.observation.observed_at
        key = (product.site_id, product.id)
        row = newest.get(key)
        if row is None or seen > row["last_seen"]:
            values = asdict(product)
            values["gtin"] = normalize_gtin(product.gtin)
            values["size_unit"] = product.size_unit.value if product.size_unit else None
            first = seen if row is None else min(row["first_seen"], seen)
            newest[key] = {**values, "first_seen": first, "last_seen": seen}
        else:
            row["first_seen"] = min(row["first_seen"], seen)
    return [newest[key] for key in sorted(newest)]


async def _upsert_products(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    insert = _insert_for(conn)(products)
    newer = insert.excluded.last_seen >= products.c.last_seen
    changes: dict[str, Any] = {
        name: case((newer, insert.excluded[name]), else_=products.c[name]) for name in _META
    }
    changes["first_seen"] = _extreme(
        conn, "least", products.c.first_seen, insert.excluded.first_seen
    )
    changes["last_seen"] = _extreme(
        conn, "greatest", products.c.last_seen, insert.excluded.last_seen
    )
    statement = insert.on_conflict_do_update(index_elements=["site_id", "id"], set_=changes)
    columns = ("site_id", "id", *_META, "first_seen", "last_seen")
    try:
        await conn.execute(statement, [{c: row[c] for c in columns} for row in rows])
    except IntegrityError as exc:
        sites = sorted({row["site_id"] for row in rows})
        raise UnknownSite(
            f"cannot store products of sites {sites}: register them first (upsert_sites)"
        ) from exc


async def _slices(conn: AsyncConnection, earliest: dict[Key, datetime]) -> dict[Key, list[Row]]:
    """Per product, the history rows a merge needs: the latest row strictly before the earliest
    sighting, and every row from it on."""
    obs, prod = price_observations.c, products.c
    current = await conn.execute(
        select(prod.site_id, prod.id, prod.price_changed_at).where(
            tuple_(prod.site_id, prod.id).in_(list(earliest))
        )
    )
    slices: dict[Key, list[Row]] = {key: [] for key in earliest}
    hot: list[Key] = []
    cold: list[Key] = []
    for site_id, product_id, changed_at in current:
        key = (site_id, product_id)
        if changed_at is None:
            continue  # no history yet
        # Strictly before: a sighting at the latest row's own instant may tie-break with it
        # and then has to see the row before as well.
        (hot if changed_at < earliest[key] else cold).append(key)
    if hot:  # the usual case: sightings newer than everything stored; the latest row suffices
        latest = await conn.execute(
            select(price_observations)
            .join(
                products,
                and_(
                    prod.site_id == obs.site_id,
                    prod.id == obs.product_id,
                    prod.price_changed_at == obs.observed_at,
                ),
            )
            .where(tuple_(prod.site_id, prod.id).in_(hot))
        )
        for record in latest:
            slices[(record.site_id, record.product_id)].append(_row_of(record))
    for key in cold:  # replays and late sightings: the slice of history they fall into
        site_id, product_id = key
        mine = and_(obs.site_id == site_id, obs.product_id == product_id)
        later = await conn.execute(
            select(price_observations).where(mine, obs.observed_at >= earliest[key])
        )
        before = await conn.execute(
            select(price_observations)
            .where(mine, obs.observed_at < earliest[key])
            .order_by(obs.observed_at.desc())
            .limit(1)
        )
        slices[key] = [_row_of(r) for r in [*before, *later]]
    return slices


async def _apply(conn: AsyncConnection, changes: dict[Key, Changes]) -> tuple[int, int, int]:
    obs = price_observations.c
    deletes = [
        {"s": key[0], "p": key[1], "t": at}
        for key, change in changes.items()
        for at in change.deletes
    ]
    inserts = [
        {
            "site_id": key[0],
            "product_id": key[1],
            "observed_at": row.observed_at,
            "last_seen": row.last_seen,
            **_state_values(row.state),
        }
        for key, change in changes.items()
        for row in change.inserts
    ]
    updates = [
        {
            "s": key[0],
            "p": key[1],
            "t": row.observed_at,
            "last_seen": row.last_seen,
            **_state_values(row.state),
        }
        for key, change in changes.items()
        for row in change.updates
    ]
    if deletes:
        await conn.execute(
            delete(price_observations).where(
                obs.site_id == bindparam("s"),
                obs.product_id == bindparam("p"),
                obs.observed_at == bindparam("t"),
            ),
            deletes,
        )
    if inserts:
        await conn.execute(price_observations.insert(), inserts)
    if updates:
        await conn.execute(
            update(price_observations)
            .where(
                obs.site_id == bindparam("s"),
                obs.product_id == bindparam("p"),
                obs.observed_at == bindparam("t"),
            )
            .values({name: bindparam(name) for name in ("last_seen", *STATE_COLUMNS)}),
            updates,
        )
    return len(inserts), len(deletes), len(updates)


def _latest(stored: list[Row], change: Changes) -> Row | None:
    """The newest history row once `change` is applied to `stored`."""
    rows = {row.observed_at: row for row in stored}
    for at in change.deletes:
        rows.pop(at, None)
    for row in (*change.updates, *change.inserts):
        rows[row.observed_at] = row
    return rows[max(rows)] if rows else None


async def ingest(conn: AsyncConnection, sightings: Sequence[Sighting]) -> IngestResult:
    """Store a batch of sightings inside the caller's transaction."""
    if not sightings:
        return IngestResult(0, 0, 0, 0)
    rows = _product_rows(sightings)
    await _upsert_products(conn, rows)

    by_product: dict[Key, list[tuple[datetime, State]]] = defaultdict(list)
    for sighting in sightings:
        product, observation = sighting.product, sighting.observation
        by_product[(product.site_id, product.id)].append(
            (observation.observed_at, _state(observation))
        )
    earliest = {key: min(at for at, _ in seen) for key, seen in by_product.items()}
    slices = await _slices(conn, earliest)
    changes = {key: merge(slices[key], seen) for key, seen in by_product.items()}
    inserted, deleted, updated = await _apply(
        conn, {k: c for k, c in changes.items() if not c.empty}
    )

    state_updates = []
    for key, change in changes.items():
        if change.empty:
            continue
        before = _latest(slices[key], Changes([], [], []))
        after = _latest(slices[key], change)
        if after is not None and (
            before is None
            or (before.observed_at, before.state)
            != (
                after.observed_at,
                after.state,
            )
        ):
            state_updates.append(
                {
                    "s": key[0],
                    "p": key[1],
                    "price_changed_at": after.observed_at,
                    **_state_values(after.state),
                }
            )
    if state_updates:
        await conn.execute(
            update(products)
            .where(products.c.site_id == bindparam("s"), products.c.id == bindparam("p"))
            .values({n: bindparam(n) for n in ("price_changed_at", *STATE_COLUMNS)}),
            state_updates,
        )
    await _record_gtin_matches(conn, rows)
    return IngestResult(
        products=len(rows),
        observations_inserted=inserted,
        observations_deleted=deleted,
        observations_updated=updated,
        price_changes=[(u["s"], u["p"]) for u in state_updates],
    )


async def _record_gtin_matches(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Products with a valid GTIN join the GTIN's match group."""
    grouped = [
        {
            "site_id": r["site_id"],
            "product_id": r["id"],
            "group_id": gtin_group(r["gtin"]),
            "method": "gtin",
            "score": 1.0,
        }
        for r in rows
        if r["gtin"]
    ]
    if not grouped:
        return
    insert = _insert_for(conn)(matches)
    statement = insert.on_conflict_do_update(
        index_elements=["site_id", "product_id"],
        set_={
            "group_id": insert.excluded.group_id,
            "method": insert.excluded.method,
            "score": insert.excluded.score,
        },
        where=matches.c.method == "gtin",
    )
    await conn.execute(statement, grouped)
