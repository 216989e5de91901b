"""`Fetcher`: fetch pages over HTTP with aiohttp, politely and safely (see `pipeline.py`).

One `aiohttp.ClientSession` per Fetcher (so per worker process) for guarded sites, and one more,
made only if some site sets `allow_private_network`, so that a connection opened to a private
address for such a site is never reused for a guarded one. Both connectors resolve every new
connection afresh (`use_dns_cache=False`) through the SSRF guard.

This module owns the aiohttp transport and the Fetcher's lifetime. It must not decide what to
retry or how fast to go: that is the pipeline's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from functools import lru_cache
from types import TracebackType

import aiohttp
from aiohttp.abc import AbstractResolver

from pricefleet.errors import FetchError
from pricefleet.fetch.breaker import BreakerState, CircuitBreakers
from pricefleet.fetch.impersonate import Impersonation
from pricefleet.fetch.limiter import LocalRateLimiter, RateLimiter
from pricefleet.fetch.pipeline import (
    DEFAULT_ACCEPT,
    Answer,
    Pipeline,
    Request,
    TransientFailure,
    body_too_large,
)
from pricefleet.fetch.policy import SitePolicy
from pricefleet.fetch.proxies import ProxyPool
from pricefleet.fetch.response import Response
from pricefleet.fetch.robots import RobotsCache
from pricefleet.fetch.ssrf import GuardedResolver

__all__ = ["Fetcher"]

_CHUNK = 64 * 1024


@lru_cache(maxsize=64)
def _timeout(total: float, connect: float) -> aiohttp.ClientTimeout:
    """One (immutable) ClientTimeout per policy's timeouts, not one per request."""
    return aiohttp.ClientTimeout(total=total, connect=connect)


class _AiohttpTransport:
    """Sends one GET with aiohttp, reads the body in chunks up to the cap."""

    def __init__(self, resolver: AbstractResolver, guard: GuardedResolver) -> None:
        self._resolver = resolver
        self._guard = guard
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    def _session(self, allow_private: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(allow_private)
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=512,
                limit_per_host=0,  # the pipeline bounds each site
                use_dns_cache=False,  # resolve (and check) every new connection
                resolver=self._resolver if allow_private else self._guard,
                keepalive_timeout=30,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                trust_env=False,  # no proxy from the environment: proxies come from recipes
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._sessions[allow_private] = session
        return session

    async def send(self, request: Request) -> Answer:
        """One GET without following redirects; raises TransientFailure if no answer came."""
        session = self._session(request.allow_private)
        timeout = _timeout(request.timeout, request.connect_timeout)
        proxied = request.proxy is not None
        try:
            async with session.get(
                request.url,
                headers=request.headers,
                proxy=request.proxy,
                allow_redirects=False,
                timeout=timeout,
            ) as answer:
                declared = answer.content_length
                if (
                    declared is not None
                    and declared > request.max_body_bytes
                    and "Content-Encoding" not in answer.headers
                ):
                    raise body_too_large(request)
                # Chunks are kept and joined once: a page that came in one chunk is not copied.
                chunks: list[bytes] = []
                size = 0
                async for chunk in answer.content.iter_chunked(_CHUNK):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > request.max_body_bytes:
                        raise body_too_large(request)
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                return Answer(answer.status, answer.headers, body)
        except (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError) as exc:
            raise TransientFailure(
                f"proxy {request.proxy} failed: {exc}", proxy_fault=True
            ) from exc
        except TimeoutError as exc:
            raise TransientFailure(
                f"no complete answer within {request.timeout:g} s", proxy_fault=proxied
            ) from exc
        except aiohttp.ClientPayloadError as exc:
            raise TransientFailure(f"body cut short: {exc}") from exc
        except aiohttp.InvalidURL as exc:
            raise FetchError(
                f"{request.url}: not a valid URL ({exc})", url=str(request.url)
            ) from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientResponseError) as exc:
            raise TransientFailure(f"{type(exc).__name__}: {exc}", proxy_fault=proxied) from exc

    async def close(self) -> None:
        """Close the sessions and their connections."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            await session.close()


class Fetcher:
    """Fetches pages of many sites, each by its `SitePolicy`; one per worker process.

    `limiter` paces requests per site (default: in-process GCRA; the queue passes a Redis one
    for cluster-wide pacing), `robots` caches robots.txt, `resolver` is the DNS resolver the SSRF
    guard wraps (default: aiohttp's), `trusted_hosts` are host names the guard lets through
    whatever they resolve to (a mirror you run; prefer the per-site `allow_private_network`).
    """

    def __init__(
        self,
        *,
        limiter: RateLimiter | None = None,
        robots: RobotsCache | None = None,
        resolver: AbstractResolver | None = None,
        clock: Callable[[], float] = time.monotonic,
        trusted_hosts: Collection[str] = (),
    ) -> None:
        self._limiter = limiter or LocalRateLimiter(clock)
        self._robots = robots or RobotsCache(clock=clock)
        self._resolver = resolver
        self._own_resolver = resolver is None
        self._clock = clock
        self._trusted = tuple(trusted_hosts)
        self._breakers = CircuitBreakers(clock)
        self._proxies = ProxyPool()
        self._pipeline: Pipeline | None = None
        self._http: _AiohttpTransport | None = None
        self._impersonating: Impersonation | None = None
        self._start_lock = asyncio.Lock()
        self._closed = False

    async def start(self) -> None:
        """Create the resolver and the pipeline (done by the first fetch if not called)."""
        if self._closed:
            raise FetchError("this Fetcher is closed; make a new one")
        if self._pipeline is not None:
            return
        async with self._start_lock:
            if self._pipeline is not None:
                return
            resolver = self._resolver or aiohttp.DefaultResolver()
            self._resolver = resolver
            guard = GuardedResolver(resolver, self._trusted)
            self._http = _AiohttpTransport(resolver, guard)
            self._pipeline = Pipeline(
                limiter=self._limiter,
                robots=self._robots,
                breakers=self._breakers,
                proxies=self._proxies,
                guard=guard,
                trusted=self._trusted,
                clock=self._clock,
            )

    async def fetch(
        self,
        url: str,
        policy: SitePolicy,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = DEFAULT_ACCEPT,
    ) -> Response:
        """Fetch `url` for the site of `policy`; conditional when `etag`/`last_modified` given.

        Raises `BlockedURL` (SSRF guard, robots.txt), `CircuitOpen`, `HTTPStatusError` (4xx),
        `RetryLater` (transient failures outlasted the retries) or `FetchError`.
        """
        await self.start()
        pipeline = self._pipeline
        assert pipeline is not None
        transport = self._transport(policy)
        return await pipeline.fetch(
            url, policy, transport, etag=etag, last_modified=last_modified, accept=accept
        )

    def _transport(self, policy: SitePolicy) -> _AiohttpTransport | Impersonation:
        if policy.impersonate is None:
            assert self._http is not None
            return self._http
        if self._impersonating is None:
            assert self._pipeline is not None
            self._impersonating = Impersonation(self._pipeline.guard, self._resolver)
        return self._impersonating

    def breaker_state(self, site_id: str) -> BreakerState:
        """The circuit breaker state of a site, for metrics."""
        return self._breakers.state(site_id)

    def retired_proxies(self, site_id: str) -> frozenset[str]:
        """The proxies of a site retired after failing 3 times in a row."""
        return self._proxies.retired(site_id)

    async def close(self) -> None:
        """Close connections and the resolver; the Fetcher cannot be used afterwards."""
        self._closed = True
        await self._robots.close()
        if self._http is not None:
            await self._http.close()
        if self._impersonating is not None:
            await self._impersonating.close()
        if self._own_resolver and self._resolver is not None:
            await self._resolver.close()

    async def __aenter__(self) -> Fetcher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
