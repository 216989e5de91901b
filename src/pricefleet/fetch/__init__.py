"""Fetching pages politely and safely: per-site pacing (GCRA) and concurrency, robots.txt with
Crawl-delay, retries with backoff and Retry-After, a circuit breaker per site, rotating
User-Agents and proxies, conditional requests, an SSRF guard, and a browser for JS-rendered shops.

The crawler codes against `Fetcher.fetch` (or `BrowserFetcher.fetch`) and a `SitePolicy` built
from the site's recipe; failures come as the `FetchError` family of `pricefleet.errors`.
"""

from __future__ import annotations

from pricefleet.fetch.breaker import BreakerState, CircuitBreakers
from pricefleet.fetch.browser import BrowserFetcher
from pricefleet.fetch.client import Fetcher
from pricefleet.fetch.limiter import LocalRateLimiter, RateLimiter
from pricefleet.fetch.policy import SitePolicy
from pricefleet.fetch.proxies import ProxyPool
from pricefleet.fetch.response import Response
from pricefleet.fetch.robots import RobotsCache, RobotsRules
from pricefleet.fetch.ssrf import GuardedResolver, check_url

__all__ = [
    "BreakerState",
    "BrowserFetcher",
    "CircuitBreakers",
    "Fetcher",
    "GuardedResolver",
    "LocalRateLimiter",
    "ProxyPool",
    "RateLimiter",
    "Response",
    "RobotsCache",
    "RobotsRules",
    "SitePolicy",
    "check_url",
]
