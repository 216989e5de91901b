"""The impersonate mode (curl_cffi): a browser's fingerprint, the same guarded, paced path."""

from __future__ import annotations

import pytest
from aiohttp import web

from pricefleet.errors import BlockedURL
from pricefleet.fetch import Fetcher, SitePolicy
from pricefleet.fetch.impersonate import impersonation_available
from tests.fetch.helpers import StartServer, StubResolver, own_shop, policy, product_urls, stats
from tests.servers import DemoServer

pytestmark = pytest.mark.skipif(not impersonation_available(), reason="curl_cffi not installed")


async def test_impersonated_fetch_reads_the_same_page(own_demo: list[DemoServer]) -> None:
    """A page fetched as Chrome is byte for byte the page aiohttp gets; 304s work too."""
    server = own_shop(own_demo)
    url = product_urls(server, "jsonld", 1)[0]
    plain = policy(server, "jsonld", requests_per_second=100)
    chrome = plain.replace(impersonate="chrome")
    async with Fetcher() as fetcher:
        reference = await fetcher.fetch(url, plain)
        page = await fetcher.fetch(url, chrome)
        again = await fetcher.fetch(url, chrome, etag=page.headers["ETag"])
    assert page.status == 200
    assert page.content_hash == reference.content_hash
    assert again.not_modified
    assert stats(server, "jsonld")["requests"] == 4  # robots.txt once for the site


async def test_impersonation_sends_browser_headers_and_is_guarded(
    local_server: StartServer,
) -> None:
    """curl speaks as Chrome (client hints), is pinned to the guard's addresses, and refuses
    names that resolve privately."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        return web.Response(text="ok")

    server = await local_server(handler)
    resolver = StubResolver({"shop.test": "127.0.0.1", "evil.test": "127.0.0.1"})
    site = SitePolicy("chrome", impersonate="chrome", obey_robots=False, requests_per_second=100)
    async with Fetcher(resolver=resolver, trusted_hosts={"shop.test"}) as fetcher:
        page = await fetcher.fetch(f"http://shop.test:{server.port}/x", site)
        with pytest.raises(BlockedURL, match=r"resolves to 127\.0\.0\.1"):
            await fetcher.fetch(f"http://evil.test:{server.port}/x", site)
        with pytest.raises(BlockedURL):
            await fetcher.fetch(f"http://127.0.0.1:{server.port}/x", site)
    assert page.text() == "ok"
    assert server.hits == ["/x"]
    assert seen[0]["Host"] == f"shop.test:{server.port}"  # pinned, not resolved by curl
    assert "sec-ch-ua" in {name.lower() for name in seen[0]}
    assert seen[0]["User-Agent"] == site.user_agent
