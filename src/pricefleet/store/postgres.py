"""The cluster backend: PostgreSQL through asyncpg, tsvector + pg_trgm search, monthly partitions.

`price_observations` is partitioned by month; partitions for the months ahead are created on
upgrade and by `ensure_partitions` (the scheduler calls it daily), and a DEFAULT partition
catches anything outside them, so no write ever fails for want of a partition. Trending reads a
materialised view refreshed concurrently (`refresh_trending`), for the windows it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from pricefleet.store.query import SEARCH_CANDIDATES
from pricefleet.store.records import Direction, SearchHit
from pricefleet.store.sql import SqlStore, _default_columns_sql
from pricefleet.store.types import json_text

__all__ = ["PostgresStore", "async_url"]

#: How alike (pg_trgm word similarity) a misspelt query and a name must be to match.
FUZZY = 0.4
#: Months of partitions kept ready ahead of today.
MONTHS_AHEAD = 3


def async_url(url: str) -> str:
    """`postgresql://…` as SQLAlchemy's asyncpg URL."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


def _month(day: date, offset: int) -> date:
    index = day.year * 12 + day.month - 1 + offset
    return date(index // 12, index % 12 + 1, 1)


class PostgresStore(SqlStore):
    """A Store on PostgreSQL."""

    dialect = "postgresql"
    replica_urls: tuple[str, ...] = ()

    @classmethod
    def create(cls, url: str, *, replica_urls: Sequence[str] = ()) -> PostgresStore:
        """Engines for the primary and for each read replica."""

        def engine(target: str) -> AsyncEngine:
            return create_async_engine(
                async_url(target),
                pool_size=5,
                max_overflow=5,
                pool_pre_ping=True,
                json_serializer=json_text,
            )

        store = cls(url, engine(url), [engine(replica) for replica in replica_urls])
        store.replica_urls = tuple(replica_urls)
        return store

    def reopen(self) -> PostgresStore:
        """A second store on the same primary and replicas."""
        return PostgresStore.create(self.url, replica_urls=self.replica_urls)

    async def _after_upgrade(self) -> None:
        await self.ensure_partitions()

    async def ensure_partitions(
        self, today: date | None = None, months_ahead: int = MONTHS_AHEAD
    ) -> list[str]:
        """Create the monthly partitions from this month to `months_ahead` ahead; returns the
        names created."""
        first = _month(today or datetime.now(UTC).date(), 0)
        created = []
        async with self.writer.begin() as conn:
            for offset in range(months_ahead + 1):
                start, end = _month(first, offset), _month(first, offset + 1)
                name = f"price_observations_{start:%Y_%m}"
                exists = await conn.scalar(text("SELECT to_regclass(:n)"), {"n": name})
                if exists is None:
                    await conn.execute(
                        text(
                            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF price_observations "
                            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}') "
                            # Room to move each product's current row's last_seen in place.
                            "WITH (fillfactor = 90)"
                        )
                    )
                    created.append(name)
        return created

    async def _search(
        self, conn: AsyncConnection, words: list[str], limit: int, site_id: str | None, fuzzy: bool
    ) -> list[SearchHit]:
        columns = _default_columns_sql("p", "st")
        site_clause = "AND p.site_id = :site" if site_id is not None else ""
        # Words are [a-z0-9]+ only, so the tsquery text cannot carry operators of its own.
        tsquery = " & ".join([*words[:-1], f"{words[-1]}:*"])
        # Matches are ranked on the narrow search rows (at most SEARCH_CANDIDATES of them, the
        # first in partition order: the rows are in hash partitions, scanned one after the
        # other until the candidates are found, so a common word's GIN bitmaps are built for
        # the first partitions only; migration 0008); only the page's products are read. The
        # matches are a CTE, which PostgreSQL plans for reading them all: through the GIN
        # index (a bitmap scan per partition, in table order), read lazily up to the LIMIT.
        # With the LIMIT in view it chose sequential scans expected to stop early: of the
        # table for a common word and, in generic plans, of every site's rows for one site's
        # search. A big table's sequential scan also starts where the last one stopped
        # (synchronised scans), so each call ranked other candidates: off for this
        # transaction (PgBouncer refuses it as a connection parameter).
        await conn.execute(text("SET LOCAL synchronize_seqscans = off"))
        full_text = text(
            "WITH matches AS MATERIALIZED ("
            "SELECT p.site_id, p.id, ts_rank_cd(p.search, q, 1) AS score "
            "FROM product_search p, to_tsquery('simple', :tsq) q "
            f"WHERE p.search @@ q {site_clause}) "
            f"SELECT {columns}, s.score FROM ("
            "SELECT c.site_id, c.id, c.score FROM (SELECT * FROM matches LIMIT :candidates) c "
            "ORDER BY c.score DESC, c.site_id, c.id LIMIT :limit"
            ") s JOIN products p ON p.site_id = s.site_id AND p.id = s.id "
            "JOIN product_state st ON st.site_id = p.site_id AND st.id = p.id "
            "ORDER BY s.score DESC, p.site_id, p.id"
        ).columns(*self._columns(None))
        params: dict[str, Any] = {
            "tsq": tsquery,
            "limit": limit,
            "site": site_id,
            "candidates": SEARCH_CANDIDATES,
        }
        rows = list(await conn.execute(full_text, params))
        if not rows and fuzzy:  # a typo finds nothing by words: try trigram similarity
            # The default threshold (0.6) misses one transposed letter in a short word.
            await conn.execute(text(f"SET LOCAL pg_trgm.word_similarity_threshold = {FUZZY}"))
            similar = text(
                f"SELECT {columns}, word_similarity(:q, pf_unaccent(p.name)) AS score "
                "FROM products p JOIN product_state st ON st.site_id = p.site_id AND st.id = p.id "
                f"WHERE :q <% pf_unaccent(p.name) {site_clause} "
                "ORDER BY score DESC, p.site_id, p.id LIMIT :limit"
            ).columns(*self._columns(None))
            params["q"] = " ".join(words)
            rows = list(await conn.execute(similar, params))
        return [
            SearchHit({k: v for k, v in r._mapping.items() if k != "score"}, float(r.score))
            for r in rows
        ]

    async def refresh_trending(self) -> None:
        """Recompute the trending view without blocking its readers."""
        async with self.writer.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("REFRESH MATERIALIZED VIEW CONCURRENTLY price_moves"))
            # Fresh statistics, so a window's moves are read from `ix_price_moves_change`
            # (a sample: cheap beside the refresh, and autovacuum may be late or off).
            await conn.execute(text("ANALYZE price_moves"))

    async def _trending(
        self, conn: AsyncConnection, days: int, direction: Direction, limit: int, site: str | None
    ) -> list[dict[str, Any]]:
        if days not in self.TRENDING_WINDOWS:
            return await super()._trending(conn, days, direction, limit, site)
        change = "(m.new_price - m.old_price) / m.old_price"  # as ix_price_moves_change holds it
        return await self._precomputed_trending(
            conn, days, direction, limit, site, change=change, typed=False
        )
