"""The write hot path: record a batch of sightings change-only, in one transaction.

Batch-shaped: one read (and lock) of every product's narrow state row, which holds what the
merge needs of its latest history row (start, state; its `last_seen` is the product's), then
one statement per kind of change (`bulk` sends each as a single array statement on PostgreSQL
and an `executemany` on SQLite). The wide `products` row is written only for new products and
when a newer sighting brings other metadata than the stored one (`meta_hash`). Out-of-order and
replayed sightings take a slower path that reads the affected slice of history per product;
the result is the same rows in any order.

The current history row's `last_seen` is kept on the state row only (a confirming sighting
writes one narrow row); it is written to the history row when that row stops being current.
`history()` and the cold path read it from the state row.

Writers racing on the same products serialise on the state rows `lock_states` locks, in key
order, before anything of theirs is written. A product new to both waits on the `products`
insert of whichever came first, and the second then locks the state row the first wrote.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import attrgetter, itemgetter
from typing import Any

import orjson
from sqlalchemy import and_, select
from sqlalchemy.engine import Row as SqlRow
from sqlalchemy.ext.asyncio import AsyncConnection

from pricefleet.match import gtin_group, normalize_gtin
from pricefleet.models import PriceObservation, Product
from pricefleet.store.bulk import META_COLUMNS, Bulk
from pricefleet.store.records import IngestResult, Sighting
from pricefleet.store.tables import STATE_COLUMNS, price_observations
from pricefleet.store.timeline import Changes, Row, State, merge

__all__ = ["ingest"]

Key = tuple[str, str]
#: A product sighted more than once in a batch: its sightings, the earliest time.
_Seen = tuple[list[tuple[datetime, PriceObservation]], datetime]

_OBSERVATION = attrgetter("observation")
_PRODUCT = attrgetter("product")
_OBSERVED_AT = attrgetter("observed_at")
_TZINFO = attrgetter("tzinfo")
_KEY = attrgetter("site_id", "id")
_KEY_OF_ROW = itemgetter(0, 1)
_FIRST, _SECOND, _THIRD, _FOURTH = (itemgetter(i) for i in range(4))
_ONLY_UTC = {UTC}


def _state(observation: PriceObservation) -> State:
    return State(
        price=observation.price,
        currency=observation.currency,
        regular_price=observation.regular_price,
        is_discounted=observation.is_discounted,
        unit_price=observation.unit_price,
        # `_value_`: the enum's value without the `value` property's descriptor call.
        unit=observation.unit._value_ if observation.unit else None,
        availability=observation.availability._value_,
        shop_unit_price=observation.shop_unit_price,
        shop_unit=observation.shop_unit,
    )


def _aware(at: datetime) -> datetime:
    """`at` in UTC; naive times are refused (what was meant cannot be known)."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r}: pricefleet stores aware UTC times only")
    return at if at.tzinfo is UTC else at.astimezone(UTC)


def _history(key: Key, row: Row) -> tuple[Any, ...]:
    """A history row in `HISTORY_COLUMNS` order."""
    return (key[0], key[1], row.observed_at, row.last_seen, *row.state)


def _product_row(product: Product, gtin: str | None) -> tuple[Any, ...]:
    """A product row in `PRODUCT_COLUMNS` order."""
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
    )


_HASH_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
#: A product's metadata, as the row holds it: its attributes are named as the columns.
_META = attrgetter(*META_COLUMNS)


def _meta_hashes(products: Sequence[Product]) -> tuple[int, ...]:
    """A 64-bit hash of the metadata each product row holds (`META_COLUMNS`), as a signed
    BIGINT: blake2b of the metadata's JSON; one `unpack` turns a batch's digests into
    integers.

    Equal metadata always hashes equal; metadata written differently but stored the same
    (`1.0` and `1.00`) may not, which costs one needless rewrite of the row, never a lost one.
    The stored hashes are these: a change of the JSON or the hash rewrites every row once.
    """
    dumps, blake2b, meta = orjson.dumps, hashlib.blake2b, _META
    digests = b"".join(
        [
            blake2b(dumps(meta(p), default=str, option=_HASH_OPTIONS), digest_size=8).digest()
            for p in products
        ]
    )
    return struct.unpack(f">{len(products)}q", digests)


async def _cold_slice(
    conn: AsyncConnection, key: Key, earliest: datetime, current: datetime, last_seen: datetime
) -> list[Row]:
    """Replays and late sightings: the latest row strictly before `earliest` and every row
    from it on; the current row (starting at `current`) ends at the product's `last_seen`
    (its stored `last_seen` may be older: see `ingest`)."""
    obs = price_observations.c
    mine = and_(obs.site_id == key[0], obs.product_id == key[1])
    later = await conn.execute(select(price_observations).where(mine, obs.observed_at >= earliest))
    before = await conn.execute(
        select(price_observations)
        .where(mine, obs.observed_at < earliest)
        .order_by(obs.observed_at.desc())
        .limit(1)
    )
    rows = [_core_row(r) for r in [*before, *later]]
    return [Row(r.observed_at, r.state, last_seen) if r.observed_at == current else r for r in rows]


def _core_row(record: SqlRow[Any]) -> Row:
    values = record._mapping
    return Row(
        observed_at=values["observed_at"],
        state=State(*(values[name] for name in STATE_COLUMNS)),
        last_seen=values["last_seen"],
    )


def _latest(stored: list[Row], change: Changes) -> Row | None:
    """The newest history row once `change` is applied to `stored`."""
    if len(stored) <= 1 and not change.deletes:  # the hot path: no dict needed
        latest = stored[0] if stored else None
        for row in (*change.updates, *change.inserts):
            if latest is None or row.observed_at >= latest.observed_at:
                latest = row
        return latest
    rows = {row.observed_at: row for row in stored}
    for at in change.deletes:
        rows.pop(at, None)
    for row in (*change.updates, *change.inserts):
        rows[row.observed_at] = row
    return rows[max(rows)] if rows else None


def _by_product(
    sightings: Sequence[Sighting],
) -> tuple[list[Key], list[datetime], list[PriceObservation], list[Product], dict[Key, _Seen]]:
    """The batch per product, in key order: its keys, and of each its newest sighting's time,
    observation and product; products sighted more than once also get every sighting and the
    earliest time (the last value). The common batch, every product once, is split into
    columns by C calls without a dict per sighting."""
    observations = list(map(_OBSERVATION, sightings))
    products = list(map(_PRODUCT, sightings))
    times = list(map(_OBSERVED_AT, observations))
    if set(map(_TZINFO, times)) != _ONLY_UTC:
        times = [at if at.tzinfo is UTC else _aware(at) for at in times]
    keys = list(map(_KEY, products))
    # Stable: a product's sightings keep their batch order.
    ranked = sorted(zip(keys, times, observations, products, strict=True), key=_FIRST)
    if len(set(keys)) == len(keys):
        return (
            list(map(_FIRST, ranked)),
            list(map(_SECOND, ranked)),
            list(map(_THIRD, ranked)),
            list(map(_FOURTH, ranked)),
            {},
        )
    keys, times, observations, products = [], [], [], []
    repeated: dict[Key, _Seen] = {}
    for key, seen, observation, product in ranked:
        if keys and keys[-1] == key:
            points, first = repeated.get(key) or ([(times[-1], observations[-1])], times[-1])
            points.append((seen, observation))
            repeated[key] = (points, min(first, seen))
            if seen > times[-1]:
                times[-1], observations[-1], products[-1] = seen, observation, product
        else:
            keys.append(key)
            times.append(seen)
            observations.append(observation)
            products.append(product)
    return keys, times, observations, products, repeated


async def ingest(conn: AsyncConnection, sightings: Sequence[Sighting]) -> IngestResult:
    """Store a batch of sightings inside the caller's transaction."""
    if not sightings:
        return IngestResult(0, 0, 0, 0)
    bulk = Bulk.of(conn)
    await bulk.start()
    keys, times, observations, products, repeated = _by_product(sightings)

    # Lock (and read) the products' state rows; new products get their rows inserted first.
    # The rows stay in stored form: the hot path compares the sightings in that form and
    # writes the stored values it keeps back as they are; only the cold path converts them.
    locked = await bulk.lock_states(keys)
    stored: dict[Key, Sequence[Any]] = dict(zip(map(_KEY_OF_ROW, locked), locked, strict=True))
    hashes = _meta_hashes(products)
    written: dict[Key, str | None] = {}  # products whose metadata this batch writes: their GTIN
    created: set[Key] = set()
    if len(stored) < len(keys):
        missing = [i for i, key in enumerate(keys) if key not in stored]
        gtins = {i: normalize_gtin(products[i].gtin) for i in missing}
        created = await bulk.insert_products([_product_row(products[i], gtins[i]) for i in missing])
        written.update((keys[i], gtins[i]) for i in missing if keys[i] in created)
        others = [keys[i] for i in missing if keys[i] not in created]
        if others:  # another writer inserted them first: their state rows are there now
            stored.update(((r[0], r[1]), r) for r in await bulk.lock_states(others))
    raws = list(map(stored.get, keys))
    stored_times = bulk.stored_times(times)
    states = bulk.stored_states(observations)

    # Rows to write, all in stored form.
    changed_meta: list[tuple[Any, ...]] = []
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    extends: list[tuple[Any, ...]] = []
    deletes: list[tuple[str, str, datetime]] = []  # Python values
    new_states: list[tuple[Any, ...]] = []
    full_states: list[tuple[Any, ...]] = []
    seen_states: list[tuple[Any, ...]] = []
    price_changes: list[tuple[str, str]] = []
    bind_history, bind_span, bind_state = bulk.bind_history, bulk.bind_span, bulk.bind_state
    for i, (key, raw, at, state, new_hash) in enumerate(
        zip(keys, raws, stored_times, states, hashes, strict=True)
    ):
        # The metadata: written for new products, and when the newest sighting brings other
        # metadata than the stored (a products row without a state row, which none is
        # written so, is overwritten too).
        if raw is None:
            meta_hash: int | None = new_hash
            if key not in created:
                written[key] = gtin = normalize_gtin(products[i].gtin)
                changed_meta.append(_product_row(products[i], gtin))
        elif raw[14] != new_hash and at >= raw[3]:
            meta_hash = new_hash
            written[key] = gtin = normalize_gtin(products[i].gtin)
            changed_meta.append(_product_row(products[i], gtin))
        else:
            meta_hash = raw[14]
        if key not in repeated:
            if raw is None:
                # A new product seen once: its first history row and its state row (what
                # merge gives for one sighting and nothing stored), in stored form.
                inserts.append((key[0], key[1], at, at, *state))
                new_states.append((key[0], key[1], at, at, at, *state, meta_hash))
                price_changes.append(key)
                continue
            # The hot path (merge's own, inlined), in stored form: one sighting after the
            # current history row began. Strictly after its start: a sighting at the row's
            # own instant may tie-break with it and must see the row before as well (the
            # cold path).
            current = raw[4]
            if current is not None and current < at:
                same = state == raw[5:14]
                if at > raw[3]:
                    if same:  # confirmed: only last_seen moves, on the state row alone
                        if meta_hash == raw[14]:
                            seen_states.append((key[0], key[1], at))
                        else:
                            full_states.append(
                                (key[0], key[1], raw[2], at, current, *state, meta_hash)
                            )
                    else:  # changed: the current row ends where the product was last seen
                        extends.append((key[0], key[1], current, raw[3]))
                        inserts.append((key[0], key[1], at, at, *state))
                        full_states.append((key[0], key[1], raw[2], at, at, *state, meta_hash))
                        price_changes.append(key)
                    continue
                if same and meta_hash == raw[14]:
                    continue  # a replay inside the run: nothing to write
                # else a late sighting of another state inside the run: merge decides
        # The cold path: several sightings of one product, replays and late sightings. It
        # works on Python values and binds what it writes.
        points, first = repeated.get(key) or ([(times[i], observations[i])], times[i])
        last = times[i]
        row = None if raw is None else bulk.load_state(raw)
        before: Row | None = None
        if row is None or row[4] is None:
            window: list[Row] = []  # no history yet
        elif row[4] < first:
            before = Row(row[4], State(*row[5:14]), row[3])
            window = [before]
        else:
            window = await _cold_slice(conn, key, first, row[4], row[3])
            before = _latest(window, _NO_CHANGE)
        change = merge(window, [(at, _state(observation)) for at, observation in points])
        after = _latest(window, change) if not change.empty else before
        if not change.empty:
            inserts.extend(bind_history(_history(key, r)) for r in change.inserts)
            deletes.extend((key[0], key[1], at) for at in change.deletes)
            old = {r.observed_at: r.state for r in window}
            for r in change.updates:
                if old.get(r.observed_at) != r.state:
                    updates.append(bind_history(_history(key, r)))
                elif after is None or r.observed_at != after.observed_at:
                    extends.append(bind_span((key[0], key[1], r.observed_at, r.last_seen)))
                # else: the current row's last_seen, kept on the state row only
        if (
            before is not None
            and after is not None
            and before.observed_at != after.observed_at
            and before.observed_at not in change.deletes
            and not any(r.observed_at == before.observed_at for r in change.updates)
        ):
            # The row that was current is not any more: its last_seen, until now kept on the
            # state row only, is written to it.
            extends.append(bind_span((key[0], key[1], before.observed_at, before.last_seen)))
        if row is None:
            assert after is not None  # a batch always leaves a row
            new_states.append(bind_state(_state_row(key, first, last, after, meta_hash)))
            price_changes.append(key)
            continue
        first, last = min(first, row[2]), max(last, row[3])
        moved = after is not None and (
            before is None or (before.observed_at, before.state) != (after.observed_at, after.state)
        )
        if moved:
            price_changes.append(key)
        if moved or meta_hash != row[14] or first != row[2]:
            assert after is not None
            full_states.append(bind_state(_state_row(key, first, last, after, meta_hash)))
        elif last != row[3]:
            seen_states.append(bulk.bind_seen((key[0], key[1], last)))
    await bulk.update_products(changed_meta)
    await bulk.write(
        {
            "delete_history": deletes,
            "insert_history": inserts,
            "update_history": updates,
            "extend_history": extends,
            "insert_states": new_states,
            "update_states": full_states,
            "extend_states": seen_states,
        }
    )
    # Match rows follow the GTIN: only products whose metadata was written can have new ones.
    await bulk.upsert_matches(
        [(k[0], k[1], gtin_group(g), "gtin", 1.0) for k, g in sorted(written.items()) if g]
    )
    return IngestResult(
        products=len(keys),
        observations_inserted=len(inserts),
        observations_deleted=len(deletes),
        observations_updated=len(updates) + len(extends),
        price_changes=price_changes,
    )


_NO_CHANGE = Changes([], [], [])


def _state_row(
    key: Key, first: datetime, last: datetime, current: Row, meta_hash: int | None
) -> tuple[Any, ...]:
    """A `STATE_ROW` of a product whose latest history row is `current`."""
    return (key[0], key[1], first, last, current.observed_at, *current.state, meta_hash)
