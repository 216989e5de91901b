"""One product's change-only price timeline: how a batch of sightings changes its stored rows.

This module owns the rules that turn *sightings* ``(observed_at, state)`` into the rows of
``price_observations``: a row starts whenever the price state changes, and a row's ``last_seen``
is the last sighting known to belong to it. It is pure: it must not do I/O, touch a database,
read the clock or keep state between calls. The store loads the rows that matter, calls
:func:`merge`, and applies the returned :class:`Changes` in one transaction.

Model. A stored timeline stands for the set of its rows' end points: every row contributes the
sighting at ``observed_at`` and the one at ``last_seen``, both in the row's state; the sightings
in between carried the same state and are not kept. :func:`merge` adds a batch to those points (at
one instant the state with the greatest :meth:`State.sort_key` wins, whichever arrives first) and
rebuilds the rows with the reduction :func:`canonical` applies to a complete history. So the
outcome of a batch does not depend on the order of its sightings, a batch replayed right away
changes nothing, and batches arriving in time order give exactly the canonical rows.

Limits, inherent to change-only storage (no function of the stored rows can do better, because
the forgotten inner sightings are exactly what would be needed): a late batch that lands inside a
stored run with another state splits the run at the points stored, so the rest of the run resumes
at its old ``last_seen`` (not at the first forgotten sighting after the split), and late
sightings on both sides of a forgotten one bridge it; a losing state replayed at an instant whose
winner was folded into a run splits that run. Replaying the history in time order repairs all of
these; ``last_seen`` is never later than the canonical one and never earlier than ``observed_at``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

__all__ = ["Changes", "Row", "State", "canonical", "merge"]

_ABSENT_DECIMAL = (False, Decimal(0))
_ABSENT_STR = (False, "")


class State(NamedTuple):
    """Everything a price row records about a product at one instant; equal states are the same.

    States are ordered by :meth:`sort_key` (``None`` sorts before any value), which is what breaks
    ties between different states seen at the same instant: the greater one wins. Decimal fields
    must not be NaN. A named tuple, not a dataclass: ingest builds one per sighting, and a frozen
    dataclass costs several times as much to construct.
    """

    price: Decimal
    currency: str
    regular_price: Decimal | None
    is_discounted: bool
    unit_price: Decimal | None
    unit: str | None
    availability: str
    shop_unit_price: Decimal | None
    shop_unit: str | None

    def sort_key(
        self,
    ) -> tuple[
        Decimal,
        str,
        tuple[bool, Decimal],
        bool,
        tuple[bool, Decimal],
        tuple[bool, str],
        str,
        tuple[bool, Decimal],
        tuple[bool, str],
    ]:
        """A total, deterministic order over states that never compares ``None`` with a value."""
        return (
            self.price,
            self.currency,
            _ABSENT_DECIMAL if self.regular_price is None else (True, self.regular_price),
            self.is_discounted,
            _ABSENT_DECIMAL if self.unit_price is None else (True, self.unit_price),
            _ABSENT_STR if self.unit is None else (True, self.unit),
            self.availability,
            _ABSENT_DECIMAL if self.shop_unit_price is None else (True, self.shop_unit_price),
            _ABSENT_STR if self.shop_unit is None else (True, self.shop_unit),
        )

    # The tuple order would compare None with values: states order by their sort key instead.
    def __lt__(self, other: tuple[object, ...]) -> bool:
        return self.sort_key() < _state(other).sort_key()

    def __le__(self, other: tuple[object, ...]) -> bool:
        return self.sort_key() <= _state(other).sort_key()

    def __gt__(self, other: tuple[object, ...]) -> bool:
        return self.sort_key() > _state(other).sort_key()

    def __ge__(self, other: tuple[object, ...]) -> bool:
        return self.sort_key() >= _state(other).sort_key()


def _state(other: tuple[object, ...]) -> State:
    if not isinstance(other, State):
        raise TypeError(f"a State compares with States only, not {type(other).__name__}")
    return other


@dataclass(frozen=True, slots=True)
class Row:
    """One run of equal states: first seen at ``observed_at``, last known at ``last_seen``."""

    observed_at: datetime
    state: State
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class Changes:
    """What to do to the stored rows; the three lists touch distinct ``observed_at`` values.

    ``deletes`` are ``observed_at`` values of stored rows, ``updates`` are stored rows (same
    ``observed_at``) with a new state and/or ``last_seen``, ``inserts`` are rows at instants where
    no stored row is, so the three can be applied in any order.
    """

    inserts: list[Row]
    deletes: list[datetime]
    updates: list[Row]

    @property
    def empty(self) -> bool:
        """True when nothing needs writing."""
        return not (self.inserts or self.deletes or self.updates)


def canonical(sightings: Iterable[tuple[datetime, State]]) -> list[Row]:
    """The rows a complete, in-order history of `sightings` gives (the reference model)."""
    return _rows(_points(sightings, {}))


def merge(stored: Sequence[Row], sightings: Iterable[tuple[datetime, State]]) -> Changes:
    """Changes to apply to `stored` so the product's rows account for `sightings`.

    `stored` (sorted or not) must hold the latest stored row strictly before the earliest
    sighting (if any) and every stored row at or after that sighting; earlier rows cannot be
    affected. Extra earlier rows are harmless, missing ones are not. Same-instant conflicts are
    settled by the greater `State.sort_key`, whatever the order they arrive in.
    """
    batch = sightings if isinstance(sightings, list | tuple) else list(sightings)
    if not batch:
        return Changes([], [], [])
    if len(stored) == 1 and len(batch) == 1:
        # The hot path: the latest row and one sighting at or after its start.
        row = stored[0]
        at, state = batch[0]
        if at > row.last_seen:
            if state == row.state:
                return Changes([], [], [Row(row.observed_at, row.state, at)])
            return Changes([Row(at, state, at)], [], [])
        if at >= row.observed_at and state == row.state:
            return Changes([], [], [])
    return _merge(stored, batch)


def _merge(stored: Sequence[Row], batch: Sequence[tuple[datetime, State]]) -> Changes:
    rows = sorted(stored, key=_start)
    # Rows past the first one that starts after the batch cannot change: that row may only
    # start earlier (a sighting of its state just before it), and the ones after keep their
    # start, the predecessor of which (a run end of another state) stays where it is.
    latest = max(at for at, _ in batch)
    starts = [row.observed_at for row in rows]
    rows = rows[: bisect_right(starts, latest) + 1]
    points: dict[datetime, State] = {}
    for row in rows:
        points[row.observed_at] = row.state
        points[row.last_seen] = row.state
    rebuilt = _rows(_points(batch, points))

    before = {row.observed_at: row for row in rows}
    inserts: list[Row] = []
    updates: list[Row] = []
    for row in rebuilt:
        old = before.pop(row.observed_at, None)
        if old is None:
            inserts.append(row)
        elif old != row:
            updates.append(row)
    return Changes(inserts, sorted(before), updates)


def _start(row: Row) -> datetime:
    return row.observed_at


def _points(
    sightings: Iterable[tuple[datetime, State]], points: dict[datetime, State]
) -> dict[datetime, State]:
    """Adds `sightings` to `points`; at one instant the greatest state wins, whatever the order."""
    for at, state in sightings:
        known = points.get(at)
        if known is None or (known != state and state.sort_key() > known.sort_key()):
            points[at] = state
    return points


def _rows(points: dict[datetime, State]) -> list[Row]:
    """The change-only rows of a history with at most one state per instant."""
    rows: list[Row] = []
    times = sorted(points)
    if not times:
        return rows
    start = last = times[0]
    state = points[start]
    for at in times[1:]:
        current = points[at]
        if current == state:
            last = at
            continue
        rows.append(Row(start, state, last))
        start = last = at
        state = current
    rows.append(Row(start, state, last))
    return rows
