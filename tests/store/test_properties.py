"""Hypothesis against the real backends: any batching, order and replay gives canonical history."""

from __future__ import annotations

import itertools
from datetime import datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricefleet.models import Availability
from pricefleet.store.base import Store
from pricefleet.store.records import Sighting
from pricefleet.store.timeline import Row, State, canonical, merge
from tests.store.factories import SITES, at, sighting

PRICES = ("1.00", "1.25", "0.95")
_ids = itertools.count()

sightings_st = st.lists(
    st.tuples(st.integers(0, 30), st.sampled_from(PRICES)),
    min_size=1,
    max_size=12,
    unique_by=lambda s: s[0],  # one state per instant: same-instant conflicts have their own test
)


def _state(price: str) -> State:
    amount = Decimal(price)
    return State(amount, "EUR", None, False, amount, "l", Availability.IN_STOCK.value, None, None)


async def _ingest_plan(
    store: Store,
    points: list[tuple[int, str]],
    data: st.DataObject,
    *,
    in_order: bool,
    record: list[list[Sighting]] | None = None,
) -> str:
    """Ingest the sightings of a fresh product in batches, replays included; returns its id."""
    await store.upsert_sites(SITES)
    product_id = f"h{next(_ids)}"
    points = sorted(points)
    sightings = [sighting(product_id, price, at(minute)) for minute, price in points]
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(sightings) - 1)), max_size=4)))
    batches = [sightings[a:b] for a, b in zip([0, *cuts], [*cuts, len(sightings)], strict=True)]
    batches = [b for b in batches if b]
    if in_order:  # each batch possibly repeated straight away (a retry), never an older one later
        plan = [b for b in batches for _ in range(data.draw(st.integers(1, 2)))]
    else:
        extra = data.draw(st.lists(st.sampled_from(batches), max_size=3))
        plan = data.draw(st.permutations(batches + extra))
    for batch in plan:
        await store.ingest(batch)
    if record is not None:
        record.extend(plan)
    return product_id


SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(points=sightings_st, data=st.data())
async def test_in_order_batches_with_retries_store_the_canonical_history(
    store: Store, points: list[tuple[int, str]], data: st.DataObject
) -> None:
    """Batches in time order, each retried any number of times: exactly the canonical rows."""
    product_id = await _ingest_plan(store, points, data, in_order=True)
    expected = canonical((at(minute), _state(price)) for minute, price in points)
    rows = await store.history("shop-a", product_id)
    assert [(r["observed_at"], r["price"], r["last_seen"]) for r in rows] == [
        (row.observed_at, row.state.price, row.last_seen) for row in expected
    ]


def _model(plan: list[list[Sighting]]) -> list[Row]:
    """The rows the pure timeline gives for the same plan: the reference the database must match."""
    rows: dict[datetime, Row] = {}
    for batch in plan:
        seen = [(s.observation.observed_at, _state(str(s.observation.price))) for s in batch]
        earliest = min(when for when, _ in seen)
        before = [when for when in rows if when < earliest]
        window = [rows[when] for when in rows if when >= earliest]
        if before:
            window.append(rows[max(before)])
        change = merge(window, seen)
        for when in change.deletes:
            del rows[when]
        for row in (*change.updates, *change.inserts):
            rows[row.observed_at] = row
    return [rows[when] for when in sorted(rows)]


@SETTINGS
@given(points=sightings_st, data=st.data())
async def test_any_order_and_replays_match_the_timeline_model(
    store: Store, points: list[tuple[int, str]], data: st.DataObject
) -> None:
    """Shuffled and replayed batches leave exactly the rows the pure timeline computes for the
    same plan (out of order, change-only storage keeps what the known run ends allow: see
    docs/storage.md), every row a real sighting, the product's current state the newest."""
    plan: list[list[Sighting]] = []
    product_id = await _ingest_plan(store, points, data, in_order=False, record=plan)
    expected = _model(plan)
    rows = await store.history("shop-a", product_id)
    assert [(r["observed_at"], r["price"], r["last_seen"]) for r in rows] == [
        (row.observed_at, row.state.price, row.last_seen) for row in expected
    ]
    seen = {(at(minute), Decimal(price)) for minute, price in points}
    assert all((r["observed_at"], r["price"]) in seen for r in rows)
    assert all((r["last_seen"], r["price"]) in seen for r in rows)
    product = await store.get_product("shop-a", product_id)
    assert product is not None
    last: datetime = max(at(minute) for minute, _ in points)
    assert product["last_seen"] == last
    assert product["price"] == rows[-1]["price"]
