"""`pricefleet worker`: lease crawl jobs from the queue, run them, store, acknowledge.

One process: one HTTP session, one `SiteCrawl` per site (the same job handlers as an
in-process crawl), up to `concurrency` jobs at once, leased in batches. Discovered URLs go back
to the queue as jobs of the same run (the queue's per-run dedup is the crawl's frontier).

At-least-once: a job is acknowledged only after what it found has been written to the store
(sightings are flushed in batches, then that batch's leases are acked), so a worker killed at
any instant loses nothing; the store's idempotent ingest makes the replay harmless. Leases are
kept alive by a heartbeat while their job runs.

Failures: a job that raises is failed with its error (retried with backoff, dead after its
attempts); a 429 or 5xx that outlasted the fetcher's retries also holds the site for its
`Retry-After`; an open circuit breaker holds the site and gives the job back untried.

Shutdown (SIGTERM, spot-safe): stop leasing, let in-flight jobs finish within `grace`
seconds, flush and ack them, release what is still running, exit 0. `burst` drains the queue of
the worker's sites and exits (Kubernetes Job mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pricefleet.crawl.engine import SiteCrawl
from pricefleet.crawl.runner import policy_of
from pricefleet.crawl.urls import canonical
from pricefleet.errors import CircuitOpen, PricefleetError, QueueError, RetryLater
from pricefleet.events import EventBus, price_changed
from pricefleet.fetch import BrowserFetcher, Fetcher, Response
from pricefleet.metrics import ACTIVE_WORKERS, SCRAPE_ERRORS
from pricefleet.models import JobKind, Site
from pricefleet.queue import JobQueue, Lease, NewJob, SiteLimits
from pricefleet.queue.limiter import QueueLimiter, prepaid
from pricefleet.sites.schema import Recipe
from pricefleet.store.base import Store
from pricefleet.store.records import FetchState, IngestResult

__all__ = ["Worker", "WorkerOptions", "WorkerReport"]

log = logging.getLogger(__name__)

#: Longest wait between lease attempts while the queue is unreachable.
MAX_OUTAGE_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker runs."""

    concurrency: int = 32
    #: Most jobs leased in one call.
    batch: int = 32
    visibility: float = 60.0
    #: Seconds in-flight jobs get to finish after SIGTERM.
    grace: float = 120.0
    sites: tuple[str, ...] | None = None
    #: Drain the queue and exit.
    burst: bool = False
    #: Longest wait between leases while the queue gives nothing.
    idle_poll: float = 1.0
    #: Seconds between flushes of stored work (and acks of its jobs).
    flush_every: float = 0.5


@dataclass(slots=True)
class WorkerReport:
    """What a worker did."""

    leased: int = 0
    acked: int = 0
    failed: int = 0
    released: int = 0
    started: float = field(default_factory=time.monotonic)


class Worker:
    """A crawl worker over a queue and a store; `await run()` until stopped or drained."""

    def __init__(
        self,
        queue: JobQueue,
        store: Store,
        recipes: Mapping[str, Recipe],
        options: WorkerOptions | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.queue = queue
        self.store = store
        #: Where stored price changes are announced (API caches drop them); None: nowhere.
        self.events = events
        self.recipes = dict(recipes)
        self.options = options or WorkerOptions()
        self.report = WorkerReport()
        self._stopping = asyncio.Event()
        self._inflight: dict[str, Lease] = {}  # token -> lease
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished: dict[str, list[Lease]] = {}  # site -> leases whose work is buffered
        self._crawls: dict[str, SiteCrawl] = {}
        self._fetcher: Fetcher | None = None
        self._browser: BrowserFetcher | None = None
        self._flush_lock = asyncio.Lock()
        # Finished jobs stay leased until their flush acks them, and leased jobs count against
        # the site's concurrency in the queue: flush as soon as a batch's worth is waiting.
        self._flush_now = asyncio.Event()
        self._waiting = 0

    def stop(self) -> None:
        """Stop leasing; in-flight jobs finish (up to the grace period)."""
        self._stopping.set()

    # --- the run ----------------------------------------------------------------------------

    async def run(self) -> WorkerReport:
        """Work until `stop()` (or SIGTERM/SIGINT when installed), or until drained in burst
        mode."""
        limits = await self._set_limits()
        self._fetcher = Fetcher(limiter=QueueLimiter(self.queue, limits))
        if any(r.fetch.mode == "browser" for r in self.recipes.values()):
            self._browser = BrowserFetcher(self._fetcher)
        keeper = asyncio.create_task(self._keep_alive())
        ACTIVE_WORKERS.inc()
        try:
            await self._lease_loop()
            await self._drain()
        finally:
            ACTIVE_WORKERS.dec()
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            if self._browser is not None:
                await self._browser.close()
            await self._fetcher.close()
        return self.report

    def install_signals(self) -> None:
        """SIGTERM and SIGINT stop leasing and drain (spot instances, Ctrl-C)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)

    async def _set_limits(self) -> dict[str, SiteLimits]:
        """Register the sites in the store and give the queue their pacing."""
        mine = [
            r for r in self.recipes.values() if not self.options.sites or r.id in self.options.sites
        ]
        await self.store.upsert_sites(
            [Site(r.id, r.name, r.base_url, r.region, r.model_dump()) for r in mine]
        )
        chosen: dict[str, SiteLimits] = {}
        for recipe in mine:
            polite = recipe.politeness
            limits = SiteLimits(
                rate=polite.requests_per_second,
                burst=polite.burst,
                concurrency=polite.max_concurrency,
            )
            await self.queue.set_limits(recipe.id, limits)
            chosen[recipe.id] = limits
        return chosen

    async def _lease_loop(self) -> None:
        options = self.options
        sites = list(options.sites) if options.sites else None
        idle = 0.05
        outage = 0.0
        while not self._stopping.is_set():
            free = options.concurrency - len(self._tasks)
            try:
                leases = (
                    await self.queue.lease(
                        min(free, options.batch), sites=sites, visibility=options.visibility
                    )
                    if free > 0
                    else []
                )
            except QueueError as exc:
                # The queue is down (Redis restarting): keep the jobs in hand, retry with backoff.
                outage = min(MAX_OUTAGE_WAIT, max(0.2, outage * 2))
                log.warning("queue unreachable, retrying in %.1f s: %s", outage, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), outage)
                continue
            outage = 0.0
            known = await self._known_states(leases)
            for lease in leases:
                self._start(lease, known)
            if leases:
                idle = 0.05
                continue
            if options.burst and not self._tasks:
                try:
                    if await self._drained(sites):
                        return
                except Exception:  # the queue or the store is unwell: try again shortly
                    log.warning("could not tell whether the queue is drained", exc_info=True)
            # Nothing leasable (empty, paced or full): wait for a job to end or a short while.
            stop = asyncio.ensure_future(self._stopping.wait())
            waiters: set[asyncio.Future[Any]] = {stop}
            if free <= 0:
                waiters |= set(self._tasks)
            await asyncio.wait(waiters, timeout=idle, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            idle = min(options.idle_poll, idle * 2)

    async def _drained(self, sites: list[str] | None) -> bool:
        """Burst mode: nothing queued, delayed or leased on the worker's sites."""
        await self._flush()
        stats = await self.queue.stats(sites)
        return all(s.depth == 0 or s.paused for s in stats.values())

    async def _known_states(
        self, leases: Sequence[Lease]
    ) -> dict[tuple[str, str], FetchState] | None:
        """The remembered fetch states (ETag, content hash) of a lease batch's pages, one store
        read per site instead of one per job; None if the store could not say (each job then
        asks for its own)."""
        urls: dict[str, list[str]] = {}
        for lease in leases:
            if lease.kind in (JobKind.PRODUCT, JobKind.DETAIL):
                urls.setdefault(lease.site_id, []).append(lease.url)
        known: dict[tuple[str, str], FetchState] = {}
        try:
            for site_id, batch in urls.items():
                for url, state in (await self.store.fetch_states(site_id, batch)).items():
                    known[(site_id, url)] = state
        except Exception:  # the jobs will meet the store's trouble themselves, one by one
            log.warning("could not read the fetch states of a lease batch", exc_info=True)
            return None
        return known

    def _start(self, lease: Lease, known: dict[tuple[str, str], FetchState] | None) -> None:
        self.report.leased += 1
        self._inflight[lease.token] = lease
        state = None if known is None else known.get((lease.site_id, lease.url))
        task = asyncio.create_task(self._job(lease, state, looked_up=known is not None))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        """After stop: give in-flight jobs the grace period, release the rest, flush, ack."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.options.grace)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            await self._flush()
        except Exception:
            log.warning("last flush failed (its jobs will run again)", exc_info=True)
        left = list(self._inflight.values())
        if left:
            try:
                self.report.released += await self.queue.release(left)
            except QueueError:
                log.warning("could not release %d jobs; their leases will expire", len(left))
            for lease in left:
                self._inflight.pop(lease.token, None)

    # --- one job ----------------------------------------------------------------------------

    async def _job(self, lease: Lease, known: FetchState | None, *, looked_up: bool) -> None:
        recipe = self.recipes.get(lease.site_id)
        try:
            if recipe is None:
                raise PricefleetError(f"no recipe for site {lease.site_id!r} on this worker")
            crawl = self._crawl(recipe)
            prepaid()  # the lease took this job's first rate slot
            run = str(lease.payload.get("run", ""))
            # Every producer of crawl jobs keys them by their canonical URL (`discovered`
            # below, the scheduler's start and refresh jobs).
            await crawl.process(
                lease.kind,
                lease.url,
                run=run,
                known=known,
                looked_up=looked_up,
                canonical=lease.key == lease.url,
            )
        except asyncio.CancelledError:
            return  # drained past the grace period: released by _drain
        except QueueError:
            # The queue is unreachable (or refused): the lease expires and the job runs again.
            log.warning("job %s %s: queue error", lease.site_id, lease.url, exc_info=True)
            self._inflight.pop(lease.token, None)
        except CircuitOpen as exc:
            await self.queue.hold(lease.site_id, max(1.0, exc.until - time.time()))
            self._inflight.pop(lease.token, None)
            self.report.released += await self.queue.release([lease])
        except Exception as exc:
            # Anything a job raises fails that job (retried, then dead), never the worker.
            if not isinstance(exc, PricefleetError):
                log.warning("job %s %s failed", lease.site_id, lease.url, exc_info=True)
            self._inflight.pop(lease.token, None)
            self.report.failed += 1
            SCRAPE_ERRORS.labels(lease.site_id, type(exc).__name__).inc()
            after = exc.after if isinstance(exc, RetryLater) else None
            try:
                if after:
                    await self.queue.hold(lease.site_id, after)
                error = f"{type(exc).__name__}: {exc}"[:2_000]
                await self.queue.fail(lease, error, retry_after=after)
            except QueueError:
                log.warning("could not record the failure of %s; its lease will expire", lease.url)
        else:
            self._finished.setdefault(lease.site_id, []).append(lease)
            self._waiting += 1
            if self._waiting >= max(8, self.options.batch // 2):
                self._flush_now.set()

    def _crawl(self, recipe: Recipe) -> SiteCrawl:
        crawl = self._crawls.get(recipe.id)
        if crawl is None:
            policy = policy_of(recipe)
            fetcher, browser = self._fetcher, self._browser
            assert fetcher is not None

            async def fetch(
                url: str, etag: str | None, last_modified: str | None, use_browser: bool
            ) -> Response:
                if use_browser and browser is not None:
                    return await browser.fetch(url, policy, wait_for=recipe.fetch.wait_for)
                return await fetcher.fetch(url, policy, etag=etag, last_modified=last_modified)

            async def discovered(kind: JobKind, urls: Sequence[str], run: str) -> None:
                jobs = []
                for url in urls:
                    key = canonical(url)
                    jobs.append(NewJob(recipe.id, key, kind, key, run=run, payload={"run": run}))
                await self.queue.enqueue(jobs)

            crawl = SiteCrawl(
                recipe,
                self.store,
                fetch,
                discovered=discovered,
                autoflush=False,
                on_ingest=self._announce,
            )
            self._crawls[recipe.id] = crawl
        return crawl

    async def _announce(self, result: IngestResult) -> None:
        """Publish a stored batch's price changes (the bus never raises for being down)."""
        if self.events is not None and result.price_changes:
            await self.events.publish(price_changed(result.price_changes))

    # --- bookkeeping ------------------------------------------------------------------------

    async def _keep_alive(self) -> None:
        """Heartbeat leases in flight; flush stored work and ack its jobs."""
        beat_every = max(0.5, self.options.visibility / 3)
        last_beat = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), self.options.flush_every)
            self._flush_now.clear()
            try:
                await self._flush()
                if time.monotonic() - last_beat >= beat_every:
                    last_beat = time.monotonic()
                    await self._heartbeat()
            except Exception:
                # This loop must outlive any error: without it leases lapse and nothing is acked.
                log.warning("worker bookkeeping failed, will retry", exc_info=True)

    async def _heartbeat(self) -> None:
        leases = list(self._inflight.values())
        if not leases:
            return
        kept = await self.queue.heartbeat(leases, self.options.visibility)
        held = {lease.token for lease in kept}
        for lease in leases:
            if lease.token not in held:
                # Lost (expired and taken by another worker): its result will not be acked.
                log.warning("lease lost: %s %s", lease.site_id, lease.url)
                self._inflight.pop(lease.token, None)

    async def _flush(self) -> None:
        """Write buffered sightings, then ack the jobs that produced them."""
        async with self._flush_lock:
            finished, self._finished = self._finished, {}
            self._waiting = 0
            sites = list(finished)
            for position, site_id in enumerate(sites):
                leases = finished[site_id]
                try:
                    await self._crawls[site_id].flush()
                except BaseException:
                    # Not stored (the buffer went with the failed write), and the buffer held
                    # what running jobs of the site had found too: none of the site's jobs in
                    # hand may be acked now. Their leases lapse and they run again. The other
                    # sites' jobs wait for the next flush.
                    for token, lease in list(self._inflight.items()):
                        if lease.site_id == site_id:
                            del self._inflight[token]
                    for later in sites[position + 1 :]:
                        self._finished.setdefault(later, []).extend(finished[later])
                    raise
                held = [lease for lease in leases if lease.token in self._inflight]
                try:
                    if held:
                        self.report.acked += await self.queue.ack(held)
                except BaseException:
                    # Stored but not acked: ack at the next flush (leases kept alive meanwhile).
                    for later in sites[position:]:
                        self._finished.setdefault(later, []).extend(finished[later])
                    raise
                for lease in leases:
                    self._inflight.pop(lease.token, None)
