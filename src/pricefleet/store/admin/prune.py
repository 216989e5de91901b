"""Pruning old history while keeping it true: the state in force at the cut-off stays."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    FromClause,
    case,
    column,
    delete,
    exists,
    func,
    select,
    table,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from pricefleet.config import Settings
from pricefleet.errors import InvalidQuery, StoreError
from pricefleet.store.admin.common import PruneResult, _databases
from pricefleet.store.sql import SqlStore
from pricefleet.store.tables import price_observations

#: How long PostgreSQL waits to lock an old partition before pruning it row by row instead.
_PARTITION_LOCK_TIMEOUT = "5s"
_MONTHLY = re.compile(r"price_observations_(\d{4})_(\d{2})")
_AGE = re.compile(r"(\d{1,6})([hdw])")
_AGE_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
#: The longest age `parse_age` accepts: a century.
_MAX_AGE = timedelta(days=36_525)


# --- prune -----------------------------------------------------------------------------------


def parse_age(value: str) -> timedelta:
    """`400d`, `36h` or `2w` as a timedelta; anything else is an InvalidQuery."""
    match = _AGE.fullmatch(value.strip().lower())
    if match is None:
        raise InvalidQuery(
            f"{value!r} is not an age: give a whole number and a unit, "
            "h (hours), d (days) or w (weeks), e.g. 400d"
        )
    age = timedelta(**{_AGE_UNITS[match[2]]: int(match[1])})
    if not timedelta(0) < age <= _MAX_AGE:
        raise InvalidQuery(f"{value!r}: the age must be more than zero and at most a century")
    return age


async def prune(
    settings: Settings,
    older_than: timedelta,
    now: datetime | None = None,
    *,
    dry_run: bool = False,
) -> PruneResult:
    """Delete history rows that ended before `now - older_than`, keeping for each product the
    last row that began before that cutoff (the state in force there).

    Precisely, a row goes when a later row of the same product also began before the cutoff.
    (A row beginning exactly at the cutoff does not make the one before it go: that one is
    still what `history(since=cutoff)` shows first, so it stays and the history reads the same.)
    The deletes run per site and calendar month, one short transaction each, so writers go on
    between them; on PostgreSQL, a monthly partition that ends by the cutoff and holds no row
    to keep is dropped whole first. With shards, each shard is pruned in turn (dropped
    partitions are named `shard:partition`). With `dry_run`, nothing changes: the result says
    what would.
    """
    if not timedelta(0) < older_than <= _MAX_AGE:
        raise InvalidQuery(f"older_than={older_than}: must be more than zero, at most a century")
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None:
        raise InvalidQuery(f"now={now!r} is naive: give an aware time")
    cutoff = (now - older_than).astimezone(UTC)
    deleted = kept = 0
    dropped: list[str] = []
    async with _databases(settings) as databases:
        for label, store in databases:
            one = await _prune_one(store, cutoff, dry_run)
            deleted += one.deleted
            kept += one.kept
            dropped += [f"{label}:{n}" if label else n for n in one.partitions_dropped]
    return PruneResult(cutoff, deleted, kept, tuple(dropped), dry_run)


async def _prune_one(store: SqlStore, cutoff: datetime, dry_run: bool) -> PruneResult:
    postgres = store.dialect == "postgresql"
    if dry_run:
        dropping = []
        if postgres:
            async with store.writer.connect() as conn:
                for name, _end in await _old_partitions(conn, cutoff):
                    if not await _holds_a_kept_row(conn, name, cutoff):
                        dropping.append(name)
        deleted, kept = await _preview(store, cutoff)
        return PruneResult(cutoff, deleted, kept, tuple(dropping), True)
    dropped = await _drop_old_partitions(store, cutoff) if postgres else []
    deleted = sum(rows for _, rows in dropped) + await _delete_superseded(store, cutoff)
    async with store.writer.connect() as conn:
        remaining = await conn.scalar(
            select(func.count()).where(price_observations.c.observed_at < cutoff)
        )
    return PruneResult(cutoff, deleted, int(remaining or 0), tuple(name for name, _ in dropped))


def _superseded(row: FromClause, cutoff: datetime) -> ColumnElement[bool]:
    """Whether a later row of the same product began before the cutoff: then `row` ended
    before it, and the state in force at the cutoff is known without it."""
    later = price_observations.alias("later")
    return exists().where(
        later.c.site_id == row.c.site_id,
        later.c.product_id == row.c.product_id,
        later.c.observed_at > row.c.observed_at,
        later.c.observed_at < cutoff,
    )


async def _preview(store: SqlStore, cutoff: datetime) -> tuple[int, int]:
    """(rows that would be deleted, rows older than the cutoff that would stay)."""
    obs = price_observations
    query = select(func.count(), func.sum(case((_superseded(obs, cutoff), 1), else_=0))).where(
        obs.c.observed_at < cutoff
    )
    async with store.writer.connect() as conn:
        total, deleted = (await conn.execute(query)).one()
    return int(deleted or 0), int(total or 0) - int(deleted or 0)


async def _delete_superseded(store: SqlStore, cutoff: datetime) -> int:
    """The row deletes, one transaction per site and calendar month before the cutoff."""
    obs = price_observations
    async with store.writer.connect() as conn:
        oldest = await conn.scalar(select(func.min(obs.c.observed_at)))
        site_ids = list(await conn.scalars(_SITES_WITH_HISTORY))
    if oldest is None or oldest >= cutoff:
        return 0
    deleted = 0
    start = oldest
    while start < cutoff:
        end = min(_next_month(start), cutoff)
        for site_id in site_ids:
            statement = delete(obs).where(
                obs.c.site_id == site_id,
                obs.c.observed_at >= start,
                obs.c.observed_at < end,
                _superseded(obs, cutoff),
            )
            async with store.writer.begin() as conn:
                deleted += (await conn.execute(statement)).rowcount
        start = end
    return deleted


#: Every site_id in the history, by a skip scan of the primary key (one probe per site).
_SITES_WITH_HISTORY = text(
    "WITH RECURSIVE s(id) AS ("
    " SELECT min(site_id) FROM price_observations"
    " UNION ALL"
    " SELECT (SELECT min(site_id) FROM price_observations WHERE site_id > s.id)"
    " FROM s WHERE s.id IS NOT NULL"
    ") SELECT id FROM s WHERE id IS NOT NULL"
)


def _next_month(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    index = moment.year * 12 + moment.month  # the next month, zero-based
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


async def _old_partitions(conn: AsyncConnection, cutoff: datetime) -> list[tuple[str, datetime]]:
    """The monthly partitions that end by the cutoff, oldest first, with their end."""
    names = await conn.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'price_observations'::regclass ORDER BY c.relname"
        )
    )
    found = []
    for name in names:
        match = _MONTHLY.fullmatch(name)
        if match is None:
            continue  # the default partition: rows of any time
        end = _next_month(datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC))
        if end <= cutoff:
            found.append((name, end))
    return found


async def _holds_a_kept_row(conn: AsyncConnection, name: str, cutoff: datetime) -> bool:
    """Whether a partition (ending by the cutoff) holds some product's last row before it."""
    partition = table(name, column("site_id"), column("product_id"), column("observed_at"))
    query = select(exists().where(~_superseded(partition, cutoff)).select_from(partition))
    return bool(await conn.scalar(query))


async def _drop_old_partitions(store: SqlStore, cutoff: datetime) -> list[tuple[str, int]]:
    """Drop the monthly partitions ending by the cutoff that hold no row to keep; returns their
    names and row counts. A partition that stays locked by others is left to the row deletes."""
    async with store.writer.connect() as conn:
        candidates = await _old_partitions(conn, cutoff)
    dropped = []
    for name, _end in candidates:
        try:
            async with store.writer.begin() as conn:
                await conn.execute(text(f"SET LOCAL lock_timeout = '{_PARTITION_LOCK_TIMEOUT}'"))
                # SHARE: no new rows while we look; readers go on until the DROP itself.
                await conn.execute(text(f"LOCK TABLE {name} IN SHARE MODE"))
                if await _holds_a_kept_row(conn, name, cutoff):
                    continue
                rows = await conn.scalar(text(f"SELECT count(*) FROM {name}"))
                await conn.execute(text(f"DROP TABLE {name}"))
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) in {"55P03", "40P01"}:  # lock timeout
                continue
            raise StoreError(f"cannot drop partition {name}: {exc.orig}") from exc
        dropped.append((name, int(rows or 0)))
    return dropped
