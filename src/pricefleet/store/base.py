"""The `Store` interface: what every backend offers, and how one is chosen.

`Store.from_url` gives a single database (`SqliteStore`, `PostgresStore`, both `SqlStore`s);
`Store.from_settings` also knows read replicas and shards (`ShardedStore`). All of them pass
the same conformance suite (`tests/store/`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from pricefleet.errors import ConfigError
from pricefleet.models import Site
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
)

if TYPE_CHECKING:
    from pricefleet.config import Settings

__all__ = ["Store"]


class Store(ABC):
    """Where pricefleet keeps sites, products and their change-only price history."""

    url: str

    @staticmethod
    def from_url(url: str, *, replica_urls: Sequence[str] = ()) -> Store:
        """A store on one database: `sqlite:///path` or `postgresql://…` (+ read replicas)."""
        if url.startswith("sqlite"):
            from pricefleet.store.sqlite import SqliteStore

            return SqliteStore.create(url)
        if url.startswith(("postgresql", "postgres")):
            from pricefleet.store.postgres import PostgresStore

            return PostgresStore.create(url, replica_urls=replica_urls)
        raise ConfigError(f"unsupported database URL {url!r}: use sqlite:///… or postgresql://…")

    @staticmethod
    def from_settings(settings: Settings) -> Store:
        """The store the settings describe: shards when configured, else one database."""
        if settings.database_shards:
            from pricefleet.store.sharded import ShardedStore

            return ShardedStore.from_urls(settings.database_shards)
        return Store.from_url(
            settings.effective_database_url, replica_urls=settings.database_replica_urls
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    def reopen(self) -> Store:
        """Another, independent store on the same database(s): a second writer, say."""

    @abstractmethod
    async def close(self) -> None:
        """Release every connection."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise `StoreError` unless every database behind this store answers a trivial query."""

    @abstractmethod
    async def upgrade(self) -> None:
        """Migrate the schema to the newest revision (idempotent)."""

    # --- writes ---------------------------------------------------------------------------

    @abstractmethod
    async def upsert_sites(self, sites: Sequence[Site]) -> None:
        """Register or update shops."""

    @abstractmethod
    async def upsert_categories(
        self, site_id: str, rows: Sequence[tuple[str, str, str | None]]
    ) -> None:
        """Register a site's categories as (id, name, parent_id)."""

    @abstractmethod
    async def ingest(self, sightings: Sequence[Sighting]) -> IngestResult:
        """Upsert the products and record their price states, change-only, atomically: the same
        sightings in any batching, order or number of replays give the same history."""

    @abstractmethod
    async def save_fetch_states(self, site_id: str, states: Sequence[FetchState]) -> None:
        """Remember how URLs answered (validators, content hash) for the next crawl."""

    @abstractmethod
    async def touch(self, site_id: str, product_ids: Sequence[str], seen_at: datetime) -> int:
        """Confirm products are still as last recorded at `seen_at` (a 304, or the same bytes):
        their `last_seen` and that of their current history row move, nothing else."""

    @abstractmethod
    async def fetch_states(self, site_id: str, urls: Sequence[str]) -> dict[str, FetchState]:
        """The remembered fetch state of those URLs that have one, by URL."""

    @abstractmethod
    async def stale_products(
        self, site_id: str, seen_before: datetime, limit: int = 10_000
    ) -> list[tuple[str, str]]:
        """(id, url) of the site's products last seen before `seen_before`, least recently
        seen first: what the scheduler's freshness rule refreshes."""

    # --- reads ----------------------------------------------------------------------------

    @abstractmethod
    async def site_summaries(self, stale_before: datetime) -> list[SiteSummary]:
        """Every registered site with its product count, how many of them were last seen
        before `stale_before`, and its newest sighting; ordered by site id."""

    @abstractmethod
    async def get_product(
        self, site_id: str, product_id: str, fields: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        """One product with its current price and match group, or None."""

    @abstractmethod
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

    @abstractmethod
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

    @abstractmethod
    async def search(
        self, q: str, *, limit: int = 20, site_id: str | None = None, fuzzy: bool = False
    ) -> list[SearchHit]:
        """Products whose name or brand match every word of `q` (the last one as a prefix),
        most relevant first. With `fuzzy`, when no product matches, a backend that can
        (PostgreSQL, pg_trgm) returns the names most like `q` instead: typos still find."""

    @abstractmethod
    async def compare(
        self,
        *,
        gtin: str | None = None,
        group_id: str | None = None,
        q: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The offers of one product across shops, cheapest per kg, litre or item first, each
        with `age_seconds` since it was last seen."""

    @abstractmethod
    async def trending(
        self,
        days: int = 7,
        *,
        direction: Direction = Direction.DROPS,
        limit: int = 20,
        site_id: str | None = None,
    ) -> list[Move]:
        """The biggest relative price moves between `days` ago and now."""

    @abstractmethod
    async def refresh_trending(self) -> None:
        """Recompute precomputed trending views, where the backend keeps them."""

    # --- API keys and the audit log (global: on the primary database) ----------------------

    @abstractmethod
    async def create_api_key(self, name: str, scopes: Sequence[str]) -> tuple[ApiKey, str]:
        """A new key with these scopes: its record and the plaintext `pf_<id>_<secret>`, which
        is shown this once (only a hash of the secret is stored)."""

    @abstractmethod
    async def api_keys(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """Every key, oldest first."""

    @abstractmethod
    async def api_key(self, key_id: str) -> ApiKey | None:
        """One key by id (revoked or not), or None."""

    @abstractmethod
    async def revoke_api_key(self, key_id: str) -> bool:
        """Revoke a key for good; False when there is no such key or it was revoked already."""

    @abstractmethod
    async def mark_api_key_used(self, key_id: str, at: datetime) -> None:
        """Move a key's `last_used_at` forward to `at` (never back)."""

    @abstractmethod
    async def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries to the audit log, in one transaction."""

    @abstractmethod
    async def audit_log(
        self,
        limit: int = 100,
        *,
        actor: str | None = None,
        action: str | None = None,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        """Audit entries, newest first; pass the last one's `id` as `before_id` for older."""
