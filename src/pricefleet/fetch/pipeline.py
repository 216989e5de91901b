"""The path every request to a shop takes, whatever sends it (aiohttp, curl_cffi, the browser):

    SSRF check of the URL → robots.txt (+ Crawl-delay) → circuit breaker → per-site concurrency
    → rate limiter → one attempt (next User-Agent, next proxy, conditional headers) → classify:
    2xx done · 304 not modified · 3xx next hop (checked again from the top) · 4xx HTTPStatusError
    · 429/5xx/timeout/reset/truncated body: back off (full jitter, or Retry-After) and retry,
    through the limiter again · retries exhausted: RetryLater, and a failure for the breaker.

This module owns that sequence and the per-site state it needs (semaphores, User-Agent
rotation). It must not import an HTTP library: a `Transport` sends one request and reports
what came back, or raises `TransientFailure` when nothing usable did.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from pricefleet.errors import BlockedURL, FetchError, HTTPStatusError, RetryLater
from pricefleet.fetch.breaker import CircuitBreakers
from pricefleet.fetch.limiter import RateLimiter
from pricefleet.fetch.policy import SitePolicy
from pricefleet.fetch.proxies import ProxyPool
from pricefleet.fetch.response import Response, content_hash
from pricefleet.fetch.retry import backoff_delay, is_transient, parse_retry_after
from pricefleet.fetch.robots import RobotsCache, robots_url_for
from pricefleet.fetch.ssrf import GuardedResolver, check_resolved, check_url, exempt_host

__all__ = [
    "DEFAULT_ACCEPT",
    "Answer",
    "Pipeline",
    "Request",
    "TransientFailure",
    "Transport",
    "body_too_large",
    "merged_headers",
]

DEFAULT_ACCEPT = "text/html,application/json;q=0.9,*/*;q=0.8"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Answers a proxy gives for itself when it could not reach the shop or refuses us.
_PROXY_STATUSES = frozenset({407, 502, 504})


@dataclass(frozen=True, slots=True)
class Request:
    """One GET, as the pipeline asks a transport to send it."""

    site_id: str
    url: URL
    headers: Mapping[str, str]
    proxy: str | None
    timeout: float
    connect_timeout: float
    max_body_bytes: int
    allow_private: bool
    #: The browser to impersonate (curl_cffi transport only).
    impersonate: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back for one request: status, headers and the whole (decoded) body."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class TransientFailure(Exception):
    """A transport got no usable answer (timeout, reset, truncated body); worth retrying."""

    def __init__(self, reason: str, *, proxy_fault: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.proxy_fault = proxy_fault


class Transport(Protocol):
    """Sends one request: returns the answer, raises `TransientFailure`, or `FetchError`
    (e.g. the body is larger than `max_body_bytes`) for what retrying cannot fix."""

    async def send(self, request: Request) -> Answer:
        """Send `request` once, without following redirects."""
        ...


@dataclass(slots=True)
class _Fetch:
    """The running state of one fetch."""

    policy: SitePolicy
    started: float
    attempts: int = 0
    retries_left: int = 0
    probe: bool | None = None  # None: not admitted by the breaker yet
    settled: bool = False  # the breaker has its verdict


class Pipeline:
    """SSRF guard, robots.txt, breaker, concurrency, pacing and retries, shared by fetchers."""

    def __init__(
        self,
        *,
        limiter: RateLimiter,
        robots: RobotsCache,
        breakers: CircuitBreakers,
        proxies: ProxyPool,
        guard: GuardedResolver,
        trusted: Collection[str] = (),
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.limiter = limiter
        self.robots = robots
        self.breakers = breakers
        self.proxies = proxies
        self.guard = guard
        self.trusted = frozenset(t.lower().rstrip(".") for t in trusted)
        self._clock = clock
        self._rng = rng or random.Random()
        self._semaphores: dict[str, tuple[int, asyncio.Semaphore]] = {}
        self._agent_turn: dict[str, int] = {}

    def _semaphore(self, policy: SitePolicy) -> asyncio.Semaphore:
        held = self._semaphores.get(policy.site_id)
        if held is None or held[0] != policy.max_concurrency:
            held = (policy.max_concurrency, asyncio.Semaphore(policy.max_concurrency))
            self._semaphores[policy.site_id] = held
        return held[1]

    def _headers(
        self, policy: SitePolicy, accept: str, etag: str | None, last_modified: str | None
    ) -> dict[str, str]:
        agents = policy.agents()
        turn = self._agent_turn.get(policy.site_id, 0)
        self._agent_turn[policy.site_id] = turn + 1
        headers = {"User-Agent": agents[turn % len(agents)], "Accept": accept}
        headers.update(policy.headers)
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return headers

    def check(self, url: str | URL, policy: SitePolicy) -> URL:
        """The URL parsed, or `BlockedURL` if the SSRF guard refuses it as written."""
        return check_url(url, allow_private=policy.allow_private_network, trusted=self.trusted)

    async def pace(self, url: URL, policy: SitePolicy, transport: Transport) -> tuple[float, int]:
        """Refuse what robots.txt disallows; the (rate, burst) to send at, after Crawl-delay."""
        rate, burst = policy.requests_per_second, policy.burst
        if not policy.obey_robots:
            return rate, burst
        robots_url = robots_url_for(url, policy)
        if str(url) == robots_url:
            return rate, burst

        async def load(where: str) -> tuple[int, bytes]:
            try:
                answer = await self.fetch(
                    where, policy, transport, accept="text/plain,*/*;q=0.5", robots=False
                )
            except HTTPStatusError as exc:
                return exc.status, b""
            return answer.status, answer.body

        rules = await self.robots.rules(policy.site_id, robots_url, load)
        if not rules.allowed(str(url), policy.user_agent):
            raise BlockedURL(
                f"refused {url}: {robots_url} disallows it for {policy.user_agent!r}", url=str(url)
            )
        asked = rules.rate(policy.user_agent)
        if asked is not None:
            asked /= policy.share  # the other processes crawling the site take the rest
        if asked is not None and asked < rate:
            return asked, 1  # Crawl-delay means one request per delay: no bursts
        return rate, burst

    async def fetch(
        self,
        url: str,
        policy: SitePolicy,
        transport: Transport,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = DEFAULT_ACCEPT,
        robots: bool = True,
    ) -> Response:
        """Fetch `url` to the end along the whole path (see the module docstring)."""
        state = _Fetch(policy, self._clock(), retries_left=policy.retries)
        current = self.check(url, policy)
        redirects: list[str] = []
        try:
            while True:
                if robots:
                    rate, burst = await self.pace(current, policy, transport)
                else:
                    rate, burst = policy.requests_per_second, policy.burst
                if state.probe is None:
                    state.probe = self.breakers.admit(policy.site_id, str(current))
                conditions = (accept, etag, last_modified)
                answer = await self._attempts(state, current, conditions, rate, burst, transport)
                location = answer.headers.get("Location")
                if answer.status in _REDIRECTS and location:
                    if len(redirects) >= policy.max_redirects:
                        self._settle(state, ok=True)
                        raise FetchError(
                            f"{url}: more than {policy.max_redirects} redirects "
                            f"({' → '.join([*redirects, str(current)])})",
                            url=url,
                        )
                    redirects.append(str(current))
                    current = self.check(current.join(URL(location)), policy)
                    continue
                self._settle(state, ok=True)
                return self._response(state, current, answer, redirects)
        finally:
            if not state.settled and state.probe:
                self.breakers.release(policy.site_id, True)

    def _settle(self, state: _Fetch, *, ok: bool) -> float:
        """Give the breaker its verdict on this fetch; seconds the site stays closed to us."""
        state.settled = True
        policy = state.policy
        if ok:
            self.breakers.success(policy.site_id, bool(state.probe))
            return 0.0
        return self.breakers.failure(
            policy.site_id, bool(state.probe), policy.breaker_failures, policy.breaker_cooldown
        )

    def _response(self, state: _Fetch, url: URL, answer: Answer, redirects: list[str]) -> Response:
        status = answer.status
        if status == 304 or 200 <= status < 300:
            not_modified = status == 304
            return Response(
                url=str(url),
                status=status,
                headers=answer.headers,
                body=b"" if not_modified else answer.body,
                not_modified=not_modified,
                content_hash="" if not_modified else content_hash(answer.body),
                elapsed=self._clock() - state.started,
                attempts=state.attempts,
                redirects=tuple(redirects),
            )
        raise HTTPStatusError(
            f"{url} answered {status}; not retried (a {status} will not go away by asking again)",
            url=str(url),
            status=status,
        )

    async def _attempts(
        self,
        state: _Fetch,
        url: URL,
        conditions: tuple[str, str | None, str | None],
        rate: float,
        burst: int,
        transport: Transport,
    ) -> Answer:
        """Send until an answer that is not transient, or raise `RetryLater`."""
        policy = state.policy
        site = policy.site_id
        if policy.proxies and not policy.allow_private_network:
            await check_resolved(url, self.guard)  # the proxy resolves it, so check it here
        while True:
            if state.attempts:
                self.breakers.check(site, bool(state.probe), str(url))
            proxy = self.proxies.choose(site, policy.proxies)
            request = Request(
                site_id=site,
                url=url,
                headers=self._headers(policy, *conditions),
                proxy=proxy,
                timeout=policy.timeout,
                connect_timeout=policy.connect_timeout,
                max_body_bytes=policy.max_body_bytes,
                allow_private=policy.allow_private_network,
                impersonate=policy.impersonate,
            )
            answer: Answer | None = None
            retry_after: float | None = None
            async with self._semaphore(policy):
                await self.limiter.acquire(site, rate, burst)
                state.attempts += 1
                try:
                    with exempt_host(URL(proxy).host if proxy else None):
                        answer = await transport.send(request)
                except TransientFailure as exc:
                    failure, proxy_fault = exc.reason, exc.proxy_fault
                else:
                    failure = f"status {answer.status}" if is_transient(answer.status) else ""
                    proxy_fault = proxy is not None and answer.status in _PROXY_STATUSES
                    if failure:
                        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            if proxy is not None:
                if proxy_fault:
                    self.proxies.failed(site, proxy)
                else:
                    self.proxies.succeeded(site, proxy)
            if not failure and answer is not None:
                return answer
            retry = policy.retries - state.retries_left
            if retry_after is not None:
                delay = min(policy.backoff_max, retry_after)
            else:
                delay = backoff_delay(retry, policy.backoff_base, policy.backoff_max, self._rng)
            if state.probe or state.retries_left <= 0:
                after = (
                    retry_after
                    if retry_after is not None
                    else min(policy.backoff_max, policy.backoff_base * 2.0**retry)
                )
                closed_for = self._settle(state, ok=False)
                after = max(min(policy.backoff_max, after), closed_for)
                via = f" via proxy {proxy}" if proxy and proxy not in failure else ""
                raise RetryLater(
                    f"{url}: {failure}{via} after {state.attempts} attempt(s); "
                    f"try again in {after:.1f} s",
                    url=str(url),
                    after=after,
                )
            state.retries_left -= 1
            await asyncio.sleep(delay)


def body_too_large(request: Request) -> FetchError:
    """The error for a body past the policy's cap (transports raise it, it is not retried)."""
    return FetchError(
        f"{request.url}: the body is larger than max_body_bytes={request.max_body_bytes:,} "
        f"(site {request.site_id!r}); raise it in the site's recipe if the page is genuine",
        url=str(request.url),
    )


def merged_headers(*parts: Mapping[str, str]) -> CIMultiDictProxy[str]:
    """Case-insensitive, read-only headers from plain mappings."""
    headers: CIMultiDict[str] = CIMultiDict()
    for part in parts:
        headers.update(part)
    return CIMultiDictProxy(headers)
