"""The API's response cache: ready-to-send bodies with their ETag, by kind, tagged.

Embedded: each process's memory (`api.memory.MemoryTier`). Cluster: two tiers — the process's
memory in front of Redis (cashews), which every API process shares. A miss in memory asks
Redis, and a Redis hit fills memory. The tiers stay coherent through the event bus, not
through Redis key tracking: every API process hears each `product.price_changed` event
(`api.invalidation`) and drops the tagged entries from its own memory and from Redis, and a
lost event (`bus.reset`) clears the memory tier.

An entry is the serialised body, so a hit costs a lookup and no serialisation. Each entry is
tagged with what it shows (`product:<site>:<id>`, `site:<site>`, or the kind for cross-site
answers), and the tags go out as `Cache-Tag` / `Surrogate-Key` headers for a CDN.
`invalidate(tags)` drops every entry carrying one of the product tags: only those are
registered in the cache's tag sets (one set per tag, holding its keys). A set for a site's or a
kind's tag would gather every key of that site or kind, never shrink (each new entry renews
it) and cost a Redis round trip per miss, for tags nothing invalidates.

Misses are single-flight in a process and, in the cluster, behind a short Redis lock, so a
popular key expiring sends one query to the database, not one per waiting request (stampede).
Hits and misses are counted per kind (`cache_hits_total`, `cache_misses_total`). Redis being
down makes the shared tier a miss, never an error: the database answers.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from enum import StrEnum
from typing import NamedTuple
from urllib.parse import quote

from cashews import Cache
from prometheus_client import Counter

from pricefleet.api.memory import MemoryTier
from pricefleet.config import Settings

__all__ = [
    "GZIP_MIN",
    "ApiCache",
    "Entry",
    "Kind",
    "invalidates",
    "make_entry",
    "product_tag",
    "site_tag",
]

log = logging.getLogger(__name__)

CACHE_HITS = Counter("cache_hits_total", "API cache hits.", ["kind"])
CACHE_MISSES = Counter("cache_misses_total", "API cache misses.", ["kind"])

#: Bodies from this size on are also kept gzipped (the size below which gzip rarely pays).
GZIP_MIN = 1024
#: Keys whose demand is tracked for warming, at most.
_DEMAND_KEYS = 5_000
CACHE_WARMED = Counter("cache_warmed_total", "API cache entries rebuilt before expiry.")

#: How long a request waits for another process computing the same key before computing itself.
_LOCK_WAIT = 2.0
_LOCK_POLL = 0.02
#: Seconds a process remembers invalidating a tag (`ApiCache._outdated`): far longer than the
#: round trips between another process popping the tag's set and deleting its keys.
_MARK_SECONDS = 60.0


class Kind(StrEnum):
    """What a cached answer is; each kind has its own TTL and Cache-Control."""

    PRODUCT = "product"
    HISTORY = "history"
    LIST = "list"
    SEARCH = "search"
    COMPARE = "compare"
    TRENDING = "trending"
    SITES = "sites"
    CATEGORIES = "categories"


class Entry(NamedTuple):
    """A cached answer: its body, strong ETag, tags, and when its data was last seen.

    A tuple of bytes, strings and numbers, kept as a plain `tuple` in both tiers (`_packed`):
    the collector does not track such tuples (`api.memory`), and Redis holds no class path."""

    body: bytes
    etag: str
    tags: tuple[str, ...]
    built_at: float
    seen_at: float | None = None  # the product's last sighting (epoch), for max_age
    #: The body gzipped once at build time (bodies above GZIP_MIN), so hits never compress.
    gzipped: bytes | None = None


def _tag_part(text: str) -> str:
    # Tags travel in HTTP headers (Cache-Tag, Surrogate-Key): ASCII, no separators or spaces.
    return quote(text, safe="-_.~")


_PRODUCT_TAG = "product:"


def product_tag(site_id: str, product_id: str) -> str:
    """The tag of every entry showing one product."""
    return f"{_PRODUCT_TAG}{_tag_part(site_id)}:{_tag_part(product_id)}"


def invalidates(tag: str) -> bool:
    """Whether `tag` is one `ApiCache.invalidate` drops entries by (a product's)."""
    return tag.startswith(_PRODUCT_TAG)


def site_tag(site_id: str) -> str:
    """The tag of every entry showing any product of a site."""
    return f"site:{_tag_part(site_id)}"


def make_entry(
    body: bytes, tags: Iterable[str], seen_at: float | None = None, built_at: float | None = None
) -> Entry:
    """An entry for `body`, with its strong ETag (a hash of the exact bytes)."""
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    gzipped = gzip.compress(body, compresslevel=6, mtime=0) if len(body) >= GZIP_MIN else None
    built = time.time() if built_at is None else built_at
    return Entry(body, etag, tuple(tags), built, seen_at, gzipped)


_HITS = {kind: CACHE_HITS.labels(kind.value) for kind in Kind}


def _registered(entry: Entry) -> list[str]:
    """The tags of `entry` the cache keeps a tag set for."""
    return [tag for tag in entry.tags if invalidates(tag)]


def _packed(entry: Entry) -> tuple[object, ...]:
    """`entry` as a plain tuple: how both tiers keep it."""
    return tuple(entry)


def _unpacked(value: object) -> Entry | None:
    """The entry a tier kept as `_packed`; None for anything else (e.g. what an older version
    left in Redis: a miss, rebuilt and overwritten)."""
    if type(value) is tuple and len(value) == _FIELDS:
        return Entry._make(value)
    return None


_FIELDS = len(Entry._fields)


class ApiCache:
    """Cached answers of the API, with per-kind TTLs, tags and stampede protection."""

    def __init__(self, settings: Settings, *, name: str = "api") -> None:
        self.settings = settings
        self.ttls: dict[Kind, float] = {
            Kind.PRODUCT: settings.cache_ttl_product,
            Kind.HISTORY: settings.cache_ttl_product,
            Kind.LIST: settings.cache_ttl_search,
            Kind.SEARCH: settings.cache_ttl_search,
            Kind.COMPARE: settings.cache_ttl_search,
            Kind.TRENDING: settings.cache_ttl_trending,
            Kind.SITES: settings.cache_ttl_sites,
            Kind.CATEGORIES: settings.cache_ttl_categories,
        }
        self._memory = MemoryTier(settings.cache_size)
        # Our own namespace on every shared key and tag: a Redis may hold the queue too.
        self._ns = f"{settings.queue_prefix}:cache:"
        self._redis: Cache | None = None
        if settings.redis_url is not None:
            self._redis = Cache(f"{name}-redis")
            self._redis.setup(
                settings.redis_url,
                suppress=True,  # Redis down: a miss, never an error
                socket_connect_timeout=1,
                socket_timeout=1,
            )
        self._flights: dict[str, asyncio.Future[Entry]] = {}
        # When this process last invalidated each product tag (its own clock; see `_outdated`),
        # oldest first, forgotten after _MARK_SECONDS; and when it last cleared everything.
        self._marks: OrderedDict[str, float] = OrderedDict()
        self._cleared_at = 0.0
        # Demand per key, and how to build it again: what the warming job refreshes.
        self._demand: dict[str, int] = {}
        self._builders: dict[str, tuple[Kind, Callable[[], Awaitable[Entry]]]] = {}

    async def init(self) -> None:
        """Connect (cluster: to Redis)."""
        if self._redis is not None:
            await self._redis.init()

    async def close(self) -> None:
        """Disconnect."""
        if self._redis is not None:
            with warnings.catch_warnings():
                # cashews (7.6) closes its redis-py client with the deprecated `close()`.
                warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
                await self._redis.close()

    def ttl(self, kind: Kind) -> float:
        """Seconds an answer of `kind` is kept."""
        return self.ttls[kind]

    async def get(self, kind: Kind, key: str) -> Entry | None:
        """The cached entry (memory first, then Redis), counting a hit or a miss."""
        entry = self.peek(key)
        if entry is None:
            entry = await self._shared(kind, key)
        if entry is not None:
            CACHE_HITS.labels(kind.value).inc()
            return entry
        CACHE_MISSES.labels(kind.value).inc()
        return None

    def peek(self, key: str) -> Entry | None:
        """The entry in this process's memory, if any: no Redis, nothing counted (the fast
        path's lookup; it calls `count_hit` once it answers with the entry)."""
        value = self._memory.get(key, time.time())
        return None if value is None else Entry._make(value)

    async def lookup(self, kind: Kind, key: str) -> Entry | None:
        """`peek`, then (cluster) Redis, filling memory as `get` does; nothing counted (the
        fast path's lookup: a hit in either tier is a hit)."""
        entry = self.peek(key)
        if entry is None:
            entry = await self._shared(kind, key)
        return entry

    async def _shared(self, kind: Kind, key: str) -> Entry | None:
        """The entry in Redis (copied into memory for the rest of its TTL), if any."""
        if self._redis is None:
            return None
        entry = _unpacked(await self._redis.get(self._ns + key))
        if entry is None or self._outdated(entry, entry.built_at):
            return None  # a miss: the caller builds it again
        now = time.time()
        expires = entry.built_at + self.ttls[kind]
        if expires > now:
            self._memory.set(key, _packed(entry), expires, now, _registered(entry))
        return entry

    def count_hit(self, kind: Kind, key: str) -> None:
        """Count a hit answered without `get_or_build` (the fast path), and its demand when
        the key's builder is known (it is, unless the key's demand faded since it was built:
        then the warming job skips it and its next miss registers it again)."""
        _HITS[kind].inc()
        if key in self._builders:
            self._demand[key] = self._demand.get(key, 0) + 1

    async def get_or_build(
        self,
        kind: Kind,
        key: str,
        build: Callable[[], Awaitable[Entry]],
        *,
        fresh: bool = False,
        demand: bool = True,
        missed: bool = False,
    ) -> Entry:
        """The cached answer under `key`, or `build()`'s, cached. With `fresh`, skip the cache
        read (the caller knows the entry is too old) but still share one build. `demand`
        counts the call as a client's request (the warming job's own do not). `missed`: the
        caller has just looked in both tiers (`lookup`) and found nothing, so this counts a
        miss without asking Redis again."""
        if demand:
            self._note_demand(kind, key, build)
        if missed and not fresh:
            CACHE_MISSES.labels(kind.value).inc()
        elif not fresh:
            entry = await self.get(kind, key)
            if entry is not None:
                return entry
        flight = self._flights.get(key)
        if flight is not None:  # this process is already building it
            return await asyncio.shield(flight)
        future: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        self._flights[key] = future
        try:
            entry = await self._build_once(kind, key, build, fresh)
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._flights[key]

    async def _build_once(
        self, kind: Kind, key: str, build: Callable[[], Awaitable[Entry]], fresh: bool
    ) -> Entry:
        shared = self._redis
        if shared is None:
            return await self._build_and_set(kind, key, build)
        lock = f"{self._ns}lock:{key}"
        if await shared.set_lock(lock, "1", expire=_LOCK_WAIT * 2):
            try:
                return await self._build_and_set(kind, key, build)
            finally:
                await shared.unlock(lock, "1")
        # Another process builds it: wait for its answer, a little.
        started, deadline = time.time(), time.monotonic() + _LOCK_WAIT
        while time.monotonic() < deadline:
            await asyncio.sleep(_LOCK_POLL)
            entry = _unpacked(await shared.get(self._ns + key))
            if (
                entry is not None
                and not self._outdated(entry, entry.built_at)
                and (not fresh or entry.built_at >= started)
            ):
                return entry
            if not await shared.is_locked(lock):
                break
        return await self._build_and_set(kind, key, build)

    async def _build_and_set(
        self, kind: Kind, key: str, build: Callable[[], Awaitable[Entry]]
    ) -> Entry:
        started = time.time()
        entry = await build()
        if entry.built_at > started:
            # As of when its reads began: an event handled meanwhile by another process
            # (`_outdated` there) then counts as after it.
            entry = entry._replace(built_at=started)
        ttl = self.ttls[kind]
        tags = _registered(entry)
        if self._outdated(entry, started):
            # Invalidated while it was being built: it may hold what the event replaced. The
            # caller gets it; the cache does not keep it for a whole TTL.
            return entry
        packed = _packed(entry)
        now = time.time()
        self._memory.set(key, packed, now + ttl, now, tags)
        if self._redis is not None:
            await self._redis.set(
                self._ns + key, packed, expire=ttl, tags=[self._ns + tag for tag in tags]
            )
        return entry

    def _note_demand(self, kind: Kind, key: str, build: Callable[[], Awaitable[Entry]]) -> None:
        self._demand[key] = self._demand.get(key, 0) + 1
        self._builders[key] = (kind, build)
        if len(self._demand) > _DEMAND_KEYS:
            # Keep the most asked half, their counts halved: old popularity fades.
            ranked = sorted(self._demand.items(), key=lambda kv: kv[1], reverse=True)
            self._demand = {k: n // 2 for k, n in ranked[: _DEMAND_KEYS // 2]}
            self._builders = {k: self._builders[k] for k in self._demand}

    def most_requested(self, count: int) -> list[str]:
        """The keys asked for most (since their counts last faded), most first."""
        ranked = sorted(self._demand.items(), key=lambda kv: kv[1], reverse=True)
        return [key for key, _ in ranked[:count]]

    async def warm(self, count: int = 200, *, before_expiry: float = 0.25) -> int:
        """Rebuild the `count` most requested answers that are missing or within
        `before_expiry` (a share of their TTL) of expiring, so popular products and searches
        stay hits; returns how many were rebuilt. A failing build is skipped, not raised."""
        rebuilt = 0
        now = time.time()
        for key in self.most_requested(count):
            kind, build = self._builders[key]
            ttl = self.ttls[kind]
            value = self._memory.get(key, now)
            entry = None if value is None else Entry._make(value)
            if entry is not None and now - entry.built_at < ttl * (1 - before_expiry):
                continue
            try:
                await self.get_or_build(kind, key, build, fresh=True, demand=False)
            except Exception as exc:  # e.g. the product is gone: a 404 is not cached
                log.debug("warming %s skipped: %s", key, exc)
                continue
            rebuilt += 1
        CACHE_WARMED.inc(rebuilt)
        return rebuilt

    async def claim(self, key: str, ttl: float) -> bool:
        """True for the first process to claim `key` within `ttl` seconds (cluster: a Redis
        lock; one process: always)."""
        if self._redis is None:
            return True
        return bool(await self._redis.set_lock(f"{self._ns}claim:{key}", "1", expire=ttl))

    async def invalidate(self, tags: Sequence[str]) -> None:
        """Drop every entry carrying one of `tags` (product tags: see `invalidates`), from this
        process's memory and Redis (the other processes drop theirs on the same event)."""
        if not tags:
            return
        unknown = [tag for tag in tags if not invalidates(tag)]
        if unknown:
            raise ValueError(f"entries are not registered under these tags: {unknown}")
        self._mark(tags)
        # Redis first: while its entries are being deleted, a request in this process that
        # misses memory would copy the old entry from Redis back into memory, to stay there
        # for the kind's whole TTL (an hour for a product) after the memory was cleared.
        if self._redis is not None:
            # The keys this process holds, deleted by key as well: every process hears the
            # event, and the tag set is popped by whichever comes first, which deletes its keys
            # a round trip later. A process that found the set already popped must not copy
            # the old entry back from Redis meanwhile (seen under load, two API processes: the
            # old price stayed for the TTL). The marks catch what no process held.
            held = self._memory.keys_tagged(tags)
            if held:
                await self._redis.delete_many(*(self._ns + key for key in held))
            await self._redis.delete_tags(*(self._ns + tag for tag in tags))
        self._memory.delete_tags(tags)

    def _mark(self, tags: Sequence[str]) -> None:
        now = time.time()
        marks = self._marks
        for tag in tags:
            marks.pop(tag, None)
            marks[tag] = now
        while marks:
            tag, at = next(iter(marks.items()))
            if now - at <= _MARK_SECONDS:
                break
            del marks[tag]

    def _outdated(self, entry: Entry, since: float) -> bool:
        """Whether this process invalidated one of `entry`'s tags (or cleared everything) at
        or after `since`: a Redis entry built before the invalidation (`since` its
        `built_at`, another process's clock: hosts of one fleet keep NTP time), or a build
        that began before it, may show what the event replaced."""
        if since <= self._cleared_at:
            return True
        marks = self._marks
        return any(marks.get(tag, 0.0) >= since for tag in _registered(entry))

    async def clear(self) -> None:
        """Drop every entry, in memory and in Redis (after the event bus lost events, any of
        them may be stale). Only this cache's own keys: never a FLUSHDB, as the Redis may hold
        the job queue."""
        self._cleared_at = time.time()
        if self._redis is not None:  # Redis first, as in `invalidate`
            await self._redis.delete_match(self._ns + "*")
        self._memory.clear()
