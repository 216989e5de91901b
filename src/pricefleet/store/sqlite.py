"""The embedded backend: one SQLite file in WAL mode, FTS5 for search.

Writes go through their own engine and start with `BEGIN IMMEDIATE`, so two writers queue on
the busy timeout instead of failing on a lock upgrade; readers use a second engine and never
block writers (WAL). The FTS5 index is kept by triggers (see the migration).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from pricefleet.store.query import SEARCH_CANDIDATES
from pricefleet.store.records import SearchHit
from pricefleet.store.sql import SqlStore, _default_columns_sql

__all__ = ["SqliteStore"]

BUSY_TIMEOUT_MS = 30_000


def _async_url(url: str) -> str:
    if url.startswith("sqlite+aiosqlite://"):
        return url
    return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")


def _configure(engine: Any, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Take transaction control from the driver, so BEGIN is ours to choose.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class SqliteStore(SqlStore):
    """A Store in one SQLite file."""

    dialect = "sqlite"

    @classmethod
    def create(cls, url: str) -> SqliteStore:
        """Engines for `sqlite:///path`; the file's folder is created if missing."""
        database = url.split(":///", 1)[1] if ":///" in url else ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        writer = create_async_engine(_async_url(url), pool_size=1, max_overflow=0)
        reader = create_async_engine(_async_url(url), pool_size=4, max_overflow=4)
        _configure(writer, immediate=True)
        _configure(reader, immediate=False)
        # One file: a read never sees older data than a write, so reads need no detour.
        return cls(url, writer, [reader], read_your_writes_seconds=0.0)

    def reopen(self) -> SqliteStore:
        """A second store on the same file."""
        return SqliteStore.create(self.url)

    async def _search(
        self, conn: AsyncConnection, words: list[str], limit: int, site_id: str | None, fuzzy: bool
    ) -> list[SearchHit]:
        # Each word quoted (no FTS5 syntax gets through), the last one as a prefix.
        match = " ".join(f'"{w}"' for w in words[:-1]) + f' "{words[-1]}"*'
        columns = _default_columns_sql("p", "st")
        site_join = (
            "JOIN products s ON s.rowid = products_fts.rowid AND s.site_id = :site "
            if site_id is not None
            else ""
        )
        # At most SEARCH_CANDIDATES matches are ranked; only the page's products are read.
        query = text(
            f"SELECT {columns}, -m.rank AS score FROM ("
            "SELECT products_fts.rowid AS rowid, bm25(products_fts, 10.0, 2.0) AS rank "
            f"FROM products_fts {site_join}"
            "WHERE products_fts MATCH :match LIMIT :candidates"
            ") m JOIN products p ON p.rowid = m.rowid "
            "JOIN product_state st ON st.site_id = p.site_id AND st.id = p.id "
            "ORDER BY m.rank, p.site_id, p.id LIMIT :limit"
        ).columns(*(self._columns(None)))
        params: dict[str, Any] = {
            "match": match.strip(),
            "limit": limit,
            "site": site_id,
            "candidates": SEARCH_CANDIDATES,
        }
        rows = await conn.execute(query, params)
        return [
            SearchHit({k: v for k, v in r._mapping.items() if k != "score"}, float(r.score))
            for r in rows
        ]
