"""Fixtures of the fetch tests: local stand-in servers on 127.0.0.1 (helpers are in helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.fetch.helpers import Handler, LocalServer, StartServer


@pytest.fixture
async def local_server() -> AsyncIterator[StartServer]:
    """Start servers from a handler; each counts what it was asked; stopped after the test."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> LocalServer:
        server = LocalServer(0)

        async def counted(request: web.Request) -> web.StreamResponse:
            server.hits.append(str(request.rel_url) if request.path else str(request.url))
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", counted)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        server.port = int(runner.addresses[0][1])
        return server

    yield start
    for runner in runners:
        await runner.cleanup()
