"""Per-key API rate limits (per client IP when anonymous): clock-aligned fixed windows,
counted in process and, in the cluster profile, shared through Redis in leased batches.

Each route's scope (read, crawl, admin) has its own limit (`limits` notation, parsed by the
`limits` library) and its own counter per caller. Windows are aligned on the clock, so
`RateLimit-Reset` is exact and every process agrees on when a window ends.

**Embedded profile**: the counter is this process's memory, exact: the `limit`-th request of a
window passes, the next one is refused.

**Cluster profile**: every API process draws on one budget per caller and window, kept in Redis
(`<prefix>:ratelimit:…/<window>`). A process does not ask Redis on every request: it *leases* a
batch of slots (one Lua call: `grant = min(batch, limit - used)`, `INCRBY grant`) and admits
requests from its lease in process until the lease is spent, then leases again (concurrent
requests of one caller share one lease call). The batch is 1/20 of the limit, at least 1 and at
most `LEASE_MAX`. Leased slots no longer requested for a while are given back, batched: every
`RETURN_SECONDS` one pipeline returns the unused slots of idle leases. So:

- **No overshoot**: Redis never grants more than `limit` slots in a window, and a request is
  admitted only on a granted slot, so all processes together admit at most `limit`. With a
  batch of 1 (limits up to 39 per window) every request is one round trip, as before.
- **Bounded under-admission instead**: a caller refused by one process while another still
  holds unused slots of its lease is refused early, by at most `(P - 1) × (batch - 1)` slots for
  `P` processes (5 % of the limit per extra process), and only until those slots are used or
  given back (`RETURN_SECONDS` after that process last saw the caller).
- **`RateLimit-Remaining`** is what this process knows: slots not yet leased by anyone plus its
  own unused ones. Exact with one process; with several it may count other processes' unused
  slots as spent.

Headers: a refused request is a 429 problem with `Retry-After` and `RateLimit-Limit`,
`RateLimit-Remaining`, `RateLimit-Reset` (seconds until the window resets). Admitted requests
carry the same three headers: `hit` leaves its `RateLimitState` on the ASGI scope's state
(`request.state`), and `RateLimitHeaders`, a small pure-ASGI middleware, copies it onto the
response as it starts, whatever the route returned (a model, a `Response`, a stream).

When Redis fails (down, or too slow), reads are let through without a limit: the error is
logged, counted (`storage_errors`, and a Prometheus counter when a registry is given) and the
response has no RateLimit headers. Crawl and admin requests fail closed with a 503: their
backends need the same Redis. This module decides how many requests pass, not who may call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio
from limits import RateLimitItem, parse
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pricefleet.api.problems import Problem

if TYPE_CHECKING:
    from pricefleet.config import Settings

__all__ = [
    "LEASE_MAX",
    "RETURN_SECONDS",
    "STATE_KEY",
    "RateLimitHeaders",
    "RateLimitState",
    "RateLimiter",
    "lease_size",
    "storage_url",
]

log = logging.getLogger(__name__)

#: Where `hit` leaves the state of the request's window, in `request.state`.
STATE_KEY = "pf_ratelimit"
#: Scopes whose requests are let through, unlimited, when the counter store is down.
_FAIL_OPEN = frozenset({"read"})
#: The largest batch of slots a process leases at once (cluster profile).
LEASE_MAX = 1_000
#: Share of the limit leased at once: the bound on early refusals is this per extra process.
_LEASE_SHARE = 20
#: How often (and after how long without a request) unused leased slots are given back.
RETURN_SECONDS = 0.1
#: Callers whose key names are kept ready (a cache: cleared when full).
_BASES_MAX = 10_000
#: How often counters of ended windows are dropped from memory.
_SWEEP_SECONDS = 1.0

#: KEYS[1] the window's counter; ARGV: batch, limit, expiry (s). Returns {granted, used}.
_LEASE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if grant <= 0 then return {0, used} end
used = redis.call('INCRBY', KEYS[1], grant)
if used == grant then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return {grant, used}
"""
#: KEYS[1] the window's counter; ARGV[1] slots given back (never below 0, never re-creating
#: an expired key).
_GIVE_BACK = """
local used = tonumber(redis.call('GET', KEYS[1]) or '-1')
if used < 0 then return 0 end
return redis.call('DECRBY', KEYS[1], math.min(used, tonumber(ARGV[1])))
"""


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
    """The counter store for a Redis URL (`async+redis://…`), or process memory."""
    if redis_url is None:
        return "async+memory://"
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


def lease_size(limit: int) -> int:
    """Slots a process leases at once for a limit of `limit` per window."""
    return max(1, min(LEASE_MAX, limit // _LEASE_SHARE))


class _Window:
    """One caller's counter for one window of one scope, in this process."""

    __slots__ = ("end", "expiry", "flight", "held", "key", "known", "seen", "used")

    def __init__(self, key: str, end: float, expiry: int) -> None:
        self.key = key
        self.end = end  # epoch seconds
        self.expiry = expiry
        self.used = 0  # admitted here (embedded: the whole count)
        self.held = 0  # leased slots not used yet (cluster)
        self.known = 0  # slots leased by all processes, as of our last lease (cluster)
        self.seen = 0.0  # monotonic time of the last request
        self.flight: asyncio.Future[None] | None = None  # the lease being asked for


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
        self._prefix = key_prefix
        self._windows: dict[str, _Window] = {}
        self._bases: dict[tuple[str, str], str] = {}  # (scope, caller) → key without window
        self._sweep_at = 0.0
        self._redis: redis.asyncio.Redis | None = None
        self._returner: asyncio.Task[None] | None = None
        if not storage.startswith("async+memory"):
            # Short timeouts, so a Redis that does not answer does not hold requests up.
            plain = storage.removeprefix("async+").replace("redis+unix://", "unix://")
            self._redis = redis.asyncio.Redis.from_url(
                plain, socket_timeout=1.0, socket_connect_timeout=1.0
            )
            self._lease = self._redis.register_script(_LEASE)
            self._give_back = self._redis.register_script(_GIVE_BACK)
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

        Returns the window's state, or None when it could not be counted (Redis is down) and
        the request is let through anyway; raises a 429 `Problem` past the limit, or a 503
        one when a crawl or admin request cannot be counted."""
        item = self.items[scope]
        period = item.get_expiry()
        now = time.time()
        number = int(now // period)
        base = self._bases.get((scope, caller))
        if base is None:
            if len(self._bases) >= _BASES_MAX:
                self._bases.clear()
            base = self._bases[(scope, caller)] = f"{self._prefix}:{item.key_for(scope, caller)}"
        key = f"{base}/{number}"
        window = self._windows.get(key)
        if window is None:
            if now >= self._sweep_at:
                self._sweep(now)
            window = self._windows[key] = _Window(key, (number + 1) * period, period)
        window.seen = time.monotonic()
        limit = item.amount
        if self._redis is None:  # one process: the count is exact
            if window.used >= limit:
                raise self._refusal(scope, item, RateLimitState(limit, 0, window.end))
            window.used += 1
            return RateLimitState(limit, limit - window.used, window.end)
        while window.held == 0:
            if window.known >= limit:  # every slot of the window is leased
                raise self._refusal(scope, item, RateLimitState(limit, 0, window.end))
            try:
                await self._leased(window, limit)
            except (RedisError, OSError) as exc:
                self._unavailable(scope, exc)
                return None
        window.held -= 1
        window.used += 1
        return RateLimitState(limit, limit - window.known + window.held, window.end)

    async def _leased(self, window: _Window, limit: int) -> None:
        """Lease slots for `window` (one Redis call, shared by concurrent requests)."""
        if window.flight is not None:
            await asyncio.shield(window.flight)
            return
        flight = window.flight = asyncio.get_running_loop().create_future()
        try:
            granted, used = cast(
                "list[int]",
                await self._lease(
                    keys=[window.key], args=[lease_size(limit), limit, window.expiry]
                ),
            )
            window.held += int(granted)
            window.known = int(used)
            flight.set_result(None)
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved: no warning when nobody else waited
            raise
        finally:
            window.flight = None
        if self._returner is None:
            self._returner = asyncio.create_task(self._give_back_idle())

    def _unavailable(self, scope: str, exc: BaseException) -> None:
        """Count a failure to reach Redis; raise a 503 unless `scope` fails open."""
        self.storage_errors += 1
        if self._errors is not None:
            self._errors.labels(scope).inc()
        if scope in _FAIL_OPEN:
            log.warning("rate limiter store failed, letting a %s request through: %s", scope, exc)
            return
        log.error("rate limiter store failed, refusing a %s request: %s", scope, exc)
        raise Problem(
            503,
            "the rate limiter's store is unreachable; retry shortly.",
            title="Backend unavailable",
            headers={"Retry-After": "5"},
        ) from None

    @staticmethod
    def _refusal(scope: str, item: RateLimitItem, state: RateLimitState) -> Problem:
        headers = state.headers()
        headers["Retry-After"] = str(max(1, int(headers["RateLimit-Reset"])))
        return Problem(
            429,
            f"rate limit of {item} for {scope} requests reached; retry after "
            f"{headers['Retry-After']} s.",
            title="Too many requests",
            headers=headers,
            limit=str(item),
        )

    def _sweep(self, now: float) -> None:
        """Forget the counters of ended windows."""
        self._windows = {k: w for k, w in self._windows.items() if w.end > now}
        self._sweep_at = now + _SWEEP_SECONDS

    async def _give_back_idle(self) -> None:
        """Every `RETURN_SECONDS`, give back the unused slots of leases not drawn on since
        the last round, in one pipeline (so a caller moving to another process, or stopping,
        strands no slots for the rest of the window)."""
        assert self._redis is not None
        while True:
            await asyncio.sleep(RETURN_SECONDS)
            idle_since = time.monotonic() - RETURN_SECONDS
            now = time.time()
            returned = [
                (w, w.held)
                for w in self._windows.values()
                if w.held and w.seen < idle_since and w.flight is None and w.end > now
            ]
            if not returned:
                continue
            # A lease asked while the give-back is on its way could be counted before it:
            # requests of these windows wait for the give-back (`flight`), then lease again.
            done = asyncio.get_running_loop().create_future()
            for window, count in returned:
                window.held -= count
                window.known -= count
                window.flight = done
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for window, count in returned:
                        await self._give_back(keys=[window.key], args=[count], client=pipe)
                    await pipe.execute()
            except (RedisError, OSError) as exc:  # the slots stay spent: refusals come early
                log.warning("rate limiter could not give back %d leases: %s", len(returned), exc)
            finally:
                for window, _ in returned:
                    window.flight = None
                done.set_result(None)

    async def close(self) -> None:
        """Stop giving back leases and release the Redis connections."""
        if self._returner is not None:
            self._returner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._returner
            self._returner = None
        if self._redis is not None:
            await self._redis.aclose()


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
