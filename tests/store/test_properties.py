"""Hypothesis against the real backends: any batching, order and replay gives canonical history."""

from __future__ import annotations

import itertools
from datetime import datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricefleet.models import Availability
from pricefleet.store.base import Store
from pricefleet.store.timeline import State, canonical
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
    store: Store, points: list[tuple[int, str]], data: st.DataObject, *, in_order: bool
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


@SETTINGS
@given(points=sightings_st, data=st.data())
async def test_any_order_and_replays_store_the_same_states(
    store: Store, points: list[tuple[int, str]], data: st.DataObject
) -> None:
    """Shuffled and replayed batches give the canonical states in order, each row starting at a
    real sighting of its state no earlier than the canonical start (change-only storage cannot
    know when a run split by a late sighting resumed, only its last sighting)."""
    product_id = await _ingest_plan(store, points, data, in_order=False)
    expected = canonical((at(minute), _state(price)) for minute, price in points)
    rows = await store.history("shop-a", product_id)
    assert [r["price"] for r in rows] == [row.state.price for row in expected]
    seen = {(at(minute), Decimal(price)) for minute, price in points}
    for row, want in zip(rows, expected, strict=True):
        assert (row["observed_at"], row["price"]) in seen
        assert row["observed_at"] >= want.observed_at
    assert rows[0]["observed_at"] == expected[0].observed_at
    product = await store.get_product("shop-a", product_id)
    assert product is not None
    last: datetime = max(at(minute) for minute, _ in points)
    assert (product["last_seen"], product["price"]) == (last, expected[-1].state.price)
