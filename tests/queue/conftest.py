"""The queue conformance fixtures: every test runs on SQLite and on the real Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from pricefleet.queue import JobQueue, Retention
from tests.servers import require_server

REDIS_URL = "redis://127.0.0.1:6379/0"

MakeQueue = Callable[..., JobQueue]


async def _drop_prefix(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        async for key in client.scan_iter(match=f"{prefix}:*", count=1_000):
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture(params=["sqlite", "redis"])
async def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeQueue]:
    """Opens queues on one backend, all on the same data (a SQLite file; the shared Redis
    under a key prefix of this test's own): two of them are two workers. Closed and dropped
    afterwards."""
    opened: list[JobQueue] = []
    if request.param == "redis":
        require_server("127.0.0.1", 6379, "Redis")
        url, prefix = REDIS_URL, f"pftest-{secrets.token_hex(4)}"
    else:
        url, prefix = f"sqlite:///{tmp_path / 'queue.db'}", "pf"

    def make(retention: Retention | None = None) -> JobQueue:
        queue = JobQueue.from_url(url, prefix=prefix, retention=retention)
        opened.append(queue)
        return queue

    try:
        yield make
    finally:
        for queue in opened:
            await queue.close()
        if request.param == "redis":
            await _drop_prefix(prefix)


@pytest.fixture
def queue(make_queue: MakeQueue) -> JobQueue:
    """An empty queue on each backend."""
    return make_queue()
