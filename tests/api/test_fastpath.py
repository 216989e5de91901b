"""The fast path (cached reads answered before FastAPI) answers exactly as the routes do."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from pricefleet.api.app import create_app
from pricefleet.api.fastpath import cache_key
from pricefleet.config import Settings
from tests.api.conftest import Api
from tests.store.factories import SITES, at, sighting

Client = httpx.AsyncClient
GTIN = "8410000000016"
#: Cached reads, each asked twice (the second is a hit) with these extra headers.
READS = (
    "/v1/products/shop-a/p1",
    "/v1/products/shop-a/p1?fields=name,price",
    "/v1/products/shop-a/p1/history",
    "/v1/products?limit=40",
    "/v1/products?site=shop-a&limit=3",
    "/v1/search?q=leche",
    f"/v1/compare?gtin={GTIN}",
    "/v1/trending?days=7",
    "/v1/sites",
    # Requests the fast path must leave to the routes: invalid, or judged there.
    "/v1/products/shop-a/p1?fields=",
    "/v1/products/shop-a/p1?fields=name&fields=price",
    "/v1/products/shop-a/p1?max_age=999999999&wait=0",
    "/v1/products/shop-a/p1?wait=abc",
    "/v1/products/shop-a/ghost",
    "/v1/search?q=",
)
VARIANTS: tuple[dict[str, str], ...] = (
    {},
    {"Accept-Encoding": "gzip"},
    {"Accept-Encoding": "identity"},
)
#: Headers whose value depends on the instant: compared within a second.
_SECONDS = ("ratelimit-reset", "retry-after")


def _served() -> float:
    return REGISTRY.get_sample_value("pricefleet_api_fast_path_total", {"outcome": "served"}) or 0


def _shape(r: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Status, raw body and sorted headers of an answer; instants rounded away."""
    headers = sorted((k, v) for k, v in r.headers.multi_items() if k not in _SECONDS)
    return r.status_code, r.content, headers


def _same(fast: httpx.Response, slow: httpx.Response, what: str) -> None:
    assert _shape(fast) == _shape(slow), what
    for name in _SECONDS:
        assert (name in fast.headers) == (name in slow.headers), what
        if name in fast.headers:
            assert abs(int(fast.headers[name]) - int(slow.headers[name])) <= 1, what


@contextlib.asynccontextmanager
async def _started(settings: Settings, fast: bool) -> AsyncIterator[tuple[FastAPI, Client]]:
    app = create_app(settings.model_copy(update={"api_fast_path": fast}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield app, client


async def test_fast_path_answers_as_the_routes_do(api: Api) -> None:
    """Two apps on one store, fast path on and off, give the same status, headers and body to
    the same requests: 200s, 304s (either ETag), gzip or not, 401 and 403 problems, every
    rate limit header, then the 429s once the budget is spent; the fast path served most."""
    # A day's window: windows are clock-aligned, and this test runs long enough that a
    # minute's would often roll over mid-test and refill the budget it counts down.
    settings = api.settings.model_copy(update={"rate_limit_read": "300/day"})
    store = api.ctx.store
    await store.ingest(
        [sighting(f"p{i}", "1.00", at(0), name=f"Leche {i}", gtin=GTIN) for i in range(40)]
    )
    await store.ingest([sighting("p1", "0.90", at(5), name="Leche 1", gtin=GTIN)])
    await store.refresh_trending()
    keys = {}
    for name, scopes in (("fast", ["read"]), ("slow", ["read"]), ("f-adm", ["admin"])):
        keys[name] = (await store.create_api_key(name, scopes))[1]
    keys["s-adm"] = (await store.create_api_key("s-adm", ["admin"]))[1]
    served = _served()
    async with (
        _started(settings, True) as (fast_app, fast),
        _started(settings, False) as (
            slow_app,
            slow,
        ),
    ):
        # One cache for both: answers holding an age (compare) are then the same bytes.
        own = slow_app.state.ctx.cache
        slow_app.state.ctx.cache = fast_app.state.ctx.cache

        async def both(url: str, headers: dict[str, str], who: str = "") -> httpx.Response:
            a = await fast.get(url, headers={**headers, **_auth(keys, "fast", who)})
            b = await slow.get(url, headers={**headers, **_auth(keys, "slow", who)})
            _same(a, b, f"{url} {headers} {who}")
            return a

        for url in READS:
            for variant in VARIANTS:
                first = await both(url, variant)
                await both(url, variant)  # a hit, on the fast app from its memory
                if first.status_code == 200:
                    for etag in (first.headers["etag"], first.headers["etag"][:-4] + '"'):
                        await both(url, {**variant, "If-None-Match": etag})
                    await both(url, {**variant, "If-None-Match": '"other"'})
            for who in ("anonymous", "unknown", "malformed", "admin", "x-api-key"):
                await both(url, {}, who)
        assert _served() - served > 100
        last = await both("/v1/products/shop-a/p1", {})
        left = int(last.headers["ratelimit-remaining"])
        assert 0 < left < 150
        url = "/v1/products/shop-a/p1"
        statuses = [(await both(url, {})).status_code for _ in range(left + 2)]
        slow_app.state.ctx.cache = own
    assert statuses == [200] * left + [429, 429]


def _auth(keys: dict[str, str], side: str, who: str) -> dict[str, str]:
    """The credentials of one caller kind, for the fast (`fast`) or the slow app."""
    own = keys[side]
    if who == "":
        return {"Authorization": f"Bearer {own}"}
    if who == "anonymous":
        return {"Authorization": ""}
    if who == "unknown":
        return {"Authorization": f"Bearer {own[:-4]}AAAA"}
    if who == "malformed":
        return {"Authorization": "Bearer nope"}
    if who == "admin":
        return {"Authorization": f"Bearer {keys['f-adm' if side == 'fast' else 's-adm']}"}
    return {"Authorization": "", "X-API-Key": own}


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        (
            "/v1/products/s/p",
            "",
            ("product", "product:s:p:", "/v1/products/{site_id}/{product_id:path}"),
        ),
        ("/v1/products/s/a/b", "fields=name", ("product", "product:s:a/b:name", None)),
        ("/v1/products/s/p/history", "since=x", ("history", "history:s:p:since=x", None)),
        ("/v1/search", "q=a%20b", ("search", "search:q=a%20b", "/v1/search")),
        ("/v1/sites", "x=1", ("sites", "sites", "/v1/sites")),
        ("/v1/products/s/p", "max_age=1", None),
        ("/v1/products/s/p", "fields=,", None),
        ("/v1/products/s/p", "fields=a&fields=b", None),
        ("/v1/products/s/", "", None),
        ("/v1/products/s//history", "", None),
        ("/v1/search", "q=a#b", None),
        ("/v1/search/", "q=a", None),
        ("/v1/queues", "", None),
    ],
)
def test_cache_keys_are_the_routes(
    path: str, query: str, expected: tuple[str, str, str | None] | None
) -> None:
    """The fast path computes the routes' own cache keys, and leaves alone what only a route
    can judge (fresh reads, repeated or empty fields, odd characters, other routes)."""
    found = cache_key(path, query)
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert (found[0].value, found[1]) == expected[:2]
    if expected[2] is not None:
        assert found[2] == expected[2]


@pytest.mark.parametrize("settings", ["cluster"], indirect=True)
async def test_fast_path_counts_in_metrics(api: Api) -> None:
    """Answers from the fast path count in http_requests_total under the route's template,
    and as cache hits."""
    await api.ctx.store.ingest([sighting("p1", "1.00", at(0))])
    await api.ctx.store.upsert_sites(SITES)

    def sample(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0

    template = "/v1/products/{site_id}/{product_id:path}"
    labels = {"method": "GET", "endpoint": template, "status": "200"}
    requests, hits, served = (
        sample("http_requests_total", labels),
        sample("cache_hits_total", {"kind": "product"}),
        _served(),
    )
    for _ in range(3):
        assert (await api.client.get("/v1/products/shop-a/p1")).status_code == 200
    assert sample("http_requests_total", labels) - requests == 3
    assert sample("cache_hits_total", {"kind": "product"}) - hits == 2
    assert _served() - served == 2
