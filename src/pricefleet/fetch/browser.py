"""`BrowserFetcher`: pages rendered by JavaScript, read from a real Chromium (Playwright).

Chromium never touches the network itself. Every request it makes — the page, its scripts, the
JSON its app loads — is intercepted and fetched by the `Fetcher`, along the same path as any
page (SSRF guard on every hop, robots.txt, breaker, concurrency, pacing, retries, proxies,
User-Agent), then handed back to the browser. Images, fonts and media are not fetched at all.
As a second wall, Chromium starts with a resolver that resolves nothing and a proxy that does
not exist, so a request that escaped interception (a preconnect, say) fails instead of leaving.

This module owns the browser, its page pool and the rendering. It must not fetch anything
itself, nor decide pacing or retries. Playwright is an optional dependency, imported on start.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDictProxy

from pricefleet.errors import BlockedURL, FetchError, HTTPStatusError, RetryLater
from pricefleet.fetch.client import Fetcher
from pricefleet.fetch.pipeline import merged_headers
from pricefleet.fetch.policy import SitePolicy
from pricefleet.fetch.response import Response, content_hash

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "BrowserFetcher"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Nothing may leave the browser except through the Fetcher (see the module docstring).
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)
_SKIPPED = frozenset({"image", "font", "media"})
#: Scripts and styles are kept (and revalidated with their ETag) instead of fetched each time.
_CACHED = frozenset({"script", "stylesheet"})
_DROP = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection"})


@dataclass(slots=True)
class _Visit:
    """What one page of the pool is rendering now."""

    policy: SitePolicy
    document: Response
    served: bool = False
    failures: list[FetchError] = field(default_factory=list)


class BrowserFetcher:
    """Renders pages in headless Chromium with a pool of `pages` tabs.

    `fetcher` is the Fetcher every request goes through (share the crawler's, so browser and
    HTTP requests to a site are paced together); one is made and owned if not given.
    """

    def __init__(
        self,
        fetcher: Fetcher | None = None,
        *,
        pages: int = 4,
        executable: Path = CHROMIUM,
        args: tuple[str, ...] = CHROMIUM_ARGS,
    ) -> None:
        if pages < 1:
            raise ValueError("pages must be ≥ 1")
        self._fetcher = fetcher or Fetcher()
        self._owns_fetcher = fetcher is None
        self._size = pages
        self._executable = executable
        self._args = args
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._pages: asyncio.Queue[tuple[Page, list[_Visit | None]]] = asyncio.Queue()
        self._assets: OrderedDict[str, Response] = OrderedDict()
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        """Launch Chromium and open the page pool (done by the first fetch if not called)."""
        async with self._start_lock:
            if self._browser is not None:
                return
            if not self._executable.exists():
                raise FetchError(f"the browser fetcher needs Chromium at {self._executable}")
            try:
                from playwright.async_api import async_playwright
            except ImportError:
                raise FetchError(
                    "the browser fetcher needs Playwright: pip install 'pricefleet[browser]'"
                ) from None
            await self._fetcher.start()
            self._playwright = await async_playwright().start()
            self._browser = await self._playwright.chromium.launch(
                executable_path=str(self._executable), headless=True, args=list(self._args)
            )
            self._context = await self._browser.new_context(service_workers="block")
            await self._context.route_web_socket("**/*", _refuse_websocket)
            for _ in range(self._size):
                page = await self._context.new_page()
                slot: list[_Visit | None] = [None]
                await page.route("**/*", self._router(slot))
                self._pages.put_nowait((page, slot))

    def _router(self, slot: list[_Visit | None]) -> Any:
        async def route(route: Route) -> None:
            visit = slot[0]
            with contextlib.suppress(Exception):  # the page may be gone; never raise here
                if visit is None:
                    await route.abort("blockedbyclient")
                    return
                await self._serve(route, visit)

        return route

    async def _serve(self, route: Route, visit: _Visit) -> None:
        request = route.request
        if request.resource_type in _SKIPPED or request.method not in {"GET", "HEAD"}:
            await route.abort("blockedbyclient")
            return
        if request.is_navigation_request() and not visit.served:
            visit.served = True
            answer = visit.document
        else:
            try:
                answer = await self._get(
                    request.url, visit.policy, request.resource_type, request.headers
                )
            except HTTPStatusError as exc:
                await route.fulfill(status=exc.status, body=b"")
                return
            except FetchError as exc:
                visit.failures.append(exc)
                await route.abort("blockedbyclient" if isinstance(exc, BlockedURL) else "failed")
                return
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in _DROP}
        await route.fulfill(status=answer.status, headers=headers, body=answer.body)

    async def _get(
        self, url: str, policy: SitePolicy, kind: str, asked: dict[str, str]
    ) -> Response:
        accept = asked.get("accept", "*/*")
        if kind not in _CACHED:
            return await self._fetcher.fetch(url, policy, accept=accept)
        cached = self._assets.get(url)
        etag = cached.headers.get("ETag") if cached else None
        answer = await self._fetcher.fetch(url, policy, accept=accept, etag=etag)
        if answer.not_modified and cached is not None:
            self._assets.move_to_end(url)
            return cached
        self._assets[url] = answer
        while len(self._assets) > 256:
            self._assets.popitem(last=False)
        return answer

    async def fetch(self, url: str, policy: SitePolicy, wait_for: str | None = None) -> Response:
        """The page at `url` as the browser renders it (`page.content()`), once `wait_for`
        (a CSS selector) is in the DOM, or once the network has been idle for 500 ms.

        Non-HTML answers are returned as fetched. Raises what `Fetcher.fetch` raises for the
        page itself; `RetryLater` when a resource it needs failed transiently; `FetchError`
        when `wait_for` never appeared.
        """
        started = time.monotonic()
        document = await self._fetcher.fetch(url, policy)
        kind = document.headers.get("Content-Type", "")
        if "html" not in kind.lower():
            return document
        await self.start()
        page, slot = await self._pages.get()
        visit = _Visit(policy, document)
        slot[0] = visit
        timeout_ms = policy.timeout * 1000
        try:
            from playwright.async_api import Error as PlaywrightError

            try:
                if wait_for is None:
                    await page.goto(document.url, wait_until="networkidle", timeout=timeout_ms)
                else:
                    await page.goto(document.url, wait_until="commit", timeout=timeout_ms)
                    await page.wait_for_selector(wait_for, state="attached", timeout=timeout_ms)
                html = await page.content()
            except PlaywrightError as exc:
                raise self._failed(url, policy, wait_for, visit, exc) from None
        finally:
            slot[0] = None
            with contextlib.suppress(Exception):
                await page.goto("about:blank")
            self._pages.put_nowait((page, slot))
        body = html.encode("utf-8")
        return Response(
            url=document.url,
            status=document.status,
            headers=_rendered_headers(document.headers),
            body=body,
            not_modified=False,
            content_hash=content_hash(body),
            elapsed=time.monotonic() - started,
            attempts=document.attempts,
            redirects=document.redirects,
        )

    @staticmethod
    def _failed(
        url: str, policy: SitePolicy, wait_for: str | None, visit: _Visit, exc: Exception
    ) -> FetchError:
        transient = [f for f in visit.failures if isinstance(f, RetryLater)]
        if transient:
            return RetryLater(
                f"{url}: the page needs {transient[0].url}, which failed: {transient[0]}",
                url=url,
                after=max(f.after for f in transient),
            )
        what = f"{wait_for!r} did not appear" if wait_for else "the page did not settle"
        blocked = "; ".join(str(f) for f in visit.failures)
        return FetchError(
            f"{url}: {what} within {policy.timeout:g} s ({exc.__class__.__name__})"
            + (f"; refused resources: {blocked}" if blocked else ""),
            url=url,
        )

    async def close(self) -> None:
        """Close the browser (and the Fetcher, if this BrowserFetcher made it)."""
        if self._browser is not None:
            with contextlib.suppress(Exception):
                await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None
        if self._owns_fetcher:
            await self._fetcher.close()

    async def __aenter__(self) -> BrowserFetcher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _rendered_headers(headers: Any) -> CIMultiDictProxy[str]:
    """The document's headers, describing the rendered DOM we return instead of its bytes."""
    kept = {k: v for k, v in headers.items() if k.lower() not in _DROP | {"content-type", "etag"}}
    return merged_headers(kept, {"Content-Type": "text/html; charset=utf-8"})


async def _refuse_websocket(socket: Any) -> None:
    """WebSockets are not crawled: close them without connecting anywhere."""
    await socket.close()
