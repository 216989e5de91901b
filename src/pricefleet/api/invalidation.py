"""Cache invalidation driven by the event bus, and the CDN purge hook.

Each API process subscribes to the bus. A `product.price_changed` event drops the cached
answers tagged with those products (one product, its history) in this process and, in the
cluster, in Redis — which the other processes' memory tier follows through client-side
tracking. A `bus.reset` (events were lost) drops the whole cache. Answers spanning many products
(lists, search, compare, trending) are not tagged per product: their short TTLs bound how long
they lag (5–10 min by default).

With `PRICEFLEET_CACHE_PURGE_URL` set, the dropped tags are also POSTed there as
`{"tags": [...]}` — a hook for a CDN purge (Cloudflare Cache-Tag, Fastly Surrogate-Key). In
the cluster every API process hears each event, so one of them claims it (a short Redis lock)
and only that one calls the hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from prometheus_client import Counter

from pricefleet.api.cache import ApiCache, product_tag
from pricefleet.events import BUS_RESET, PRICE_CHANGED, Event, EventBus

__all__ = ["PURGES", "invalidation"]

log = logging.getLogger(__name__)

PURGES = Counter(
    "pricefleet_cache_purges_total", "Cache invalidations by outcome.", ["reason", "outcome"]
)
_PURGE_TIMEOUT = aiohttp.ClientTimeout(total=5)
#: Seconds the subscription may take to close when the API stops.
_CLOSE_SECONDS = 5.0


@asynccontextmanager
async def invalidation(
    cache: ApiCache, bus: EventBus, purge_url: str | None = None
) -> AsyncIterator[None]:
    """Invalidate `cache` on the bus's events while the context is open (the subscription is
    live when it is entered)."""
    subscription = bus.subscribe()
    await subscription.start()
    session = aiohttp.ClientSession(timeout=_PURGE_TIMEOUT) if purge_url else None
    task = asyncio.create_task(_follow(cache, subscription, session, purge_url))
    try:
        yield
    finally:
        task.cancel()
        try:
            # Bounded: a server worker must exit on SIGTERM even when the bus's connection
            # does not close (a worker once sat in its lifespan shutdown after SIGTERM).
            async with asyncio.timeout(_CLOSE_SECONDS):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await subscription.aclose()
        except TimeoutError:
            log.warning("the event subscription did not close in %s s; leaving it", _CLOSE_SECONDS)
        if session is not None:
            await session.close()


async def _follow(
    cache: ApiCache,
    events: AsyncIterator[Event],
    session: aiohttp.ClientSession | None,
    purge_url: str | None,
) -> None:
    async for event in events:
        try:
            await _apply(cache, event, session, purge_url)
        except Exception:  # one failed invalidation must not end the loop
            PURGES.labels(event.kind, "error").inc()
            log.exception("cache invalidation for %s failed", event.kind)


async def _apply(
    cache: ApiCache, event: Event, session: aiohttp.ClientSession | None, purge_url: str | None
) -> None:
    if event.kind == PRICE_CHANGED:
        tags = [product_tag(event.site_id, pid) for pid in event.product_ids]
        await cache.invalidate(tags)
        PURGES.labels(event.kind, "ok").inc()
        if session is not None and purge_url is not None:
            await _purge(cache, session, purge_url, tags, event)
    elif event.kind == BUS_RESET:
        log.warning("the event bus lost events: dropping the whole API cache")
        await cache.clear()
        PURGES.labels(event.kind, "ok").inc()


async def _purge(
    cache: ApiCache,
    session: aiohttp.ClientSession,
    url: str,
    tags: list[str],
    event: Event,
) -> None:
    """POST the tags to the purge hook, once across the API processes."""
    digest = hashlib.blake2b(
        f"{event.site_id}|{event.at}|{','.join(tags)}".encode(), digest_size=12
    ).hexdigest()
    if not await cache.claim(f"purge:{digest}", ttl=60):
        return
    try:
        async with session.post(url, json={"tags": tags}) as response:
            ok = response.status < 400
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("purge hook %s failed: %s", url, exc)
        ok = False
    PURGES.labels("purge_hook", "ok" if ok else "error").inc()
