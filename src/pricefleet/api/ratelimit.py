"""Per-key API rate limits (per client IP when anonymous), with the `limits` library.

Counters live in process memory in the embedded profile and in Redis in the cluster profile
(`async+redis://…`, `implementation="redispy"`), so every API instance draws on one budget.
Each route's scope (read, crawl, admin) has its own limit and its own counter per caller; the
strategy is a fixed window (one atomic INCR+EXPIRE per request; `RateLimit-Reset` is exact).

Headers: a refused request is a 429 problem with `Retry-After` and `RateLimit-Limit`,
`RateLimit-Remaining`, `RateLimit-Reset` (seconds until the window resets). Admitted requests
carry the same three headers: `hit` leaves its `RateLimitState` on the ASGI scope's state
(`request.state`), and `RateLimitHeaders`, a small pure-ASGI middleware, copies it onto the
response as it starts, whatever the route returned (a model, a `Response`, a stream).

When the counter store fails (Redis down), reads are let through without a limit: the error
is logged, counted (`storage_errors`, and a Prometheus counter when a registry is given) and
the response has no RateLimit headers. Crawl and admin requests fail closed with a 503: their
backends need the same Redis. This module decides how many requests pass, not who may call.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.asyncio
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.errors import StorageError
from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pricefleet.api.problems import Problem

if TYPE_CHECKING:
    from pricefleet.config import Settings

__all__ = ["STATE_KEY", "RateLimitHeaders", "RateLimitState", "RateLimiter", "storage_url"]

log = logging.getLogger(__name__)

#: Where `hit` leaves the state of the request's window, in `request.state`.
STATE_KEY = "pf_ratelimit"
#: Scopes whose requests are let through, unlimited, when the counter store is down.
_FAIL_OPEN = frozenset({"read"})


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """Where a caller stands in its current window."""

    limit: int
    remaining: int
    reset: float  # epoch seconds when the window resets

    def headers(self, now: float | None = None) -> dict[str, str]:
        """`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (delta seconds)."""
        wait = self.reset - (time.time() if now is None else now)
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.remaining)),
            "RateLimit-Reset": str(max(0, math.ceil(wait))),
        }


def storage_url(redis_url: str | None) -> str:
    """The `limits` storage for a Redis URL (`async+redis://…`), or process memory."""
    if redis_url is None:
        return "async+memory://"
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


class RateLimiter:
    """Counts requests per (scope, caller) against each scope's limit."""

    def __init__(
        self,
        limits: Mapping[str, str],
        *,
        storage: str = "async+memory://",
        key_prefix: str = "pf:ratelimit",
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`limits` maps scope names to limit strings ("100/minute"); `storage` is
        `async+memory://` or `async+redis://…`; Redis keys start with `key_prefix`."""
        self.items: dict[str, RateLimitItem] = {s: parse(v) for s, v in limits.items()}
        self.storage_errors = 0
        self._store: Storage
        self._pool: redis.asyncio.ConnectionPool | None = None
        if storage.startswith("async+memory"):
            self._store = MemoryStorage()
        else:
            # Our own pool, so `close` can release it; short timeouts, so a Redis that does
            # not answer does not hold requests up.
            plain = storage.removeprefix("async+").replace("redis+unix://", "unix://")
            self._pool = redis.asyncio.ConnectionPool.from_url(
                plain, socket_timeout=1.0, socket_connect_timeout=1.0
            )
            options: dict[str, Any] = {"connection_pool": self._pool}
            self._store = RedisStorage(
                storage,
                implementation="redispy",
                key_prefix=key_prefix,
                wrap_exceptions=True,
                **options,
            )
        self._errors = (
            Counter(
                "pricefleet_api_ratelimit_storage_errors",
                "Requests the rate limiter could not count (its store failed)",
                ["scope"],
                registry=registry,
            )
            if registry is not None
            else None
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        scopes: tuple[str, ...] = ("read", "crawl", "admin"),
        *,
        registry: CollectorRegistry | None = None,
    ) -> RateLimiter:
        """Memory in the embedded profile, the configured Redis in the cluster one."""
        return cls(
            {scope: settings.rate_limit_for(scope) for scope in scopes},
            storage=storage_url(settings.redis_url),
            key_prefix=f"{settings.queue_prefix}:ratelimit",
            registry=registry,
        )

    async def hit(self, scope: str, caller: str) -> RateLimitState | None:
        """Count one request of `caller` (`key:<id>` or `ip:<address>`) on a `scope` route.

        Returns the window's state, or None when it could not be counted (the store is down)
        and the request is let through anyway; raises a 429 `Problem` past the limit, or a
        503 one when a crawl or admin request cannot be counted."""
        item = self.items[scope]
        # Fixed windows aligned on the clock, counted with one INCR (+EXPIRE) round trip: the
        # window's end is known here, so no second call asks the store for it.
        period = item.get_expiry()
        now = time.time()
        window = int(now // period)
        try:
            count = await self._store.incr(f"{item.key_for(scope, caller)}/{window}", period)
        except StorageError as exc:
            self.storage_errors += 1
            if self._errors is not None:
                self._errors.labels(scope).inc()
            if scope in _FAIL_OPEN:
                log.warning(
                    "rate limiter store failed, letting a %s request through: %s", scope, exc
                )
                return None
            log.error("rate limiter store failed, refusing a %s request: %s", scope, exc)
            raise Problem(
                503,
                "the rate limiter's store is unreachable; retry shortly.",
                title="Backend unavailable",
                headers={"Retry-After": "5"},
            ) from None
        state = RateLimitState(item.amount, max(0, item.amount - count), (window + 1) * period)
        if count > item.amount:
            headers = state.headers()
            headers["Retry-After"] = str(max(1, int(headers["RateLimit-Reset"])))
            raise Problem(
                429,
                f"rate limit of {item} for {scope} requests reached; retry after "
                f"{headers['Retry-After']} s.",
                title="Too many requests",
                headers=headers,
                limit=str(item),
            )
        return state

    async def close(self) -> None:
        """Release the Redis connections (or the memory store's timer)."""
        if self._pool is not None:
            await self._pool.aclose()
        elif isinstance(self._store, MemoryStorage) and self._store.timer is not None:
            self._store.timer.cancel()


class RateLimitHeaders:
    """ASGI middleware: puts the `RateLimit-*` headers of the request's window on its response
    (unless the response set them itself, as a 429 does)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            window = state.get(STATE_KEY)
            if message["type"] == "http.response.start" and isinstance(window, RateLimitState):
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in window.headers().items():
                    if name.lower().encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
