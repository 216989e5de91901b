"""robots.txt per site and origin: fetched once, cached, read with protego (RFC 9309).

A robots.txt answering 2xx is obeyed; 4xx means no rules (RFC 9309 §2.3.1.3); a 5xx or an
unreachable one surfaces as `RetryLater` from the loader and is not cached, so the page waits
too. `Crawl-delay` and `Request-rate` can only lower a site's request rate.

This module owns the cache and the reading of the rules. It must not send requests itself:
the fetcher hands it a loader that goes through the same guarded, paced path as pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache

from protego import Protego
from yarl import URL

from pricefleet.fetch.policy import SitePolicy

__all__ = ["RobotsCache", "RobotsRules", "robots_url_for"]

#: RFC 9309 §2.5: crawlers parse at least 500 KiB.
MAX_ROBOTS_BYTES = 512_000

#: Loads one robots.txt: returns (status, body) of the final answer after redirects.
RobotsLoader = Callable[[str], Awaitable[tuple[int, bytes]]]


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """The rules of one robots.txt (`parser` None: no robots.txt, everything allowed)."""

    url: str
    parser: Protego | None

    def allowed(self, url: str, agent: str) -> bool:
        """Whether `agent` may fetch `url`."""
        return self.parser is None or bool(self.parser.can_fetch(url, agent))

    def rate(self, agent: str) -> float | None:
        """Requests per second robots.txt allows `agent` (Crawl-delay, Request-rate), if any."""
        if self.parser is None:
            return None
        rates: list[float] = []
        delay = self.parser.crawl_delay(agent)
        if delay is not None and delay > 0:
            rates.append(1.0 / float(delay))
        request_rate = self.parser.request_rate(agent)
        if request_rate is not None and request_rate.seconds > 0 and request_rate.requests > 0:
            rates.append(request_rate.requests / request_rate.seconds)
        return min(rates) if rates else None


def robots_url_for(url: URL, policy: SitePolicy) -> str:
    """Where the robots.txt governing `url` is: the policy's own for its origin, else the root."""
    return _robots_url(url.origin(), policy.robots_url)


@lru_cache(maxsize=1024)
def _robots_url(origin: URL, robots_url: str | None) -> str:
    # Asked for every request to a site, with the same few answers: remembered.
    if robots_url is not None:
        own = URL(robots_url)
        if own.origin() == origin:
            return str(own)
    return str(origin.with_path("/robots.txt"))


class RobotsCache:
    """robots.txt rules by (site, robots URL), for `ttl` seconds; one load at a time per key."""

    def __init__(self, ttl: float = 86_400.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._rules: dict[tuple[str, str], tuple[float, RobotsRules]] = {}
        self._loading: dict[tuple[str, str], asyncio.Task[RobotsRules]] = {}

    async def rules(self, site_id: str, robots_url: str, load: RobotsLoader) -> RobotsRules:
        """The rules at `robots_url` for `site_id`, loaded with `load` unless cached."""
        key = (site_id, robots_url)
        cached = self._rules.get(key)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = task
            task.add_done_callback(lambda done: self._done(key, done))
        # Shielded: one waiter giving up must not cancel the load the others wait for.
        return await asyncio.shield(task)

    async def _load(self, key: tuple[str, str], load: RobotsLoader) -> RobotsRules:
        status, body = await load(key[1])
        parser = None
        if 200 <= status < 300:
            text = body[:MAX_ROBOTS_BYTES].decode("utf-8", "replace")
            parser = Protego.parse(text)
        rules = RobotsRules(key[1], parser)
        self._rules[key] = (self._clock(), rules)
        return rules

    def _done(self, key: tuple[str, str], task: asyncio.Task[RobotsRules]) -> None:
        if self._loading.get(key) is task:
            del self._loading[key]
        if not task.cancelled():
            task.exception()  # retrieved here; every waiter gets it re-raised from the shield

    def forget(self, site_id: str | None = None) -> None:
        """Drop cached rules (of one site, or all)."""
        for key in [k for k in self._rules if site_id is None or k[0] == site_id]:
            del self._rules[key]

    async def close(self) -> None:
        """Cancel loads still running."""
        tasks = list(self._loading.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
