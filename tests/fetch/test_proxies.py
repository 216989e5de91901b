"""Proxies: round-robin per site, retired after 3 failures in a row, all retired is an error."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from pricefleet.errors import BlockedURL, FetchError, RetryLater
from pricefleet.fetch import Fetcher, SitePolicy
from tests.fetch.helpers import (
    LocalServer,
    StartServer,
    StubResolver,
    free_port,
    own_shop,
    policy,
    product_urls,
    stats,
)
from tests.servers import DemoServer

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "proxy-connection",
}


async def forward_proxy(local_server: StartServer, client: aiohttp.ClientSession) -> LocalServer:
    """A minimal HTTP forward proxy: asks the absolute URL it is given and relays the answer."""

    async def relay(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with client.get(request.url, headers=headers, allow_redirects=False) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=answer.status, body=body, headers=kept)

    return await local_server(relay)


async def broken_proxy(local_server: StartServer) -> LocalServer:
    """A proxy that cannot reach anything: 502 Bad Gateway for every request."""

    async def fail(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text="upstream unreachable")

    return await local_server(fail)


async def test_round_robin_and_retirement(
    own_demo: list[DemoServer], local_server: StartServer
) -> None:
    """Requests rotate over the proxies; the broken one is retired after its 3rd failure in a
    row and asked nothing more; every page still arrives, through the healthy ones."""
    server = own_shop(own_demo)
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        good_a = await forward_proxy(local_server, client)
        bad = await broken_proxy(local_server)
        good_b = await forward_proxy(local_server, client)
        proxies = (good_a.url, bad.url, good_b.url)
        site = policy(server, "jsonld", proxies=proxies, requests_per_second=200, backoff_base=0.0)
        urls = product_urls(server, "jsonld", 12)
        async with Fetcher() as fetcher:
            pages = [await fetcher.fetch(url, site) for url in urls]  # one at a time: in order
            retired = fetcher.retired_proxies("jsonld")
    assert all(page.status == 200 for page in pages)
    assert retired == {bad.url}
    assert len(bad.hits) == 3
    # robots.txt a, page 1: bad → b, page 2: a, page 3: bad → b, page 4: a, page 5: bad → b,
    # then a and b in turn: 13 answers shared 7 / 6.
    assert (len(good_a.hits), len(good_b.hits)) == (7, 6)
    assert [page.attempts for page in pages[:6]] == [2, 1, 2, 1, 2, 1]
    assert stats(server, "jsonld")["requests"] == 13  # the shop saw each page once


async def test_all_proxies_retired_is_an_error_naming_the_site(
    own_demo: list[DemoServer],
) -> None:
    """With every proxy dead, fetches fail as transient until all are retired, then FetchError."""
    server = own_shop(own_demo)
    dead = (f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
    site = policy(
        server,
        "jsonld",
        proxies=dead,
        requests_per_second=200,
        retries=2,
        backoff_base=0.0,
        obey_robots=False,
    )
    url = product_urls(server, "jsonld", 1)[0]
    async with Fetcher() as fetcher:
        with pytest.raises(RetryLater, match="proxy"):
            await fetcher.fetch(url, site)  # a, b, a: a has failed twice, b once
        with pytest.raises(RetryLater, match="proxy"):
            await fetcher.fetch(url, site)  # b, a (retired), b (retired)
        with pytest.raises(FetchError, match="'jsonld': all 2 proxies are retired") as failed:
            await fetcher.fetch(url, site)
        assert not isinstance(failed.value, RetryLater)
        assert fetcher.retired_proxies("jsonld") == set(dead)
    assert stats(server, "jsonld")["requests"] == 0


async def test_target_behind_a_proxy_is_checked_here(local_server: StartServer) -> None:
    """The proxy resolves the target, so the guard resolves it first: private is refused."""
    async with aiohttp.ClientSession() as client:
        proxy = await forward_proxy(local_server, client)
        site = SitePolicy("proxied", proxies=(proxy.url,), requests_per_second=200)
        async with Fetcher(resolver=StubResolver({"evil.test": "10.0.0.7"})) as fetcher:
            with pytest.raises(BlockedURL, match=r"resolves to 10\.0\.0\.7, a private"):
                await fetcher.fetch("http://evil.test/", site)
    assert proxy.hits == []
