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
    from pricefleet.api.auth import Authenticator
    from pricefleet.api.cache import ApiCache
    from pricefleet.api.ratelimit import RateLimiter
    from pricefleet.config import Settings
    from pricefleet.events import EventBus
    from pricefleet.queue.base import JobQueue
    from pricefleet.sites.schema import Recipe
    from pricefleet.store.base import Store

__all__ = ["ApiContext", "context"]


@dataclass(slots=True)
class ApiContext:
    """What every request may use. Each feature adds its own typed field."""

    settings: Settings
    store: Store
    queue: JobQueue
    cache: ApiCache
    events: EventBus
    recipes: dict[str, Recipe]
    #: API keys, public reads, the IP allow-list (`pricefleet.api.auth`).
    auth: Authenticator
    #: Per-key request budgets: in memory (embedded) or in Redis (cluster).
    limiter: RateLimiter

    @property
    def public_reads(self) -> bool:
        """Whether reads need no key (shapes Cache-Control: public answers may sit in a CDN)."""
        return self.auth.public_reads


async def context(request: Request) -> ApiContext:
    """FastAPI dependency: the context of the app serving `request`."""
    ctx: ApiContext = request.app.state.ctx
    return ctx
