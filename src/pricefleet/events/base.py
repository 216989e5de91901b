"""The `EventBus` interface: what the crawl tells every API process (and later webhooks).

A crawl publishes batch-shaped `Event`s (one per ingest batch per site, e.g.
`product.price_changed` with the product ids) once the data is stored; every subscriber of every
process receives them and drops what it cached about those products. The contract, checked by
`tests/events/test_conformance.py` on every backend:

- **Live only.** A subscription receives what is published after it started (`async with
  bus.subscribe()` returned, or the first `__anext__`), never history.
- **Order.** Events from one publisher arrive in the order published.
- **Fan-out.** Every subscription, in every process sharing the URL and prefix, gets each event.
- **Loss is signalled, not hidden.** When a subscription may have missed events (the Redis
  connection was lost, the SQLite table was pruned past it, it fell `max_pending` events
  behind), it yields one `Event(kind=BUS_RESET)`: the receiver must assume anything changed
  (the API clears its whole cache).
- **Publishing never raises for the bus's sake.** The price data is already stored when events
  are published: a bus that is down is logged and counted
  (`pricefleet_events_publish_failures_total{backend}`), not raised into the crawl, and the
  publisher's next batch that goes through starts with a reset. Events that cannot be
  serialised (a caller's bug) do raise.

It must not hold business logic: what to invalidate is the subscriber's business.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import Counter

from pricefleet.errors import ConfigError

__all__ = [
    "BUS_RESET",
    "CRAWL_FINISHED",
    "PRICE_CHANGED",
    "PUBLISH_FAILURES",
    "Event",
    "EventBus",
    "Subscription",
    "decode",
    "encode",
    "price_changed",
    "reset_event",
]

log = logging.getLogger(__name__)

#: A product's price or availability changed; `product_ids` lists them.
PRICE_CHANGED = "product.price_changed"
#: A crawl of `site_id` finished.
CRAWL_FINISHED = "crawl.finished"
#: The subscription may have missed events: assume anything changed.
BUS_RESET = "bus.reset"

#: Publishes that failed (the bus was down); the events are lost, the data is stored.
PUBLISH_FAILURES = Counter(
    "pricefleet_events_publish_failures",
    "Event publishes that failed because the bus was unreachable",
    ["backend"],
)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to one site's data. `at` is the publisher's epoch seconds."""

    kind: str
    site_id: str
    product_ids: tuple[str, ...] = ()
    at: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)


def price_changed(changes: Iterable[tuple[str, str]], *, at: float | None = None) -> list[Event]:
    """One `PRICE_CHANGED` event per site from `IngestResult.price_changes` ((site_id,
    product_id) pairs), product ids in first-seen order without duplicates."""
    by_site: dict[str, dict[str, None]] = {}
    for site_id, product_id in changes:
        by_site.setdefault(site_id, {})[product_id] = None
    when = time.time() if at is None else at
    return [Event(PRICE_CHANGED, site, tuple(ids), when) for site, ids in by_site.items()]


def reset_event() -> Event:
    """The event a subscription yields when it may have missed some."""
    return Event(BUS_RESET, "")


def encode(events: Sequence[Event]) -> bytes:
    """A batch of events as one orjson document (raises TypeError on unserialisable data)."""
    return orjson.dumps(
        [[e.kind, e.site_id, e.product_ids, e.at, e.data] for e in events],
    )


def decode(body: bytes | str) -> list[Event]:
    """The events of an `encode`d batch."""
    return [
        Event(kind, site_id, tuple(ids), float(at), data)
        for kind, site_id, ids, at, data in orjson.loads(body)
    ]


class EventBus(ABC):
    """Publish events to every subscriber of every process; see the module docstring."""

    #: The backend's name in metrics and logs.
    backend = "?"

    def __init__(self) -> None:
        # Subscriptions this process feeds; a backend with a shared hub replaces the set.
        self._subscribers: set[Subscription] = set()
        self._failing = 0
        self._closed = False

    @staticmethod
    def from_url(url: str, *, prefix: str = "pf") -> EventBus:
        """`memory://` (one process), `sqlite:///path` (processes of one machine) or
        `redis://host:port/db` (cluster). `prefix` namespaces the channel or table, so tests
        and tenants can share a server; buses meet when URL and prefix are the same."""
        if url.startswith("memory:"):
            from pricefleet.events.memory import MemoryEventBus

            return MemoryEventBus(url, prefix=prefix)
        if url.startswith("sqlite:"):
            from pricefleet.events.sqlite import SqliteEventBus

            return SqliteEventBus(url, prefix=prefix)
        if url.startswith(("redis://", "rediss://", "unix://")):
            from pricefleet.events.redis import RedisEventBus

            return RedisEventBus(url, prefix=prefix)
        raise ConfigError(
            f"event bus URL {url!r}: expected memory://, sqlite:///path or redis://host:port/db"
        )

    async def publish(self, events: Sequence[Event]) -> None:
        """Send a batch of events to every subscriber. Never raises because the bus is down:
        the failure is logged (once per outage) and counted, and the events are lost; the
        next batch that goes through starts with a `BUS_RESET` so subscribers learn it."""
        if not events:
            return
        body = encode(events)  # first: unserialisable data is the caller's bug, and raises
        if self._failing:
            events = [reset_event(), *events]
            body = encode(events)
        try:
            await self._send(events, body)
        except Exception as exc:  # any transport failure: the crawl must go on
            PUBLISH_FAILURES.labels(self.backend).inc()
            self._failing += 1
            if self._failing == 1:
                log.warning(
                    "event bus %s: publish failed, events lost (%s: %s)",
                    self,
                    type(exc).__name__,
                    exc,
                )
            return
        if self._failing:
            log.info("event bus %s: publishing again after %d failures", self, self._failing)
            self._failing = 0

    def subscribe(self, *, max_pending: int = 10_000) -> Subscription:
        """A subscription to every event published from now on. Use it as
        `async with bus.subscribe() as events: async for event in events: …` (live from the
        moment `async with` returns), or iterate it directly (live from the first `__anext__`,
        closed with `aclose()`). It falls back to one `BUS_RESET` when more than `max_pending`
        events wait unread."""
        return Subscription(self, max_pending)

    async def close(self) -> None:
        """End this bus's subscriptions (their iteration stops) and release connections."""
        if self._closed:
            return
        self._closed = True
        for subscription in [s for s in self._subscribers if s.bus is self]:
            subscription.end()
            self._subscribers.discard(subscription)
        await self._close()

    # -- what backends provide ------------------------------------------------------------

    @abstractmethod
    async def _send(self, events: Sequence[Event], body: bytes) -> None:
        """Deliver one encoded batch (raise on failure: `publish` counts it)."""

    @abstractmethod
    async def _attach(self, subscription: Subscription) -> None:
        """Start feeding `subscription` from now on (it goes in `_subscribers`)."""

    async def _detach(self, subscription: Subscription) -> None:
        """Stop feeding `subscription`."""
        self._subscribers.discard(subscription)

    @abstractmethod
    async def _close(self) -> None:
        """Release the backend's connections and tasks."""

    # -- helpers for backends -------------------------------------------------------------

    def _deliver(self, events: Sequence[Event]) -> None:
        for subscription in list(self._subscribers):
            subscription.push(events)

    def _reset_all(self) -> None:
        for subscription in list(self._subscribers):
            subscription.lost()


class Subscription:
    """Events for one consumer, buffered in this process; see `EventBus.subscribe`."""

    def __init__(self, bus: EventBus, max_pending: int) -> None:
        self.bus = bus
        self._max = max_pending
        self._pending: list[Event] = []
        self._read = 0  # index of the next unread event in _pending
        self._lost = False
        self._started = False
        self._ended = False
        self._wake = asyncio.Event()

    async def __aenter__(self) -> Subscription:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        await self.start()
        while True:
            if self._lost:
                self._lost = False
                return reset_event()
            if self._read < len(self._pending):
                event = self._pending[self._read]
                self._read += 1
                if self._read == len(self._pending):
                    self._pending.clear()
                    self._read = 0
                return event
            if self._ended:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()

    async def start(self) -> None:
        """Begin receiving (idempotent); events published before this are not received."""
        if self._started:
            return
        self._started = True
        await self.bus._attach(self)

    async def aclose(self) -> None:
        """Stop receiving; iteration ends once the events already received are read."""
        if not self._ended:
            self.end()
            await self.bus._detach(self)

    # -- called by the bus ----------------------------------------------------------------

    def push(self, events: Sequence[Event]) -> None:
        """Buffer events for the consumer; past `max_pending` unread, drop them all and
        signal a reset instead."""
        if self._ended or not events:
            return
        if len(self._pending) - self._read + len(events) > self._max:
            self.lost()
            return
        self._pending.extend(events)
        self._signal()

    def lost(self) -> None:
        """Events may have been missed: drop the buffer, the next event read is a reset."""
        if self._ended:
            return
        self._pending.clear()
        self._read = 0
        self._lost = True
        self._signal()

    def end(self) -> None:
        """No more events will come (the bus closed)."""
        self._ended = True
        self._signal()

    def _signal(self) -> None:
        self._wake.set()
