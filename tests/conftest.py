"""Fixtures shared by the whole suite: real servers, started for real, on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.servers import SHARED_OPTIONS, DemoServer, start_demo


@pytest.fixture(scope="session")
def demo() -> Iterator[DemoServer]:
    """The shared demo server (400 products, seed 7, day 10); tests must not change its state."""
    server = start_demo(*SHARED_OPTIONS)
    yield server
    server.stop()


@pytest.fixture
def own_demo() -> Iterator[list[DemoServer]]:
    """A list to put servers started with `start_demo` in; they are stopped after the test."""
    servers: list[DemoServer] = []
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session (30 s timeout)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
