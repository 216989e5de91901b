"""`pricefleet scheduler`: put crawls on the queue when their sites fall due, keep data fresh.

Every `tick` seconds, for every site:

- **Schedule.** The recipe's schedule (`every` or `cron`) names the latest instant the site was
  due. The scheduler moves the site's `crawl` mark in the queue to that instant
  (`JobQueue.advance`, atomic): the one scheduler that moves it enqueues the crawl's start jobs,
  as run `<instant>`. Two schedulers, or one restarted, never start a crawl twice.
- **Freshness** (seed `004`: data fresher than 24 h). Every `fresh_every` seconds, products not
  seen for `freshness` seconds get refresh jobs: their own page for sites crawled page by page,
  or a new crawl for sites read through an API.
- **Trending.** The store recomputes its trending moves (`Store.refresh_trending`: the
  materialised view on PostgreSQL, a table on SQLite) on start-up and then every
  `trending_every` seconds at most; sooner when a refresh is cheap: every
  `TRENDING_COST_SHARE` × its own last duration, but not more often than every
  `TRENDING_MIN_SECONDS` (a small catalogue's moves show within a minute; a refresh of a million
  products, about a minute, keeps its 10-minute period). Two schedulers both refresh: redundant
  work, never wrong.
- **Reconciliation.** If the queue lost its contents (Redis restarted without persistence), the
  marks went with them: the next tick finds the current instant's crawl not started and starts
  it again from its seeds, and the freshness pass re-enqueues whatever the store says is stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pricefleet.crawl.engine import start_urls
from pricefleet.crawl.urls import canonical
from pricefleet.errors import PricefleetError
from pricefleet.models import JobKind, Site
from pricefleet.queue import JobQueue, NewJob
from pricefleet.sites.schema import Recipe
from pricefleet.store.base import Store

__all__ = ["Scheduler", "TickReport", "refresh_jobs", "start_jobs"]

log = logging.getLogger(__name__)

#: Refresh jobs go before a crawl's own jobs.
REFRESH_PRIORITY = 5
#: Refresh jobs enqueued per site and pass, at most.
REFRESH_LIMIT = 10_000
#: Trending refreshes come at least this many seconds apart…
TRENDING_MIN_SECONDS = 60.0
#: …and at least this many times their own duration apart (a refresh takes at most 1/20th of
#: the database's time), up to the scheduler's `trending_every`.
TRENDING_COST_SHARE = 20.0


def start_jobs(recipe: Recipe, run: str, *, priority: int = 0) -> list[NewJob]:
    """The jobs a crawl of `recipe` starts from (sitemaps, listing seeds, API start URLs)."""
    jobs = []
    for kind, urls in start_urls(recipe):
        for url in urls:
            key = canonical(url)
            jobs.append(
                NewJob(recipe.id, key, kind, key, priority=priority, run=run, payload={"run": run})
            )
    return jobs


def refresh_jobs(
    recipe: Recipe,
    urls: Sequence[str],
    *,
    now: datetime,
    priority: int = REFRESH_PRIORITY,
    run: str = "",
) -> list[NewJob]:
    """Jobs that see these products of `recipe` again: each one's own page, deduplicated
    against the same page queued or running. Products of an API shop have no page of their
    own, so the shop's API is crawled again instead, at most once a day (its run dedups)."""
    if recipe.discovery.api is not None:
        return start_jobs(recipe, run or f"fresh-{now:%Y%m%d}", priority=priority)
    return [
        NewJob(
            recipe.id,
            key,
            JobKind.PRODUCT,
            key,
            priority=priority,
            run=run,
            payload={"run": run} if run else {},
        )
        for key in dict.fromkeys(canonical(url) for url in urls)
    ]


@dataclass(slots=True)
class TickReport:
    """What one tick did."""

    started: list[str] = field(default_factory=list)  # sites whose crawl started
    refreshed: dict[str, int] = field(default_factory=dict)  # site -> refresh jobs enqueued
    trending: bool = False  # the trending moves were recomputed


class Scheduler:
    """Starts due crawls and refreshes stale products; see the module docstring."""

    def __init__(
        self,
        queue: JobQueue,
        store: Store,
        recipes: Mapping[str, Recipe],
        *,
        tick: float = 30.0,
        freshness: float = 86_400.0,
        fresh_every: float = 600.0,
        trending_every: float = 600.0,
    ) -> None:
        self.queue = queue
        self.store = store
        self.recipes = dict(recipes)
        self.tick_seconds = tick
        self.freshness = freshness
        self.fresh_every = fresh_every
        self.trending_every = trending_every  # 0: never
        self._last_fresh = -float("inf")
        self._last_trending = -float("inf")
        self._trending_took = 0.0  # seconds the last refresh took
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """End `run` after the current tick."""
        self._stop.set()

    async def run(self) -> None:
        """Tick until stopped; a failing tick (queue or store unreachable) is logged and
        retried at the next one."""
        await self.store.upsert_sites(
            [
                Site(r.id, r.name, r.base_url, r.region, r.model_dump())
                for r in self.recipes.values()
            ]
        )
        while not self._stop.is_set():
            try:
                report = await self.tick()
                if report.started or report.refreshed:
                    log.info(
                        "scheduler: started %s, refreshed %s", report.started, report.refreshed
                    )
            except PricefleetError as exc:
                log.warning("scheduler tick failed, retrying next tick: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.tick_seconds)

    async def tick(self, now: datetime | None = None) -> TickReport:
        """Start every due crawl; run the freshness pass and the trending refresh when their
        time has come."""
        now = now or datetime.now(UTC)
        report = TickReport()
        for recipe in self.recipes.values():
            due = recipe.schedule.latest(now)
            if await self.queue.advance(recipe.id, "crawl", due.timestamp()):
                run = f"{due:%Y%m%dT%H%M%SZ}"
                await self.queue.enqueue(start_jobs(recipe, run))
                report.started.append(recipe.id)
        if time.monotonic() - self._last_fresh >= self.fresh_every:
            self._last_fresh = time.monotonic()
            for recipe in self.recipes.values():
                count = await self._refresh(recipe, now)
                if count:
                    report.refreshed[recipe.id] = count
        since = time.monotonic() - self._last_trending
        period = min(
            self.trending_every,
            max(TRENDING_MIN_SECONDS, TRENDING_COST_SHARE * self._trending_took),
        )
        if self.trending_every > 0 and since >= period:
            self._last_trending = time.monotonic()
            try:
                await self.store.refresh_trending()
                report.trending = True
                self._trending_took = time.monotonic() - self._last_trending
                log.info("scheduler: trending recomputed in %.1f s", self._trending_took)
            except Exception as exc:  # the crawls go on; the next period tries again
                log.warning("scheduler: trending refresh failed: %s", exc)
        return report

    async def _refresh(self, recipe: Recipe, now: datetime) -> int:
        """Refresh jobs for the site's products not seen for `freshness` seconds."""
        stale = await self.store.stale_products(
            recipe.id, now - timedelta(seconds=self.freshness), REFRESH_LIMIT
        )
        if not stale:
            return 0
        jobs = refresh_jobs(recipe, [url for _, url in stale], now=now)
        return await self.queue.enqueue(jobs)
