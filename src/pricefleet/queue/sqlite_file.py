"""`SqliteFile`: the SQLite queue's file: its tables, its connection, its transactions.

The base of `SqliteQueue` (`pricefleet.queue.sqlite`, which says how the queue works): it
creates the tables, owns the one `sqlite3` connection and runs every call's work in a
`BEGIN IMMEDIATE` transaction on a worker thread, concurrent calls sharing one transaction
(group commit). It must not know what the works do.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pricefleet.errors import ConfigError, QueueError
from pricefleet.queue.base import JobQueue, Retention
from pricefleet.queue.coalesce import Coalescer

__all__ = ["BUSY_TIMEOUT_MS", "SqliteFile"]

BUSY_TIMEOUT_MS = 30_000
_T = TypeVar("_T")
_Work = Callable[[sqlite3.Connection, float], Any]
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,30}")


class SqliteFile(JobQueue):
    """The tables `<prefix>_jobs`, `_sites`, `_seen` and `_runs` of one file, and the
    transactions every call of the queue runs in."""

    def __init__(self, url: str, *, prefix: str = "pf", retention: Retention) -> None:
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path:
            raise ConfigError(f"queue URL {url!r}: expected sqlite:///path/to/queue.db")
        if not _PREFIX.fullmatch(prefix.replace("-", "_")):
            raise ConfigError(f"queue prefix {prefix!r}: letters, digits and _ only")
        self.url = url
        self.retention = retention
        self._jobs = f"{prefix.replace('-', '_')}_jobs"
        self._sites = f"{prefix.replace('-', '_')}_sites"
        self._seen = f"{prefix.replace('-', '_')}_seen"
        self._runs = f"{prefix.replace('-', '_')}_runs"
        self._swept = 0.0
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = asyncio.Lock()
        self._turn = 0
        self._calls: Coalescer[_Work, Any] = Coalescer(self._transaction)
        self._create()

    # --- plumbing --------------------------------------------------------------------------

    def _create(self) -> None:
        db, jobs, sites = self._db, self._jobs, self._sites
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                f"""CREATE TABLE IF NOT EXISTS {jobs} (
                    id INTEGER PRIMARY KEY,
                    site_id TEXT NOT NULL,
                    key TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    url TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    priority INTEGER NOT NULL,
                    max_attempts INTEGER NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    state TEXT NOT NULL,
                    due REAL NOT NULL,
                    token TEXT,
                    error TEXT)"""
            )
            db.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {jobs}_pending ON {jobs} (site_id, key) "
                "WHERE state IN ('queued', 'leased')"
            )
            db.execute(
                f"CREATE INDEX IF NOT EXISTS {jobs}_order "
                f"ON {jobs} (site_id, state, priority DESC, id)"
            )
            db.execute(f"CREATE INDEX IF NOT EXISTS {jobs}_due ON {jobs} (state, due)")
            db.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {jobs}_token ON {jobs} (token) "
                "WHERE token IS NOT NULL"
            )
            db.execute(
                f"""CREATE TABLE IF NOT EXISTS {self._seen} (
                    site_id TEXT NOT NULL,
                    run TEXT NOT NULL,
                    key TEXT NOT NULL,
                    at REAL NOT NULL,
                    PRIMARY KEY (site_id, run, key)) WITHOUT ROWID"""
            )
            db.execute(
                f"""CREATE TABLE IF NOT EXISTS {self._runs} (
                    site_id TEXT NOT NULL,
                    run TEXT NOT NULL,
                    enqueued INTEGER NOT NULL DEFAULT 0,
                    done INTEGER NOT NULL DEFAULT 0,
                    dead INTEGER NOT NULL DEFAULT 0,
                    at REAL NOT NULL,
                    PRIMARY KEY (site_id, run)) WITHOUT ROWID"""
            )
            db.execute(
                f"""CREATE TABLE IF NOT EXISTS {sites} (
                    site_id TEXT PRIMARY KEY,
                    paused INTEGER NOT NULL DEFAULT 0,
                    hold_until REAL NOT NULL DEFAULT 0,
                    rate REAL NOT NULL DEFAULT 0,
                    burst INTEGER NOT NULL DEFAULT 1,
                    concurrency INTEGER NOT NULL DEFAULT 0,
                    tat REAL NOT NULL DEFAULT 0,
                    enqueued_total INTEGER NOT NULL DEFAULT 0,
                    acked_total INTEGER NOT NULL DEFAULT 0,
                    failed_total INTEGER NOT NULL DEFAULT 0,
                    marks BLOB NOT NULL DEFAULT '{{}}')"""
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def _run(self, work: Callable[[sqlite3.Connection, float], _T]) -> _T:
        """`work(db, now)` in a write transaction on a worker thread, shared with the calls
        that arrived while the previous one was in flight."""
        result: _T = await self._calls.submit(work)
        return result

    async def _transaction(self, works: list[_Work]) -> list[Any]:
        """The works in one `BEGIN IMMEDIATE` transaction, each in a savepoint when there are
        several; returns each one's result or exception."""

        def transaction() -> list[Any]:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise QueueError(f"queue {self.url}: cannot start a transaction: {exc}") from exc
            now = time.time()
            results: list[Any] = []
            try:
                if len(works) == 1:
                    try:
                        results.append(works[0](db, now))
                    except Exception as exc:
                        db.execute("ROLLBACK")
                        return [exc]
                else:
                    for work in works:
                        db.execute("SAVEPOINT pf_call")
                        try:
                            results.append(work(db, now))
                        except Exception as exc:
                            db.execute("ROLLBACK TO pf_call")
                            results.append(exc)
                        db.execute("RELEASE pf_call")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return results

        async with self._lock:
            return await asyncio.to_thread(transaction)

    def _site_row(self, db: sqlite3.Connection, site_id: str) -> None:
        db.execute(f"INSERT OR IGNORE INTO {self._sites} (site_id) VALUES (?)", (site_id,))

    async def close(self) -> None:
        """Close the file."""
        async with self._lock:
            self._db.close()
