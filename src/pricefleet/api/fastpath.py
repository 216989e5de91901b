"""The fast path: cached reads answered before FastAPI, with the very same answer.

A raw ASGI middleware in front of the app's routing. For a GET on a cached read route (one
product without `max_age`, its history, the product list, search, compare, trending, sites) it
works out the route's cache key as the route does and looks it up in the cache
(`ApiCache.lookup`: this process's memory, then Redis in the cluster). On a hit it does what
the route's `require(Scope.READ)` dependency does — IP allow-list, API key (through the same
`Authenticator`, with its in-process key cache), the read scope, the rate limit — and answers
with the entry's bytes and the headers `http.representation` gives the normal path (ETag, 304,
the gzipped copy, Cache-Control, Cache-Tag, Surrogate-Key, Vary) plus the `RateLimit-*` ones.
A refused rate limit is the same 429 problem. Everything else falls through to FastAPI
untouched: other methods and routes, a cache miss (building the answer is the route's
business), a request whose validity the route would have to judge (`max_age`, unknown or
repeated parameters on a product, odd characters), and every refusal but the rate limit's
(401 and 403 come from `require`, so they read the same). A key that fails is cached as failed
by the `Authenticator`, so falling through costs no second database query.

It sits inside `MetricsMiddleware` and sets the route on the ASGI scope, so its answers count
in `http_requests_total` and `http_request_duration_seconds` under the route's template, and
it counts cache hits as the cache does. It must not decide anything the routes decide
differently: when in doubt, it falls through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from pricefleet.api.auth import Scope as KeyScope
from pricefleet.api.auth import key_in
from pricefleet.api.cache import Kind
from pricefleet.api.http import JSON, MISSED, representation
from pricefleet.api.problems import Problem, problem_response
from pricefleet.api.ratelimit import RateLimitState

if TYPE_CHECKING:
    from pricefleet.api.context import ApiContext

__all__ = ["FAST_PATH", "FastPath", "cache_key"]

FAST_PATH = Counter(
    "pricefleet_api_fast_path",
    "Requests the fast path answered (served) or handed to FastAPI (passed).",
    ["outcome"],
)
_SERVED = FAST_PATH.labels("served")
_PASSED = FAST_PATH.labels("passed")

_PRODUCTS = "/v1/products"
_PRODUCT = "/v1/products/{site_id}/{product_id:path}"
_HISTORY = "/v1/products/{site_id}/{product_id:path}/history"
#: Routes whose cache key is `<kind>:<raw query string>`, by path.
_BY_QUERY: dict[str, tuple[Kind, str]] = {
    _PRODUCTS: (Kind.LIST, "list:"),
    "/v1/search": (Kind.SEARCH, "search:"),
    "/v1/compare": (Kind.COMPARE, "compare:"),
    "/v1/trending": (Kind.TRENDING, "trending:"),
}
#: Characters that would make the route's view of the query (`request.url.query`, through
#: `urlsplit`) differ from the raw query string: such requests fall through.
_ODD = frozenset("#\t\r\n")
#: `fields=` is at most this long on the product route.
_FIELDS_MAX = 500
_JSON = JSON.encode()


def cache_key(path: str, query: str) -> tuple[Kind, str, str] | None:
    """(kind, cache key, route template) of a GET the fast path may answer from the cache, as
    the route computes them; None when the route must judge the request itself."""
    if _ODD.intersection(query) or "?" in path or _ODD.intersection(path):
        return None
    by_query = _BY_QUERY.get(path)
    if by_query is not None:
        return by_query[0], by_query[1] + query, path
    if path == "/v1/sites":
        return Kind.SITES, "sites", path
    if not path.startswith(_PRODUCTS + "/"):
        return None
    site_id, _, product_id = path[len(_PRODUCTS) + 1 :].partition("/")
    if not site_id or not product_id:
        return None
    if product_id.endswith("/history"):  # matched before the product route, as in the app
        product_id = product_id.removesuffix("/history")
        if not product_id:
            return None
        return Kind.HISTORY, f"history:{site_id}:{product_id}:{query}", _HISTORY
    fields = ""
    if query:
        params = parse_qsl(query, keep_blank_values=True)
        if len(params) != 1 or params[0][0] != "fields":
            return None  # max_age (a fresh read), repeated or unknown parameters: the route's
        fields = params[0][1]
        if len(fields) > _FIELDS_MAX or not fields.replace(",", "").strip():
            return None  # the route's 400 or 422
    return Kind.PRODUCT, f"product:{site_id}:{product_id}:{fields}", _PRODUCT


class FastPath:
    """ASGI middleware answering cached reads before FastAPI (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (
            scope["method"] != "GET"
            or scope.get("root_path")
            or not await self._answer(scope, receive, send)
        ):
            _PASSED.inc()
            await self.app(scope, receive, send)
            return
        _SERVED.inc()

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer from the cache; False (nothing sent) when FastAPI must answer instead."""
        query: str = scope["query_string"].decode("latin-1")
        found = cache_key(scope["path"], query)
        if found is None:
            return False
        kind, key, template = found
        route = self._route(scope, template)
        if route is None:  # not this app's route (never, unless the routes change)
            return False
        ctx: ApiContext = scope["app"].state.ctx
        entry = await ctx.cache.lookup(kind, key)
        if entry is None:
            scope.setdefault("state", {})[MISSED] = key
            return False
        authorization = api_key = accept_encoding = if_none_match = None
        for name, value in scope["headers"]:
            # The first of each, as Starlette's `Headers.get` reads them.
            if name == b"authorization":
                authorization = authorization or value.decode("latin-1")
            elif name == b"x-api-key":
                api_key = api_key or value.decode("latin-1")
            elif name == b"accept-encoding":
                accept_encoding = accept_encoding or value.decode("latin-1")
            elif name == b"if-none-match":
                if_none_match = if_none_match or value.decode("latin-1")
        client = scope.get("client")
        ip = client[0] if client else None
        auth = ctx.auth
        if not auth.address_allowed(ip):
            return False
        try:
            principal = await auth.authenticate(key_in(authorization, api_key), ip)
        except Problem:  # a bad key: the route says so, in its own words
            return False
        if (principal.key_id is None and not auth.public_reads) or (
            principal.key_id is not None and KeyScope.READ not in principal.scopes
        ):
            return False
        scope["route"] = route
        try:
            window = await ctx.limiter.hit(KeyScope.READ, principal.rate_key)
        except Problem as refused:  # past the limit: the same problem the route would raise
            await problem_response(refused, scope["path"])(scope, receive, send)
            return True
        ctx.cache.count_hit(kind, key)
        status, body, headers = representation(
            entry,
            ctx.cache.ttl(kind),
            public=auth.public_reads,
            accept_encoding=accept_encoding or "",
            if_none_match=if_none_match,
        )
        raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        if status == 200:
            raw.append((b"content-length", str(len(body)).encode()))
            raw.append((b"content-type", _JSON))
        if isinstance(window, RateLimitState):
            raw.extend((name.encode(), value.encode()) for name, value in window.headers().items())
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
        return True

    def _route(self, scope: Scope, template: str) -> Any:
        """The app's route object for `template`: what FastAPI's routing puts on the scope,
        and what `MetricsMiddleware` labels by."""
        route = self._routes.get(template)
        if route is None:
            for candidate in _flat(scope["app"].router.routes):
                if getattr(candidate, "path", None) == template:
                    route = self._routes[template] = candidate
                    break
        return route


def _flat(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, those of included routers too (FastAPI keeps them in their router)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flat(included.routes)
        else:
            yield route
