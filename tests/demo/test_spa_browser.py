"""The `spa` demo shop in a real browser: empty HTML shells that its script fills with products."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright

from pricefleet.demo import DemoConfig, create_app
from pricefleet.demo.catalog import Leaf
from pricefleet.demo.shops.base import DemoShop
from tests.servers import DemoServer, require_program, start_demo

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The shared demo server's universe and day (see tests/conftest.py).
SEED, DAY, SHARED_PRODUCTS = 7, 10, 400
#: Enough products that some spa leaf (24 per page, share 0.3, 80 leaves) has a second page.
BIG_PRODUCTS = 6500
READY = '#app[data-ready="1"]'
WAIT_MS = 20_000


@cache
def spa_shop(products: int) -> DemoShop:
    """The spa shop exactly as a demo server started with `--products products --seed 7` has it."""
    shop: DemoShop = create_app(DemoConfig(products=products, seed=SEED)).state.shops["spa"]
    return shop


def leaves(shop: DemoShop) -> list[Leaf]:
    """The shop's leaf categories, in shop order."""
    return [node for node in shop.nodes.values() if isinstance(node, Leaf)]


def fullest_leaf(shop: DemoShop) -> Leaf:
    """The leaf with the most products on its first page (the first one on ties)."""
    return max(leaves(shop), key=lambda leaf: len(shop.page_listings(leaf, 1)))


def euro_text(price: str) -> str:
    """A truth price (`1234.5`, `2.05`) as the shop writes it: `1.234,50 €`, `2,05 €`."""
    whole, _, cents = price.partition(".")
    groups = f"{int(whole):,}".replace(",", ".")
    return f"{groups},{cents.ljust(2, '0')[:2]} €"


def page_truth(shop: DemoShop, leaf: Leaf, page: int, base_url: str) -> list[dict[str, Any]]:
    """The truth of exactly the products on page `page` of `leaf`, in page order."""
    return [shop.truth(listing, DAY, base_url) for listing in shop.page_listings(leaf, page)]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """The system Chromium, headless, closed on exit."""
    require_program(CHROMIUM, "chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_rendered(browser: Browser, url: str, errors: list[str]) -> Page:
    """A new page at `url`, once the app has drawn it; script errors are added to `errors`."""
    page = await browser.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = await page.goto(url)
    assert response is not None
    assert response.status == 200, url
    await page.wait_for_selector(READY, state="attached", timeout=WAIT_MS)
    return page


async def tiles(page: Page) -> list[tuple[str, str, str, str]]:
    """Every product tile on the page: (id, name, price text, link)."""
    rows: list[list[str]] = await page.eval_on_selector_all(
        "a.tile",
        """tiles => tiles.map(t => [
            t.dataset.id,
            t.querySelector('.tile-name').textContent,
            t.querySelector('.tile-price').textContent,
            t.getAttribute('href'),
        ])""",
    )
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def expected_tiles(truth: list[dict[str, Any]], base_url: str) -> list[tuple[str, str, str, str]]:
    """The tiles the truth says a page shows."""
    return [
        (t["id"], t["name"], euro_text(t["price"]), t["url"].removeprefix(base_url)) for t in truth
    ]


async def test_category_shell_holds_no_product(demo: DemoServer) -> None:
    """Without a browser an spa category page is an empty shell: no product name, id or price."""
    shop = spa_shop(SHARED_PRODUCTS)
    leaf = fullest_leaf(shop)
    truth = page_truth(shop, leaf, 1, demo.url)
    assert truth, "the chosen leaf has products"
    async with (
        aiohttp.ClientSession() as session,
        session.get(demo.url + shop.category_path(leaf)) as answer,
    ):
        assert answer.status == 200
        body = await answer.text()
    assert '<div id="app"' in body
    assert "data-ready" not in body
    for product in truth:
        for text in (product["name"], html.escape(product["name"]), product["id"]):
            assert text not in body
        assert product["price"] not in body
        assert euro_text(product["price"]) not in body


async def test_category_page_renders_the_products_of_that_page(demo: DemoServer) -> None:
    """In a browser the category page shows one tile per product of the page, with its price."""
    shop = spa_shop(SHARED_PRODUCTS)
    leaf = fullest_leaf(shop)
    assert shop.page_count(leaf) == 1
    errors: list[str] = []
    async with chromium() as browser:
        page = await open_rendered(browser, demo.url + shop.category_path(leaf), errors)
        shown = await tiles(page)
        title = await page.text_content("h1.page-title")
        next_links = await page.locator('[rel="next"]').count()
    assert shown == expected_tiles(page_truth(shop, leaf, 1, demo.url), demo.url)
    assert title == leaf.name
    assert next_links == 0
    assert errors == []


async def test_category_pages_link_to_the_next_page(own_demo: list[DemoServer]) -> None:
    """A leaf with two pages links page 1 to page 2 (rel=next), and page 2 shows the rest."""
    shop = spa_shop(BIG_PRODUCTS)
    leaf = next((leaf for leaf in leaves(shop) if shop.page_count(leaf) == 2), None)
    assert leaf is not None, f"no spa leaf has two pages at {BIG_PRODUCTS} products"
    server = start_demo("--products", str(BIG_PRODUCTS), "--seed", str(SEED), "--day", str(DAY))
    own_demo.append(server)
    first, second = shop.category_path(leaf, 1), shop.category_path(leaf, 2)
    errors: list[str] = []
    async with chromium() as browser:
        page = await open_rendered(browser, server.url + first, errors)
        first_tiles = await tiles(page)
        next_href = await page.get_attribute('a[rel="next"]', "href")
        head_next = await page.get_attribute('link[rel="next"]', "href")
        await page.click('a[rel="next"]')
        await page.wait_for_url(server.url + second, timeout=WAIT_MS)
        await page.wait_for_selector(READY, state="attached", timeout=WAIT_MS)
        second_tiles = await tiles(page)
        last_next_links = await page.locator('[rel="next"]').count()
    assert first_tiles == expected_tiles(page_truth(shop, leaf, 1, server.url), server.url)
    assert len(first_tiles) == 24
    assert next_href == head_next == second
    assert second_tiles == expected_tiles(page_truth(shop, leaf, 2, server.url), server.url)
    assert second_tiles
    assert not {tile[0] for tile in first_tiles} & {tile[0] for tile in second_tiles}
    assert last_next_links == 0
    assert errors == []


async def test_product_page_shows_price_stock_and_discount(demo: DemoServer) -> None:
    """A product page shows name, price, stock and a struck-out regular price iff discounted."""
    shop = spa_shop(SHARED_PRODUCTS)
    truth = list(shop.truth_records(DAY, demo.url))
    picks = {
        "discounted": next((t for t in truth if t["is_discounted"]), None),
        "full price": next((t for t in truth if not t["is_discounted"]), None),
        "out of stock": next((t for t in truth if t["availability"] == "out_of_stock"), None),
        "in stock": next((t for t in truth if t["availability"] == "in_stock"), None),
    }
    missing = [kind for kind, product in picks.items() if product is None]
    assert not missing, f"day {DAY} has no {missing} spa product to check"
    errors: list[str] = []
    async with chromium() as browser:
        for kind, product in picks.items():
            assert product is not None
            page = await open_rendered(browser, product["url"], errors)
            title = await page.text_content(".pdp-title")
            price = await page.get_attribute(".pdp-price", "data-price")
            price_text = await page.text_content(".pdp-price")
            stock = await page.text_content(".pdp-stock")
            was = [text.strip() for text in await page.locator(".pdp-was").all_text_contents()]
            await page.close()
            assert title == product["name"], kind
            assert price == product["price"], kind
            assert price_text == euro_text(product["price"]), kind
            in_stock = product["availability"] == "in_stock"
            assert stock == ("Disponible" if in_stock else "Agotado"), kind
            expected_was = [euro_text(product["regular_price"])] if product["is_discounted"] else []
            assert was == expected_was, kind
    assert errors == []


async def test_rendered_category_page_screenshot(demo: DemoServer, tmp_path: Path) -> None:
    """A screenshot of a rendered category page is a real PNG of more than 5 KB."""
    shop = spa_shop(SHARED_PRODUCTS)
    leaf = fullest_leaf(shop)
    target = tmp_path / "category.png"
    errors: list[str] = []
    async with chromium() as browser:
        page = await open_rendered(browser, demo.url + shop.category_path(leaf), errors)
        assert await page.locator("a.tile").count() == len(shop.page_listings(leaf, 1))
        await page.screenshot(path=str(target), full_page=True)
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 0
    assert height > 0
    assert len(data) > 5 * 1024, f"screenshot is only {len(data)} bytes"
    assert errors == []
