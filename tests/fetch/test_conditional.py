"""Conditional requests, redirects, body limits and text decoding, against real shops."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from pricefleet.errors import FetchError, HTTPStatusError
from pricefleet.fetch import Fetcher, SitePolicy
from pricefleet.fetch.response import content_hash, decode_body
from tests.fetch.helpers import StartServer, own_shop, policy, product_urls, stats
from tests.servers import DemoServer

FAST: dict[str, Any] = {"requests_per_second": 200.0}


async def test_etag_gives_not_modified(own_demo: list[DemoServer]) -> None:
    """A second fetch with the page's ETag is a 304: not_modified, empty body, no hash."""
    server = own_shop(own_demo)
    url = product_urls(server, "jsonld", 1)[0]
    site = policy(server, "jsonld", **FAST)
    async with Fetcher() as fetcher:
        first = await fetcher.fetch(url, site)
        again = await fetcher.fetch(url, site, etag=first.headers["ETag"])
        dated = await fetcher.fetch(url, site, last_modified=first.headers["Last-Modified"])
        stale = await fetcher.fetch(url, site, etag='"not-the-etag"')
    assert first.status == 200
    assert not first.not_modified
    assert first.content_hash == content_hash(first.body)
    assert len(first.content_hash) == 32
    assert (again.status, again.not_modified) == (304, True)
    assert (again.body, again.content_hash) == (b"", "")
    assert dated.not_modified
    assert stale.status == 200
    assert stale.content_hash == first.content_hash
    seen = stats(server, "jsonld")
    assert seen["not_modified"] == 2
    assert seen["statuses"] == {"200": 3, "304": 2}  # robots.txt, the page twice; two 304s


async def test_not_found_is_not_retried(own_demo: list[DemoServer]) -> None:
    """A 404 raises HTTPStatusError at once, with the status."""
    server = own_shop(own_demo)
    async with Fetcher() as fetcher:
        with pytest.raises(HTTPStatusError) as failed:
            await fetcher.fetch(f"{server.url}/jsonld/p/999999/x", policy(server, "jsonld", **FAST))
    assert failed.value.status == 404
    assert stats(server, "jsonld")["requests"] == 2  # robots.txt and the one 404


async def test_latin1_shop_decodes(own_demo: list[DemoServer]) -> None:
    """The Latin-1 shop's pages decode to the same text the shop rendered."""
    server = own_shop(own_demo)
    url = product_urls(server, "plain", 1)[0]
    async with Fetcher() as fetcher:
        page = await fetcher.fetch(url, policy(server, "plain", **FAST))
    assert "charset=iso-8859-1" in page.headers["Content-Type"].lower()
    text = page.text()
    assert "\ufffd" not in text
    assert text == page.body.decode("cp1252")


def test_decoding_order() -> None:
    """BOM, then the header charset, then <meta charset>, then UTF-8 with replacement."""
    assert decode_body("é".encode("cp1252"), "text/html; charset=ISO-8859-1") == "é"
    assert decode_body('<meta charset="latin-1">é'.encode("cp1252"), None).endswith("é")
    assert decode_body(b"\xef\xbb\xbf\xc3\xa9", "text/html; charset=latin-1") == "é"
    assert decode_body(b"caf\xc3\xa9 \xff", None) == "café \ufffd"
    assert decode_body(b"x", "text/html; charset=klingon") == "x"


async def test_redirects_are_followed_and_bounded(local_server: StartServer) -> None:
    """Redirects are followed hop by hop up to max_redirects; the chain is reported."""

    async def handler(request: web.Request) -> web.StreamResponse:
        hop = int(request.query.get("hop", "0"))
        if request.path == "/loop":
            raise web.HTTPFound(f"/loop?hop={hop + 1}")
        if request.path == "/start":
            raise web.HTTPMovedPermanently("/middle")
        if request.path == "/middle":
            raise web.HTTPTemporaryRedirect("/end")
        return web.Response(text="end")

    server = await local_server(handler)
    site = SitePolicy(
        "local", allow_private_network=True, obey_robots=False, max_redirects=3, **FAST
    )
    async with Fetcher() as fetcher:
        page = await fetcher.fetch(f"{server.url}/start", site)
        with pytest.raises(FetchError, match="more than 3 redirects"):
            await fetcher.fetch(f"{server.url}/loop", site)
    assert page.url == f"{server.url}/end"
    assert page.redirects == (f"{server.url}/start", f"{server.url}/middle")
    assert page.text() == "end"
    assert server.hits.count("/start") == 1
    assert len([hit for hit in server.hits if hit.startswith("/loop")]) == 4


async def test_body_cap(local_server: StartServer) -> None:
    """A body past max_body_bytes fails with a message naming the limit, chunked or not."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/chunked":
            answer = web.StreamResponse()
            answer.enable_chunked_encoding()
            await answer.prepare(request)
            for _ in range(20):
                await answer.write(b"x" * 1000)
            await answer.write_eof()
            return answer
        return web.Response(body=b"y" * 20_000)

    server = await local_server(handler)
    site = SitePolicy(
        "local", allow_private_network=True, obey_robots=False, max_body_bytes=10_000, **FAST
    )
    async with Fetcher() as fetcher:
        for path in ("/chunked", "/sized"):
            with pytest.raises(FetchError, match="max_body_bytes=10,000"):
                await fetcher.fetch(server.url + path, site)
        fits = await fetcher.fetch(server.url + "/sized", site.replace(max_body_bytes=20_000))
    assert len(fits.body) == 20_000
