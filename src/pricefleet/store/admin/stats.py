"""What the store holds: counts, time span, size on disk, partitions."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import (
    func,
    make_url,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from pricefleet.config import Settings
from pricefleet.errors import StoreError
from pricefleet.store.admin.common import _databases, _sqlite_file
from pricefleet.store.sql import SqlStore
from pricefleet.store.tables import matches, price_observations, product_state, products, sites

# --- stats -----------------------------------------------------------------------------------


async def stats(settings: Settings) -> dict[str, Any]:
    """Counts and sizes of the configured database.

    Keys: backend, database (password hidden), revision, sites, products, observations,
    matches, oldest_observation and newest_observation (when the oldest and newest price
    states began), last_seen (the newest sighting), size_bytes (on disk; SQLite: the file and
    its WAL). On PostgreSQL also `partitions`: per partition of the history, its exact `rows`
    (one grouped count, the scan that counts `observations` anyway), `rows_estimate` (the
    planner's pg_class.reltuples, None before the first ANALYZE) and `size_bytes`. With shards,
    the counts and sizes are totals and `shards` holds each shard's own stats by name.
    """
    async with _databases(settings) as databases:
        each = {label: await _stats_one(store) for label, store in databases}
    if not settings.database_shards:
        return each[None]
    parts = list(each.values())
    total: dict[str, Any] = {
        "backend": "postgresql",
        "database": f"{len(parts)} shards",
        "revision": max((p["revision"] or "" for p in parts), default="") or None,
    }
    for key in ("sites", "products", "observations", "matches"):
        total[key] = sum(p[key] for p in parts)
    for key, pick in (("oldest_observation", min), ("newest_observation", max)):
        total[key] = pick((p[key] for p in parts if p[key] is not None), default=None)
    total["last_seen"] = max((p["last_seen"] for p in parts if p["last_seen"]), default=None)
    total["size_bytes"] = sum(p["size_bytes"] for p in parts)
    total["shards"] = each
    return total


async def _stats_one(store: SqlStore) -> dict[str, Any]:
    obs = price_observations.c
    shown = make_url(store.url).render_as_string(hide_password=True)
    result: dict[str, Any] = {"backend": store.dialect, "database": shown}
    try:
        async with store.writer.connect() as conn:
            result["revision"] = await conn.scalar(
                text("SELECT max(version_num) FROM alembic_version")
            )
            for name, counted in (
                ("sites", sites),
                ("products", products),
                ("observations", price_observations),
                ("matches", matches),
            ):
                if name == "observations" and store.dialect == "postgresql":
                    result[name] = 0  # counted with the partitions, in the same scan
                    continue
                result[name] = await conn.scalar(select(func.count()).select_from(counted))
            span = select(func.min(obs.observed_at), func.max(obs.observed_at))
            oldest, newest = (await conn.execute(span)).one()
            result["oldest_observation"] = oldest
            result["newest_observation"] = newest
            result["last_seen"] = await conn.scalar(select(func.max(product_state.c.last_seen)))
            if store.dialect == "postgresql":
                result["size_bytes"] = await conn.scalar(
                    text("SELECT pg_database_size(current_database())")
                )
                result["partitions"] = await _partitions(conn)
                result["observations"] = sum(p["rows"] for p in result["partitions"])
            else:
                result["size_bytes"] = await asyncio.to_thread(_sqlite_size, store.url)
    except DBAPIError as exc:
        raise StoreError(
            f"cannot read {shown}: {exc.orig} "
            "(is it a pricefleet database? `pricefleet db upgrade` makes one)"
        ) from exc
    return result


async def _partitions(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            "SELECT c.relname, coalesce(n.rows, 0), c.reltuples, pg_total_relation_size(c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "LEFT JOIN (SELECT tableoid, count(*) AS rows FROM price_observations "
            "GROUP BY tableoid) n ON n.tableoid = c.oid "
            "WHERE i.inhparent = 'price_observations'::regclass ORDER BY c.relname"
        )
    )
    return [
        {
            "name": name,
            "rows": int(counted),
            "rows_estimate": int(estimate) if estimate >= 0 else None,
            "size_bytes": int(size),
        }
        for name, counted, estimate, size in rows
    ]


def _sqlite_size(url: str) -> int:
    database = _sqlite_file(url)
    files = (database, database.with_name(database.name + "-wal"))
    return sum(f.stat().st_size for f in files if f.exists())
