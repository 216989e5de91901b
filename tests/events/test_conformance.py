"""The `EventBus` contract, run against every backend (in memory, SQLite file, real Redis)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import pricefleet
from pricefleet.errors import ConfigError
from pricefleet.events import (
    BUS_RESET,
    PRICE_CHANGED,
    Event,
    EventBus,
    Subscription,
    price_changed,
)
from pricefleet.events import redis as redis_events
from pricefleet.events.sqlite import SqliteEventBus
from tests.events.conftest import BusSpec, PrivateRedis

WAIT = 10.0  # seconds any one expected event may take (the machine is shared)


async def receive(subscription: Subscription, count: int = 1) -> list[Event]:
    """The next `count` events, each within WAIT seconds."""
    return [await asyncio.wait_for(anext(subscription), WAIT) for _ in range(count)]


def changed(site: str, *ids: str, **data: object) -> Event:
    return Event(PRICE_CHANGED, site, ids, data=dict(data))


def failures(backend: str) -> float:
    value = REGISTRY.get_sample_value(
        "pricefleet_events_publish_failures_total", {"backend": backend}
    )
    return value or 0.0


async def test_events_arrive_in_order_as_published(bus: EventBus) -> None:
    """A subscriber receives every event of every batch, unchanged and in publish order."""
    first = [changed("shop-a", "1", "2", old=1.5, new=1.25), changed("shop-b", "9")]
    second = [Event("crawl.finished", "shop-a", data={"pages": 12}), changed("shop-a", "3")]
    async with bus.subscribe() as events:
        await bus.publish(first)
        await bus.publish([])  # nothing to send: a no-op
        await bus.publish(second)
        assert await receive(events, 4) == first + second


async def test_every_subscriber_receives_every_event(spec: BusSpec) -> None:
    """Two subscribers on one bus and one on another bus (another process, as it were) each
    receive each event."""
    publisher, other = spec.open(), spec.open()
    async with (
        publisher.subscribe() as one,
        publisher.subscribe() as two,
        other.subscribe() as three,
    ):
        batch = [changed("shop-a", "1"), changed("shop-a", "2")]
        await publisher.publish(batch)
        for subscription in (one, two, three):
            assert await receive(subscription, 2) == batch


async def test_a_subscriber_gets_nothing_published_before_it_started(spec: BusSpec) -> None:
    """Subscriptions are live only: an event published (and delivered to others) before a
    subscription started never reaches it."""
    publisher, listener = spec.open(), spec.open()
    async with listener.subscribe() as early:
        await publisher.publish([changed("shop-a", "old")])
        assert [e.product_ids for e in await receive(early)] == [("old",)]
        async with listener.subscribe() as late:
            await publisher.publish([changed("shop-a", "new")])
            assert [e.product_ids for e in await receive(late)] == [("new",)]
            assert [e.product_ids for e in await receive(early)] == [("new",)]


async def test_a_fresh_bus_does_not_replay_history(spec: BusSpec) -> None:
    """A bus opened after events were published (a restarted API) starts empty."""
    publisher = spec.open()
    await publisher.publish([changed("shop-a", "old")])
    async with spec.open().subscribe() as events:
        await publisher.publish([changed("shop-a", "new")])
        assert [e.product_ids for e in await receive(events)] == [("new",)]


async def test_iterating_directly_and_closing(bus: EventBus) -> None:
    """`async for` on `subscribe()` works without `async with`; closing the bus ends it after
    the events already received."""
    subscription = bus.subscribe()
    await subscription.start()
    await bus.publish([changed("shop-a", "1"), changed("shop-a", "2")])
    seen: list[Event] = []
    async for event in subscription:
        seen.append(event)
        if len(seen) == 2:
            await bus.close()
    assert [e.product_ids for e in seen] == [("1",), ("2",)]


async def test_a_subscriber_too_far_behind_gets_a_reset(bus: EventBus) -> None:
    """A subscriber more than `max_pending` events behind loses them and reads one reset,
    then goes on with what comes next."""
    async with bus.subscribe(max_pending=2) as events:
        await bus.publish([changed("shop-a", "1"), changed("shop-a", "2"), changed("shop-a", "3")])
        (reset,) = await receive(events)
        assert reset.kind == BUS_RESET
        await bus.publish([changed("shop-a", "4")])
        assert [e.product_ids for e in await receive(events)] == [("4",)]


@pytest.mark.parametrize("spec", ["sqlite", "redis"], indirect=True)
async def test_events_from_another_process_arrive(spec: BusSpec) -> None:
    """A `python -c` process publishes; this process's subscriber receives the batch."""
    script = (
        "import asyncio, sys\n"
        "from pricefleet.events import EventBus, Event\n"
        "async def main():\n"
        "    bus = EventBus.from_url(sys.argv[1], prefix=sys.argv[2])\n"
        "    await bus.publish([Event('product.price_changed', 'shop-a', ('p1', 'p2'), 1.5)])\n"
        "    await bus.close()\n"
        "asyncio.run(main())\n"
    )
    src = str(Path(pricefleet.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    async with spec.open().subscribe() as events:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, spec.url, spec.prefix, env=env
        )
        assert await asyncio.wait_for(process.wait(), 60) == 0
        assert await receive(events) == [Event(PRICE_CHANGED, "shop-a", ("p1", "p2"), 1.5)]


async def test_sqlite_pruned_past_a_subscriber_gives_a_reset(tmp_path: Path) -> None:
    """Events pruned before a subscriber read them are replaced by a reset; the rest follow."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    publisher = SqliteEventBus(url, keep_count=2)
    listener = SqliteEventBus(url)
    try:
        async with listener.subscribe() as events:
            await publisher.publish([changed("shop-a", str(n)) for n in range(5)])
            kinds = [(e.kind, e.product_ids) for e in await receive(events, 3)]
            assert kinds == [(BUS_RESET, ()), (PRICE_CHANGED, ("3",)), (PRICE_CHANGED, ("4",))]
    finally:
        await publisher.close()
        await listener.close()


def test_price_changed_makes_one_event_per_site() -> None:
    """`price_changed` turns an ingest's (site, product) pairs into one event per site."""
    events = price_changed([("a", "1"), ("b", "7"), ("a", "2"), ("a", "1")], at=5.0)
    assert events == [
        Event(PRICE_CHANGED, "a", ("1", "2"), 5.0),
        Event(PRICE_CHANGED, "b", ("7",), 5.0),
    ]


def test_an_unknown_url_is_a_config_error() -> None:
    """`from_url` names the URLs it understands."""
    with pytest.raises(ConfigError, match="memory://"):
        EventBus.from_url("kafka://localhost:9092")


# --- Redis outages, on a redis-server of the test's own ----------------------------------


async def test_publish_while_redis_is_down_does_not_raise(private_redis: PrivateRedis) -> None:
    """With Redis gone, publish returns (the events are lost) and counts the failure; once
    Redis is back its next batch goes through, led by a reset for the lost one."""
    bus = EventBus.from_url(private_redis.url, prefix="pf")
    try:
        await bus.publish([changed("shop-a", "1")])
        before = failures("redis")
        await private_redis.stop()
        await asyncio.wait_for(bus.publish([changed("shop-a", "2")]), 30)
        assert failures("redis") == before + 1
        await private_redis.start()
        async with bus.subscribe() as events:
            await bus.publish([changed("shop-a", "3")])
            kinds = [(e.kind, e.product_ids) for e in await receive(events, 2)]
            assert kinds == [(BUS_RESET, ()), (PRICE_CHANGED, ("3",))]
        assert failures("redis") == before + 1
    finally:
        await bus.close()


async def test_a_subscriber_survives_a_redis_restart(private_redis: PrivateRedis) -> None:
    """A subscriber rides out a Redis restart: it reconnects, yields a reset (it may have
    missed events), then receives what is published next."""
    publisher = EventBus.from_url(private_redis.url, prefix="pf")
    listener = EventBus.from_url(private_redis.url, prefix="pf")
    try:
        async with listener.subscribe() as events:
            await publisher.publish([changed("shop-a", "before")])
            assert [e.product_ids for e in await receive(events)] == [("before",)]
            await private_redis.stop()
            await private_redis.start()
            (reset,) = await receive(events)
            assert reset.kind == BUS_RESET
            before = failures("redis")
            await publisher.publish([changed("shop-a", "after")])
            assert failures("redis") == before
            assert [e.product_ids for e in await receive(events)] == [("after",)]
    finally:
        await publisher.close()
        await listener.close()


async def test_subscribing_while_redis_is_down_starts_with_a_reset(
    private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`subscribe` with Redis down returns after its wait; once Redis answers the subscription
    yields a reset, then live events."""
    monkeypatch.setattr(redis_events, "SUBSCRIBE_WAIT", 0.5)
    await private_redis.stop()
    bus = EventBus.from_url(private_redis.url, prefix="pf")
    try:
        async with bus.subscribe() as events:
            await private_redis.start()
            (reset,) = await receive(events)
            assert reset.kind == BUS_RESET
            await bus.publish([changed("shop-a", "1")])
            assert [e.product_ids for e in await receive(events)] == [("1",)]
    finally:
        await bus.close()
