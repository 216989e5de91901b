"""Who may call the API: API keys with scopes, public reads, an IP allow-list, the audit log.

Routes declare what they need with `Depends(require(Scope.CRAWL))`; the dependency checks the
allow-list, authenticates the key (`Authorization: Bearer pf_…` or `X-API-Key: pf_…`), checks
the scope (admin implies crawl, crawl implies read), counts the request against the rate
limit and returns the `Principal`. Missing or bad keys get a 401 with `WWW-Authenticate:
Bearer`, a key without the scope a 403, an address outside the allow-list a 403.

Verified keys are cached in process for `cache_seconds` (30 s by default): a revoked key keeps
working on an API process for at most that long after `pricefleet keys revoke`. Unknown key
ids are cached as unknown for as long, so bad keys cannot hammer the database.

Every request that needs crawl or admin and is not a plain read (any method but GET, HEAD,
OPTIONS) lands in the audit log with its status, allowed or not: `AuditMiddleware` writes it
after the response. Key changes are audited where they happen (the CLI). This module decides
who gets in; how many requests pass is `ratelimit.py`'s business.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from fastapi import Request
from starlette import types as asgi
from starlette.applications import Starlette

from pricefleet.api.problems import Problem
from pricefleet.api.ratelimit import STATE_KEY
from pricefleet.store import ApiKey, AuditEntry, Store, parse_key, verify_key

if TYPE_CHECKING:
    from pricefleet.api.context import ApiContext
    from pricefleet.config import Settings

__all__ = [
    "AuditMiddleware",
    "Authenticator",
    "Principal",
    "Scope",
    "expand",
    "install_auth",
    "key_in",
    "presented_key",
    "require",
]

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_AUDIT_KEY = "pf_audit"
_CACHE_MAX = 10_000


class Scope(StrEnum):
    """What a key may do. Each scope includes the ones below it: admin > crawl > read."""

    READ = "read"
    CRAWL = "crawl"
    ADMIN = "admin"

    @property
    def implied(self) -> frozenset[Scope]:
        """This scope and every scope it includes."""
        order = list(Scope)
        return frozenset(order[: order.index(self) + 1])


def expand(scopes: Iterable[str]) -> frozenset[Scope]:
    """The scopes granted by a key holding `scopes` (unknown names grant nothing)."""
    granted: set[Scope] = set()
    for name in scopes:
        try:
            granted |= Scope(name).implied
        except ValueError:
            continue
    return frozenset(granted)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key (`key_id`) with its scopes, or anonymous (`key_id` None)."""

    key_id: str | None
    scopes: frozenset[Scope]
    ip: str | None

    @property
    def actor(self) -> str:
        """How the audit log names the caller: the key id, or `anonymous`."""
        return self.key_id or "anonymous"

    @property
    def rate_key(self) -> str:
        """Whose budget a request draws on: the key's, or the client address's."""
        return f"key:{self.key_id}" if self.key_id else f"ip:{self.ip or 'unknown'}"


def presented_key(request: Request) -> str | None:
    """The API key the request carries (`Authorization: Bearer …` or `X-API-Key`), if any."""
    return key_in(request.headers.get("authorization"), request.headers.get("x-api-key"))


def key_in(authorization: str | None, api_key: str | None) -> str | None:
    """The API key in these header values (`Authorization`, `X-API-Key`), if any."""
    if authorization:
        kind, _, credentials = authorization.partition(" ")
        if kind.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return api_key.strip() if api_key and api_key.strip() else None


def _unauthorized(detail: str, *, invalid: bool) -> Problem:
    challenge = 'Bearer realm="pricefleet"'
    if invalid:
        challenge += ', error="invalid_token"'
    return Problem(401, detail, title="Unauthorized", headers={"WWW-Authenticate": challenge})


class Authenticator:
    """Checks client addresses and API keys, with a short-lived cache of verified keys."""

    def __init__(
        self,
        store: Store,
        *,
        public_reads: bool = False,
        allow_ips: Sequence[str] = (),
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.public_reads = public_reads
        self.allow = tuple(ipaddress.ip_network(entry, strict=False) for entry in allow_ips)
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[ApiKey | None, float]] = {}
        # Whole keys already verified against a cached record, until that record's expiry:
        # a repeat caller costs a dict lookup, not a parse and a SHA-256.
        self._verified: dict[str, tuple[str, frozenset[Scope], float]] = {}
        self._pending: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> Authenticator:
        """Public reads, allow-list and cache lifetime as the settings say."""
        return cls(
            store,
            public_reads=settings.effective_public_reads,
            allow_ips=settings.api_allow_ips,
            cache_seconds=settings.api_key_cache_seconds,
        )

    def address_allowed(self, ip: str | None) -> bool:
        """Whether `ip` is inside the allow-list (everyone is, when there is none)."""
        if not self.allow:
            return True
        if ip is None:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self.allow)

    async def authenticate(self, key: str | None, ip: str | None) -> Principal:
        """The principal behind `key` (anonymous when None); a 401 `Problem` when the key is
        malformed, unknown, wrong or revoked."""
        if key is None:
            return Principal(None, frozenset(), ip)
        verified = self._verified.get(key)
        if verified is not None and verified[2] > self._clock():
            return Principal(verified[0], verified[1], ip)
        parsed = parse_key(key)
        if parsed is None:
            raise _unauthorized("malformed API key: expected pf_<id>_<secret>", invalid=True)
        record = await self._lookup(parsed[0])
        if record is None or not verify_key(record, key):
            raise _unauthorized("unknown API key", invalid=True)
        if not record.active:
            raise _unauthorized("this API key was revoked; ask for a new one", invalid=True)
        scopes = expand(record.scopes)
        if len(self._verified) >= _CACHE_MAX:
            self._verified.pop(next(iter(self._verified)))  # the oldest entry
        self._verified[key] = (record.id, scopes, self._cache.get(record.id, (None, 0.0))[1])
        return Principal(record.id, scopes, ip)

    def forget(self, key_id: str | None = None) -> None:
        """Drop a key (or every key) from the cache: for revocations made in this process."""
        if key_id is None:
            self._cache.clear()
            self._verified.clear()
        else:
            self._cache.pop(key_id, None)
            self._verified = {k: v for k, v in self._verified.items() if v[0] != key_id}

    async def _lookup(self, key_id: str) -> ApiKey | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        record = await self.store.api_key(key_id)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.pop(next(iter(self._cache)))  # the oldest entry
        self._cache[key_id] = (record, now + self.cache_seconds)
        if record is not None and record.active:
            # Once per cache lifetime per process (`last_used_at` is precise to that), in the
            # background: a busy database must not hold the request up for bookkeeping.
            task = asyncio.create_task(self._mark_used(key_id, datetime.now(UTC)))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        return record

    async def _mark_used(self, key_id: str, at: datetime) -> None:
        try:
            await self.store.mark_api_key_used(key_id, at)
        except Exception:  # bookkeeping must never fail a request or the app
            log.warning("could not record the use of API key %s", key_id, exc_info=True)

    async def flush(self) -> None:
        """Wait for the background `last_used_at` updates (call before closing the store)."""
        while self._pending:
            await asyncio.gather(*self._pending)


def require(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the request's `Principal`, once it is allowed `scope` and within
    its rate limit; otherwise a 401, 403, 429 (or 503) problem."""

    async def dependency(request: Request) -> Principal:
        ctx: ApiContext = request.app.state.ctx
        ip = request.client.host if request.client else None
        audit: AuditEntry | None = None
        if scope is not Scope.READ and request.method not in _SAFE_METHODS:
            # The route's template names the action (`POST /v1/queues/{site}/pause`), the
            # path its target.
            route = getattr(request.scope.get("route"), "path", request.url.path)
            audit = AuditEntry(
                actor="anonymous",
                action=f"{request.method} {route}",
                target=request.url.path,
                ip=ip,
            )
            setattr(request.state, _AUDIT_KEY, audit)
        if not ctx.auth.address_allowed(ip):
            raise Problem(
                403, f"requests from {ip} are not allowed here", title="Address not allowed"
            )
        principal = await ctx.auth.authenticate(presented_key(request), ip)
        if audit is not None and principal.key_id is not None:
            setattr(request.state, _AUDIT_KEY, replace(audit, actor=principal.actor))
        if principal.key_id is None:
            if not (scope is Scope.READ and ctx.auth.public_reads):
                raise _unauthorized(
                    f"this endpoint needs an API key with the {scope} scope: send "
                    "`Authorization: Bearer pf_…` (create one with `pricefleet keys create`)",
                    invalid=False,
                )
        elif scope not in principal.scopes:
            held = ", ".join(sorted(principal.scopes)) or "none"
            raise Problem(
                403,
                f"this endpoint needs the {scope} scope; the key has: {held}",
                title="Forbidden",
            )
        window = await ctx.limiter.hit(scope, principal.rate_key)
        if window is not None:
            setattr(request.state, STATE_KEY, window)
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


class AuditMiddleware:
    """ASGI middleware: after a crawl or admin action's response, appends it to the audit
    log with its status. A failed write is logged; the response has gone already."""

    def __init__(self, app: asgi.ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        status: list[int] = []

        async def send_noting_status(message: asgi.Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            entry = state.get(_AUDIT_KEY)
            if isinstance(entry, AuditEntry):
                ctx: ApiContext = scope["app"].state.ctx
                detail = {"status": status[0] if status else 500}
                try:
                    await ctx.store.record_audit([replace(entry, detail=detail)])
                except Exception:  # the response is out; keep serving
                    log.exception("could not write the audit entry for %s", entry.action)


def install_auth(app: Starlette) -> None:
    """Add the middlewares `require` relies on: RateLimit headers on responses, the audit log.
    (`app.state.ctx` must hold an `ApiContext` with `auth` and `limiter`.)"""
    from pricefleet.api.ratelimit import RateLimitHeaders

    app.add_middleware(RateLimitHeaders)
    app.add_middleware(AuditMiddleware)
