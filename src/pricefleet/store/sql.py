"""`SqlStore`: everything the SQLite and PostgreSQL backends of `Store` share.

Reads and writes are separate engines: SQLite writes take `BEGIN IMMEDIATE` on their own
engine while readers go on in WAL; PostgreSQL reads may go to replicas. Every method is
batch-shaped or a single indexed query; none holds a connection across awaits of the caller.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable

from pricefleet.errors import InvalidQuery, StoreError
from pricefleet.match import gtin_group, normalize_gtin
from pricefleet.models import Site
from pricefleet.store import ingest as _ingest
from pricefleet.store import keys as _keys
from pricefleet.store.base import Store
from pricefleet.store.query import (
    NULL_LAST,
    decode_cursor,
    encode_cursor,
    offer_order,
    search_words,
)
from pricefleet.store.records import (
    ApiKey,
    AuditEntry,
    Direction,
    FetchState,
    IngestResult,
    Move,
    Page,
    ProductFilter,
    SearchHit,
    Sighting,
    SiteSummary,
    SortKey,
    url_hash,
)
from pricefleet.store.tables import (
    STATE_COLUMNS,
    categories,
    fetch_state,
    matches,
    price_observations,
    product_state,
    products,
)
from pricefleet.store.tables import sites as sites_table

__all__ = ["PRODUCT_FIELDS", "SqlStore"]

#: Where each field of a product read comes from: its metadata row or its state row.
_FIELD_COLUMNS: dict[str, Any] = {
    **{c.name: c for c in products.columns},
    **{c.name: c for c in product_state.columns if c.name not in ("site_id", "id", "meta_hash")},
}
#: Fields a product read can return (`fields=` selects among them); `raw` only when asked.
PRODUCT_FIELDS: tuple[str, ...] = (
    *(c.name for c in products.columns if c.name != "raw"),
    "first_seen",
    "last_seen",
    "raw",
    *STATE_COLUMNS,
    "price_changed_at",
)
_DEFAULT_FIELDS = tuple(f for f in PRODUCT_FIELDS if f != "raw")
#: A product with its state: every product has exactly one state row (ingest writes both).
_LISTED = products.join(
    product_state,
    and_(product_state.c.site_id == products.c.site_id, product_state.c.id == products.c.id),
)


def _default_columns_sql(product: str = "p", state: str = "s") -> str:
    """The default fields as a raw SQL select list, each from its table's alias."""
    return ", ".join(
        f"{product if _FIELD_COLUMNS[name].table is products else state}.{name}"
        for name in _DEFAULT_FIELDS
    )


_SORTS = {
    SortKey.NAME: products.c.name,
    SortKey.PRICE: product_state.c.price,
    SortKey.UNIT_PRICE: product_state.c.unit_price,
    SortKey.LAST_SEEN: product_state.c.last_seen,
}
#: Sort keys some products have no value of (sorted as NULL_LAST).
_NULLABLE_SORTS = (SortKey.PRICE, SortKey.UNIT_PRICE)
#: Errors that mean "this server cannot be reached", as opposed to a bad query.
_UNREACHABLE = (OSError, InterfaceError, OperationalError, TimeoutError)


class SqlStore(Store):
    """A Store in one SQL database (SQLite or PostgreSQL): everything the two backends share.

    Reads go to the replicas in turn; a replica that cannot be reached is left alone for
    `replica_retry_seconds` and the read goes to the primary instead. For
    `read_your_writes_seconds` after this store wrote, reads go to the primary, so a caller
    never reads older data than it just wrote.
    """

    dialect: ClassVar[str]
    #: The `trending` windows (days) served from a precomputed view where the backend has one.
    TRENDING_WINDOWS: ClassVar[tuple[int, ...]] = (1, 7, 30, 90)

    def __init__(
        self,
        url: str,
        writer: AsyncEngine,
        readers: Sequence[AsyncEngine] = (),
        *,
        read_your_writes_seconds: float = 5.0,
        replica_retry_seconds: float = 30.0,
    ) -> None:
        self.url = url
        self.writer = writer
        self.readers = list(readers)
        self.read_your_writes_seconds = read_your_writes_seconds
        self.replica_retry_seconds = replica_retry_seconds
        self._wrote_at = -math.inf
        self._down_until = [0.0] * len(self.readers)
        self._turn = 0

    async def close(self) -> None:
        """Release every connection."""
        await self.writer.dispose()
        for reader in self.readers:
            await reader.dispose()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction on the primary."""
        try:
            async with self.writer.begin() as conn:
                yield conn
        finally:
            self._wrote_at = time.monotonic()

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading: a replica that is up, or the primary."""
        now = time.monotonic()
        engine = self.writer
        if self.readers and now - self._wrote_at > self.read_your_writes_seconds:
            for _ in range(len(self.readers)):
                index = self._turn % len(self.readers)
                self._turn += 1
                if self._down_until[index] > now:
                    continue
                try:
                    conn = await self.readers[index].connect()
                except _UNREACHABLE:
                    self._down_until[index] = now + self.replica_retry_seconds
                    continue
                try:
                    yield conn
                finally:
                    await conn.close()
                return
        async with engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        """Raise `StoreError` unless the primary answers `SELECT 1`."""
        try:
            async with self.writer.connect() as conn:
                await conn.execute(select(literal(1)))
        except (*_UNREACHABLE, DBAPIError) as exc:
            raise StoreError(f"database {self.writer.url!r} does not answer: {exc}") from exc

    async def upgrade(self) -> None:
        """Migrate the schema to the newest revision (idempotent)."""
        from pricefleet.store.migrate import upgrade

        async with self._write() as conn:
            await upgrade(conn)
        await self._after_upgrade()

    async def _after_upgrade(self) -> None:
        """Backend upkeep after migrating (partitions ahead, …)."""

    # --- writes ---------------------------------------------------------------------------

    async def upsert_sites(self, sites: Sequence[Site]) -> None:
        """Register or update shops."""
        rows = [
            {
                "id": s.id,
                "name": s.name,
                "base_url": s.base_url,
                "region": s.region,
                "recipe": s.recipe,
                "updated_at": datetime.now(UTC),
            }
            for s in sites
        ]
        if not rows:
            return
        async with self._write() as conn:
            insert = self._insert(conn, sites_table)
            keep = ("name", "base_url", "region", "recipe", "updated_at")
            await conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["id"], set_={k: insert.excluded[k] for k in keep}
                ),
                rows,
            )

    async def upsert_categories(
        self, site_id: str, rows: Sequence[tuple[str, str, str | None]]
    ) -> None:
        """Register a site's categories as (id, name, parent_id)."""
        if not rows:
            return
        async with self._write() as conn:
            insert = self._insert(conn, categories)
            await conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["site_id", "id"],
                    set_={"name": insert.excluded.name, "parent_id": insert.excluded.parent_id},
                ),
                [{"site_id": site_id, "id": i, "name": n, "parent_id": p} for i, n, p in rows],
            )

    async def ingest(self, sightings: Sequence[Sighting]) -> IngestResult:
        """Upsert the products and record their price states, change-only, in one transaction."""
        async with self._write() as conn:
            return await _ingest.ingest(conn, sightings)

    async def save_fetch_states(self, site_id: str, states: Sequence[FetchState]) -> None:
        """Remember how URLs answered (validators, content hash) for the next crawl."""
        if not states:
            return
        rows = {
            s.url_hash: {
                "site_id": site_id,
                "url_hash": s.url_hash,
                "url": s.url,
                "etag": s.etag,
                "last_modified": s.last_modified,
                "content_hash": s.content_hash,
                "fetched_at": s.fetched_at,
                "status": s.status,
                "product_id": s.product_id,
            }
            for s in states
        }
        async with self._write() as conn:
            insert = self._insert(conn, fetch_state)
            keep: tuple[str, ...] = ("url", "etag", "last_modified", "content_hash")
            keep += ("fetched_at", "status", "product_id")
            await conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["site_id", "url_hash"],
                    set_={k: insert.excluded[k] for k in keep},
                ),
                [rows[key] for key in sorted(rows)],
            )

    async def touch(self, site_id: str, product_ids: Sequence[str], seen_at: datetime) -> int:
        """Confirm products are still as last recorded at `seen_at` (a 304, or the same bytes):
        their `last_seen` and that of their current history row move, nothing else."""
        if not product_ids:
            return 0
        ids = sorted(set(product_ids))
        state = product_state.c
        mine = and_(state.site_id == site_id, state.id.in_(ids))
        # The current history row's last_seen is the state row's (see `ingest`): one update.
        async with self._write() as conn:
            result = await conn.execute(
                update(product_state)
                .where(mine, state.last_seen < seen_at)
                .values(last_seen=seen_at)
            )
        return int(result.rowcount or 0)

    async def stale_products(
        self, site_id: str, seen_before: datetime, limit: int = 10_000
    ) -> list[tuple[str, str]]:
        """Products of the site not seen since `seen_before`, least recently seen first.

        A scan of the site's products (there is no index on last_seen: every sighting moves
        it, see migration 0002); the scheduler asks every few minutes, not per request."""
        state = product_state.c
        query = (
            select(state.id, products.c.url)
            .select_from(_LISTED)
            .where(state.site_id == site_id, state.last_seen < seen_before)
            .order_by(state.last_seen, state.id)
            .limit(limit)
        )
        async with self._read() as conn:
            return [(row.id, row.url) for row in await conn.execute(query)]

    async def fetch_states(self, site_id: str, urls: Sequence[str]) -> dict[str, FetchState]:
        """The remembered fetch state of those URLs that have one, by URL."""
        if not urls:
            return {}
        keys = {url_hash(url): url for url in urls}
        query = select(fetch_state).where(
            fetch_state.c.site_id == site_id, fetch_state.c.url_hash.in_(list(keys))
        )
        async with self._read() as conn:
            rows = await conn.execute(query)
        return {
            r.url: FetchState(
                r.url, r.etag, r.last_modified, r.content_hash, r.fetched_at, r.status, r.product_id
            )
            for r in rows
        }

    @staticmethod
    def _insert(conn: AsyncConnection, table: Any) -> Any:
        from sqlalchemy.dialects import postgresql, sqlite

        module = postgresql if conn.dialect.name == "postgresql" else sqlite
        return module.insert(table)

    # --- reads ----------------------------------------------------------------------------

    async def site_summaries(self, stale_before: datetime) -> list[SiteSummary]:
        """Every registered site with its product count, stale count and newest sighting."""
        state = product_state.c
        counts = (
            select(
                state.site_id,
                func.count().label("products"),
                func.count().filter(state.last_seen < stale_before).label("stale"),
                func.max(state.last_seen).label("last_seen"),
            )
            .group_by(state.site_id)
            .subquery()
        )
        query = (
            select(
                sites_table.c.id,
                sites_table.c.name,
                sites_table.c.base_url,
                sites_table.c.region,
                func.coalesce(counts.c.products, 0),
                func.coalesce(counts.c.stale, 0),
                counts.c.last_seen,
            )
            .select_from(sites_table.outerjoin(counts, counts.c.site_id == sites_table.c.id))
            .order_by(sites_table.c.id)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [SiteSummary(*row) for row in rows]

    async def get_product(
        self, site_id: str, product_id: str, fields: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        """One product with its current price and match group, or None."""
        columns = [*self._columns(fields), matches.c.group_id]
        query = (
            select(*columns)
            .select_from(_LISTED.outerjoin(matches, self._match_join()))
            .where(products.c.site_id == site_id, products.c.id == product_id)
        )
        async with self._read() as conn:
            row = (await conn.execute(query)).first()
        return dict(row._mapping) if row else None

    async def history(
        self,
        site_id: str,
        product_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """A product's price states, oldest first; each row holds from `observed_at` on and was
        last confirmed at `last_seen`. With `since`, the state in force at `since` comes first."""
        obs, state = price_observations.c, product_state.c
        mine = and_(obs.site_id == site_id, obs.product_id == product_id)
        # The current row's last_seen is kept on the product's state row (see `ingest`).
        rows_of = select(
            *(c for c in price_observations.c if c.name != "last_seen"),
            case(
                (obs.observed_at == state.price_changed_at, state.last_seen), else_=obs.last_seen
            ).label("last_seen"),
        ).select_from(
            price_observations.outerjoin(
                product_state, and_(state.site_id == obs.site_id, state.id == obs.product_id)
            )
        )
        query = rows_of.where(mine)
        if until is not None:
            query = query.where(obs.observed_at <= until)
        async with self._read() as conn:
            rows: list[dict[str, Any]] = []
            if since is not None:
                before = await conn.execute(
                    rows_of.where(mine, obs.observed_at < since)
                    .order_by(obs.observed_at.desc())
                    .limit(1)
                )
                rows += [dict(r._mapping) for r in before]
                query = query.where(obs.observed_at >= since)
            result = await conn.execute(query.order_by(obs.observed_at).limit(limit))
            rows += [dict(r._mapping) for r in result]
        for row in rows:
            del row["site_id"], row["product_id"]
        return rows[:limit]

    async def list_products(
        self,
        filters: ProductFilter = ProductFilter(),  # noqa: B008 - frozen dataclass
        *,
        sort: SortKey = SortKey.NAME,
        descending: bool = False,
        cursor: str | None = None,
        limit: int = 50,
        fields: Sequence[str] | None = None,
    ) -> Page:
        """Products matching `filters`, in pages: pass a page's `next_cursor` to get the next.
        Items carry `site_id` and `id` always, and the `fields` asked for (default: all but raw).
        """
        if not 1 <= limit <= 1000:
            raise InvalidQuery(f"limit={limit}: must be between 1 and 1000")
        where = self._filters(filters)
        after = decode_cursor(cursor, sort, descending) if cursor is not None else None
        # Products without a value of a nullable sort key come last in ascending order and
        # first in descending, as if the value were NULL_LAST. They are read as a segment of
        # their own, so the valued segment is ordered by the bare column: an index
        # (site_id, price, id) then gives its order without a sort, which an ORDER BY
        # COALESCE(price, NULL_LAST) could not use.
        segments = [False]  # False: products with a value; True: those without
        if sort in _NULLABLE_SORTS and not self._excludes_missing(sort, filters):
            segments = [True, False] if descending else [False, True]
            if after is not None:
                segments = segments[segments.index(after[0] == NULL_LAST) :]
        rows: list[dict[str, Any]] = []
        async with self._read() as conn:
            for missing in segments:
                query = self._list_segment(
                    sort, descending, where, filters.site_id, missing, after, fields
                )
                result = await conn.execute(query.limit(limit + 1 - len(rows)))
                rows += [
                    {"_key": NULL_LAST, **r._mapping} if missing else {**r._mapping} for r in result
                ]
                if len(rows) > limit:
                    break
                after = None  # the next segment is read from its start
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor(sort, descending, last["_key"], last["site_id"], last["id"])
        for row in rows:
            del row["_key"]
        return Page(rows, next_cursor)

    def _list_segment(
        self,
        sort: SortKey,
        descending: bool,
        where: list[ColumnElement[bool]],
        site_id: str | None,
        missing: bool,
        after: tuple[Any, str, str] | None,
        fields: Sequence[str] | None,
    ) -> Select[Any]:
        """One segment of a list, without its limit: the products with a value of the sort
        key, ordered by it and then identity, or (`missing`) those without, by identity."""
        prod = product_state.c  # identity from the state row: its index gives price order
        column = _SORTS[sort]
        if missing:
            query = (
                select(*self._columns(fields)).select_from(_LISTED).where(*where, column.is_(None))
            )
            order: list[Any] = [prod.site_id, prod.id]
            bound: list[Any] = [] if after is None else [literal(after[1]), literal(after[2])]
        else:
            query = (
                select(*self._columns(fields), column.label("_key"))
                .select_from(_LISTED)
                .where(*where)
            )
            if sort in _NULLABLE_SORTS:
                query = query.where(column.is_not(None))
            order = [column, prod.site_id, prod.id]
            bound = []
            if after is not None:
                key = literal(after[0], type_=column.type)
                bound = [key, literal(after[1]), literal(after[2])]
        if after is not None:
            position = list(order)
            if site_id is not None and after[1] == site_id:
                # Within one site the site is constant: comparing the rest alone lets an
                # index (site_id, key, id) start its scan right after the cursor.
                at = 0 if missing else 1  # where site_id is in `order`
                del position[at], bound[at]
            row, mark = tuple_(*position), tuple_(*bound)
            query = query.where(row < mark if descending else row > mark)
        return query.order_by(*(c.desc() if descending else c.asc() for c in order))

    async def search(
        self, q: str, *, limit: int = 20, site_id: str | None = None, fuzzy: bool = False
    ) -> list[SearchHit]:
        """Products whose name or brand match every word of `q` (the last one as a prefix),
        most relevant first. With `fuzzy`, when no product matches, a backend that can
        (PostgreSQL, pg_trgm) returns the names most like `q` instead: typos still find."""
        words = search_words(q)
        if not words:
            raise InvalidQuery("search needs at least one letter or digit")
        if not 1 <= limit <= 200:
            raise InvalidQuery(f"limit={limit}: must be between 1 and 200")
        async with self._read() as conn:
            return await self._search(conn, words, limit, site_id, fuzzy)

    async def compare(
        self,
        *,
        gtin: str | None = None,
        group_id: str | None = None,
        q: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The offers of one product across shops, cheapest per kg, litre or item first."""
        now = datetime.now(UTC)
        if gtin is not None:
            normal = normalize_gtin(gtin)
            if normal is None:
                raise InvalidQuery(f"gtin={gtin!r} is not a valid GTIN (length or check digit)")
            group_id = gtin_group(normal)
        if group_id is not None:
            query = (
                select(*self._columns(None), matches.c.group_id)
                .select_from(_LISTED.join(matches, self._match_join()))
                .where(matches.c.group_id == group_id)
            )
            async with self._read() as conn:
                offers = [dict(r._mapping) for r in await conn.execute(query)]
        elif q is not None:
            offers = [hit.item for hit in await self.search(q, limit=limit)]
        else:
            raise InvalidQuery("compare needs one of gtin, group_id or q")
        offers = [o for o in offers if o["price"] is not None]
        for offer in offers:
            offer["age_seconds"] = max(0.0, (now - offer["last_seen"]).total_seconds())
        offers.sort(key=offer_order)
        return offers[:limit]

    async def trending(
        self,
        days: int = 7,
        *,
        direction: Direction = Direction.DROPS,
        limit: int = 20,
        site_id: str | None = None,
    ) -> list[Move]:
        """The biggest relative price moves between `days` ago and now."""
        if not 1 <= days <= 3650:
            raise InvalidQuery(f"days={days}: must be between 1 and 3650")
        async with self._read() as conn:
            rows = await self._trending(conn, days, direction, limit, site_id)
        return [
            Move(
                site_id=r["site_id"],
                product_id=r["product_id"],
                name=r["name"],
                old_price=r["old_price"],
                new_price=r["new_price"],
                change=float((r["new_price"] - r["old_price"]) / r["old_price"]),
                since=r["since"],
            )
            for r in rows
        ]

    async def refresh_trending(self) -> None:
        """Recompute the precomputed trending view, where the backend keeps one."""

    async def _precomputed_trending(
        self,
        conn: AsyncConnection,
        days: int,
        direction: Direction,
        limit: int,
        site: str | None,
        *,
        change: str,
        typed: bool,
    ) -> list[dict[str, Any]]:
        """Trending from the `price_moves` rows of a precomputed window (PostgreSQL's view,
        SQLite's table), ordered by `change`: the backend's SQL for the relative move, as its
        index holds it. `typed`: the driver returns text, so the columns' own types convert."""
        order = "ASC" if direction is Direction.DROPS else "DESC"
        site_clause = "AND m.site_id = :site" if site is not None else ""
        sql = text(
            "SELECT m.site_id, m.product_id, p.name, m.old_price, m.new_price, m.since "
            "FROM price_moves m JOIN products p ON p.site_id = m.site_id AND p.id = m.product_id "
            f"WHERE m.days = :days {site_clause} "
            f"ORDER BY {change} {order}, m.site_id, m.product_id LIMIT :limit"
        )
        query: Executable = sql
        if typed:
            query = sql.columns(
                price_observations.c.site_id,
                price_observations.c.product_id,
                products.c.name,
                price_observations.c.price.label("old_price"),
                price_observations.c.price.label("new_price"),
                price_observations.c.observed_at.label("since"),
            )
        rows = await conn.execute(query, {"days": days, "site": site, "limit": limit})
        return [dict(r._mapping) for r in rows]

    async def _trending(
        self, conn: AsyncConnection, days: int, direction: Direction, limit: int, site: str | None
    ) -> list[dict[str, Any]]:
        """The live trending query: each product's price now against the one in force then."""
        obs, prod, state = price_observations.c, products.c, product_state.c
        cutoff = datetime.now(UTC) - timedelta(days=days)
        earlier = price_observations.alias("earlier")
        then = (
            select(func.max(earlier.c.observed_at))
            .where(
                earlier.c.site_id == state.site_id,
                earlier.c.product_id == state.id,
                earlier.c.observed_at <= cutoff,
            )
            .correlate(product_state)
            .scalar_subquery()
        )
        change = (state.price - obs.price) * 1.0 / obs.price
        query = (
            select(
                state.site_id,
                state.id.label("product_id"),
                prod.name,
                obs.price.label("old_price"),
                state.price.label("new_price"),
                obs.observed_at.label("since"),
            )
            .select_from(
                _LISTED.join(
                    price_observations,
                    and_(
                        obs.site_id == state.site_id,
                        obs.product_id == state.id,
                        obs.observed_at == then,
                    ),
                )
            )
            .where(state.price.is_not(None), obs.price != state.price)
            .order_by(
                change.asc() if direction is Direction.DROPS else change.desc(),
                state.site_id,
                state.id,
            )
            .limit(limit)
        )
        if site is not None:
            query = query.where(state.site_id == site)
        return [dict(r._mapping) for r in await conn.execute(query)]

    # --- API keys and the audit log (SQL in store/keys.py) -----------------------------------

    async def create_api_key(self, name: str, scopes: Sequence[str]) -> tuple[ApiKey, str]:
        """A new key with these scopes: its record and the plaintext key, shown this once."""
        async with self._write() as conn:
            return await _keys.create_key(conn, name, scopes)

    async def api_keys(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """Every key, oldest first."""
        async with self._primary() as conn:
            return await _keys.list_keys(conn, include_revoked)

    async def api_key(self, key_id: str) -> ApiKey | None:
        """One key by id, or None."""
        async with self._primary() as conn:
            return await _keys.get_key(conn, key_id)

    async def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key; False when there is no such key or it was revoked already."""
        async with self._write() as conn:
            return await _keys.revoke_key(conn, key_id)

    async def mark_api_key_used(self, key_id: str, at: datetime) -> None:
        """Move a key's `last_used_at` forward to `at`."""
        async with self._write() as conn:
            await _keys.mark_used(conn, key_id, at)

    async def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries to the audit log, in one transaction."""
        if entries:
            async with self._write() as conn:
                await _keys.record_audit(conn, entries)

    async def audit_log(
        self,
        limit: int = 100,
        *,
        actor: str | None = None,
        action: str | None = None,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        """Audit entries, newest first."""
        async with self._primary() as conn:
            return await _keys.audit_rows(conn, limit, actor, action, before_id)

    @asynccontextmanager
    async def _primary(self) -> AsyncIterator[AsyncConnection]:
        """A read on the primary: a revocation must never be missed on a lagging replica.
        (SQLite has no replicas, and its writer engine would take the write lock to read.)"""
        if self.dialect == "sqlite":
            async with self._read() as conn:
                yield conn
            return
        async with self.writer.connect() as conn:
            yield conn

    @abstractmethod
    async def _search(
        self, conn: AsyncConnection, words: list[str], limit: int, site_id: str | None, fuzzy: bool
    ) -> list[SearchHit]:
        """The backend's full-text search over name and brand."""

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    def _match_join() -> ColumnElement[bool]:
        return and_(matches.c.site_id == products.c.site_id, matches.c.product_id == products.c.id)

    @staticmethod
    def _columns(fields: Sequence[str] | None) -> list[Any]:
        if fields is None:
            return [_FIELD_COLUMNS[f] for f in _DEFAULT_FIELDS]
        unknown = sorted(set(fields) - set(PRODUCT_FIELDS))
        if unknown:
            raise InvalidQuery(f"unknown fields {unknown}; known: {', '.join(PRODUCT_FIELDS)}")
        wanted = dict.fromkeys(("site_id", "id", *fields))  # identity always, for cursors
        return [_FIELD_COLUMNS[f] for f in wanted]

    @staticmethod
    def _filters(f: ProductFilter) -> list[ColumnElement[bool]]:
        prod, state = products.c, product_state.c
        where: list[ColumnElement[bool]] = []
        if f.site_id is not None:
            where.append(state.site_id == f.site_id)
        if f.category_id is not None:
            where.append(prod.category_id == f.category_id)
        if f.min_price is not None:
            where.append(state.price >= f.min_price)
        if f.max_price is not None:
            where.append(state.price <= f.max_price)
        if f.min_price is not None and f.max_price is not None and f.min_price > f.max_price:
            raise InvalidQuery(f"min_price {f.min_price} is above max_price {f.max_price}")
        if f.discounted is not None:
            where.append(state.is_discounted == f.discounted)
        if f.gtin is not None:
            where.append(prod.gtin == normalize_gtin(f.gtin))
        return where

    @staticmethod
    def _excludes_missing(sort: SortKey, f: ProductFilter) -> bool:
        """Whether the filters leave out every product without a value of the sort key."""
        return sort is SortKey.PRICE and (f.min_price is not None or f.max_price is not None)
