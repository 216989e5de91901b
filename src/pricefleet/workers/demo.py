"""`pricefleet demo`'s crawl: the embedded fleet (`pricefleet run`'s parts) on the demo shops.

The demo shops' recipes get a fresh crawl each time (a run of its own, whatever the schedule
says), worker processes drain it under the autoscaler's supervisor while a progress bar follows
the queue, and a summary prints when the queue is empty. Then, unless asked to exit, the
scheduler and the workers keep running (as `pricefleet run` does) until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pricefleet.config import Settings
from pricefleet.models import Site
from pricefleet.queue import JobQueue, SiteStats
from pricefleet.sites.schema import Recipe
from pricefleet.store import Store
from pricefleet.store.admin.stats import stats as store_stats
from pricefleet.workers.autoscale import ScalingRule, Supervisor
from pricefleet.workers.main import (
    on_signals,
    serve_api_process,
    share_metrics,
    worker_command,
)
from pricefleet.workers.scheduler import Scheduler, start_jobs

__all__ = ["run_demo_fleet"]


async def _answers(url: str, *, seconds: float) -> bool:
    """Whether `url` answers 200 within `seconds` (the API process starting)."""
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as answer:
                    if answer.status == 200:
                        return True
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
    return False


def _summary(stats: dict[str, SiteStats], totals: dict[str, object], seconds: float) -> Table:
    table = Table(title=f"demo crawl: {seconds:.1f} s")
    for column in ("site", "jobs done", "failed attempts", "dead (errors)"):
        table.add_column(column, justify="left" if column == "site" else "right")
    for site, s in sorted(stats.items()):
        table.add_row(site, f"{s.acked_total:,}", f"{s.failed_total:,}", f"{s.dead:,}")
    products = int(str(totals.get("products", 0)))
    observations = int(str(totals.get("observations", 0)))
    table.caption = (
        f"store: {products:,} products, {observations:,} observations; "
        f"{products / max(seconds, 1e-9):,.0f} products/s"
    )
    return table


async def run_demo_fleet(
    settings: Settings,
    recipes: Sequence[Recipe],
    console: Console,
    *,
    workers: int = 2,
    exit_after_crawl: bool = False,
) -> None:
    """Crawl the demo shops with worker processes, summarise, then keep the fleet running
    until SIGINT/SIGTERM (or stop, with `exit_after_crawl`)."""
    ids = [recipe.id for recipe in recipes]
    share_metrics()  # before the workers start: the API's /metrics counts their work
    store = Store.from_settings(settings)
    queue = JobQueue.from_url(settings.effective_queue_url, prefix=settings.queue_prefix)
    rule = ScalingRule(min_workers=workers, max_workers=workers)
    args = ["--sites", ",".join(ids), "--concurrency", "32"]
    supervisor = Supervisor(queue, worker_command(args), rule, interval=1.0, grace=30.0)
    try:
        await store.upgrade()
        await store.upsert_sites(
            [Site(r.id, r.name, r.base_url, r.region, r.model_dump()) for r in recipes]
        )
        now = datetime.now(UTC)
        run = f"demo-{now:%Y%m%dT%H%M%S%fZ}"
        before = await queue.stats(ids)
        for recipe in recipes:
            # This crawl is the one the schedule wants now: the scheduler that follows must
            # not start it again.
            await queue.advance(recipe.id, "crawl", recipe.schedule.latest(now).timestamp())
            await queue.enqueue(start_jobs(recipe, run))
        started = time.monotonic()
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            tasks = {site: progress.add_task(site, total=None) for site in ids}
            while True:
                await supervisor.step()
                stats = await queue.stats(ids)
                for site, s in stats.items():
                    done = s.acked_total - before[site].acked_total + s.dead
                    total = s.enqueued_total - before[site].enqueued_total
                    progress.update(tasks[site], completed=done, total=max(total, done))
                if all(s.depth == 0 for s in stats.values()):
                    break
                await asyncio.sleep(0.5)
        seconds = time.monotonic() - started
        final = await queue.stats(ids)
        console.print(_summary(final, await store_stats(settings), seconds))
        for site in final:
            for lease, error in await queue.dead(site, limit=3):
                console.print(f"[red]dead[/] {site} {lease.url}: {error}")
        if exit_after_crawl:
            return
        api = f"http://{settings.api_host}:{settings.api_port}"
        # Its first tick also recomputes the trending moves of what was just crawled.
        scheduler = Scheduler(
            queue,
            store,
            {r.id: r for r in recipes},
            freshness=settings.freshness_seconds,
            trending_every=settings.trending_refresh_seconds,
        )
        on_signals(scheduler.stop)
        on_signals(supervisor.stop)
        serving = asyncio.create_task(serve_api_process(settings))
        if await _answers(f"{api}/healthz", seconds=60):
            console.print(
                "the fleet keeps the demo shops fresh (scheduler + workers); Ctrl-C stops\n"
                f"API: {api}/docs — try: curl '{api}/v1/search?q=leche'\n"
                f"Dashboard: [bold]{api}/[/] (search, price-history charts, compare, trending)"
            )
        else:
            console.print(f"[red]the API did not answer at {api}/healthz[/]: see the log above")
        await asyncio.gather(scheduler.run(), supervisor.run(), serving)
    finally:
        await supervisor.shutdown()
        await queue.close()
        await store.close()
