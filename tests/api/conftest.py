"""API fixtures: the app on the embedded profile (SQLite, in-process cache) and on the cluster
profile (the real PostgreSQL and Redis, each test its own database and key prefix), driven in
process through httpx's ASGI transport."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from pricefleet.api.app import create_app
from pricefleet.api.context import ApiContext
from pricefleet.config import Settings
from tests.servers import create_database, drop_database, pg_url, require_server
from tests.store.factories import SITES

REDIS_URL = "redis://127.0.0.1:6379/0"

#: A recipe for the factories' shop-a, so crawls and fresh reads have something to enqueue.
RECIPE = """\
id: shop-a
name: Shop A
base_url: http://shop-a.test/
discovery:
  sitemap:
    urls: ["http://shop-a.test/sitemap.xml"]
    product_url: "/p/"
extraction:
  mode: auto
"""


@dataclass
class Api:
    """A running app: its client, context and settings."""

    client: httpx.AsyncClient
    ctx: ApiContext
    app: FastAPI
    settings: Settings


async def drop_redis_prefix(prefix: str) -> None:
    """Delete a test's keys: queue, cache and cache tag sets."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        for pattern in (f"{prefix}:*", f"*{prefix}:cache:*"):
            async for key in client.scan_iter(match=pattern, count=1_000):
                await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture
def recipes_dir(tmp_path: Path) -> Path:
    """A recipes folder holding shop-a's recipe."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "shop-a.yaml").write_text(RECIPE)
    return folder


@pytest.fixture(params=["embedded", "cluster"])
async def settings(
    request: pytest.FixtureRequest, tmp_path: Path, recipes_dir: Path
) -> AsyncIterator[Settings]:
    """Settings of each profile; the cluster's database and key prefix are the test's own."""
    if request.param == "embedded":
        yield Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=tmp_path / "data",
            recipes_dir=recipes_dir,
        )
        return
    require_server("127.0.0.1", 6379, "Redis")
    name = await create_database()
    prefix = f"t{uuid.uuid4().hex[:10]}"
    try:
        yield Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=pg_url(name),
            redis_url=REDIS_URL,
            queue_prefix=prefix,
            recipes_dir=recipes_dir,
            data_dir=tmp_path / "data",
        )
    finally:
        await drop_database(name)
        await drop_redis_prefix(prefix)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """The app started (lifespan run) with the two factory shops registered; its client
    carries an admin key."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        ctx: ApiContext = app.state.ctx
        if settings.database_url is not None:
            await ctx.store.upgrade()
        await ctx.store.upsert_sites(SITES)
        _, key = await ctx.store.create_api_key("tests", ["admin"])
        transport = httpx.ASGITransport(app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api.test", headers=headers
        ) as client:
            yield Api(client, ctx, app, settings)
