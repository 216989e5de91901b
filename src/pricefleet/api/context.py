"""The API's typed context: built once in the app's lifespan, handed to every route.

Routes reach it as `request.app.state.ctx` (through the `context` dependency). It owns the
long-lived clients (database, queue, Redis) and closes them on shutdown; nothing else in the API
opens a connection of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from pricefleet.api.auth import Authenticator
    from pricefleet.api.ratelimit import RateLimiter
    from pricefleet.config import Settings
    from pricefleet.queue.base import JobQueue
    from pricefleet.store.base import Store

__all__ = ["ApiContext", "context"]


@dataclass(slots=True)
class ApiContext:
    """What every request may use. Each feature adds its own typed field."""

    settings: Settings
    store: Store
    queue: JobQueue
    #: API keys, public reads, the IP allow-list (`pricefleet.api.auth`).
    auth: Authenticator
    #: Per-key request budgets: in memory (embedded) or in Redis (cluster).
    limiter: RateLimiter

    @classmethod
    def create(
        cls,
        settings: Settings,
        store: Store,
        queue: JobQueue,
        *,
        registry: CollectorRegistry | None = None,
    ) -> ApiContext:
        """The context for these settings around an open store and queue: the authenticator
        and the rate limiter are built here (Prometheus counters go to `registry`)."""
        from pricefleet.api.auth import Authenticator
        from pricefleet.api.ratelimit import RateLimiter

        return cls(
            settings=settings,
            store=store,
            queue=queue,
            auth=Authenticator.from_settings(settings, store),
            limiter=RateLimiter.from_settings(settings, registry=registry),
        )

    async def aclose(self) -> None:
        """Close what the context holds: the rate limiter's Redis, the queue, the store."""
        try:
            await self.auth.flush()
            await self.limiter.close()
            await self.queue.close()
        finally:
            await self.store.close()


def context(request: Request) -> ApiContext:
    """FastAPI dependency: the context of the app serving `request`."""
    ctx: ApiContext = request.app.state.ctx
    return ctx
