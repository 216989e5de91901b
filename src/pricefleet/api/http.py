"""HTTP caching for clients and CDNs: strong ETags, 304s, Cache-Control and cache-tag headers.

Every cacheable answer is an `Entry` (body + ETag + tags) from `api.cache`; `send` turns it into
a response, or a 304 when the client already holds that exact body. `Cache-Control` says how
long a browser may keep it (`max-age`) and how long a shared cache may (`s-maxage`, the kind's
TTL, since a change purges the CDN through the tags); `Cache-Tag` (Cloudflare) and
`Surrogate-Key` (Fastly, Varnish) name the tags a purge targets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.responses import Response

from pricefleet.api.cache import Entry, Kind
from pricefleet.api.context import ApiContext

__all__ = [
    "JSON",
    "MISSED",
    "cache_control",
    "cached_answer",
    "etag_matches",
    "representation",
    "send",
]

JSON = "application/json"
#: The request state's entry where the fast path leaves the cache key it looked up in vain
#: (`api.fastpath`), so the route does not look again.
MISSED = "pricefleet_cache_missed"
#: A browser revalidates after at most this long (it gets a 304 when nothing changed).
_BROWSER_MAX_AGE = 60


def cache_control(ttl: float, *, public: bool) -> str:
    """The Cache-Control of an answer kept `ttl` seconds by our cache."""
    if ttl <= 0:
        return "no-cache"
    browser = min(_BROWSER_MAX_AGE, int(ttl))
    if not public:  # answers behind a key: only the client's own cache
        return f"private, max-age={browser}"
    return f"public, max-age={browser}, s-maxage={int(ttl)}, stale-while-revalidate=30"


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weak comparison, as RFC 9110 asks for
    If-None-Match; `*` matches any)."""
    if not header:
        return False
    bare = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == bare:
            return True
    return False


def representation(
    entry: Entry,
    ttl: float,
    *,
    public: bool,
    accept_encoding: str,
    if_none_match: str | None,
) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and headers (all but Content-Length and Content-Type) of the answer for
    `entry`: 200 with the body (gzipped when the client takes it and the body is large), or 304
    when the client holds it. The gzipped form has its own ETag (strong ETags name one
    representation); either one revalidates. `send` and the fast path (`api.fastpath`) both
    answer with this, so their answers cannot drift apart."""
    gzipped = entry.gzipped is not None and "gzip" in accept_encoding
    etag = entry.etag[:-1] + '-gz"' if gzipped else entry.etag
    headers = {"ETag": etag, "Cache-Control": cache_control(ttl, public=public)}
    if entry.tags:
        headers["Cache-Tag"] = ",".join(entry.tags)
        headers["Surrogate-Key"] = " ".join(entry.tags)
    if entry.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if etag_matches(if_none_match, entry.etag) or etag_matches(
        if_none_match, entry.etag[:-1] + '-gz"'
    ):
        return 304, b"", headers
    if gzipped:
        assert entry.gzipped is not None
        headers["Content-Encoding"] = "gzip"
        return 200, entry.gzipped, headers
    return 200, entry.body, headers


def send(request: Request, entry: Entry, ttl: float, *, public: bool) -> Response:
    """The response for `entry` (see `representation`)."""
    status, body, headers = representation(
        entry,
        ttl,
        public=public,
        accept_encoding=request.headers.get("accept-encoding", ""),
        if_none_match=request.headers.get("if-none-match"),
    )
    if status == 304:
        return Response(status_code=304, headers=headers)
    if entry.gzipped is not None and "Content-Encoding" not in headers:
        # The app's gzip middleware adds `Vary: Accept-Encoding` to this uncompressed answer
        # itself (its body is above the middleware's minimum size, as every body with a gzipped
        # copy is): set here as well, the header would say it twice.
        del headers["Vary"]
    # Compressed once when cached; the gzip middleware leaves encoded answers alone.
    return Response(body, media_type=JSON, headers=headers)


async def cached_answer(
    request: Request,
    ctx: ApiContext,
    kind: Kind,
    key: str,
    build: Callable[[], Awaitable[Entry]],
) -> Response:
    """The cached answer of `kind` under `key` (built by `build` on a miss), as a response."""
    missed = request.scope.get("state", {}).get(MISSED) == key  # the fast path looked already
    entry = await ctx.cache.get_or_build(kind, key, build, missed=missed)
    return send(request, entry, ctx.cache.ttl(kind), public=ctx.public_reads)
