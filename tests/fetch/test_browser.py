"""BrowserFetcher: JS-rendered shops read through a real Chromium, every request via the Fetcher."""

from __future__ import annotations

import html
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from pricefleet.demo.catalog import Leaf
from pricefleet.fetch import BrowserFetcher, Fetcher, SitePolicy
from pricefleet.fetch.browser import CHROMIUM
from tests.fetch.helpers import StartServer, StubResolver, demo_shop, own_shop, policy, stats
from tests.servers import DemoServer, require_program

pytestmark = pytest.mark.browser

READY = '#app[data-ready="1"]'


@pytest.fixture
async def browser() -> AsyncIterator[BrowserFetcher]:
    """A browser fetcher with two tabs over a fetcher of its own."""
    require_program(CHROMIUM, "chromium")
    async with BrowserFetcher(pages=2) as fetcher:
        yield fetcher


async def test_spa_category_and_product_pages_render(
    own_demo: list[DemoServer], browser: BrowserFetcher
) -> None:
    """The spa shop's tiles and prices are in the rendered DOM and absent from the raw HTML."""
    server = own_shop(own_demo, products=2000)  # enough for a category page of several tiles
    shop = demo_shop("spa", 2000)
    leaf = max(
        (n for n in shop.nodes.values() if isinstance(n, Leaf)),
        key=lambda n: len(shop.page_listings(n, 1)),
    )
    category = server.url + shop.category_path(leaf)
    site = policy(server, "spa", requests_per_second=50)
    async with Fetcher() as raw_fetcher:
        raw = (await raw_fetcher.fetch(category, site)).text()
        data = json.loads(
            (await raw_fetcher.fetch(f"{server.url}/spa/data/c/{leaf.slug}.json", site)).body
        )
    products = data["products"]
    assert len(products) >= 5

    page = await browser.fetch(category, site, wait_for=READY)
    rendered = page.text()
    assert rendered.count('class="tile"') == len(products)
    assert raw.count('class="tile"') == 0
    for product in products:
        assert f'data-id="{product["id"]}"' in rendered
        assert html.escape(product["price_text"], quote=False) in rendered
        assert product["price_text"] not in raw
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.status == 200

    first = products[0]
    product_page = await browser.fetch(server.url + first["url"], site)  # waits for idle
    shown = product_page.text()
    assert f'data-price="{first["price"]}"' in shown
    assert 'class="pdp-price"' in shown
    raw_product = await browser_raw(server.url + first["url"], site)
    assert "pdp-price" not in raw_product
    assert first["price_text"] not in raw_product

    seen = stats(server, "spa")
    # Everything the browser asked went through the shop's front door, politely and counted:
    # robots.txt, two shells, two data files, app.js once and then a 304 revalidation.
    assert seen["disallowed_requests"] == 0
    assert seen["not_modified"] == 1
    assert seen["peak_requests_per_second"] <= 50


async def browser_raw(url: str, site: SitePolicy) -> str:
    """The page as plain HTTP sees it."""
    async with Fetcher() as fetcher:
        page = await fetcher.fetch(url, site)
    return page.text()


async def test_browser_requests_pass_the_ssrf_guard(local_server: StartServer) -> None:
    """A page whose script reaches for private addresses gets nothing: the requests never leave."""
    require_program(CHROMIUM, "chromium")

    async def handler(request: web.Request) -> web.StreamResponse:
        port = request.url.port
        if request.path == "/":
            script = (
                f"for (const u of ['http://evil.test:{port}/secret', "
                f"'http://127.0.0.1:{port}/secret', 'http://169.254.169.254/latest/']) "
                "fetch(u).then(() => document.body.dataset.leak = u, () => {});"
                "setTimeout(() => document.body.dataset.done = '1', 300);"
            )
            page = f"<!doctype html><html><body><p>shop</p><script>{script}</script></body></html>"
            return web.Response(text=page, content_type="text/html")
        return web.Response(text="secret", content_type="text/plain")

    server = await local_server(handler)
    resolver = StubResolver({"shop.test": "127.0.0.1", "evil.test": "127.0.0.1"})
    site = SitePolicy("guarded", requests_per_second=100, obey_robots=False)
    async with (
        Fetcher(resolver=resolver, trusted_hosts={"shop.test"}) as fetcher,
        BrowserFetcher(fetcher, pages=1) as browser,
    ):
        page = await browser.fetch(
            f"http://shop.test:{server.port}/", site, wait_for="body[data-done]"
        )
    assert "data-leak" not in page.text()
    assert server.hits == ["/"]
