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


def context(request: Request) -> ApiContext:
    """FastAPI dependency: the context of the app serving `request`."""
    ctx: ApiContext = request.app.state.ctx
    return ctx
