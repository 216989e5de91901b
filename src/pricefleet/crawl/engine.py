"""One site crawled end to end in this process: discover, fetch, extract, normalise, store.

The work is a set of jobs (sitemaps, listings, API answers, product pages) run by a pool of
tasks; the fetcher enforces the site's rate, concurrency and robots.txt, so the pool size only
bounds memory. The frontier stays small whatever the shop's size: sitemaps and listing pages
are held back while enough product pages are queued (a 200,000-product sitemap index is
opened a few children at a time, not all at once), and the URLs already queued are kept as
64-bit hashes (`SeenUrls`). Sightings are written in batches; a page that fails becomes a
failure record, never a crashed crawl. Unchanged pages (304, or the same bytes as last time)
are not parsed: the products they show are only confirmed as still seen. The queue issue
distributes these same jobs over workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from selectolax.lexbor import LexborHTMLParser

from pricefleet.crawl.record import product_id, sighting
from pricefleet.crawl.seen import SeenUrls
from pricefleet.crawl.urls import canonical, links, same_site, sitemap_locations
from pricefleet.errors import ExtractError, FetchError, PricefleetError
from pricefleet.extract import Extracted, extract_product
from pricefleet.extract.nesting import check_nesting
from pricefleet.extract.recipe import _jmes, extract_css, extract_json
from pricefleet.fetch import Response
from pricefleet.metrics import PRODUCTS_SCRAPED, SCRAPE_ERRORS
from pricefleet.models import JobKind, Site
from pricefleet.sites.schema import Recipe
from pricefleet.store.base import Store
from pricefleet.store.records import FetchState, IngestResult, Sighting

__all__ = ["WHOLE", "CrawlReport", "Failure", "Share", "SiteCrawl", "start_urls"]

log = logging.getLogger(__name__)

Fetch = Callable[[str, str | None, str | None, bool], Awaitable[Response]]
#: Where discovered URLs go instead of this process's own frontier: (kind, urls, run).
Discovered = Callable[[JobKind, Sequence[str], str], Awaitable[None]]
#: The run (one crawl of the site) the job being processed belongs to; per asyncio task.
_current_run: ContextVar[str] = ContextVar("pricefleet_crawl_run", default="")
#: Jobs that only discover more jobs, many at a time (a sitemap lists up to 50,000 URLs): held
#: back until the queue runs low, so the frontier does not grow with the shop.
_HELD_KINDS = frozenset({JobKind.SITEMAP, JobKind.LISTING})
#: Held jobs running at once, at most.
_DISCOVERING = 4
#: Records (sightings, fetch states, confirmations) written together: two of them a product
#: page, so ~500 products a write, in two transactions. Fewer transactions than with 250; the
#: CPU it saves is within the crawl benchmark's noise (BENCHMARKS.md). What a crash loses is
#: at most a few batches of pages, fetched again on the next crawl (their fetch state with them).
BATCH_SIZE = 1000
#: Buffered records (in batches) past which a page waits for the store's write in progress
#: instead of going on: bounds memory when the store is slower than the crawl.
_BACKLOG_BATCHES = 4


@dataclass(frozen=True, slots=True)
class Share:
    """The part of a site's pages one of several processes crawling it at once takes: those
    whose canonical URL hashes to `index` of `of` (CRC-32, the same in every process). Every
    process reads the site's sitemaps, listings and API pages; each fetches and stores only
    its own products, so none is fetched or stored twice."""

    index: int
    of: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.of:
            raise ValueError(f"share {self.index}/{self.of}: need 0 ≤ index < of")

    def owns(self, key: str) -> bool:
        """Whether the page at canonical URL `key` is this process's to crawl."""
        return self.of == 1 or zlib.crc32(key.encode()) % self.of == self.index


#: The whole site, in one process.
WHOLE = Share(0, 1)


@dataclass(frozen=True, slots=True)
class Job:
    kind: JobKind
    url: str
    known: FetchState | None = None
    #: `url` is known to be canonical already (a queue key): not canonicalised again.
    canonical: bool = False


@dataclass(frozen=True, slots=True)
class Failure:
    """A page that gave no product: where, what kind of page, and why."""

    url: str
    kind: str
    code: str
    message: str


@dataclass(slots=True)
class CrawlReport:
    """What a crawl did."""

    site_id: str
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    pages: int = 0
    products: int = 0
    observations: int = 0
    not_modified: int = 0
    unchanged: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Wall time of the crawl so far."""
        return (self.finished or time.monotonic()) - self.started

    @property
    def products_per_second(self) -> float:
        """Products stored or confirmed per second of wall time."""
        return (self.products + self.not_modified + self.unchanged) / max(self.seconds, 1e-9)


def start_urls(recipe: Recipe) -> list[tuple[JobKind, list[str]]]:
    """Where a crawl of the site starts: its sitemaps, listing seeds and API start URLs."""
    discovery = recipe.discovery
    jobs: list[tuple[JobKind, list[str]]] = []
    if discovery.sitemap is not None:
        default = [recipe.base_url.rstrip("/") + "/sitemap.xml"]
        jobs.append((JobKind.SITEMAP, list(discovery.sitemap.urls or default)))
    if discovery.links is not None:
        jobs.append((JobKind.LISTING, list(recipe.seeds)))
    if discovery.api is not None:
        jobs.append((JobKind.API, list(discovery.api.start)))
    return jobs


class SiteCrawl:
    """A crawl of one site; `await run()` returns its report."""

    def __init__(
        self,
        recipe: Recipe,
        store: Store,
        fetch: Fetch,
        *,
        tasks: int | None = None,
        batch_size: int = BATCH_SIZE,
        on_progress: Callable[[CrawlReport], None] | None = None,
        discovered: Discovered | None = None,
        autoflush: bool = True,
        on_ingest: Callable[[IngestResult], Awaitable[None]] | None = None,
        share: Share = WHOLE,
    ) -> None:
        self.recipe = recipe
        # The part of the site this process crawls when several do (`pricefleet crawl
        # --processes`); a queue worker takes whatever it leases instead.
        self._share = share
        # Told of every stored batch (the worker publishes its price changes as events).
        self._on_ingest = on_ingest
        self._discovered = discovered
        # A queue worker flushes itself, then acks: a write failing inside one job must not
        # take other jobs' findings with it unnoticed.
        self._autoflush = autoflush
        self.store = store
        self._fetch = fetch
        self.tasks = tasks or max(4, recipe.politeness.max_concurrency * 2)
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.report = CrawlReport(recipe.id)
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._seen = SeenUrls()
        # Discovery jobs not queued yet, and how many of them run; released by `_release`.
        self._held: deque[Job] = deque()
        self._discovering = 0
        # Below this many queued jobs, held discovery jobs are let in: enough work for every
        # task while a sitemap or listing page is fetched.
        self._low_water = max(1000, 4 * self.tasks)
        self._sightings: list[Sighting] = []
        self._states: list[FetchState] = []
        self._touch: list[str] = []
        self._flush_lock = asyncio.Lock()
        self._bases = [recipe.base_url, *recipe.seeds]

    # --- the run --------------------------------------------------------------------------

    async def run(self) -> CrawlReport:
        """Crawl the site once, completely."""
        recipe = self.recipe
        await self.store.upsert_sites(
            [Site(recipe.id, recipe.name, recipe.base_url, recipe.region, recipe.model_dump())]
        )
        for kind, urls in start_urls(recipe):
            await self._enqueue(kind, urls)
        workers = [asyncio.create_task(self._work()) for _ in range(self.tasks)]
        try:
            await self._queue.join()
        finally:
            for worker in workers:
                worker.cancel()
            for worker in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
        await self._flush(force=True)
        self.report.finished = time.monotonic()
        return self.report

    async def process(
        self,
        kind: JobKind,
        url: str,
        *,
        run: str = "",
        known: FetchState | None = None,
        looked_up: bool = False,
        canonical: bool = False,
    ) -> None:
        """Run one job of this site (a queue worker's entry point): fetch, discover, extract;
        what it finds is buffered until `flush`, what it discovers goes to `discovered` as
        jobs of `run`. `known` is the URL's fetch state when the caller already looked it up
        (`looked_up`; a worker does it for a whole lease batch at once); `canonical` says
        `url` is canonical already (a queue key). Raises what the job failed with."""
        token = _current_run.set(run)
        try:
            if not looked_up and kind in (JobKind.PRODUCT, JobKind.DETAIL):
                known = (await self.store.fetch_states(self.recipe.id, [url])).get(url)
            await self._run_job(Job(kind, url, known, canonical))
        finally:
            _current_run.reset(token)

    async def flush(self) -> None:
        """Write everything buffered (sightings, confirmations, fetch states) now."""
        await self._flush(force=True)

    async def _enqueue(self, kind: JobKind, urls: list[str]) -> None:
        if self._discovered is not None:
            if urls:
                await self._discovered(kind, urls, _current_run.get())
            return
        keys: Iterable[str] = map(canonical, urls)
        if kind in (JobKind.PRODUCT, JobKind.DETAIL) and self._share.of > 1:
            keys = filter(self._share.owns, keys)
        fresh = [key for key in keys if self._seen.add(key)]
        if not fresh:
            return
        if kind in _HELD_KINDS:
            self._held.extend(Job(kind, url) for url in fresh)
            self._release()
            return
        known: dict[str, FetchState] = {}
        if kind in (JobKind.PRODUCT, JobKind.DETAIL):  # conditional requests pay off there
            known = await self.store.fetch_states(self.recipe.id, fresh)
        for url in fresh:
            self._queue.put_nowait(Job(kind, url, known.get(url)))

    def _release(self) -> None:
        """Queue held discovery jobs while the queue runs low and few of them are running."""
        while (
            self._held
            and self._discovering < _DISCOVERING
            and self._queue.qsize() < self._low_water
        ):
            self._discovering += 1
            self._queue.put_nowait(self._held.popleft())

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._run_job(job)
            except FetchError as exc:
                self._fail(job, type(exc).__name__, str(exc))
            except ExtractError as exc:
                self._fail(job, getattr(exc, "reason", "extract"), str(exc))
            except PricefleetError as exc:
                self._fail(job, type(exc).__name__, str(exc))
            except (ValueError, TypeError, KeyError, LookupError, UnicodeError) as exc:
                # A page we cannot read must not stop the crawl; it is reported with its URL.
                log.warning("crawl %s: %s on %s", self.recipe.id, exc, job.url, exc_info=True)
                self._fail(job, type(exc).__name__, str(exc))
            finally:
                if job.kind in _HELD_KINDS:
                    self._discovering -= 1
                # Before task_done: the last job must not end the crawl with jobs still held.
                self._release()
                self._queue.task_done()
                if self.on_progress is not None:
                    self.on_progress(self.report)

    def _fail(self, job: Job, code: str, message: str) -> None:
        self.report.failures.append(Failure(job.url, job.kind.value, code, message[:500]))
        SCRAPE_ERRORS.labels(self.recipe.id, code).inc()

    # --- one job --------------------------------------------------------------------------

    async def _run_job(self, job: Job) -> None:
        browser = self.recipe.fetch.mode == "browser" and job.kind in (
            JobKind.LISTING,
            JobKind.PRODUCT,
        )
        known = job.known
        response = await self._fetch(
            job.url,
            known.etag if known else None,
            known.last_modified if known else None,
            browser,
        )
        self.report.pages += 1
        if job.kind in (JobKind.PRODUCT, JobKind.DETAIL):
            unchanged = known is not None and known.content_hash == response.content_hash
            if response.not_modified or unchanged:
                if response.not_modified:
                    self.report.not_modified += 1
                else:
                    self.report.unchanged += 1
                if known is not None and known.product_id:
                    self._touch.append(known.product_id)
                self._remember(job.url, response, known.product_id if known else None, known, job)
                await self._flush()
                return
        handler = {
            JobKind.SITEMAP: self._sitemap,
            JobKind.LISTING: self._listing,
            JobKind.API: self._api,
            JobKind.DETAIL: self._detail,
            JobKind.PRODUCT: self._product,
        }[job.kind]
        await handler(job, response)

    async def _sitemap(self, job: Job, response: Response) -> None:
        sitemap = self.recipe.discovery.sitemap
        assert sitemap is not None
        is_index, urls = sitemap_locations(response.body, response.url)
        urls = [u for u in urls if same_site(u, self._bases)]
        if is_index:
            await self._enqueue(JobKind.SITEMAP, urls)
            return
        pattern = re.compile(sitemap.product_url)
        await self._enqueue(JobKind.PRODUCT, [u for u in urls if pattern.search(u)])

    async def _listing(self, job: Job, response: Response) -> None:
        found = self.recipe.discovery.links
        assert found is not None
        check_nesting(response.body, response.url)
        tree = LexborHTMLParser(response.body)
        keep = [u for u in links(tree, found.products, response.url) if same_site(u, self._bases)]
        await self._enqueue(JobKind.PRODUCT, keep)
        more = links(tree, found.categories, response.url) + links(tree, found.next, response.url)
        await self._enqueue(JobKind.LISTING, [u for u in more if same_site(u, self._bases)])

    async def _api(self, job: Job, response: Response) -> None:
        api = self.recipe.discovery.api
        assert api is not None
        data = _json(response)
        for follow in api.follow:
            values = _jmes(follow.select, data) or []
            values = values if isinstance(values, list) else [values]
            await self._enqueue(JobKind.API, [follow.url.format(value=v) for v in values])
        if api.next:
            nxt = _jmes(api.next, data)
            if isinstance(nxt, str) and nxt:
                await self._enqueue(JobKind.API, [nxt])
        items = _jmes(api.items, data) or []
        if api.detail:
            ids = [item.get("id") for item in items if isinstance(item, dict)]
            await self._enqueue(
                JobKind.DETAIL, [api.detail.format(id=i) for i in ids if i is not None]
            )
            return
        if not self._share.owns(job.url):
            return  # every process reads the API's pages; one stores each page's items
        for item in items:
            await self._store_json(item, response)

    async def _detail(self, job: Job, response: Response) -> None:
        await self._store_json(_json(response), response)

    async def _store_json(self, item: Any, response: Response) -> None:
        extraction = self.recipe.extraction
        extracted = extract_json(
            item,
            self.recipe.base_url,
            extraction.fields,
            currency=extraction.currency,
            decimal_separator=extraction.decimal_separator,
        )
        await self._keep(extracted, response)

    async def _product(self, job: Job, response: Response) -> None:
        extraction = self.recipe.extraction
        if extraction.mode == "css":
            check_nesting(response.body, response.url)
            extracted = extract_css(
                LexborHTMLParser(response.text()),
                response.url,
                extraction.fields,
                currency=extraction.currency,
                decimal_separator=extraction.decimal_separator,
            )
        else:
            utf8 = response.utf8_body()
            if utf8 is not None:
                extracted = extract_product(utf8, response.url, encoding="utf-8")
            else:
                extracted = extract_product(response.text(), response.url)
        await self._keep(extracted, response, job)

    async def _keep(self, extracted: Extracted, response: Response, job: Job | None = None) -> None:
        if extracted.price is None or extracted.currency is None:
            raise ExtractError(f"{response.url}: no price")
        pid = product_id(extracted, response.url, self.recipe.extraction.id_pattern)
        self._sightings.append(sighting(self.recipe.id, pid, extracted, datetime.now(UTC)))
        self._remember(response.url, response, pid, None, job)
        await self._flush()

    def _remember(
        self,
        url: str,
        response: Response,
        pid: str | None,
        known: FetchState | None,
        job: Job | None,
    ) -> None:
        headers = response.headers
        # A job's URL is already canonical (in _seen, or a queue key): canonicalising it again
        # costs w3lib's full parse for nothing.
        if (job is not None and job.canonical and url == job.url) or url in self._seen:
            key = url
        else:
            key = canonical(url)
        self._states.append(
            FetchState(
                url=key,
                etag=headers.get("ETag") or (known.etag if known else None),
                last_modified=headers.get("Last-Modified")
                or (known.last_modified if known else None),
                content_hash=response.content_hash or (known.content_hash if known else None),
                fetched_at=datetime.now(UTC),
                status=response.status,
                product_id=pid,
            )
        )

    async def _flush(self, force: bool = False) -> None:
        if not force and not self._autoflush:
            return
        pending = len(self._sightings) + len(self._touch) + len(self._states)
        if not pending or (not force and pending < self.batch_size):
            return
        if not force and self._flush_lock.locked() and pending < _BACKLOG_BATCHES * self.batch_size:
            # A batch is being written (in the store's thread, or on the database server):
            # keep fetching and parsing meanwhile; the next flush takes what piled up. Only a
            # backlog of several batches makes this page's task wait for the store.
            return
        async with self._flush_lock:
            pending = len(self._sightings) + len(self._touch) + len(self._states)
            if not pending or (not force and pending < self.batch_size):
                return  # the flush this one waited for took them
            sightings, self._sightings = self._sightings, []
            touch, self._touch = self._touch, []
            states, self._states = self._states, []
            if sightings:
                result = await self.store.ingest(sightings)
                seen = len({(s.product.site_id, s.product.id) for s in sightings})
                self.report.products += seen
                PRODUCTS_SCRAPED.labels(self.recipe.id).inc(seen)
                self.report.observations += result.observations_inserted
                if self._on_ingest is not None:
                    await self._on_ingest(result)
            if touch:
                await self.store.touch(self.recipe.id, touch, datetime.now(UTC))
                PRODUCTS_SCRAPED.labels(self.recipe.id).inc(len(touch))
            if states:
                await self.store.save_fetch_states(self.recipe.id, states)


def _json(response: Response) -> Any:
    try:
        return orjson.loads(response.body)
    except orjson.JSONDecodeError as exc:
        raise ExtractError(f"{response.url}: not JSON: {exc}") from None
