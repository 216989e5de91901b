"""The fleet's process entry points (`pricefleet worker | scheduler | autoscale | run`).

Each builds its context once from the settings (queue, store, recipes), runs until SIGTERM or
SIGINT, and closes what it opened. The CLI only parses options and calls one of these.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, multiprocess, start_http_server

from pricefleet.config import Settings
from pricefleet.errors import ConfigError
from pricefleet.events import EventBus
from pricefleet.queue import JobQueue
from pricefleet.sites import Recipe, load_recipes
from pricefleet.store import Store
from pricefleet.workers.autoscale import ScalingRule, Supervisor
from pricefleet.workers.children import Child, keep_running
from pricefleet.workers.scheduler import Scheduler
from pricefleet.workers.worker import Worker, WorkerOptions, WorkerReport

__all__ = [
    "on_signals",
    "run_autoscale",
    "run_embedded",
    "run_scheduler",
    "run_worker",
    "serve_api_process",
    "serve_process_metrics",
    "share_metrics",
    "worker_command",
]

log = logging.getLogger(__name__)


def _recipes(settings: Settings, sites: Sequence[str] | None) -> dict[str, Recipe]:
    recipes = load_recipes(settings.recipes_dir)
    if sites:
        unknown = sorted(set(sites) - set(recipes))
        if unknown:
            known = ", ".join(sorted(recipes)) or "none"
            raise ConfigError(f"no recipe for {unknown} in {settings.recipes_dir}; known: {known}")
        recipes = {site: recipes[site] for site in sites}
    return recipes


#: What SIGTERM/SIGINT stop in this process (`run` has a scheduler and a supervisor).
_stops: list[Callable[[], None]] = []


def on_signals(stop: Callable[[], None]) -> None:
    """Call `stop` on SIGTERM or SIGINT, beside whatever else registered."""
    _stops.append(stop)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: [halt() for halt in list(_stops)])


def _queue(settings: Settings) -> JobQueue:
    return JobQueue.from_url(settings.effective_queue_url, prefix=settings.queue_prefix)


async def run_worker(
    settings: Settings, options: WorkerOptions, *, metrics_port: int | None = None
) -> WorkerReport:
    """A crawl worker until SIGTERM (drain) or, with `burst`, until the queue is empty. With
    `metrics_port`, its Prometheus metrics (`products_scraped_total`, `scrape_errors_total`,
    `active_workers`) are served there: in the cluster profile nothing else exports them."""
    recipes = _recipes(settings, options.sites)
    if metrics_port is not None:
        serve_process_metrics(metrics_port)
    queue = _queue(settings)
    store = Store.from_settings(settings)
    events = EventBus.from_url(settings.events_url, prefix=settings.queue_prefix)
    try:
        worker = Worker(queue, store, recipes, options, events=events)
        on_signals(worker.stop)
        return await worker.run()
    finally:
        await events.close()
        await store.close()
        await queue.close()


class _QueueMetrics:
    """The queue's per-site figures as Prometheus gauges (what KEDA and the HPA scale on)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ready = Gauge(
            "pricefleet_queue_ready_jobs", "Jobs ready to lease", ["site"], registry=registry
        )
        self.leased = Gauge(
            "pricefleet_queue_leased_jobs", "Jobs leased", ["site"], registry=registry
        )
        self.delayed = Gauge(
            "pricefleet_queue_delayed_jobs",
            "Jobs waiting for their time",
            ["site"],
            registry=registry,
        )
        self.dead = Gauge(
            "pricefleet_queue_dead_jobs", "Dead-letter jobs", ["site"], registry=registry
        )
        self.oldest = Gauge(
            "pricefleet_queue_oldest_age_seconds",
            "How long the oldest ready job has waited",
            ["site"],
            registry=registry,
        )

    async def update(self, queue: JobQueue) -> None:
        for site, stats in (await queue.stats()).items():
            self.ready.labels(site).set(stats.queued)
            self.leased.labels(site).set(stats.leased)
            self.delayed.labels(site).set(stats.delayed)
            self.dead.labels(site).set(stats.dead)
            self.oldest.labels(site).set(stats.oldest_age)


async def run_scheduler(
    settings: Settings, *, tick: float = 30.0, once: bool = False, metrics_port: int | None = None
) -> None:
    """The scheduler until SIGTERM (or one tick with `once`), exporting queue metrics."""
    recipes = _recipes(settings, None)
    queue = _queue(settings)
    store = Store.from_settings(settings)
    registry = CollectorRegistry()
    metrics = _QueueMetrics(registry)
    if metrics_port is not None:
        start_http_server(metrics_port, registry=registry)
    try:
        if settings.profile.value == "embedded":
            await store.upgrade()  # the embedded profile migrates on start-up
        scheduler = Scheduler(
            queue,
            store,
            recipes,
            tick=tick,
            freshness=settings.freshness_seconds,
            trending_every=settings.trending_refresh_seconds,
        )
        if once:
            report = await scheduler.tick()
            log.info(
                "scheduler: started %s, refreshed %s, trending recomputed: %s",
                report.started,
                report.refreshed,
                report.trending,
            )
            await metrics.update(queue)
            return
        on_signals(scheduler.stop)
        runner = asyncio.create_task(scheduler.run())
        while not runner.done():
            await metrics.update(queue)
            await asyncio.wait({runner}, timeout=tick)
        await runner
    finally:
        await store.close()
        await queue.close()


def worker_command(worker_args: Sequence[str]) -> list[str]:
    """The command line of a worker process started by the autoscaler."""
    return [sys.executable, "-m", "pricefleet", "worker", *worker_args]


async def run_autoscale(
    settings: Settings,
    rule: ScalingRule,
    worker_args: Sequence[str],
    *,
    interval: float = 5.0,
    grace: float = 120.0,
    metrics_port: int | None = None,
) -> None:
    """Supervise local worker processes until SIGTERM, then drain them. With `metrics_port`,
    serve the supervisor's figures and its workers' metrics there."""
    queue = _queue(settings)
    supervisor = Supervisor(
        queue, worker_command(worker_args), rule, interval=interval, grace=grace
    )
    if metrics_port is not None:
        # The workers write their metrics to a shared folder, exported here beside the
        # supervisor's own: one scrape target for the whole pool.
        share_metrics()
        multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            supervisor.registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"]
        )
        try:
            start_http_server(metrics_port, registry=supervisor.registry)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on port {metrics_port}: {exc}") from None
    try:
        on_signals(supervisor.stop)
        await supervisor.run()
    finally:
        await queue.close()


async def run_embedded(
    settings: Settings,
    rule: ScalingRule,
    worker_args: Sequence[str],
    *,
    tick: float = 30.0,
    api: bool = True,
) -> None:
    """`pricefleet run`: migrate, then the API, the scheduler and autoscaled workers in one
    process tree until SIGTERM/SIGINT. The API and the workers share a Prometheus multiprocess
    folder, so the API's /metrics also counts the workers' products and errors."""
    store = Store.from_settings(settings)
    try:
        await store.upgrade()
    finally:
        await store.close()
    share_metrics()
    tasks = {
        asyncio.create_task(run_scheduler(settings, tick=tick)),
        asyncio.create_task(run_autoscale(settings, rule, worker_args)),
    }
    if api:
        tasks.add(asyncio.create_task(serve_api_process(settings)))
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in pending:
        await task  # all stop on the same signal
    for task in done:
        task.result()


def serve_process_metrics(port: int) -> None:
    """Serve this process's default Prometheus registry on `port` (all interfaces) from a
    thread, or the multiprocess folder's sum when `PROMETHEUS_MULTIPROC_DIR` is set."""
    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    try:
        start_http_server(port, registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on port {port}: {exc}") from None


def share_metrics() -> None:
    """Have the child processes started from now on (API, workers) write their metrics to one
    multiprocess folder, so the API's /metrics adds them up."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Read by each child when it imports prometheus_client; this process is unaffected.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pricefleet-metrics-")


async def serve_api_process(settings: Settings) -> None:
    """Run `pricefleet api` as a child process until SIGTERM/SIGINT, restarting it if it dies
    (granian serves on its own event loop, so it cannot share this one)."""
    stopping = asyncio.Event()
    on_signals(stopping.set)
    command = [sys.executable, "-m", "pricefleet", "api"]
    command += ["--host", settings.api_host, "--port", str(settings.api_port)]
    log.info("API serving on http://%s:%d", settings.api_host, settings.api_port)
    await keep_running(Child("API", command), stopping)
