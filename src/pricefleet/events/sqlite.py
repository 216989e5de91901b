"""`SqliteEventBus`: the embedded profile's event bus, a table in a SQLite file shared by the
processes of one machine (API, scheduler, workers).

Publishing inserts one row per event (an AUTOINCREMENT id) in one transaction. Each bus that has
subscriptions runs one poller task that reads the rows after the last id it saw every `poll`
seconds and hands them to its subscriptions; a subscription only takes rows after the id that
was current when it started. SQLite serialises writers, so ids become visible in order and
never behind a reader's back. AUTOINCREMENT ids have no holes unless rows were deleted: a
poller that finds the next id missing knows pruning (more than `keep_count` events, or older
than `keep_seconds`) ran past it, and its subscriptions get a reset.

Use a file of its own (`data/events.db`), not the queue's or the store's: publishes then never
wait on their write locks. It must not be used across machines: SQLite over a network share
does not lock reliably.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

from pricefleet.errors import ConfigError
from pricefleet.events.base import Event, EventBus, Subscription, decode, encode

__all__ = ["SqliteEventBus"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,30}")
#: Publishes wait at most this long for the file's write lock.
BUSY_TIMEOUT_MS = 5_000
#: Rows read per poll at most (the next poll comes at once when a page was full).
_PAGE = 1_000


class SqliteEventBus(EventBus):
    """Events in the table `<prefix>_events` of one SQLite file."""

    backend = "sqlite"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "pf",
        poll: float = 0.2,
        keep_seconds: float = 600.0,
        keep_count: int = 10_000,
    ) -> None:
        super().__init__()
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path or path == ":memory:":
            raise ConfigError(f"event bus URL {url!r}: expected sqlite:///path/to/events.db")
        if not _PREFIX.fullmatch(prefix.replace("-", "_")):
            raise ConfigError(f"event bus prefix {prefix!r}: letters, digits, - and _ only")
        self.url = url
        self._table = f"{prefix.replace('-', '_')}_events"
        self._poll = poll
        self._keep_seconds = keep_seconds
        self._keep_count = keep_count
        self._pruned_at = 0.0
        self._last = 0  # the last id the poller handed out
        self._starts: dict[Subscription, int] = {}  # the id current when each one started
        self._poller: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = asyncio.Lock()
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table} ("
            "id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, body BLOB NOT NULL)"
        )

    def __str__(self) -> str:
        return f"{self.url} ({self._table})"

    async def _call(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """`work(db)` on a worker thread, one call at a time on this bus's connection."""
        async with self._lock:
            return await asyncio.to_thread(work, self._db)

    # -- publishing -----------------------------------------------------------------------

    async def _send(self, events: Sequence[Event], body: bytes) -> None:
        # One row per event, so that pruning and gaps count events.
        bodies = [encode([event]) for event in events]

        def insert(db: sqlite3.Connection) -> None:
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    f"INSERT INTO {self._table} (created, body) VALUES (?, ?)",
                    [(now, body) for body in bodies],
                )
                if now - self._pruned_at >= 1.0:
                    self._prune(db, now)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        await self._call(insert)

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        (top,) = db.execute(f"SELECT coalesce(max(id), 0) FROM {self._table}").fetchone()
        db.execute(
            f"DELETE FROM {self._table} WHERE id <= ? OR created < ?",
            (top - self._keep_count, now - self._keep_seconds),
        )
        self._pruned_at = now

    # -- subscribing ----------------------------------------------------------------------

    def _sequence(self, db: sqlite3.Connection) -> int:
        """The last id ever handed out (pruned or not)."""
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (self._table,))
        found = row.fetchone()
        return int(found[0]) if found else 0

    async def _attach(self, subscription: Subscription) -> None:
        # Under the lock: no poll hands out rows between reading the id and registering.
        async with self._lock:
            top = await asyncio.to_thread(self._sequence, self._db)
            if self._poller is None:
                self._last = top
                self._poller = asyncio.create_task(self._poll_loop(), name=f"poll {self}")
            self._starts[subscription] = top
            self._subscribers.add(subscription)

    async def _detach(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
        self._starts.pop(subscription, None)

    def _fetch(self, db: sqlite3.Connection) -> list[tuple[int, bytes]]:
        return db.execute(
            f"SELECT id, body FROM {self._table} WHERE id > ? ORDER BY id LIMIT ?",
            (self._last, _PAGE),
        ).fetchall()

    def _hand_out(self, rows: list[tuple[int, bytes]]) -> None:
        first, last = rows[0][0], rows[-1][0]
        if first != self._last + 1:
            log.warning("event bus %s: %d events were pruned unread", self, first - self._last - 1)
            self._reset_all()
        batch: list[tuple[int, Event]] = []
        for row_id, body in rows:
            try:
                batch.extend((row_id, event) for event in decode(body))
            except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
                log.warning("event bus %s: dropped malformed event %d (%s)", self, row_id, exc)
        for subscription in list(self._subscribers):
            start = self._starts.get(subscription, 0)
            subscription.push([event for row_id, event in batch if row_id > start])
            if start and last >= start:
                self._starts[subscription] = 0  # caught up: takes every row from now on
        self._last = last

    async def _poll_loop(self) -> None:
        failing = False
        while not self._stop.is_set():
            full = False
            try:
                async with self._lock:
                    rows = await asyncio.to_thread(self._fetch, self._db)
                    if rows:
                        self._hand_out(rows)
                        full = len(rows) == _PAGE
                if failing:
                    log.info("event bus %s: reading again", self)
                    failing = False
            except sqlite3.Error as exc:
                if not failing:
                    log.warning("event bus %s: cannot read events (%s), retrying", self, exc)
                failing = True
            if not full:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._poll)

    async def _close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            await self._poller  # ends within one poll: never cancelled mid-query
        async with self._lock:
            self._db.close()
