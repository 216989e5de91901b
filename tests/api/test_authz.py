"""The authorisation matrix of the real app: every route × no key and each scope."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pricefleet.api.app import create_app
from pricefleet.config import Settings
from tests.api.conftest import Api
from tests.store.factories import SITES, at, sighting

#: Every route of the API, a request to it, and the scope it needs (None: open to all).
MATRIX: dict[tuple[str, str], tuple[str, str | None]] = {
    ("GET", "/v1/products"): ("/v1/products", "read"),
    ("GET", "/v1/products/{site_id}/{product_id}"): ("/v1/products/shop-a/p1", "read"),
    ("GET", "/v1/products/{site_id}/{product_id}/history"): (
        "/v1/products/shop-a/p1/history",
        "read",
    ),
    ("GET", "/v1/search"): ("/v1/search?q=leche", "read"),
    ("GET", "/v1/compare"): ("/v1/compare?q=leche", "read"),
    ("GET", "/v1/trending"): ("/v1/trending", "read"),
    ("GET", "/v1/sites"): ("/v1/sites", "read"),
    ("GET", "/v1/queues"): ("/v1/queues", "crawl"),
    ("POST", "/v1/crawls"): ("/v1/crawls", "crawl"),
    ("GET", "/v1/crawls/{crawl_id}"): ("/v1/crawls/shop-a.0123456789ab", "crawl"),
    ("POST", "/v1/queues/{site_id}/pause"): ("/v1/queues/shop-a/pause", "admin"),
    ("POST", "/v1/queues/{site_id}/resume"): ("/v1/queues/shop-a/resume", "admin"),
    ("GET", "/healthz"): ("/healthz", None),
    ("GET", "/readyz"): ("/readyz", None),
    ("GET", "/metrics"): ("/metrics", None),
}
RANK = {None: 0, "read": 1, "crawl": 2, "admin": 3}


def test_matrix_covers_every_route(api_app_routes: set[tuple[str, str]]) -> None:
    """No route of the app is missing from the matrix (a new route must say its scope)."""
    assert api_app_routes == set(MATRIX)


@pytest.fixture
def api_app_routes(api: Api) -> set[tuple[str, str]]:
    """(method, path template) of every operation the app documents."""
    return {
        (method.upper(), path)
        for path, operations in api.app.openapi()["paths"].items()
        for method in operations
    }


@pytest.mark.parametrize("settings", ["cluster"], indirect=True)
async def test_every_route_by_scope(api: Api) -> None:
    """With reads not public (the cluster default): no key is 401 on every guarded route, a
    key below the route's scope is 403, a key with it (or above) gets through."""
    await api.ctx.store.ingest([sighting("p1", "1.00", at(0), name="Leche entera")])
    keys = {None: None}
    for scope in ("read", "crawl", "admin"):
        _, keys[scope] = await api.ctx.store.create_api_key(scope, [scope])
    bad: list[str] = []
    for (method, _), (url, needed) in MATRIX.items():
        for held, key in keys.items():
            headers = {"Authorization": f"Bearer {key}"} if key else {"Authorization": ""}
            body = {"site_id": "shop-a"} if url == "/v1/crawls" else None
            r = await api.client.request(method, url, headers=headers, json=body)
            if RANK[held] >= RANK[needed]:
                expected_ok = r.status_code not in (401, 403)
            elif held is None:
                expected_ok = r.status_code == 401 and "www-authenticate" in r.headers
            else:
                expected_ok = r.status_code == 403
            if not expected_ok:
                bad.append(f"{method} {url} with {held or 'no'} key: {r.status_code}")
    assert bad == []


@pytest.mark.parametrize("settings", ["embedded"], indirect=True)
async def test_public_reads_in_embedded_profile(api: Api) -> None:
    """The embedded profile serves reads without a key, but crawls still need one."""
    await api.ctx.store.ingest([sighting("p1", "1.00", at(0))])
    anonymous = {"Authorization": ""}
    product = await api.client.get("/v1/products/shop-a/p1", headers=anonymous)
    assert product.status_code == 200
    assert product.headers["cache-control"].startswith("public")
    crawl = await api.client.post("/v1/crawls", json={"site_id": "shop-a"}, headers=anonymous)
    assert crawl.status_code == 401


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "no-fast-path"])
async def test_rate_limit_on_the_real_app(
    tmp_path: Path, recipes_dir: Path, fast_path: bool
) -> None:
    """The app's routes spend the caller's budget: RateLimit headers on answers, then a 429
    problem with Retry-After once it is spent (cached answers from the fast path as well);
    health probes are not limited."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        recipes_dir=recipes_dir,
        rate_limit="3/minute",
        api_fast_path=fast_path,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await app.state.ctx.store.upsert_sites(SITES)
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            answers = [await client.get("/v1/products") for _ in range(4)]
            assert [a.status_code for a in answers] == [200, 200, 200, 429]
            assert [a.headers["ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
            assert answers[0].headers["ratelimit-limit"] == "3"
            refused = answers[3]
            assert refused.headers["content-type"] == "application/problem+json"
            assert int(refused.headers["retry-after"]) > 0
            assert (await client.get("/healthz")).status_code == 200
