"""`ShardedStore`: sites spread over several PostgreSQL databases, one Store interface.

A site lives on exactly one shard, chosen by rendezvous hashing of its id over the shard
names, so adding a shard moves only the sites that now hash to it. Writes and per-product
reads go to the site's shard; cross-site reads (search, compare, trending, unfiltered lists)
are sent to every shard at once and merged in the order a single database would give.
Global tables (API keys, the audit log) live on the primary: the first shard configured, which
must therefore stay first in `PRICEFLEET_DATABASE_SHARDS`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from pricefleet.errors import ConfigError, InvalidQuery
from pricefleet.models import Site
from pricefleet.store.base import Store
from pricefleet.store.query import (
    decode_cursor,
    encode_cursor,
    offer_order,
    search_words,
    sort_value,
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
)

__all__ = ["ShardedStore", "shard_for"]

T = TypeVar("T")


def shard_for(site_id: str, names: Sequence[str]) -> str:
    """The shard a site lives on: the name with the highest hash of (name, site)."""

    def weight(name: str) -> int:
        digest = hashlib.blake2b(f"{name}\x1f{site_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    return max(names, key=weight)


class ShardedStore(Store):
    """Several PostgreSQL stores behind one interface, sites spread over them."""

    def __init__(self, shards: dict[str, Store]) -> None:
        if not shards:
            raise ConfigError("a sharded store needs at least one shard")
        self.shards = shards
        self.names = sorted(shards)
        #: Where global tables live: the first shard given (configuration order, not sorted).
        self.primary = next(iter(shards.values()))
        self.url = ",".join(f"{name}={shards[name].url}" for name in self.names)

    @classmethod
    def from_urls(cls, entries: Sequence[str]) -> ShardedStore:
        """Shards from `name=postgresql://…` entries (a bare URL is named by its position)."""
        shards: dict[str, Store] = {}
        for position, entry in enumerate(entries):
            name, sep, url = entry.partition("=")
            if not sep or "://" in name:
                name, url = f"shard{position}", entry
            if name in shards:
                raise ConfigError(f"shard name {name!r} is used twice")
            shards[name] = Store.from_url(url)
        return cls(shards)

    def reopen(self) -> ShardedStore:
        """Another sharded store over the same databases."""
        return ShardedStore({name: shard.reopen() for name, shard in self.shards.items()})

    def shard(self, site_id: str) -> Store:
        """The store holding a site."""
        return self.shards[shard_for(site_id, self.names)]

    async def _all(self, call: Callable[[Store], Awaitable[T]]) -> list[T]:
        return list(await asyncio.gather(*(call(self.shards[n]) for n in self.names)))

    async def close(self) -> None:
        await self._all(lambda shard: shard.close())

    async def upgrade(self) -> None:
        for name in self.names:  # one at a time: Alembic's context is process-global
            await self.shards[name].upgrade()

    # --- writes ---------------------------------------------------------------------------

    async def upsert_sites(self, sites: Sequence[Site]) -> None:
        by_shard: dict[str, list[Site]] = defaultdict(list)
        for site in sites:
            by_shard[shard_for(site.id, self.names)].append(site)
        await asyncio.gather(*(self.shards[n].upsert_sites(s) for n, s in by_shard.items()))

    async def upsert_categories(
        self, site_id: str, rows: Sequence[tuple[str, str, str | None]]
    ) -> None:
        await self.shard(site_id).upsert_categories(site_id, rows)

    async def ingest(self, sightings: Sequence[Sighting]) -> IngestResult:
        """Each shard's part in its own transaction: a batch spanning shards is atomic per shard
        (and per product, which is what the history needs), not across shards."""
        by_shard: dict[str, list[Sighting]] = defaultdict(list)
        for sighting in sightings:
            by_shard[shard_for(sighting.product.site_id, self.names)].append(sighting)
        results = await asyncio.gather(
            *(self.shards[n].ingest(part) for n, part in sorted(by_shard.items()))
        )
        return IngestResult(
            products=sum(r.products for r in results),
            observations_inserted=sum(r.observations_inserted for r in results),
            observations_deleted=sum(r.observations_deleted for r in results),
            observations_updated=sum(r.observations_updated for r in results),
            price_changes=[change for r in results for change in r.price_changes],
        )

    async def save_fetch_states(self, site_id: str, states: Sequence[FetchState]) -> None:
        await self.shard(site_id).save_fetch_states(site_id, states)

    async def touch(self, site_id: str, product_ids: Sequence[str], seen_at: datetime) -> int:
        return await self.shard(site_id).touch(site_id, product_ids, seen_at)

    async def fetch_states(self, site_id: str, urls: Sequence[str]) -> dict[str, FetchState]:
        return await self.shard(site_id).fetch_states(site_id, urls)

    async def stale_products(
        self, site_id: str, seen_before: datetime, limit: int = 10_000
    ) -> list[tuple[str, str]]:
        return await self.shard(site_id).stale_products(site_id, seen_before, limit)

    async def ping(self) -> None:
        await self._all(lambda shard: shard.ping())

    # --- reads ----------------------------------------------------------------------------

    async def site_summaries(self, stale_before: datetime) -> list[SiteSummary]:
        # A site lives on one shard; merging by id keeps this right should one ever span two.
        parts = await self._all(lambda shard: shard.site_summaries(stale_before))
        merged: dict[str, SiteSummary] = {}
        for summary in (s for part in parts for s in part):
            seen = merged.get(summary.site_id)
            if seen is None:
                merged[summary.site_id] = summary
                continue
            newest = max((t for t in (seen.last_seen, summary.last_seen) if t), default=None)
            merged[summary.site_id] = replace(
                seen,
                products=seen.products + summary.products,
                stale=seen.stale + summary.stale,
                last_seen=newest,
            )
        return [merged[site_id] for site_id in sorted(merged)]

    async def get_product(
        self, site_id: str, product_id: str, fields: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        return await self.shard(site_id).get_product(site_id, product_id, fields)

    async def history(
        self,
        site_id: str,
        product_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        return await self.shard(site_id).history(site_id, product_id, since, until, limit)

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
        if cursor is not None:
            decode_cursor(cursor, sort, descending)  # refuse a bad cursor before fanning out
        if filters.site_id is not None:
            return await self.shard(filters.site_id).list_products(
                filters, sort=sort, descending=descending, cursor=cursor, limit=limit, fields=fields
            )
        wanted = None if fields is None else list(dict.fromkeys([*fields, sort.value]))
        pages = await self._all(
            lambda shard: shard.list_products(
                filters, sort=sort, descending=descending, cursor=cursor, limit=limit, fields=wanted
            )
        )

        def order(item: dict[str, Any]) -> tuple[Any, str, str]:
            return (sort_value(item, sort), item["site_id"], item["id"])

        # Each shard gave its first `limit` after the cursor, in order: the global first
        # `limit` are among them. A shard that has more makes the merged list continue.
        items = sorted((i for p in pages for i in p.items), key=order, reverse=descending)
        more = len(items) > limit or any(p.next_cursor for p in pages)
        items = items[:limit]
        next_cursor = None
        if more and items:
            key, site_id, product_id = order(items[-1])
            next_cursor = encode_cursor(sort, descending, key, site_id, product_id)
        if fields is not None and sort.value not in fields:
            for item in items:
                item.pop(sort.value, None)
        return Page(items, next_cursor)

    async def search(
        self, q: str, *, limit: int = 20, site_id: str | None = None, fuzzy: bool = False
    ) -> list[SearchHit]:
        if not search_words(q):
            raise InvalidQuery("search needs at least one letter or digit")
        if site_id is not None:
            return await self.shard(site_id).search(q, limit=limit, site_id=site_id, fuzzy=fuzzy)
        parts = await self._all(lambda shard: shard.search(q, limit=limit, fuzzy=fuzzy))
        hits = [hit for part in parts for hit in part]
        hits.sort(key=lambda h: (-h.score, h.item["site_id"], h.item["id"]))
        return hits[:limit]

    async def compare(
        self,
        *,
        gtin: str | None = None,
        group_id: str | None = None,
        q: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        parts = await self._all(
            lambda shard: shard.compare(gtin=gtin, group_id=group_id, q=q, limit=limit)
        )
        offers = [offer for part in parts for offer in part]
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
        if site_id is not None:
            return await self.shard(site_id).trending(
                days, direction=direction, limit=limit, site_id=site_id
            )
        parts = await self._all(
            lambda shard: shard.trending(days, direction=direction, limit=limit)
        )
        sign = 1 if direction is Direction.DROPS else -1
        moves = [move for part in parts for move in part]
        moves.sort(key=lambda m: (sign * m.change, m.site_id, m.product_id))
        return moves[:limit]

    async def refresh_trending(self) -> None:
        await self._all(lambda shard: shard.refresh_trending())

    # --- API keys and the audit log: on the primary ----------------------------------------

    async def create_api_key(self, name: str, scopes: Sequence[str]) -> tuple[ApiKey, str]:
        return await self.primary.create_api_key(name, scopes)

    async def api_keys(self, *, include_revoked: bool = True) -> list[ApiKey]:
        return await self.primary.api_keys(include_revoked=include_revoked)

    async def api_key(self, key_id: str) -> ApiKey | None:
        return await self.primary.api_key(key_id)

    async def revoke_api_key(self, key_id: str) -> bool:
        return await self.primary.revoke_api_key(key_id)

    async def mark_api_key_used(self, key_id: str, at: datetime) -> None:
        await self.primary.mark_api_key_used(key_id, at)

    async def record_audit(self, entries: Sequence[AuditEntry]) -> None:
        await self.primary.record_audit(entries)

    async def audit_log(
        self,
        limit: int = 100,
        *,
        actor: str | None = None,
        action: str | None = None,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        return await self.primary.audit_log(limit, actor=actor, action=action, before_id=before_id)
