"""`SqliteSites`: the SQLite queue's per-site settings and read-outs.

Limits, pacing slots, marks, holds and pauses; the list of sites, their figures, dead letters,
replays, runs' progress and purges: everything of `SqliteQueue` (`pricefleet.queue.sqlite`)
but the jobs' own life (enqueue, lease, heartbeat, ack, fail, release), which is there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from pricefleet.models import JobKind
from pricefleet.queue.base import Lease, RunProgress, SiteLimits, SiteStats
from pricefleet.queue.sqlite_file import SqliteFile

__all__ = ["SqliteSites"]


class SqliteSites(SqliteFile):
    """Per-site settings and read-outs of the SQLite queue."""

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
