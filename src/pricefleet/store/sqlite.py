"""The embedded backend: one SQLite file in WAL mode, FTS5 for search.

Writes go through their own engine and start with `BEGIN IMMEDIATE`, so two writers queue on
the busy timeout instead of failing on a lock upgrade; readers use a second engine and never
block writers (WAL). The FTS5 index is kept by triggers (see the migration). Trending reads the
`price_moves` table `refresh_trending` fills (migration 0006), as PostgreSQL reads its view.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import TextClause, event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from pricefleet.store.query import SEARCH_CANDIDATES
from pricefleet.store.records import Direction, SearchHit
from pricefleet.store.sql import SqlStore, _default_columns_sql
from pricefleet.store.tables import product_state
from pricefleet.store.types import json_text

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
        engine = partial(create_async_engine, _async_url(url), json_serializer=json_text)
        writer = engine(pool_size=1, max_overflow=0)
        reader = engine(pool_size=4, max_overflow=4)
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
        # At most SEARCH_CANDIDATES matches are ranked. Only those ranked at least as well as
        # the page's last (ties included) are read from `products` and `product_state`, then
        # ordered by rank and identity: the same page as ordering every candidate, without
        # reading thousands of wide rows for a common word.
        query = text(
            "WITH m AS MATERIALIZED ("
            "SELECT products_fts.rowid AS rowid, bm25(products_fts, 10.0, 2.0) AS rank "
            f"FROM products_fts {site_join}"
            "WHERE products_fts MATCH :match LIMIT :candidates) "
            f"SELECT {columns}, -m.rank AS score FROM m JOIN products p ON p.rowid = m.rowid "
            "JOIN product_state st ON st.site_id = p.site_id AND st.id = p.id "
            "WHERE m.rank <= IFNULL("
            "(SELECT rank FROM m ORDER BY rank LIMIT 1 OFFSET :limit - 1), 1e308) "
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

    #: Products whose moves one transaction of `refresh_trending` recomputes: SQLite has one
    #: writer, and a whole site of 100,000 products held it for 3–5 s (a 1M-product site would
    #: have outlasted the 30 s busy timeout of a crawl's writes).
    TRENDING_CHUNK = 10_000

    async def refresh_trending(self) -> None:
        """Recompute `price_moves` for the precomputed windows, as of now: a run of at most
        `TRENDING_CHUNK` products of one site per transaction, so writers wait for one chunk's
        moves at a time, not for all of them (readers see each chunk's new moves as soon as
        its transaction commits; a product's moves always change together)."""
        now = datetime.now(UTC)
        to_text = product_state.c.last_seen.type.bind_processor(self.writer.dialect)
        assert to_text is not None
        windows = " UNION ALL ".join(
            f"SELECT {days} AS days, :cutoff{days} AS cutoff" for days in self.TRENDING_WINDOWS
        )
        params: dict[str, Any] = {
            f"cutoff{days}": to_text(now - timedelta(days=days)) for days in self.TRENDING_WINDOWS
        }

        # The row in force at each cutoff: the latest one at or before it (a seek on the
        # history's primary key per product and window), then found by its rowid. A product
        # whose current row began at or before the cutoff has not moved since (its current
        # row is the one in force then): it is skipped without a seek.
        def chunk(upto: str) -> tuple[TextClause, TextClause]:
            ids = f"s.id > :after {upto.format(column='s.id')}"
            refill = text(
                "INSERT INTO price_moves "
                "(site_id, product_id, days, old_price, new_price, since, change) "
                "SELECT s.site_id, s.id, w.days, o.price, s.price, o.observed_at, "
                "(s.price - o.price) * 1.0 / o.price "
                f"FROM product_state s CROSS JOIN ({windows}) w "
                "JOIN price_observations o ON o.rowid = ("
                "SELECT e.rowid FROM price_observations e "
                "WHERE e.site_id = s.site_id AND e.product_id = s.id "
                "AND e.observed_at <= w.cutoff ORDER BY e.observed_at DESC LIMIT 1) "
                f"WHERE s.site_id = :site AND {ids} "
                "AND s.price IS NOT NULL AND o.price <> s.price "
                "AND (s.price_changed_at > w.cutoff OR s.price_changed_at IS NULL)"
            )
            clear = text(
                "DELETE FROM price_moves WHERE site_id = :site AND product_id > :after "
                + upto.format(column="product_id")
            )
            return clear, refill

        middle, last = chunk("AND {column} <= :upto"), chunk("")  # the last: every id after
        # The last id of the chunk after `after`; none when the rest of the site is one chunk.
        bound = text(
            "SELECT id FROM product_state WHERE site_id = :site AND id > :after "
            "ORDER BY id LIMIT 1 OFFSET :skip"
        )
        async with self._read() as conn:
            sites = list(await conn.scalars(text("SELECT id FROM sites ORDER BY id")))
        for site in sites:
            after = ""  # before every id (ids are not empty)
            while True:
                async with self._write() as conn:
                    upto = await conn.scalar(
                        bound, {"site": site, "after": after, "skip": self.TRENDING_CHUNK - 1}
                    )
                    # The last chunk also clears the moves of products gone since.
                    clear, refill = last if upto is None else middle
                    ids = {"site": site, "after": after, "upto": upto}
                    await conn.execute(clear, ids)
                    await conn.execute(refill, {**params, **ids})
                if upto is None:
                    break
                after = upto
        async with self._write() as conn:  # sites removed since the last refresh
            await conn.execute(
                text("DELETE FROM price_moves WHERE site_id NOT IN (SELECT id FROM sites)")
            )

    async def _trending(
        self, conn: AsyncConnection, days: int, direction: Direction, limit: int, site: str | None
    ) -> list[dict[str, Any]]:
        # A store whose moves were never refreshed computes them per query, as before 0006.
        refreshed = await conn.scalar(text("SELECT EXISTS (SELECT 1 FROM price_moves)"))
        if days not in self.TRENDING_WINDOWS or not refreshed:
            return await super()._trending(conn, days, direction, limit, site)
        return await self._precomputed_trending(
            conn, days, direction, limit, site, change="m.change", typed=True
        )
