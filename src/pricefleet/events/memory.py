"""`MemoryEventBus`: the event bus inside one process (tests, a single-process deployment).

Buses opened with the same URL and prefix in one process share their subscribers, as two
processes sharing a Redis would. Events go through `encode`/`decode` like on the other
backends, so subscribers never share a mutable `data` dict with the publisher and data that
would not serialise fails here too. It must not be used across processes: it cannot reach them.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

from pricefleet.events.base import Event, EventBus, Subscription, decode

__all__ = ["MemoryEventBus"]


class _Hub(set[Subscription]):
    """The subscriptions of one (URL, prefix); a set subclass so it can be weakly referenced."""


#: Live hubs by (URL, prefix); a hub goes away with the last bus using it.
_HUBS: weakref.WeakValueDictionary[tuple[str, str], _Hub] = weakref.WeakValueDictionary()


class MemoryEventBus(EventBus):
    """Delivers each publish synchronously into the buffers of this process's subscriptions."""

    backend = "memory"

    def __init__(self, url: str = "memory://", *, prefix: str = "pf") -> None:
        super().__init__()
        key = (url, prefix)
        hub = _HUBS.get(key)
        if hub is None:
            hub = _HUBS[key] = _Hub()
        self._hub = hub  # keeps the hub alive as long as this bus
        self._subscribers = hub
        self._name = f"{url} ({prefix})"

    def __str__(self) -> str:
        return self._name

    async def _send(self, events: Sequence[Event], body: bytes) -> None:
        self._deliver(decode(body))

    async def _attach(self, subscription: Subscription) -> None:
        self._subscribers.add(subscription)

    async def _close(self) -> None:
        return None
