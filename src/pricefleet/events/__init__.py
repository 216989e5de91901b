"""Events from the crawl to every API process: one `EventBus` interface, in-process
(`memory://`), SQLite (embedded) and Redis pub/sub (cluster)."""

from __future__ import annotations

from pricefleet.events.base import (
    BUS_RESET,
    CRAWL_FINISHED,
    PRICE_CHANGED,
    PUBLISH_FAILURES,
    Event,
    EventBus,
    Subscription,
    price_changed,
)

__all__ = [
    "BUS_RESET",
    "CRAWL_FINISHED",
    "PRICE_CHANGED",
    "PUBLISH_FAILURES",
    "Event",
    "EventBus",
    "Subscription",
    "price_changed",
]
