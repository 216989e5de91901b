"""`SitePolicy`: how one site may be fetched — pace, concurrency, identity, limits, retries.

This module owns the policy record and its validation only. It must not fetch, sleep or hold
state: the fetcher reads a policy on every call, so a site's recipe can change between calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from pricefleet.errors import ConfigError

__all__ = ["FrozenHeaders", "SitePolicy"]


class FrozenHeaders(Mapping[str, str]):
    """An immutable, hashable mapping of header names to values (order kept)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items: dict[str, str] = dict(items or {})

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenHeaders({self._items!r})"


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"SitePolicy.{name} must be > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class SitePolicy:
    """How pricefleet may fetch one site; built from the site's recipe, immutable."""

    site_id: str
    #: GCRA rate per site; a robots.txt `Crawl-delay` can only lower it.
    requests_per_second: float = 2.0
    burst: int = 1
    #: Requests in flight to the site at once (per process).
    max_concurrency: int = 4
    obey_robots: bool = True
    #: Sent as User-Agent, and the agent robots.txt rules are matched against.
    user_agent: str = "pricefleet/0.1 (+https://pricefleet.invalid/bot)"
    #: Rotated per request when given (robots.txt is still matched against `user_agent`).
    user_agents: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=FrozenHeaders)
    #: `http://host:port` forward proxies: round-robin, retired after 3 failures in a row.
    proxies: tuple[str, ...] = ()
    #: Seconds per attempt, in total (connect, send, read the whole body).
    timeout: float = 20.0
    connect_timeout: float = 5.0
    max_body_bytes: int = 10_000_000
    max_redirects: int = 5
    #: Attempts after the first one for transient failures (5xx, 429, timeouts, resets).
    retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    #: Consecutive failed fetches that open the site's circuit, and how long it stays open.
    breaker_failures: int = 10
    breaker_cooldown: float = 30.0
    #: Turns the SSRF guard off for this site only (a shop you run yourself on a private net).
    allow_private_network: bool = False
    #: Where robots.txt lives when it is not `<origin>/robots.txt` (a shop under a path prefix,
    #: like the demo shops' `/<shop>/robots.txt`). Used for URLs of the same origin only.
    robots_url: str | None = None
    #: Send requests with a browser's TLS and HTTP/2 fingerprint (curl_cffi), e.g. "chrome".
    impersonate: str | None = None
    #: How many processes crawl the site at once, each with its own limiter and this policy
    #: (`pricefleet crawl --processes`): a robots.txt rate is divided among them. The recipe's
    #: own rate, burst and concurrency are divided when the policy is made (`policy_of`).
    share: int = 1

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.headers, FrozenHeaders):
            set_(self, "headers", FrozenHeaders(self.headers))
        set_(self, "user_agents", tuple(self.user_agents))
        set_(self, "proxies", tuple(self.proxies))
        if not self.site_id:
            raise ConfigError("SitePolicy.site_id must not be empty")
        for name in ("requests_per_second", "timeout", "connect_timeout", "breaker_cooldown"):
            _positive(name, float(getattr(self, name)))
        for name in ("burst", "max_concurrency", "max_body_bytes", "breaker_failures", "share"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"SitePolicy.{name} must be ≥ 1, got {getattr(self, name)!r}")
        for name in ("max_redirects", "retries"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"SitePolicy.{name} must be ≥ 0, got {getattr(self, name)!r}")
        if self.backoff_base < 0 or self.backoff_max < self.backoff_base:
            raise ConfigError("SitePolicy: need 0 ≤ backoff_base ≤ backoff_max")
        for proxy in self.proxies:
            url = URL(proxy)
            if url.scheme not in {"http", "https"} or not url.host:
                raise ConfigError(
                    f"site {self.site_id!r}: proxy {proxy!r} is not http(s)://host:port "
                    "(SOCKS proxies are not supported by the fetcher)"
                )
        if self.robots_url is not None and URL(self.robots_url).scheme not in {"http", "https"}:
            raise ConfigError(f"site {self.site_id!r}: robots_url must be an http(s) URL")

    def agents(self) -> tuple[str, ...]:
        """The User-Agent strings requests rotate through (at least one)."""
        return self.user_agents or (self.user_agent,)

    def replace(self, **changes: Any) -> SitePolicy:
        """A copy with some fields changed (validated again)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        return SitePolicy(**values)
