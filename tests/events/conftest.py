"""The event bus fixtures: every conformance test runs in memory, on a SQLite file and on the
real Redis; restart tests get a Redis server of their own."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pricefleet.events import EventBus
from tests.servers import free_port, require_program, require_server

REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_SERVER = Path("/usr/bin/redis-server")


@dataclass
class BusSpec:
    """Where a test's buses meet: opening two buses on it is like two processes."""

    backend: str
    url: str
    prefix: str
    opened: list[EventBus] = field(default_factory=list)

    def open(self) -> EventBus:
        """A new bus on this URL and prefix, closed after the test."""
        bus = EventBus.from_url(self.url, prefix=self.prefix)
        self.opened.append(bus)
        return bus


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def spec(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BusSpec]:
    """A place for buses on one backend, under a prefix of this test's own."""
    prefix = f"pftest-{secrets.token_hex(4)}"
    if request.param == "redis":
        require_server("127.0.0.1", 6379, "Redis")
        url = REDIS_URL
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
    else:
        url = "memory://"
    spec = BusSpec(request.param, url, prefix)
    try:
        yield spec
    finally:
        for bus in spec.opened:
            await bus.close()


@pytest.fixture
def bus(spec: BusSpec) -> EventBus:
    """A bus on each backend."""
    return spec.open()


@dataclass
class PrivateRedis:
    """A redis-server of the test's own (no persistence) that it may stop and start again."""

    port: int
    command: list[str]
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Its URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start it and wait until it accepts connections."""
        self.process = await asyncio.create_subprocess_exec(
            *self.command, stdout=asyncio.subprocess.DEVNULL
        )
        await wait_for(self._answers, 10, "the private redis-server to start")

    async def stop(self) -> None:
        """Kill it (SIGKILL: connections drop as in a crash) and wait until it is gone."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def _answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    """A running redis-server on a free port, killed after the test."""
    require_program(REDIS_SERVER, "redis-server")
    port = free_port()
    server = PrivateRedis(
        port,
        [
            *(str(REDIS_SERVER), "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no"),
        ],
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `condition` every 50 ms until it holds; fail after `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.05)
