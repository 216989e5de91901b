"""Servers the API benchmark runs beside `pricefleet api`, on the same granian settings.

    python -m bench.api_serve hello --port 8001 --workers 2     # a bare FastAPI hello
    python -m bench.api_serve nolimit --port 8002 --workers 2   # the API, rate limiter off

`hello` is the floor for the cached-product target (≥ 80 % of its requests/s). `nolimit` is
the real app from the environment's settings with `RateLimiter.hit` answering "not counted"
(what it does when its store is down), to show what the limiter's Redis round trips cost. Only
the benchmark uses it: pricefleet has no switch to turn limits off.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fastapi import FastAPI

__all__ = ["hello", "main", "nolimit"]


def hello() -> FastAPI:
    """A bare FastAPI app with one JSON endpoint."""
    app = FastAPI()

    @app.get("/hello")
    async def say_hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


def nolimit() -> FastAPI:
    """The pricefleet API with the rate limiter's counting skipped."""
    from pricefleet.api.ratelimit import RateLimiter, RateLimitState
    from pricefleet.api.server import factory

    async def not_counted(self: RateLimiter, scope: str, caller: str) -> RateLimitState | None:
        return None

    RateLimiter.hit = not_counted  # type: ignore[method-assign]
    return factory()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve `hello` or `nolimit` with granian as `pricefleet api` serves the API."""
    parser = argparse.ArgumentParser(prog="python -m bench.api_serve")
    parser.add_argument("app", choices=("hello", "nolimit"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        f"bench.api_serve:{args.app}",
        factory=True,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        backlog=2048,
        respawn_failed_workers=True,
        log_access=False,
        log_level="warning",  # type: ignore[arg-type]
    ).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
