"""`RedisEventBus`: the cluster profile's event bus, Redis pub/sub on the channel
`<prefix>:events`.

Publishing is one PUBLISH per batch. Each bus that has subscriptions runs one reader task with a
connection of its own, subscribed to the channel, and hands what it reads to its subscriptions;
a subscription started once the reader's SUBSCRIBE was confirmed, so it sees every later
publish. Pub/sub keeps nothing: what is published while a reader is disconnected is lost. So
the reader owns its reconnection (backoff with jitter, logged) and, once subscribed again,
gives every subscription a reset. redis-py may also reconnect a pub/sub connection on its own
and re-subscribe silently; a second subscribe confirmation on one connection betrays it, and
is treated the same way.

It must not keep state in Redis: there is nothing to clean up and nothing to replay.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Sequence
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import RedisError

from pricefleet.events.base import Event, EventBus, Subscription, decode

__all__ = ["RedisEventBus"]

log = logging.getLogger(__name__)

#: Seconds `subscribe` waits for the channel subscription before going on without it (the
#: subscription then starts with a reset once Redis answers).
SUBSCRIBE_WAIT = 5.0
#: Reconnection backoff of the reader: from FIRST_DELAY doubling up to MAX_DELAY, with jitter.
FIRST_DELAY = 0.1
MAX_DELAY = 5.0


def _describe(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


class RedisEventBus(EventBus):
    """Events over Redis pub/sub; see the module docstring."""

    backend = "redis"

    def __init__(self, url: str, *, prefix: str = "pf") -> None:
        super().__init__()
        self._url = url
        self._where = _describe(url)
        self._channel = f"{prefix}:events"
        self._client_name = re.sub(r"[^\w.:-]", "_", f"pricefleet-events-{prefix}")
        # Short timeouts and one retry (a pooled connection that died with a restart is
        # replaced): a publish waits for an unreachable Redis a few seconds at most.
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=1),
            socket_connect_timeout=1.0,
            socket_timeout=2.0,
            client_name=self._client_name,
        )
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()  # the reader's subscription is confirmed
        self._stop = asyncio.Event()

    def __str__(self) -> str:
        return f"{self._where} channel {self._channel}"

    async def _send(self, events: Sequence[Event], body: bytes) -> None:
        await self._redis.publish(self._channel, body)

    async def _attach(self, subscription: Subscription) -> None:
        self._subscribers.add(subscription)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name=f"read {self}")
        try:
            await asyncio.wait_for(self._ready.wait(), SUBSCRIBE_WAIT)
        except TimeoutError:
            log.warning("event bus %s: not subscribed yet, going on (a reset will follow)", self)

    # -- the reader -----------------------------------------------------------------------

    async def _read(self) -> None:
        delay = FIRST_DELAY
        broken = False  # a connection was lost or never made: the next one starts with a reset
        while not self._stop.is_set():
            # No retries of its own: a lost connection must surface here, not be hidden.
            client = aioredis.Redis.from_url(
                self._url,
                retry=Retry(NoBackoff(), 0),
                socket_connect_timeout=2.0,
                health_check_interval=10,
                client_name=self._client_name,
            )
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                await self._confirmed(pubsub)
                if broken:
                    log.info("event bus %s: subscribed again, subscribers reset", self)
                    self._reset_all()
                broken, delay = False, FIRST_DELAY
                self._ready.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._handle(message)
            except (RedisError, OSError) as exc:
                self._ready.clear()
                if not broken:
                    log.warning("event bus %s: connection lost (%s), reconnecting", self, exc)
                broken = True
            except Exception:  # a bug must not silently end every subscription
                self._ready.clear()
                log.exception("event bus %s: reader failed, reconnecting", self)
                broken = True
            finally:
                with suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with suppress(RedisError, OSError):
                    await client.aclose()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay * random.uniform(0.5, 1.0))
            delay = min(MAX_DELAY, delay * 2)

    async def _confirmed(self, pubsub: Any) -> None:
        """Wait for the server's confirmation of SUBSCRIBE: from then on it sends us every
        publish."""
        while True:
            message = await pubsub.get_message(timeout=SUBSCRIBE_WAIT)
            if message is None:
                raise TimeoutError(f"no subscribe confirmation in {SUBSCRIBE_WAIT} s")
            if message["type"] == "subscribe":
                return
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            try:
                events = decode(message["data"])
            except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
                log.warning("event bus %s: dropped a malformed message (%s)", self, exc)
                return
            self._deliver(events)
        elif kind == "subscribe":
            # redis-py reconnected and re-subscribed by itself: messages may be lost.
            log.warning("event bus %s: reconnected by the client, subscribers reset", self)
            self._reset_all()

    async def _close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.cancel()
            with suppress(asyncio.CancelledError):
                await self._reader
        await self._redis.aclose()
