"""SitePolicy validation, and what a policy puts on the wire: rotating User-Agents, headers."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from pricefleet.errors import ConfigError
from pricefleet.fetch import Fetcher, SitePolicy
from tests.fetch.helpers import StartServer


def test_policy_is_frozen_hashable_and_validated() -> None:
    """Policies are immutable and hashable; nonsense values fail naming the field."""
    policy = SitePolicy("s", headers={"X-A": "1"}, user_agents=["a", "b"], proxies=[])  # type: ignore[arg-type]
    assert hash(policy) == hash(SitePolicy("s", headers={"X-A": "1"}, user_agents=("a", "b")))
    assert policy.user_agents == ("a", "b")
    with pytest.raises(TypeError):
        policy.headers["X-B"] = "2"  # type: ignore[index]
    bad: list[tuple[str, Any]] = [
        ("requests_per_second", 0),
        ("burst", 0),
        ("max_concurrency", 0),
        ("retries", -1),
        ("timeout", 0),
    ]
    for field, value in bad:
        with pytest.raises(ConfigError, match=field):
            SitePolicy("s", **{field: value})
    with pytest.raises(ConfigError, match="SOCKS proxies are not supported"):
        SitePolicy("s", proxies=("socks5://127.0.0.1:1080",))
    assert policy.replace(burst=3).burst == 3


async def test_user_agents_rotate_and_headers_are_sent(local_server: StartServer) -> None:
    """Each request takes the next User-Agent; the recipe's headers go with every request."""
    agents: list[str] = []
    extra: list[str | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        agents.append(request.headers["User-Agent"])
        extra.append(request.headers.get("X-Shop-Key"))
        return web.Response(text="ok")

    server = await local_server(handler)
    site = SitePolicy(
        "ua",
        allow_private_network=True,
        requests_per_second=100,
        user_agents=("agent-a", "agent-b", "agent-c"),
        headers={"X-Shop-Key": "k"},
    )
    async with Fetcher() as fetcher:
        for n in range(4):
            await fetcher.fetch(f"{server.url}/p/{n}", site)
    # robots.txt is fetched too, under the same rotation.
    assert agents == ["agent-a", "agent-b", "agent-c", "agent-a", "agent-b"]
    assert extra == ["k"] * 5
    assert server.hits[0] == "/robots.txt"
