"""The fleet: shops with their freshness, job queues (pause/resume), crawls on demand."""

from __future__ import annotations

import asyncio
import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from prometheus_client import CollectorRegistry, multiprocess
from starlette.responses import Response

from pricefleet.api.auth import Scope, require
from pricefleet.api.cache import Entry, Kind, make_entry
from pricefleet.api.context import ApiContext, context
from pricefleet.api.http import cached_answer
from pricefleet.api.problems import Problem
from pricefleet.api.schemas import (
    CrawlIn,
    CrawlOut,
    DeadJobOut,
    QueueOut,
    QueuesOut,
    SiteOut,
    SitesOut,
)
from pricefleet.config import Profile, Settings
from pricefleet.crawl.urls import same_site
from pricefleet.queue.base import RunProgress, SiteStats
from pricefleet.workers.scheduler import refresh_jobs, start_jobs

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["fleet"])

Ctx = Annotated[ApiContext, Depends(context)]
SiteId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
#: A crawl id is `<site>.<token>`: the site finds the queue, the token the crawl's run.
_CRAWL_ID = r"^[a-z0-9][a-z0-9_-]*\.[A-Za-z0-9_-]{8,64}$"
#: Dead jobs per site that /v1/queues shows (the dashboard's "recent errors").
_DEAD_PER_SITE = 5


def queue_out(stats: SiteStats) -> QueueOut:
    """A site's queue figures as the API shows them."""
    return QueueOut(
        site_id=stats.site_id,
        depth=stats.depth,
        queued=stats.queued,
        delayed=stats.delayed,
        leased=stats.leased,
        dead=stats.dead,
        oldest_age_seconds=stats.oldest_age,
        paused=stats.paused,
        hold_seconds=stats.hold_seconds,
        enqueued_total=stats.enqueued_total,
        acked_total=stats.acked_total,
        failed_total=stats.failed_total,
    )


@router.get(
    "/sites",
    response_model=SitesOut,
    summary="Shops, their freshness and queues",
    dependencies=[Depends(require(Scope.READ))],
)
async def sites(request: Request, ctx: Ctx) -> Response:
    """Every registered shop: products, how many are stale (not seen within the freshness
    window), its newest sighting, and its crawl queue."""

    async def build() -> Entry:
        window = ctx.settings.freshness_seconds
        summaries = await ctx.store.site_summaries(datetime.now(UTC) - timedelta(seconds=window))
        queues = await ctx.queue.stats([s.site_id for s in summaries]) if summaries else {}
        items = [
            SiteOut(
                id=s.site_id,
                name=s.name,
                base_url=s.base_url,
                region=s.region,
                products=s.products,
                stale_products=s.stale,
                fresh_ratio=(s.products - s.stale) / s.products if s.products else None,
                last_seen=s.last_seen,
                queue=queue_out(queues[s.site_id]) if s.site_id in queues else None,
            )
            for s in summaries
        ]
        body = SitesOut(freshness_seconds=window, items=items).model_dump_json()
        return make_entry(body.encode(), [Kind.SITES.value])

    return await cached_answer(request, ctx, Kind.SITES, "sites", build)


@router.get(
    "/queues",
    response_model=QueuesOut,
    summary="Job queues per site",
    dependencies=[Depends(require(Scope.CRAWL))],
)
async def queues(ctx: Ctx) -> QueuesOut:
    """Depth, oldest job's age, in-flight jobs and totals of every site's queue (live), each
    site's newest dead jobs, and the worker processes alive when this API can see them."""
    stats = await ctx.queue.stats()
    sites = sorted(stats)
    dead = [await ctx.queue.dead(site, limit=_DEAD_PER_SITE) for site in sites if stats[site].dead]
    return QueuesOut(
        items=[queue_out(stats[site]) for site in sites],
        recent_dead=[
            DeadJobOut(site_id=job.site_id, url=job.url, attempts=job.attempts, error=error)
            for jobs in dead
            for job, error in jobs
        ],
        workers=await asyncio.to_thread(_visible_workers, ctx.settings),
    )


def _visible_workers(settings: Settings) -> int | None:
    """Worker processes alive according to the multiprocess metrics folder, which `pricefleet
    run` shares between its API and its workers (the embedded profile); None where the workers
    write elsewhere (the cluster, where Prometheus sums each worker's `active_workers`)."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if settings.profile is not Profile.EMBEDDED or not folder:
        return None
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    for metric in registry.collect():
        if metric.name == "active_workers":
            return round(sum(sample.value for sample in metric.samples))
    return 0


@router.post(
    "/queues/{site_id}/pause",
    response_model=QueueOut,
    summary="Pause a site",
    dependencies=[Depends(require(Scope.ADMIN))],
)
async def pause(ctx: Ctx, site_id: SiteId) -> QueueOut:
    """Stop leasing the site's jobs (in-flight ones finish); they wait until resumed."""
    await ctx.queue.pause(site_id)
    return queue_out((await ctx.queue.stats([site_id]))[site_id])


@router.post(
    "/queues/{site_id}/resume",
    response_model=QueueOut,
    summary="Resume a site",
    dependencies=[Depends(require(Scope.ADMIN))],
)
async def resume(ctx: Ctx, site_id: SiteId) -> QueueOut:
    """Lease the site's jobs again."""
    await ctx.queue.resume(site_id)
    return queue_out((await ctx.queue.stats([site_id]))[site_id])


@router.post(
    "/crawls",
    response_model=CrawlOut,
    status_code=202,
    summary="Start a crawl",
    dependencies=[Depends(require(Scope.CRAWL))],
)
async def start_crawl(ctx: Ctx, crawl: CrawlIn) -> CrawlOut:
    """Crawl a whole site from its recipe's start URLs, or refresh a list of its product
    pages. Jobs already queued or running for the same page are not queued twice."""
    recipe = ctx.recipes.get(crawl.site_id)
    if recipe is None:
        known = ", ".join(sorted(ctx.recipes)) or "none"
        raise Problem(404, f"no recipe for site {crawl.site_id!r}; known sites: {known}")
    run = secrets.token_urlsafe(12)
    if crawl.urls is None:
        jobs = start_jobs(recipe, run, priority=crawl.priority)
    else:
        urls = [str(url) for url in crawl.urls]
        outside = [u for u in urls if not same_site(u, [recipe.base_url, *recipe.seeds])]
        if outside:
            raise Problem(
                422,
                f"URLs outside site {crawl.site_id!r}: {outside[:3]}",
                title="Invalid request",
            )
        jobs = refresh_jobs(recipe, urls, now=datetime.now(UTC), priority=crawl.priority, run=run)
    await ctx.queue.enqueue(jobs)
    # Every page may already be queued or running for another crawl: then this one is empty.
    return await _crawl_out(ctx, crawl.site_id, run, new=True)


@router.get(
    "/crawls/{crawl_id}",
    response_model=CrawlOut,
    summary="A crawl's progress",
    dependencies=[Depends(require(Scope.CRAWL))],
)
async def crawl_progress(
    ctx: Ctx, crawl_id: Annotated[str, Path(pattern=_CRAWL_ID, max_length=140)]
) -> CrawlOut:
    """Jobs of the crawl so far — enqueued (pages it discovered included), done, dead — and
    its site's queue. A crawl is remembered for three days after its last new job."""
    site_id, _, run = crawl_id.partition(".")
    return await _crawl_out(ctx, site_id, run)


async def _crawl_out(ctx: ApiContext, site_id: str, run: str, *, new: bool = False) -> CrawlOut:
    progress = await ctx.queue.run_progress(site_id, run)
    if progress is None:
        if not new:
            raise Problem(404, f"no crawl {site_id}.{run} (unknown, or finished over 3 days ago)")
        progress = RunProgress(site_id, run, 0, 0, 0)
    stats = (await ctx.queue.stats([site_id])).get(site_id)
    finished = progress.done + progress.dead
    status: Literal["queued", "running", "done"] = (
        "done" if progress.pending == 0 else ("running" if finished else "queued")
    )
    return CrawlOut(
        id=f"{site_id}.{run}",
        site_id=site_id,
        status=status,
        jobs_enqueued=progress.enqueued,
        jobs_done=progress.done,
        jobs_dead=progress.dead,
        jobs_pending=progress.pending,
        queue=queue_out(stats) if stats else None,
    )
