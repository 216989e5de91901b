"""Auth fixtures: a real store (SQLite and PostgreSQL), keys in it, and a tiny app guarded by
`require`, driven in process through httpx's ASGI transport."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI

from pricefleet.api.auth import Authenticator, Principal, Scope, install_auth, require
from pricefleet.api.cache import ApiCache
from pricefleet.api.context import ApiContext
from pricefleet.api.problems import install_problem_handlers
from pricefleet.api.ratelimit import RateLimiter
from pricefleet.config import Settings
from pricefleet.events import EventBus
from pricefleet.queue import JobQueue
from pricefleet.store import Store
from tests.servers import create_database, drop_database, pg_url, require_server

REDIS_URL = "redis://127.0.0.1:6379/0"

#: The routes of the test app: (method, path, scope needed).
ROUTES: tuple[tuple[str, str, Scope], ...] = (
    ("GET", "/products", Scope.READ),
    ("GET", "/queues", Scope.CRAWL),
    ("POST", "/crawls", Scope.CRAWL),
    ("POST", "/queues/shop/pause", Scope.ADMIN),
)


def _who(principal: Principal) -> dict[str, object]:
    return {"key": principal.key_id, "scopes": sorted(principal.scopes), "ip": principal.ip}


def build_app(ctx: ApiContext) -> FastAPI:
    """A FastAPI app with one route per scope (and an unsafe one), auth installed."""
    app = FastAPI()
    install_problem_handlers(app)
    install_auth(app)
    app.state.ctx = ctx

    @app.get("/products")
    async def products(
        who: Annotated[Principal, Depends(require(Scope.READ))],
    ) -> dict[str, object]:
        return _who(who)

    @app.get("/queues")
    async def queues(who: Annotated[Principal, Depends(require(Scope.CRAWL))]) -> dict[str, object]:
        return _who(who)

    @app.post("/crawls")
    async def crawls(who: Annotated[Principal, Depends(require(Scope.CRAWL))]) -> dict[str, object]:
        return _who(who)

    @app.post("/queues/{site}/pause")
    async def pause(
        site: str, who: Annotated[Principal, Depends(require(Scope.ADMIN))]
    ) -> dict[str, object]:
        return _who(who)

    return app


@dataclass
class Api:
    """Builds test apps on one store, and closes what they opened."""

    store: Store
    tmp_path: Path
    opened: list[ApiContext] = field(default_factory=list)

    def app(
        self,
        *,
        public_reads: bool = False,
        allow_ips: Sequence[str] = (),
        cache_seconds: float = 30.0,
        limits: dict[str, str] | None = None,
        storage: str = "async+memory://",
        prefix: str = "pf:ratelimit",
        clock: Callable[[], float] | None = None,
        limiter: RateLimiter | None = None,
    ) -> FastAPI:
        """An app with these auth settings (all scopes 100/minute unless `limits` says)."""
        settings = Settings(_env_file=None, data_dir=self.tmp_path)
        wanted = {"read": "100/minute", "crawl": "100/minute", "admin": "100/minute"}
        wanted.update(limits or {})
        options = {} if clock is None else {"clock": clock}
        ctx = ApiContext(
            settings=settings,
            store=self.store,
            queue=JobQueue.from_url(f"sqlite:///{self.tmp_path / 'queue.db'}"),
            cache=ApiCache(settings),
            events=EventBus.from_url("memory://"),
            recipes={},
            auth=Authenticator(
                self.store,
                public_reads=public_reads,
                allow_ips=allow_ips,
                cache_seconds=cache_seconds,
                **options,
            ),
            limiter=limiter or RateLimiter(wanted, storage=storage, key_prefix=prefix),
        )
        self.opened.append(ctx)
        return build_app(ctx)

    async def close(self) -> None:
        """Close the queues and limiters (the store is the fixture's)."""
        for ctx in self.opened:
            await ctx.auth.flush()
            await ctx.limiter.close()
            await ctx.queue.close()


def client(app: FastAPI, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTP client calling `app` in process, as if from `ip`."""
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://api.test")


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for a key."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated, empty store: SQLite, and a database of its own on the real PostgreSQL."""
    if request.param == "sqlite":
        async with Store.from_url(f"sqlite:///{tmp_path / 'pf.db'}") as store:
            await store.upgrade()
            yield store
        return
    name = await create_database()
    try:
        async with Store.from_url(pg_url(name)) as store:
            await store.upgrade()
            yield store
    finally:
        await drop_database(name)


@pytest.fixture
async def api(store: Store, tmp_path: Path) -> AsyncIterator[Api]:
    """Test apps on the store."""
    maker = Api(store, tmp_path)
    yield maker
    await maker.close()


@pytest.fixture
async def keys(store: Store) -> dict[str, str]:
    """One key per scope (`read`, `crawl`, `admin`) and a `revoked` one, by name."""
    made = {}
    for scope in ("read", "crawl", "admin", "revoked"):
        record, key = await store.create_api_key(scope, ["read" if scope == "revoked" else scope])
        made[scope] = key
        if scope == "revoked":
            await store.revoke_api_key(record.id)
    return made


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the real Redis; its keys are deleted afterwards."""
    require_server("127.0.0.1", 6379, "Redis")
    prefix = f"pftest-rl-{secrets.token_hex(4)}"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        async for key in client.scan_iter(match=f"{prefix}:*", count=1_000):
            await client.delete(key)
    finally:
        await client.aclose()
