"""Where a cached product GET spends its time: the API app in process, driven through ASGI.

No server and no sockets: each request is an ASGI call on this process's event loop, one after
the other, so its wall time is the app's own work plus its awaits (Redis for the rate limiter,
nothing else once the product is cached) and its CPU time is what a granian worker would spend
in Python on it. The same for a bare FastAPI hello; for the API with the limiter's counting
skipped; with the `context` dependency (a plain `def`, so FastAPI runs it in a worker thread on
every request) overridden by an `async def` twin; with both; the Redis commands a request sends
(INFO commandstats); and a cProfile of the cached product GET as shipped. Run it against
the benchmark's database:

    PRICEFLEET_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/pfbench_api_1000000 \\
    PRICEFLEET_REDIS_URL=redis://127.0.0.1:6379/0 python -m bench.api_profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import secrets
import sys
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from fastapi import Request

from bench.api_data import Catalogue
from bench.api_serve import hello
from bench.queue import _redis_cleanup
from pricefleet.api.app import create_app
from pricefleet.api.auth import Scope
from pricefleet.api.context import ApiContext, context
from pricefleet.api.keys import create_key
from pricefleet.api.ratelimit import RateLimiter
from pricefleet.config import Settings
from pricefleet.store import Store

__all__ = ["main"]

ASGIApp = Any


async def _call(app: ASGIApp, path: str, key: str, gzip: bool = False) -> tuple[int, int]:
    route, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"authorization", f"Bearer {key}".encode()),
            *([(b"accept-encoding", b"gzip, deflate")] if gzip else []),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status = size = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))

    await app(scope, receive, send)
    return status, size


async def _commands(redis: aioredis.Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def _timed(
    app: ASGIApp, paths: Sequence[str], key: str, gzip: bool = False
) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    sizes = 0
    for path in paths:
        status, size = await _call(app, path, key, gzip)
        if status != 200:
            raise AssertionError(f"{path}: {status}")
        sizes += size
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "requests": len(paths),
        "body_bytes": round(sizes / len(paths)),
        "wall_us_per_request": round(1e6 * wall / len(paths), 1),
        "cpu_us_per_request": round(1e6 * cpu / len(paths), 1),
    }


async def _run(requests: int, products: int) -> dict[str, Any]:
    prefix = f"pfprof{secrets.token_hex(3)}"
    settings = Settings(
        queue_prefix=prefix, rate_limit="100000000/minute", cache_size=50_000, log_level="WARNING"
    )
    async with Store.from_settings(settings) as store:
        _, key = await create_key(store, "bench-profile", [Scope.READ], actor="bench")
    app, bare = create_app(settings), hello()
    paths = Catalogue(products).product_paths(1_000, seed=1)
    batch = (paths * (requests // len(paths) + 1))[:requests]
    out: dict[str, Any] = {}
    redis = aioredis.Redis.from_url(settings.redis_url or "")
    try:
        async with app.router.lifespan_context(app):
            await _timed(app, paths, key)  # warm: every product cached
            await _timed(bare, ["/hello"] * 200, key)
            out["hello"] = await _timed(bare, ["/hello"] * requests, key)
            before = await _commands(redis)
            out["product"] = await _timed(app, batch, key)
            after = await _commands(redis)
            out["redis_commands_per_product_get"] = {
                name: round((calls - before.get(name, 0)) / len(batch), 2)
                for name, calls in after.items()
                if calls - before.get(name, 0) >= len(batch) // 2
            }
            counted = RateLimiter.hit

            async def not_counted(self: RateLimiter, scope: str, caller: str) -> None:
                return None

            async def async_context(request: Request) -> ApiContext:
                ctx: ApiContext = request.app.state.ctx
                return ctx

            RateLimiter.hit = not_counted  # type: ignore[method-assign,assignment]
            try:
                out["product, limiter off"] = await _timed(app, batch, key)
                app.dependency_overrides[context] = async_context
                out["product, limiter off, async context"] = await _timed(app, batch, key)
            finally:
                RateLimiter.hit = counted  # type: ignore[method-assign]
            out["product, async context"] = await _timed(app, batch, key)
            app.dependency_overrides.clear()
            searches = Catalogue(products).search_paths(300, seed=3)
            await _timed(app, searches, key)  # cached
            many = (searches * (requests // len(searches) + 1))[:requests]
            out["search, cached"] = await _timed(app, many, key)
            out["search, cached, Accept-Encoding: gzip"] = await _timed(app, many, key, gzip=True)
            out["product, Accept-Encoding: gzip"] = await _timed(app, batch, key, gzip=True)
            profile = cProfile.Profile()
            profile.enable()
            await _timed(app, batch, key)
            profile.disable()
    finally:
        await redis.aclose()
        for start in (prefix, f"_tag:{prefix}"):  # cashews tag sets: `_tag:<prefix>:…`
            _redis_cleanup(settings.redis_url or "", start)
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text).strip_dirs().sort_stats("tottime")
    stats.print_stats(30)
    out["profile_tottime"] = text.getvalue()
    text = io.StringIO()
    pstats.Stats(profile, stream=text).strip_dirs().sort_stats("cumulative").print_stats(45)
    out["profile_cumulative"] = text.getvalue()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Time hello and the cached product GET in process; print a cProfile of the latter."""
    parser = argparse.ArgumentParser(prog="python -m bench.api_profile")
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--products", type=int, default=1_000_000, help="catalogue size")
    args = parser.parse_args(argv)
    if "PRICEFLEET_DATABASE_URL" not in os.environ:
        parser.error("set PRICEFLEET_DATABASE_URL and PRICEFLEET_REDIS_URL (see the docstring)")
    out = asyncio.run(_run(args.requests, args.products))
    for name, value in out.items():
        if not name.startswith("profile"):
            print(f"{name:38} {value}")
    print(out["profile_tottime"])
    print(out["profile_cumulative"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
