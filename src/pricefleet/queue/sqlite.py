"""`SqliteQueue`: the embedded profile's job queue, two tables in a SQLite file.

Every operation is one `BEGIN IMMEDIATE` transaction, so worker processes sharing the file
queue up on SQLite's write lock (busy timeout) and never see a half-done lease. The connection
is plain `sqlite3`, driven from a worker thread (`asyncio.to_thread`) one call at a time: the
queue's transactions are short and batch-shaped, and a thread hop per batch is cheaper than an
async driver's hop per statement. Times come from `time.time()`: every process of the embedded
profile runs on the one machine.

Concurrent calls on one instance share transactions (group commit, `pricefleet.queue.coalesce`):
while one transaction is in flight, the calls arriving wait, then all go in ONE transaction and
one thread hop, each call's statements in a savepoint of its own, in the order they came, at the
transaction's one `now`. Each call thus sees exactly what it would have seen going alone right
after the one before it (gating, dedup and all); one that raises is rolled back to its savepoint
and its error goes to its caller only.

A job row's `due` means, by state: `queued` leasable from; `leased` lease expiry; `done` and
`dead` finished at. Pending keys are unique per site through a partial unique index.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import orjson

from pricefleet.errors import ConfigError, QueueError
from pricefleet.models import JobKind
from pricefleet.queue.base import (
    SEEN_SECONDS,
    JobQueue,
    Lease,
    NewJob,
    Retention,
    RunProgress,
    SiteLimits,
    SiteStats,
    backoff,
    run_of,
)
from pricefleet.queue.coalesce import Coalescer

__all__ = ["SqliteQueue"]

BUSY_TIMEOUT_MS = 30_000
_T = TypeVar("_T")
_Work = Callable[[sqlite3.Connection, float], Any]
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,30}")
_JOB_COLUMNS = "id, site_id, key, kind, url, payload, priority, max_attempts, attempts, due, token"


class SqliteQueue(JobQueue):
    """Per-site job queues in the tables `<prefix>_jobs` and `<prefix>_sites` of one file."""

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

    # --- jobs ------------------------------------------------------------------------------

    async def enqueue(self, jobs: Sequence[NewJob]) -> int:
        """Add jobs; duplicates of pending keys are no-ops. Returns how many were new."""
        by_site: dict[str, list[NewJob]] = {}
        for job in jobs:
            by_site.setdefault(job.site_id, []).append(job)

        def work(db: sqlite3.Connection, now: float) -> int:
            added = 0
            for site_id, batch in by_site.items():
                self._site_row(db, site_id)
                fresh = [j for j in batch if not j.run or self._first_in_run(db, now, j)]
                by_run: dict[str, list[NewJob]] = {}
                for job in fresh:
                    by_run.setdefault(job.run, []).append(job)
                new = 0
                for run, group in by_run.items():  # one statement per run: its count of new
                    cursor = db.executemany(
                        f"INSERT OR IGNORE INTO {self._jobs} (site_id, key, kind, url, payload, "
                        "priority, max_attempts, state, due) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
                        [
                            (
                                j.site_id,
                                j.key,
                                j.kind.value,
                                j.url,
                                orjson.dumps(j.payload),
                                j.priority,
                                j.max_attempts,
                                now + max(0.0, j.delay),
                            )
                            for j in group
                        ],
                    )
                    added_now = max(0, cursor.rowcount)
                    new += added_now
                    if run:
                        self._count_run(db, now, site_id, run, "enqueued", added_now)
                db.execute(
                    f"UPDATE {self._sites} SET enqueued_total = enqueued_total + ? "
                    "WHERE site_id = ?",
                    (new, site_id),
                )
                added += new
            if now - self._swept > 60:
                self._swept = now
                db.execute(f"DELETE FROM {self._seen} WHERE at < ?", (now - SEEN_SECONDS,))
                db.execute(f"DELETE FROM {self._runs} WHERE at < ?", (now - SEEN_SECONDS,))
            return added

        return await self._run(work) if jobs else 0

    def _count_run(
        self, db: sqlite3.Connection, now: float, site_id: str, run: str, column: str, n: int
    ) -> None:
        """Add `n` to one of a run's figures (`column` is ours, never user input)."""
        if column == "enqueued":
            db.execute(
                f"INSERT INTO {self._runs} (site_id, run, enqueued, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (site_id, run) DO UPDATE SET enqueued = enqueued + excluded.enqueued, "
                "at = excluded.at",
                (site_id, run, n, now),
            )
        else:  # a run forgotten (older than SEEN_SECONDS) stays forgotten
            db.execute(
                f"UPDATE {self._runs} SET {column} = {column} + ? WHERE site_id = ? AND run = ?",
                (n, site_id, run),
            )

    def _first_in_run(self, db: sqlite3.Connection, now: float, job: NewJob) -> bool:
        cursor = db.execute(
            f"INSERT OR IGNORE INTO {self._seen} (site_id, run, key, at) VALUES (?, ?, ?, ?)",
            (job.site_id, job.run, job.key, now),
        )
        return cursor.rowcount > 0

    def _recover(self, db: sqlite3.Connection, now: float) -> None:
        """Expired leases go back to the queue, or to the dead letters if out of attempts."""
        db.execute(
            f"UPDATE {self._jobs} SET state = 'dead', token = NULL, due = ?, "
            "error = 'lease expired (the worker died or stalled)' "
            "WHERE state = 'leased' AND due <= ? AND attempts >= max_attempts",
            (now, now),
        )
        db.execute(
            f"UPDATE {self._jobs} SET state = 'queued', token = NULL "
            "WHERE state = 'leased' AND due <= ?",
            (now,),
        )

    async def lease(
        self,
        count: int,
        *,
        sites: Sequence[str] | None = None,
        visibility: float = 60.0,
    ) -> list[Lease]:
        """Up to `count` jobs, a fair share from each site allowed to give one now."""
        if count <= 0:
            return []
        self._turn += 1
        turn = self._turn

        def work(db: sqlite3.Connection, now: float) -> list[Lease]:
            self._recover(db, now)
            query = (
                f"SELECT site_id, rate, burst, concurrency FROM {self._sites} "
                "WHERE paused = 0 AND hold_until <= ? ORDER BY site_id"
            )
            open_sites = [
                row for row in db.execute(query, (now,)) if sites is None or row[0] in sites
            ]
            if not open_sites:
                return []
            start = turn % len(open_sites)
            open_sites = open_sites[start:] + open_sites[:start]
            leases: list[Lease] = []
            # First a fair share for every site, then whatever the batch still has room for.
            for greedy in (False, True):
                for position, (site_id, rate, burst, concurrency) in enumerate(open_sites):
                    remaining = count - len(leases)
                    if remaining <= 0:
                        return leases
                    want = (
                        remaining if greedy else math.ceil(remaining / (len(open_sites) - position))
                    )
                    leases.extend(
                        self._lease_site(
                            db, now, site_id, want, visibility, rate, burst, concurrency
                        )
                    )
            return leases

        return await self._run(work)

    def _lease_site(
        self,
        db: sqlite3.Connection,
        now: float,
        site_id: str,
        want: int,
        visibility: float,
        rate: float,
        burst: int,
        concurrency: int,
    ) -> list[Lease]:
        if concurrency:
            (leased,) = db.execute(
                f"SELECT count(*) FROM {self._jobs} WHERE site_id = ? AND state = 'leased'",
                (site_id,),
            ).fetchone()
            want = min(want, concurrency - leased)
        tat = 0.0
        if rate > 0 and want > 0:
            # GCRA: a slot every 1/rate seconds, up to `burst` at once.
            (tat,) = db.execute(
                f"SELECT tat FROM {self._sites} WHERE site_id = ?", (site_id,)
            ).fetchone()
            interval = 1.0 / rate
            tat = max(tat, now)
            free = math.floor(((burst - 1) * interval - (tat - now)) / interval + 1e-9) + 1
            want = min(want, max(0, free))
        if want <= 0:
            return []
        rows = db.execute(
            # INDEXED BY: without statistics SQLite picks (state, due) and sorts every queued
            # job of every site; this index gives the site's jobs already in lease order.
            f"SELECT {_JOB_COLUMNS} FROM {self._jobs} INDEXED BY {self._jobs}_order "
            "WHERE site_id = ? AND state = 'queued' AND due <= ? "
            "ORDER BY priority DESC, id LIMIT ?",
            (site_id, now, want),
        ).fetchall()
        if not rows:
            return []
        if rate > 0:
            db.execute(
                f"UPDATE {self._sites} SET tat = ? WHERE site_id = ?",
                (tat + len(rows) / rate, site_id),
            )
        expires = now + visibility
        leases = []
        updates = []
        for row_id, site, key, kind, url, payload, priority, max_attempts, attempts, _, _ in rows:
            token = secrets.token_hex(12)
            updates.append((expires, token, row_id))
            leases.append(
                Lease(
                    site,
                    key,
                    JobKind(kind),
                    url,
                    token,
                    attempts + 1,
                    max_attempts,
                    expires,
                    priority,
                    orjson.loads(payload),
                )
            )
        db.executemany(
            f"UPDATE {self._jobs} SET state = 'leased', due = ?, token = ?, "
            "attempts = attempts + 1 WHERE id = ?",
            updates,
        )
        return leases

    async def heartbeat(self, leases: Sequence[Lease], visibility: float) -> list[Lease]:
        """Extend the leases still held; returns them with their new expiry."""

        def work(db: sqlite3.Connection, now: float) -> list[Lease]:
            kept = []
            for lease in leases:
                cursor = db.execute(
                    f"UPDATE {self._jobs} SET due = ? WHERE token = ? AND state = 'leased'",
                    (now + visibility, lease.token),
                )
                if cursor.rowcount:
                    kept.append(replace(lease, expires_at=now + visibility))
            return kept

        return await self._run(work) if leases else []

    async def ack(self, leases: Sequence[Lease]) -> int:
        """Mark the jobs done (stale tokens are ignored); trims finished jobs to retention."""

        def work(db: sqlite3.Connection, now: float) -> int:
            done: dict[str, int] = {}
            for lease in leases:
                cursor = db.execute(
                    f"UPDATE {self._jobs} SET state = 'done', due = ?, token = NULL, error = NULL "
                    "WHERE token = ? AND state = 'leased'",
                    (now, lease.token),
                )
                if cursor.rowcount:
                    done[lease.site_id] = done.get(lease.site_id, 0) + 1
                    if run := run_of(lease):
                        self._count_run(db, now, lease.site_id, run, "done", 1)
            for site_id, count in done.items():
                db.execute(
                    f"UPDATE {self._sites} SET acked_total = acked_total + ? WHERE site_id = ?",
                    (count, site_id),
                )
                self._trim(db, now, site_id)
            return sum(done.values())

        return await self._run(work) if leases else 0

    def _trim(self, db: sqlite3.Connection, now: float, site_id: str) -> None:
        keep = self.retention
        db.execute(
            f"DELETE FROM {self._jobs} WHERE site_id = ? AND state = 'done' AND due < ?",
            (site_id, now - keep.seconds),
        )
        (finished,) = db.execute(
            f"SELECT count(*) FROM {self._jobs} WHERE site_id = ? AND state = 'done'", (site_id,)
        ).fetchone()
        if finished > keep.count:
            db.execute(
                f"DELETE FROM {self._jobs} WHERE id IN (SELECT id FROM {self._jobs} "
                "WHERE site_id = ? AND state = 'done' ORDER BY due, id LIMIT ?)",
                (site_id, finished - keep.count),
            )

    async def fail(self, lease: Lease, error: str, *, retry_after: float | None = None) -> bool:
        """Retry after backoff (or `retry_after`), or dead once attempts are used up."""

        def work(db: sqlite3.Connection, now: float) -> bool:
            row = db.execute(
                f"SELECT id, key, attempts, max_attempts FROM {self._jobs} "
                "WHERE token = ? AND state = 'leased'",
                (lease.token,),
            ).fetchone()
            if row is None:
                return False  # stale: the lease expired and went elsewhere
            row_id, key, attempts, max_attempts = row
            db.execute(
                f"UPDATE {self._sites} SET failed_total = failed_total + 1 WHERE site_id = ?",
                (lease.site_id,),
            )
            if attempts >= max_attempts:
                # One dead letter per key: the newest failure replaces an older one.
                db.execute(
                    f"DELETE FROM {self._jobs} WHERE site_id = ? AND key = ? AND state = 'dead'",
                    (lease.site_id, key),
                )
                db.execute(
                    f"UPDATE {self._jobs} SET state = 'dead', due = ?, token = NULL, error = ? "
                    "WHERE id = ?",
                    (now, error, row_id),
                )
                if run := run_of(lease):
                    self._count_run(db, now, lease.site_id, run, "dead", 1)
                return True
            wait = backoff(attempts) if retry_after is None else max(0.0, retry_after)
            db.execute(
                f"UPDATE {self._jobs} SET state = 'queued', due = ?, token = NULL, error = ? "
                "WHERE id = ?",
                (now + wait, error, row_id),
            )
            return False

        return await self._run(work)

    async def release(self, leases: Sequence[Lease]) -> int:
        """Give jobs back untried: queued at once, the attempt not counted."""

        def work(db: sqlite3.Connection, now: float) -> int:
            cursor = db.executemany(
                f"UPDATE {self._jobs} SET state = 'queued', due = ?, token = NULL, "
                "attempts = max(0, attempts - 1) WHERE token = ? AND state = 'leased'",
                [(now, lease.token) for lease in leases],
            )
            return max(0, cursor.rowcount)

        return await self._run(work) if leases else 0

    # --- sites -----------------------------------------------------------------------------

    async def _set(self, site_id: str, assignments: str, values: tuple[Any, ...]) -> None:
        def work(db: sqlite3.Connection, now: float) -> None:
            self._site_row(db, site_id)
            db.execute(
                f"UPDATE {self._sites} SET {assignments} WHERE site_id = ?",
                (*(now if v is _NOW else v for v in values), site_id),
            )

        await self._run(work)

    async def set_limits(self, site_id: str, limits: SiteLimits) -> None:
        """The site's lease rate, burst and concurrency."""
        await self._set(
            site_id,
            "rate = ?, burst = ?, concurrency = ?",
            (limits.rate, limits.burst, limits.concurrency),
        )

    async def acquire(self, site_id: str, rate: float, burst: int) -> float:
        """Take one GCRA slot now (0), or say how long until one is free."""
        if rate <= 0:
            return 0.0

        def work(db: sqlite3.Connection, now: float) -> float:
            self._site_row(db, site_id)
            (tat,) = db.execute(
                f"SELECT tat FROM {self._sites} WHERE site_id = ?", (site_id,)
            ).fetchone()
            interval = 1.0 / rate
            tat = max(float(tat), now)
            wait = tat - now - (max(1, burst) - 1) * interval
            if wait > 1e-9:
                return wait
            db.execute(
                f"UPDATE {self._sites} SET tat = ? WHERE site_id = ?", (tat + interval, site_id)
            )
            return 0.0

        return await self._run(work)

    async def advance(self, site_id: str, mark: str, value: float) -> bool:
        """Move a named mark of the site forward; True if it moved."""

        def work(db: sqlite3.Connection, now: float) -> bool:
            self._site_row(db, site_id)
            (raw,) = db.execute(
                f"SELECT marks FROM {self._sites} WHERE site_id = ?", (site_id,)
            ).fetchone()
            marks = orjson.loads(raw)
            if mark in marks and marks[mark] >= value:
                return False
            marks[mark] = value
            db.execute(
                f"UPDATE {self._sites} SET marks = ? WHERE site_id = ?",
                (orjson.dumps(marks), site_id),
            )
            return True

        return await self._run(work)

    async def hold(self, site_id: str, seconds: float) -> None:
        """Lease nothing from the site for `seconds`; a longer hold in place stays."""
        await self._set(site_id, "hold_until = max(hold_until, ? + ?)", (_NOW, max(0.0, seconds)))

    async def pause(self, site_id: str) -> None:
        """Stop leasing the site's jobs until `resume`."""
        await self._set(site_id, "paused = ?", (1,))

    async def resume(self, site_id: str) -> None:
        """Lease the site's jobs again."""
        await self._set(site_id, "paused = ?", (0,))

    async def sites(self) -> list[str]:
        """Every site the queue has heard of, sorted."""

        def work(db: sqlite3.Connection, now: float) -> list[str]:
            return [r[0] for r in db.execute(f"SELECT site_id FROM {self._sites} ORDER BY 1")]

        return await self._run(work)

    async def stats(self, site_ids: Sequence[str] | None = None) -> dict[str, SiteStats]:
        """Per-site figures; named sites always answer (zeros when unknown)."""

        def work(db: sqlite3.Connection, now: float) -> dict[str, SiteStats]:
            counts: dict[str, dict[str, float]] = {}
            for site_id, state, ready, number, oldest in db.execute(
                f"SELECT site_id, state, due <= ?, count(*), min(due) FROM {self._jobs} "
                "GROUP BY site_id, state, due <= ?",
                (now, now),
            ):
                site = counts.setdefault(site_id, {})
                name = {"queued": "queued" if ready else "delayed"}.get(state, state)
                site[name] = number
                if name == "queued":
                    site["oldest"] = oldest
            known = {
                row[0]: row[1:]
                for row in db.execute(
                    f"SELECT site_id, paused, hold_until, enqueued_total, acked_total, "
                    f"failed_total FROM {self._sites}"
                )
            }
            wanted = sorted(known) if site_ids is None else list(site_ids)
            result = {}
            for site_id in wanted:
                paused, hold_until, enqueued, acked, failed = known.get(site_id, (0, 0, 0, 0, 0))
                site = counts.get(site_id, {})
                result[site_id] = SiteStats(
                    site_id=site_id,
                    queued=int(site.get("queued", 0)),
                    delayed=int(site.get("delayed", 0)),
                    leased=int(site.get("leased", 0)),
                    dead=int(site.get("dead", 0)),
                    done=int(site.get("done", 0)),
                    oldest_age=max(0.0, now - site["oldest"]) if "oldest" in site else 0.0,
                    paused=bool(paused),
                    hold_seconds=max(0.0, hold_until - now),
                    enqueued_total=enqueued,
                    acked_total=acked,
                    failed_total=failed,
                )
            return result

        return await self._run(work)

    async def dead(self, site_id: str, limit: int = 100) -> list[tuple[Lease, str]]:
        """The site's dead jobs, newest first, with their last error."""

        def work(db: sqlite3.Connection, now: float) -> list[tuple[Lease, str]]:
            rows = db.execute(
                f"SELECT key, kind, url, payload, priority, max_attempts, attempts, due, error "
                f"FROM {self._jobs} WHERE site_id = ? AND state = 'dead' "
                "ORDER BY due DESC, id DESC LIMIT ?",
                (site_id, limit),
            ).fetchall()
            return [
                (
                    Lease(
                        site_id,
                        key,
                        JobKind(kind),
                        url,
                        "",
                        attempts,
                        max_attempts,
                        due,
                        priority,
                        orjson.loads(payload),
                    ),
                    error or "",
                )
                for key, kind, url, payload, priority, max_attempts, attempts, due, error in rows
            ]

        return await self._run(work)

    async def replay(self, site_id: str, keys: Sequence[str] | None = None) -> int:
        """Queue dead jobs again with fresh attempts; a dead key already pending again is
        dropped from the dead letters instead."""

        def work(db: sqlite3.Connection, now: float) -> int:
            chosen = ""
            params: tuple[Any, ...] = (now, site_id)
            if keys is not None:
                chosen = f" AND key IN ({', '.join('?' for _ in keys)})"
                params += tuple(keys)
            cursor = db.execute(
                f"UPDATE OR IGNORE {self._jobs} SET state = 'queued', due = ?, attempts = 0, "
                f"error = NULL WHERE site_id = ? AND state = 'dead'{chosen}",
                params,
            )
            db.execute(
                f"DELETE FROM {self._jobs} WHERE site_id = ? AND state = 'dead'{chosen}",
                params[1:],
            )
            return max(0, cursor.rowcount)

        return await self._run(work)

    async def run_progress(self, site_id: str, run: str) -> RunProgress | None:
        """The run's row of figures, None once swept (older than `SEEN_SECONDS`)."""

        def work(db: sqlite3.Connection, now: float) -> RunProgress | None:
            row = db.execute(
                f"SELECT enqueued, done, dead FROM {self._runs} WHERE site_id = ? AND run = ?",
                (site_id, run),
            ).fetchone()
            return None if row is None else RunProgress(site_id, run, *row)

        return await self._run(work)

    async def purge(self, site_id: str) -> None:
        """Forget the site's jobs and settings."""

        def work(db: sqlite3.Connection, now: float) -> None:
            for table in (self._jobs, self._seen, self._runs, self._sites):
                db.execute(f"DELETE FROM {table} WHERE site_id = ?", (site_id,))

        await self._run(work)


#: Stands for "now" in `_set`'s values (the transaction's clock, not the caller's).
_NOW = object()
