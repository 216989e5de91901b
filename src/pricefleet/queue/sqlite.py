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

import math
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import replace

import orjson

from pricefleet.models import JobKind
from pricefleet.queue.base import SEEN_SECONDS, Lease, NewJob, backoff, run_of
from pricefleet.queue.sqlite_sites import SqliteSites

__all__ = ["SqliteQueue"]

_JOB_COLUMNS = "id, site_id, key, kind, url, payload, priority, max_attempts, attempts, due, token"


class SqliteQueue(SqliteSites):
    """Per-site job queues in the tables `<prefix>_jobs` and `<prefix>_sites` of one file: the
    jobs' life here, the sites' settings in `SqliteSites`, the file in `SqliteFile`."""

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
