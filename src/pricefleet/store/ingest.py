"""The write hot path: upsert products, then record their sightings change-only, in one transaction.

Batch-shaped: one product upsert, one read of every product's latest history row, one statement
per kind of change (`bulk` sends each as a single array statement on PostgreSQL and an
`executemany` on SQLite). Out-of-order and replayed sightings take a slower path that reads
the affected slice of history per product; the result is the same rows in any order. Writers
racing on the same products serialise on the product rows the upsert locks (keys are sorted,
so two batches never wait on each other in a cycle).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Row as SqlRow
from sqlalchemy.ext.asyncio import AsyncConnection

from pricefleet.match import gtin_group, normalize_gtin
from pricefleet.models import PriceObservation, Product
from pricefleet.store.bulk import Bulk
from pricefleet.store.records import IngestResult, Sighting
from pricefleet.store.tables import STATE_COLUMNS, price_observations
from pricefleet.store.timeline import Changes, Row, State, merge

__all__ = ["ingest"]

Key = tuple[str, str]


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


def _aware(at: datetime) -> datetime:
    """`at` in UTC; naive times are refused (what was meant cannot be known)."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r}: pricefleet stores aware UTC times only")
    return at if at.tzinfo is UTC else at.astimezone(UTC)


def _row_of(values: Sequence[Any]) -> Row:
    """A timeline row from history values in `HISTORY_COLUMNS` order."""
    return Row(observed_at=values[2], state=State(*values[4:]), last_seen=values[3])


def _history(key: Key, row: Row) -> tuple[Any, ...]:
    return (key[0], key[1], row.observed_at, row.last_seen, *_state_values(row.state))


def _state_values(state: State) -> tuple[Any, ...]:
    return (
        state.price,
        state.currency,
        state.regular_price,
        state.is_discounted,
        state.unit_price,
        state.unit,
        state.availability,
        state.shop_unit_price,
        state.shop_unit,
    )


def _product_row(
    product: Product, gtin: str | None, first: datetime, last: datetime
) -> tuple[Any, ...]:
    """An upsert row in `PRODUCT_COLUMNS` order."""
    return (
        product.site_id,
        product.id,
        product.url,
        product.name,
        product.brand,
        gtin,
        product.sku,
        product.category_id,
        product.size_value,
        product.size_unit.value if product.size_unit else None,
        product.image_url,
        product.raw,
        first,
        last,
    )


async def _cold_slice(conn: AsyncConnection, key: Key, earliest: datetime) -> list[Row]:
    """Replays and late sightings: the latest row strictly before `earliest` and every row
    from it on."""
    obs = price_observations.c
    mine = and_(obs.site_id == key[0], obs.product_id == key[1])
    later = await conn.execute(select(price_observations).where(mine, obs.observed_at >= earliest))
    before = await conn.execute(
        select(price_observations)
        .where(mine, obs.observed_at < earliest)
        .order_by(obs.observed_at.desc())
        .limit(1)
    )
    return [_core_row(r) for r in [*before, *later]]


def _core_row(record: SqlRow[Any]) -> Row:
    values = record._mapping
    return Row(
        observed_at=values["observed_at"],
        state=State(*(values[name] for name in STATE_COLUMNS)),
        last_seen=values["last_seen"],
    )


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
    bulk = Bulk.of(conn)

    # Per product: every sighting's (time, state), the newest sighting and the span seen.
    by_product: dict[Key, list[tuple[datetime, State]]] = defaultdict(list)
    newest: dict[Key, tuple[datetime, Product]] = {}
    first_seen: dict[Key, datetime] = {}
    for sighting in sightings:
        product, observation = sighting.product, sighting.observation
        key = (product.site_id, product.id)
        seen = _aware(observation.observed_at)
        by_product[key].append((seen, _state(observation)))
        known = newest.get(key)
        if known is None:
            newest[key] = (seen, product)
            first_seen[key] = seen
        else:
            if seen > known[0]:
                newest[key] = (seen, product)
            if seen < first_seen[key]:
                first_seen[key] = seen
    keys = sorted(newest)
    gtins = {key: normalize_gtin(newest[key][1].gtin) for key in keys}
    await bulk.upsert_products(
        [_product_row(newest[k][1], gtins[k], first_seen[k], newest[k][0]) for k in keys]
    )

    # The stored rows each merge needs; the latest row suffices for sightings newer than it.
    slices: dict[Key, list[Row]] = {key: [] for key in keys}
    for key, changed_at, latest in await bulk.current(keys):
        if changed_at is None:
            continue  # no history yet
        # Strictly before: a sighting at the latest row's own instant may tie-break with it
        # and then has to see the row before as well.
        if changed_at < first_seen[key] and latest is not None:
            slices[key] = [_row_of(latest)]
        else:
            slices[key] = await _cold_slice(conn, key, first_seen[key])

    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    deletes: list[tuple[str, str, datetime]] = []
    states: list[tuple[Any, ...]] = []
    for key in keys:
        stored = slices[key]
        change = merge(stored, by_product[key])
        if change.empty:
            continue
        inserts.extend(_history(key, row) for row in change.inserts)
        updates.extend(_history(key, row) for row in change.updates)
        deletes.extend((key[0], key[1], at) for at in change.deletes)
        before = _latest(stored, Changes([], [], []))
        after = _latest(stored, change)
        if after is not None and (
            before is None or (before.observed_at, before.state) != (after.observed_at, after.state)
        ):
            states.append((key[0], key[1], after.observed_at, *_state_values(after.state)))
    await bulk.delete_history(deletes)
    await bulk.insert_history(inserts)
    await bulk.update_history(updates)
    await bulk.update_states(states)
    await bulk.upsert_matches(
        [(k[0], k[1], gtin_group(g), "gtin", 1.0) for k, g in gtins.items() if g]
    )
    return IngestResult(
        products=len(keys),
        observations_inserted=len(inserts),
        observations_deleted=len(deletes),
        observations_updated=len(updates),
        price_changes=[(s[0], s[1]) for s in states],
    )
