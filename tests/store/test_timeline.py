"""The change-only timeline core: each merge rule by example, then replays and reorderings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from pricefleet.store.timeline import Changes, Row, State, canonical, merge

Sightings = list[tuple[datetime, State]]

T0 = datetime(2024, 1, 1, tzinfo=UTC)

A = State(
    price=Decimal("1.99"),
    currency="EUR",
    regular_price=None,
    is_discounted=False,
    unit_price=Decimal("3.98"),
    unit="kg",
    availability="in_stock",
    shop_unit_price=None,
    shop_unit=None,
)
B = State(
    price=Decimal("1.49"),
    currency="EUR",
    regular_price=Decimal("1.99"),
    is_discounted=True,
    unit_price=Decimal("2.98"),
    unit="kg",
    availability="in_stock",
    shop_unit_price=Decimal("2.98"),
    shop_unit="kg",
)
C = State(
    price=Decimal("2.49"),
    currency="EUR",
    regular_price=None,
    is_discounted=False,
    unit_price=None,
    unit=None,
    availability="out_of_stock",
    shop_unit_price=None,
    shop_unit=None,
)
STATES = (A, B, C)


def _at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def _row(start: int, state: State, last: int) -> Row:
    return Row(_at(start), state, _at(last))


def _slice(store: dict[datetime, Row], batch: Sightings) -> list[Row]:
    """What the database layer loads: the latest row before the batch, and every row from it on."""
    first = min(at for at, _ in batch)
    before = [at for at in store if at < first]
    keys = ([max(before)] if before else []) + sorted(at for at in store if at >= first)
    return [store[at] for at in reversed(keys)]  # merge must not rely on the order


def _apply(store: dict[datetime, Row], batch: Sightings) -> Changes:
    """Merges `batch` into `store` as the database layer would, checking the changes are sound."""
    changes = merge(_slice(store, batch), batch)
    deleted = changes.deletes
    inserted = [row.observed_at for row in changes.inserts]
    updated = [row.observed_at for row in changes.updates]
    for keys in (deleted, inserted, updated):
        assert len(set(keys)) == len(keys)
    assert not set(deleted) & set(inserted)
    assert not set(deleted) & set(updated)
    assert not set(inserted) & set(updated)
    for at in deleted:
        del store[at]
    for row in changes.updates:
        assert store[row.observed_at] != row
        store[row.observed_at] = row
    for row in changes.inserts:
        assert row.observed_at not in store
        store[row.observed_at] = row
    assert changes.empty == (not (deleted or inserted or updated))
    return changes


def _rows(store: dict[datetime, Row]) -> list[Row]:
    return [store[at] for at in sorted(store)]


def _pairs(rows: Iterable[Row]) -> list[tuple[datetime, State]]:
    return [(row.observed_at, row.state) for row in rows]


def _check_invariants(rows: Sequence[Row]) -> None:
    """Rows are sorted, runs are disjoint, and neighbours never hold the same state."""
    for row in rows:
        assert row.observed_at <= row.last_seen
    for earlier, later in pairwise(rows):
        assert earlier.last_seen < later.observed_at
        assert earlier.state != later.state


def _end_point_model(known: dict[datetime, State], batch: Sightings) -> dict[datetime, State]:
    """What a timeline can remember: the end points of its runs, updated by one batch."""
    points = dict(known)
    for at, state in batch:
        if at not in points or state > points[at]:
            points[at] = state
    rows = canonical(points.items())
    return {at: row.state for row in rows for at in (row.observed_at, row.last_seen)}


def _store_of(*rows: Row) -> dict[datetime, Row]:
    return {row.observed_at: row for row in rows}


# Examples, one rule each.


def test_state_order_is_total_with_none_fields() -> None:
    """States sort by `sort_key` even when optional fields are None, and ties need equality."""
    assert sorted([C, B, A]) == sorted([A, C, B])
    assert B < A < C
    assert A._replace(unit_price=None) < A  # None sorts before any value
    assert A._replace(unit_price=None, unit="l") > A._replace(unit_price=None)
    assert A <= A
    assert A >= A
    assert len({A, B, C, State(**{f: getattr(A, f) for f in A._fields})}) == 3


def test_canonical_reference_rows() -> None:
    """The reference model starts a row at every change and ends it at the last equal sighting."""
    sightings = [(_at(m), s) for m, s in [(3, A), (0, A), (5, B), (6, B), (9, A), (1, A)]]
    assert canonical(sightings) == [_row(0, A, 3), _row(5, B, 6), _row(9, A, 9)]
    assert canonical([]) == []


def test_canonical_same_instant_keeps_greatest_state() -> None:
    """At one instant only the state with the greatest sort key counts."""
    assert canonical([(_at(0), A), (_at(0), C), (_at(0), B)]) == [_row(0, C, 0)]
    assert canonical([(_at(0), A), (_at(1), B), (_at(1), C), (_at(2), A)]) == [
        _row(0, A, 0),
        _row(1, C, 1),
        _row(2, A, 2),
    ]


def test_first_sightings_with_nothing_stored() -> None:
    """With no history the batch's canonical rows are inserted."""
    changes = merge([], [(_at(2), B), (_at(0), A), (_at(1), A)])
    assert changes == Changes([_row(0, A, 1), _row(2, B, 2)], [], [])
    assert merge([_row(0, A, 0)], []).empty


def test_replay_is_a_no_op() -> None:
    """Sightings already accounted for change nothing, wherever they fall in a run."""
    stored = [_row(0, A, 5), _row(7, B, 9)]
    for minute, state in [(0, A), (3, A), (5, A), (7, B), (8, B), (9, B)]:
        assert merge(stored, [(_at(minute), state)]).empty
    assert merge([_row(0, A, 5)], [(_at(5), A)]).empty
    assert merge([_row(0, A, 5)], [(_at(2), A)]).empty


def test_same_state_extends_last_seen() -> None:
    """A later sighting of the current state only moves `last_seen`."""
    changes = merge([_row(0, A, 5)], [(_at(8), A)])
    assert changes == Changes([], [], [_row(0, A, 8)])


def test_change_adds_a_row() -> None:
    """A later sighting of another state starts a new row."""
    changes = merge([_row(0, A, 5)], [(_at(8), B)])
    assert changes == Changes([_row(8, B, 8)], [], [])


def test_batch_in_order_extends_then_changes() -> None:
    """A batch after the latest row extends it, then adds rows at each change."""
    changes = merge([_row(0, A, 5)], [(_at(9), B), (_at(6), A), (_at(7), A), (_at(10), B)])
    assert changes == Changes([_row(9, B, 10)], [], [_row(0, A, 7)])


def test_late_sighting_splits_a_run() -> None:
    """A different state inside a run splits it: head, the new row, and a tail at `last_seen`."""
    changes = merge([_row(0, A, 10)], [(_at(4), B)])
    assert changes == Changes([_row(4, B, 4), _row(10, A, 10)], [], [_row(0, A, 0)])


def test_late_split_keeps_best_known_last_seen() -> None:
    """Sightings of the split run in the same batch give the head its best known `last_seen`."""
    changes = merge([_row(0, A, 10)], [(_at(2), A), (_at(4), B), (_at(6), A)])
    assert changes == Changes([_row(4, B, 4), _row(6, A, 10)], [], [_row(0, A, 2)])


def test_late_sighting_equal_to_next_state_moves_next_row_start() -> None:
    """A late sighting of the next row's state moves that row's start earlier."""
    stored = [_row(0, A, 3), _row(8, B, 9)]
    changes = merge(stored, [(_at(5), B)])
    assert changes == Changes([_row(5, B, 9)], [_at(8)], [])


def test_late_sighting_between_rows_of_the_previous_state_extends_it() -> None:
    """A late sighting of the previous row's state after its `last_seen` extends it."""
    changes = merge([_row(0, A, 3), _row(8, B, 9)], [(_at(5), A)])
    assert changes == Changes([], [], [_row(0, A, 5)])


def test_late_sighting_joins_two_runs() -> None:
    """Filling the only gap between two rows of one state merges them."""
    store = _store_of(_row(0, A, 1), _row(2, B, 2), _row(3, A, 4))
    _apply(store, [(_at(2), A)])  # A wins the instant against B
    assert _rows(store) == [_row(0, A, 4)]


def test_same_instant_conflict_tie_break_is_order_independent() -> None:
    """Two states at one instant: the greater wins, whichever is stored first."""
    for first, second in [(A, C), (C, A)]:
        store = _store_of(_row(0, B, 0))
        _apply(store, [(_at(5), first)])
        _apply(store, [(_at(5), second)])
        assert _rows(store) == [_row(0, B, 0), _row(5, C, 5)]
    assert merge([], [(_at(5), A), (_at(5), C)]) == merge([], [(_at(5), C), (_at(5), A)])


def test_same_instant_win_at_start_merges_with_row_before() -> None:
    """Winning the instant a row starts at can fold that row into the one before."""
    store = _store_of(_row(0, C, 2), _row(5, A, 5))
    _apply(store, [(_at(5), C)])
    assert _rows(store) == [_row(0, C, 5)]


def test_same_instant_win_at_last_seen_shortens_the_run() -> None:
    """Winning the instant of a run's `last_seen` takes that sighting from the run."""
    store = _store_of(_row(0, A, 5))
    _apply(store, [(_at(5), C)])
    assert _rows(store) == [_row(0, A, 0), _row(5, C, 5)]
    assert merge(_rows(store), [(_at(5), A)]).empty  # the loser replayed changes nothing


def test_same_instant_win_at_start_of_long_run_keeps_its_rest() -> None:
    """Winning a long run's first instant replaces one sighting, not the whole run."""
    store = _store_of(_row(0, A, 5))
    _apply(store, [(_at(0), C)])
    assert _rows(store) == [_row(0, C, 0), _row(5, A, 5)]


def test_rows_after_the_batch_are_left_alone() -> None:
    """Only rows the batch can reach change, however much history follows."""
    later = [_row(10 + 2 * i, STATES[i % 2], 11 + 2 * i) for i in range(50)]
    changes = merge([_row(0, C, 2), *later], [(_at(5), A)])
    assert changes == Changes([_row(5, A, 11)], [_at(10)], [])


def test_split_of_a_collapsed_run_resumes_at_last_seen() -> None:
    """Inner sightings are not stored: a split resumes a run at `last_seen`; a replay fixes it."""
    store: dict[datetime, Row] = {}
    run = [(_at(0), A), (_at(2), A), (_at(4), A)]
    _apply(store, run)
    _apply(store, [(_at(1), B)])
    assert _rows(store) == [_row(0, A, 0), _row(1, B, 1), _row(4, A, 4)]
    assert canonical([*run, (_at(1), B)]) == [_row(0, A, 0), _row(1, B, 1), _row(2, A, 4)]
    _apply(store, run)
    assert _rows(store) == [_row(0, A, 0), _row(1, B, 1), _row(2, A, 4)]


def test_late_batch_inside_a_collapsed_run_can_hide_a_run() -> None:
    """Late sightings around a forgotten inner sighting bridge it; in-order replay restores it."""
    store: dict[datetime, Row] = {}
    early, late = [(_at(0), A), (_at(2), A), (_at(4), A)], [(_at(1), B), (_at(3), B)]
    _apply(store, early)
    _apply(store, late)
    assert _rows(store) == [_row(0, A, 0), _row(1, B, 3), _row(4, A, 4)]
    for sighting in sorted([*early, *late], key=lambda s: s[0]):
        _apply(store, [sighting])
    assert _rows(store) == canonical([*early, *late])
    assert len(_rows(store)) == 5


# Properties: sets of sightings split into batches, applied in any order, with replays.


@st.composite
def _sightings(draw: st.DrawFn, ties: bool = True) -> Sightings:
    """A few sightings on a coarse clock, so states repeat and (with `ties`) instants collide."""
    minutes, states = st.integers(0, 12), st.integers(0, 2)
    if ties:
        raw = draw(st.sets(st.tuples(minutes, states), min_size=1, max_size=14))
    else:
        raw = set(draw(st.dictionaries(minutes, states, min_size=1, max_size=12)).items())
    return [(_at(minute), STATES[index]) for minute, index in sorted(raw)]


@st.composite
def _shuffled_batches(draw: st.DrawFn, ties: bool = True) -> tuple[Sightings, list[Sightings]]:
    """Sightings, and a schedule of batches covering them in any order, some replayed."""
    sightings = draw(_sightings(ties))
    count = draw(st.integers(1, len(sightings)))
    labels = draw(st.lists(st.integers(0, count - 1), min_size=len(sightings), max_size=14))
    groups = [
        [s for s, label in zip(sightings, labels, strict=False) if label == i] for i in range(count)
    ]
    batches = [draw(st.permutations(group)) for group in groups if group]
    schedule = list(draw(st.permutations(batches)))
    for index, position in draw(
        st.lists(st.tuples(st.integers(0, len(batches) - 1), st.integers(0, 99)), max_size=4)
    ):
        schedule.insert(position % (len(schedule) + 1), batches[index])
    return sightings, schedule


@st.composite
def _ordered_batches(draw: st.DrawFn) -> tuple[Sightings, list[Sightings]]:
    """Sightings, and batches in time order (each later than the last), with replays of old ones."""
    sightings = draw(_sightings())
    minutes = sorted({at for at, _ in sightings})
    cuts = draw(st.sets(st.sampled_from(minutes)))
    bounds = sorted(cuts | {minutes[0]})
    ends = [*bounds[1:], minutes[-1] + timedelta(minutes=1)]
    batches = [
        [s for s in sightings if low <= s[0] < high] for low, high in zip(bounds, ends, strict=True)
    ]
    schedule: list[Sightings] = []
    for i, batch in enumerate(batches):
        schedule.append(draw(st.permutations(batch)))
        for j in draw(st.lists(st.integers(0, i), max_size=2)):
            schedule.append(batches[j])
    return sightings, schedule


@settings(max_examples=600, deadline=None)
@given(_shuffled_batches())
def test_any_order_matches_what_end_points_allow(case: tuple[Sightings, list[Sightings]]) -> None:
    """In any order, with replays, rows stay valid and are the runs of the end points received."""
    _, schedule = case
    store: dict[datetime, Row] = {}
    known: dict[datetime, State] = {}
    received: Sightings = []
    for batch in schedule:
        _apply(store, batch)
        known = _end_point_model(known, batch)
        received += batch
        rows = _rows(store)
        _check_invariants(rows)
        assert rows == canonical(known.items())  # exactly what the end points allow
        seen = set(received)
        for row in rows:
            assert (row.observed_at, row.state) in seen
            assert (row.last_seen, row.state) in seen


@settings(max_examples=600, deadline=None)
@given(_shuffled_batches(ties=False))
def test_any_order_without_ties_replay_is_a_no_op(case: tuple[Sightings, list[Sightings]]) -> None:
    """With one state per instant, a batch replayed right after it was applied changes nothing."""
    _, schedule = case
    store: dict[datetime, Row] = {}
    for batch in schedule:
        _apply(store, batch)
        _check_invariants(_rows(store))
        assert merge(_slice(store, batch), batch).empty


@settings(max_examples=600, deadline=None)
@given(_ordered_batches())
def test_time_ordered_batches_give_canonical_rows(case: tuple[Sightings, list[Sightings]]) -> None:
    """Batches in time order, replays included, give exactly the canonical rows, `last_seen` too."""
    sightings, schedule = case
    store: dict[datetime, Row] = {}
    for batch in schedule:
        _apply(store, batch)
        _check_invariants(_rows(store))
    assert _rows(store) == canonical(sightings)


@settings(max_examples=400, deadline=None)
@given(_shuffled_batches())
def test_time_ordered_replay_repairs_any_history(case: tuple[Sightings, list[Sightings]]) -> None:
    """After any order, replaying the history instant by instant in time order repairs the runs."""
    sightings, schedule = case
    store: dict[datetime, Row] = {}
    for batch in schedule:
        _apply(store, batch)
    for minute in sorted({at for at, _ in sightings}):
        _apply(store, [s for s in sightings if s[0] == minute])
        _check_invariants(_rows(store))
    rows, expected = _rows(store), canonical(sightings)
    assert _pairs(rows) == _pairs(expected)
    for row, best in zip(rows, expected, strict=True):
        assert row.observed_at <= row.last_seen <= best.last_seen


@settings(max_examples=300, deadline=None)
@given(_sightings(), st.randoms(use_true_random=False))
def test_one_instant_at_a_time_in_time_order_is_canonical(
    sightings: Sightings, random: Random
) -> None:
    """The hot path: one instant per batch in time order gives canonical rows; split ties, runs."""
    minutes = sorted({at for at, _ in sightings})
    store: dict[datetime, Row] = {}
    for minute in minutes:
        _apply(store, [s for s in sightings if s[0] == minute])
    assert _rows(store) == canonical(sightings)

    shuffled = list(sightings)
    random.shuffle(shuffled)
    store = {}
    for sighting in sorted(shuffled, key=lambda s: s[0]):  # a losing state may come first
        _apply(store, [sighting])
        _check_invariants(_rows(store))
    rows, expected = _rows(store), canonical(sightings)
    assert _pairs(rows) == _pairs(expected)
    for row, best in zip(rows, expected, strict=True):
        assert row.observed_at <= row.last_seen <= best.last_seen
