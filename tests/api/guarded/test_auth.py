"""Who may call what: API keys and scopes, public reads, the IP allow-list, the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest

from pricefleet.api.app import close_context, open_context
from pricefleet.api.auth import Authenticator, Scope, expand
from pricefleet.api.problems import PROBLEM_JSON
from pricefleet.config import Settings
from pricefleet.store import Store
from tests.api.guarded.conftest import ROUTES, Api, bearer, build_app, client

#: Expected status per (caller, route scope) with public reads off.
MATRIX = {
    "anonymous": {Scope.READ: 401, Scope.CRAWL: 401, Scope.ADMIN: 401},
    "bad": {Scope.READ: 401, Scope.CRAWL: 401, Scope.ADMIN: 401},
    "malformed": {Scope.READ: 401, Scope.CRAWL: 401, Scope.ADMIN: 401},
    "revoked": {Scope.READ: 401, Scope.CRAWL: 401, Scope.ADMIN: 401},
    "read": {Scope.READ: 200, Scope.CRAWL: 403, Scope.ADMIN: 403},
    "crawl": {Scope.READ: 200, Scope.CRAWL: 200, Scope.ADMIN: 403},
    "admin": {Scope.READ: 200, Scope.CRAWL: 200, Scope.ADMIN: 200},
}


def _headers(caller: str, keys: dict[str, str]) -> dict[str, str]:
    if caller == "anonymous":
        return {}
    if caller == "bad":  # a real key id with a wrong secret
        return bearer(keys["admin"][:-4] + "AAAA")
    if caller == "malformed":
        return bearer("not-a-pricefleet-key")
    return bearer(keys[caller])


def test_scopes_include_the_ones_below() -> None:
    """admin implies crawl and read, crawl implies read; unknown names grant nothing."""
    assert expand(["admin"]) == {Scope.ADMIN, Scope.CRAWL, Scope.READ}
    assert expand(["crawl"]) == {Scope.CRAWL, Scope.READ}
    assert expand(["read", "bogus"]) == {Scope.READ}


async def test_authz_matrix_every_route_by_every_caller(api: Api, keys: dict[str, str]) -> None:
    """Every route answers 401 without a valid key, 403 without the scope, 200 with it."""
    async with client(api.app()) as http:
        seen = {
            (caller, method, path): (
                await http.request(method, path, headers=_headers(caller, keys))
            ).status_code
            for caller in MATRIX
            for method, path, _ in ROUTES
        }
    expected = {
        (caller, method, path): MATRIX[caller][scope]
        for caller in MATRIX
        for method, path, scope in ROUTES
    }
    assert seen == expected


async def test_missing_and_bad_keys_get_a_bearer_challenge(api: Api, keys: dict[str, str]) -> None:
    """A 401 is a problem document with `WWW-Authenticate: Bearer`; a bad key is marked
    invalid_token, a missing one is not."""
    async with client(api.app()) as http:
        missing = await http.get("/products")
        bad = await http.get("/products", headers=_headers("bad", keys))
    assert missing.headers["content-type"] == PROBLEM_JSON
    assert missing.headers["www-authenticate"] == 'Bearer realm="pricefleet"'
    assert "pricefleet keys create" in missing.json()["detail"]
    assert bad.headers["www-authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]
    assert bad.json()["status"] == 401


async def test_forbidden_names_the_scope_needed(api: Api, keys: dict[str, str]) -> None:
    """A key without the scope gets a 403 problem saying which scope the route needs."""
    async with client(api.app()) as http:
        answer = await http.post("/crawls", headers=bearer(keys["read"]))
    assert answer.status_code == 403
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert "crawl scope" in answer.json()["detail"]


async def test_x_api_key_header_works_too(api: Api, keys: dict[str, str]) -> None:
    """A key sent as `X-API-Key` authenticates like a bearer token."""
    async with client(api.app()) as http:
        answer = await http.post("/crawls", headers={"X-API-Key": keys["crawl"]})
    assert answer.status_code == 200
    assert answer.json()["scopes"] == ["crawl", "read"]


async def test_public_reads_let_anonymous_read_only(api: Api, keys: dict[str, str]) -> None:
    """With public reads on, anonymous callers read; crawl and admin still need a key, and a
    bad key is still refused."""
    async with client(api.app(public_reads=True)) as http:
        read = await http.get("/products")
        crawl = await http.post("/crawls")
        bad = await http.get("/products", headers=_headers("bad", keys))
    assert read.status_code == 200
    assert read.json() == {"key": None, "scopes": [], "ip": "127.0.0.1"}
    assert crawl.status_code == 401
    assert bad.status_code == 401


async def test_revocation_takes_effect_within_the_cache_lifetime(store: Store, api: Api) -> None:
    """A verified key is cached: once revoked it still works until the cache entry expires,
    then it is refused."""
    now = [1000.0]
    record, key = await store.create_api_key("cached", ["read"])
    async with client(api.app(cache_seconds=30, clock=lambda: now[0])) as http:
        assert (await http.get("/products", headers=bearer(key))).status_code == 200
        await store.revoke_api_key(record.id)
        now[0] += 29
        assert (await http.get("/products", headers=bearer(key))).status_code == 200
        now[0] += 2
        refused = await http.get("/products", headers=bearer(key))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]


async def test_wrong_secret_is_refused_even_for_a_cached_key(
    api: Api, keys: dict[str, str]
) -> None:
    """The cache holds the key's record, not a verdict: every request's secret is checked."""
    async with client(api.app()) as http:
        assert (await http.get("/products", headers=bearer(keys["admin"]))).status_code == 200
        assert (await http.get("/products", headers=_headers("bad", keys))).status_code == 401


async def test_use_is_recorded_on_the_key(store: Store, api: Api) -> None:
    """A key's first use (per cache lifetime) sets its `last_used_at`."""
    record, key = await store.create_api_key("used", ["read"])
    app = api.app()
    async with client(app) as http:
        assert (await http.get("/products", headers=bearer(key))).status_code == 200
    await app.state.ctx.auth.flush()  # the update runs in the background
    stored = await store.api_key(record.id)
    assert stored is not None
    assert stored.last_used_at is not None


@pytest.mark.parametrize(
    ("ip", "status"), [("10.1.2.3", 200), ("192.168.7.7", 403), ("::1", 200), ("::2", 403)]
)
async def test_ip_allow_list(api: Api, keys: dict[str, str], ip: str, status: int) -> None:
    """Only addresses inside the allow-list get in, whatever key they hold."""
    app = api.app(allow_ips=["10.0.0.0/8", "::1"])
    async with client(app, ip) as http:
        answer = await http.get("/products", headers=bearer(keys["admin"]))
    assert answer.status_code == status
    if status == 403:
        assert ip in answer.json()["detail"]


async def test_crawl_and_admin_actions_are_audited(
    store: Store, api: Api, keys: dict[str, str]
) -> None:
    """Unsafe requests to crawl and admin routes land in the audit log with actor, status and
    address, refused ones too; reads and safe methods do not."""
    async with client(api.app(), "10.9.8.7") as http:
        assert (await http.post("/crawls", headers=bearer(keys["crawl"]))).status_code == 200
        assert (await http.post("/queues/shop/pause")).status_code == 401
        forbidden = await http.post("/queues/shop/pause", headers=bearer(keys["crawl"]))
        assert forbidden.status_code == 403
        assert (await http.get("/queues", headers=bearer(keys["crawl"]))).status_code == 200
        assert (await http.get("/products", headers=bearer(keys["read"]))).status_code == 200
    crawl_id = keys["crawl"].split("_")[1]
    entries = await store.audit_log()
    assert [(e.actor, e.action, e.target, e.detail, e.ip) for e in reversed(entries)] == [
        (crawl_id, "POST /crawls", "/crawls", {"status": 200}, "10.9.8.7"),
        (
            "anonymous",
            "POST /queues/{site}/pause",
            "/queues/shop/pause",
            {"status": 401},
            "10.9.8.7",
        ),
        (crawl_id, "POST /queues/{site}/pause", "/queues/shop/pause", {"status": 403}, "10.9.8.7"),
    ]


async def test_context_from_settings(tmp_path: Path) -> None:
    """The API's context builds auth from the settings: embedded profile reads are public
    unless turned off, and the allow-list and cache lifetime are passed on."""
    settings = Settings(
        _env_file=None, data_dir=tmp_path, api_allow_ips="10.0.0.0/8", api_key_cache_seconds=5
    )
    ctx = await open_context(settings)
    try:
        assert isinstance(ctx.auth, Authenticator)
        assert ctx.auth.public_reads is True
        assert ctx.auth.cache_seconds == 5
        assert ctx.auth.address_allowed("10.2.3.4")
        assert not ctx.auth.address_allowed("11.2.3.4")
        async with client(build_app(ctx), "10.0.0.1") as http:
            answer = await http.get("/products")
        assert answer.status_code == 200
        assert answer.headers["ratelimit-limit"] == "100"
    finally:
        await close_context(ctx)
    closed = await open_context(Settings(_env_file=None, data_dir=tmp_path, public_reads=False))
    try:
        assert closed.auth.public_reads is False
    finally:
        await close_context(closed)
