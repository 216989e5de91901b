"""`create_app`: the FastAPI application, its middleware and its lifespan.

The lifespan builds the `ApiContext` once (store, queue, cache, recipes) and closes it on
shutdown; the embedded profile also migrates the database on start-up, as `pricefleet run`
does. Tests pass their own settings; `pricefleet api` builds them from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.middleware.gzip import GZipMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from pricefleet import __version__
from pricefleet.api.auth import Authenticator, Scope, install_auth, require
from pricefleet.api.cache import ApiCache
from pricefleet.api.context import ApiContext
from pricefleet.api.fastpath import FastPath
from pricefleet.api.invalidation import invalidation
from pricefleet.api.metrics import MetricsMiddleware
from pricefleet.api.problems import document_problems, install_problem_handlers
from pricefleet.api.ratelimit import RateLimiter
from pricefleet.api.routes import catalog, fleet, health, products
from pricefleet.config import Profile, Settings
from pricefleet.errors import PricefleetError
from pricefleet.events import EventBus
from pricefleet.metrics import SCRAPING_QUEUE_DEPTH
from pricefleet.queue import JobQueue
from pricefleet.sites import load_recipes
from pricefleet.store import Store
from pricefleet.web import router as web_router
from pricefleet.web import static_files

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_DESCRIPTION = """Products and their price history from many shops, compared across shops.

Money is a decimal string (`"1.19"`), times are ISO 8601 UTC. Errors are RFC 9457 problem
documents. Lists page by cursor: pass `next_cursor` back as `cursor`."""


async def open_context(settings: Settings) -> ApiContext:
    """Open every long-lived client the API needs (the caller closes them: `close_context`)."""
    recipes = load_recipes(settings.recipes_dir) if settings.recipes_dir.is_dir() else {}
    async with AsyncExitStack() as opened:
        store = Store.from_settings(settings)
        opened.push_async_callback(store.close)
        if settings.profile is Profile.EMBEDDED:
            await store.upgrade()
        queue = JobQueue.from_url(settings.effective_queue_url, prefix=settings.queue_prefix)
        opened.push_async_callback(queue.close)
        cache = ApiCache(settings)
        await cache.init()
        opened.push_async_callback(cache.close)
        limiter = RateLimiter.from_settings(settings)
        opened.push_async_callback(limiter.close)
        events = EventBus.from_url(settings.events_url, prefix=settings.queue_prefix)
        opened.pop_all()  # all open: the caller owns them now
    return ApiContext(
        settings=settings,
        store=store,
        queue=queue,
        cache=cache,
        events=events,
        recipes=recipes,
        auth=Authenticator.from_settings(settings, store),
        limiter=limiter,
    )


async def close_context(ctx: ApiContext) -> None:
    """Close what `open_context` opened."""
    await ctx.auth.flush()  # keys' last use, written in the background
    await ctx.events.close()
    await ctx.limiter.close()
    await ctx.cache.close()
    await ctx.queue.close()
    await ctx.store.close()


#: Seconds the API may take to close its connections when it stops.
_CLOSE_SECONDS = 10.0
#: How often each API process refreshes `scraping_queue_depth` from the queue.
_GAUGE_SECONDS = 5.0


async def _queue_gauges(ctx: ApiContext) -> None:
    """Keep `scraping_queue_depth{site}` current for /metrics (and the alerts on it)."""
    while True:
        try:
            for site, stats in (await ctx.queue.stats()).items():
                SCRAPING_QUEUE_DEPTH.labels(site).set(stats.depth)
        except PricefleetError as exc:
            log.warning("queue figures unavailable for metrics: %s", exc)
        await asyncio.sleep(_GAUGE_SECONDS)


async def _warming(ctx: ApiContext) -> None:
    """The cache warming job: popular answers are rebuilt before they expire."""
    settings = ctx.settings
    while True:
        await asyncio.sleep(settings.cache_warm_seconds)
        try:
            rebuilt = await ctx.cache.warm(settings.cache_warm_top)
        except PricefleetError as exc:
            log.warning("cache warming failed: %s", exc)
        else:
            log.debug("cache warming rebuilt %d answers", rebuilt)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API application; `settings` default to the environment's."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = await open_context(settings)
        app.state.ctx = ctx
        background = [asyncio.create_task(_queue_gauges(ctx))]
        if settings.cache_warm_seconds > 0:
            background.append(asyncio.create_task(_warming(ctx)))
        try:
            async with invalidation(ctx.cache, ctx.events, settings.cache_purge_url):
                yield
        finally:
            for task in background:
                task.cancel()
            try:
                # Bounded, so that a server worker exits on SIGTERM even when a connection
                # does not close (a worker once sat in its lifespan shutdown after SIGTERM).
                async with asyncio.timeout(_CLOSE_SECONDS):
                    for task in background:
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                    await close_context(ctx)
            except TimeoutError:
                log.warning("the API's connections did not close in %s s", _CLOSE_SECONDS)

    app = FastAPI(
        title="pricefleet",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    document_problems(app)
    reader = [Depends(require(Scope.READ))]
    app.include_router(products.router, dependencies=reader)
    app.include_router(catalog.router, dependencies=reader)
    app.include_router(fleet.router)  # each route says its scope
    app.include_router(health.router)  # open: probes and scrapers carry no key
    app.include_router(web_router)  # the dashboard: page shells, their scripts read /v1/…
    app.mount("/static", static_files(), name="static")
    install_auth(app)
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    if settings.api_fast_path:  # cached reads answered before FastAPI, inside the metrics
        app.add_middleware(FastPath)
    app.add_middleware(MetricsMiddleware)
    if settings.forwarded_allow_ips:  # outermost: everything after sees the real client
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.forwarded_allow_ips))
    return app
