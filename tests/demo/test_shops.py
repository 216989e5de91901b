"""Each demo shop serves, over real HTTP, exactly what its truth says, in its own format."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import extruct
import orjson
import pytest
from protego import Protego
from selectolax.lexbor import LexborHTMLParser

from tests.demo.helpers import eu_amount, json_ld_product, shops_like, truth_of
from tests.servers import DemoServer, start_demo

DAY = 10  # the shared server's day
Checker = Callable[[aiohttp.ClientSession, DemoServer, dict[str, Any]], Awaitable[None]]


@pytest.fixture(scope="module")
def big_demo() -> Iterator[DemoServer]:
    """A server large enough that leaves have several listing pages and sitemaps split."""
    server = start_demo("--products", "4000", "--seed", "7", "--day", str(DAY))
    yield server
    server.stop()


async def _text(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as answer:
        assert answer.status == 200, url
        return await answer.text()


async def _check_jsonld(http: aiohttp.ClientSession, demo: DemoServer, t: dict[str, Any]) -> None:
    html = await _text(http, t["url"])
    assert 40_000 <= len(html.encode()) <= 72_000
    product = json_ld_product(html)
    offer = product["offers"]
    assert product["name"] == t["name"]
    assert product["brand"]["name"] == t["brand"]
    assert product.get("gtin13") == t["gtin"]
    assert Decimal(offer["price"]) == Decimal(t["price"])
    assert offer["priceCurrency"] == "EUR"
    in_stock = offer["availability"] == "https://schema.org/InStock"
    assert in_stock == (t["availability"] == "in_stock")
    assert Decimal(offer["priceSpecification"][0]["price"]) == Decimal(t["unit_price"])
    struck = [
        s["price"] for s in offer["priceSpecification"] if s.get("priceType", "").endswith("Price")
    ]
    assert struck == ([t["regular_price"]] if t["is_discounted"] else [])


async def _check_microdata(
    http: aiohttp.ClientSession, demo: DemoServer, t: dict[str, Any]
) -> None:
    html = await _text(http, t["url"])
    items = extruct.extract(html, base_url=t["url"], syntaxes=["microdata"])["microdata"]
    assert len(items) == 1
    props = items[0]["properties"]
    assert props["name"] == t["name"]
    assert props["brand"] == t["brand"]
    assert props.get("gtin13") == t["gtin"]
    offer = props["offers"]["properties"]
    assert "content" not in offer  # the price has to be read from its European text
    assert eu_amount(offer["price"]) == Decimal(t["price"])
    assert offer["availability"].endswith(
        "InStock" if t["availability"] == "in_stock" else "OutOfStock"
    )
    tree = LexborHTMLParser(html)
    was = tree.css_first("del.precio-anterior")
    assert (was is not None) == t["is_discounted"]
    if was is not None:
        assert eu_amount(was.text()) == Decimal(t["regular_price"])


async def _check_api(http: aiohttp.ClientSession, demo: DemoServer, t: dict[str, Any]) -> None:
    async with http.get(f"{demo.url}/api/api/products/{t['id']}/") as answer:
        assert answer.status == 200
        assert answer.content_type == "application/json"
        data = await answer.json()
    prices = data["price_instructions"]
    assert data["display_name"] == t["name"]
    assert data["ean"] == t["gtin"]
    assert data["brand"] == t["brand"]
    assert Decimal(prices["unit_price"]) == Decimal(t["price"])
    assert abs(Decimal(prices["bulk_price"]) - Decimal(t["unit_price"])) <= Decimal("0.01")
    assert Decimal(str(prices["unit_size"])) == Decimal(t["size_value"])
    assert prices["price_decreased"] == t["is_discounted"]
    if t["is_discounted"]:
        assert prices["previous_unit_price"].startswith("  ")  # Mercadona's leading spaces
        assert Decimal(prices["previous_unit_price"].strip()) == Decimal(t["regular_price"])
    else:
        assert prices["previous_unit_price"] is None
    assert (data["unavailable_from"] is None) == (t["availability"] == "in_stock")
    assert data["share_url"] == urlsplit(t["url"]).path
    shell = await _text(http, t["url"])  # the HTML page is an empty app shell
    assert t["price"] not in shell
    assert t["name"] not in shell


async def _check_spa(http: aiohttp.ClientSession, demo: DemoServer, t: dict[str, Any]) -> None:
    shell = await _text(http, t["url"])
    assert t["name"] not in shell
    assert 'id="app"' in shell
    async with http.get(f"{demo.url}/spa/data/p/{t['id']}.json") as answer:
        product = (await answer.json())["product"]
    assert product["name"] == t["name"]
    assert Decimal(product["price"]) == Decimal(t["price"])
    assert product["in_stock"] == (t["availability"] == "in_stock")
    assert (product["was_text"] is not None) == t["is_discounted"]


async def _check_plain(http: aiohttp.ClientSession, demo: DemoServer, t: dict[str, Any]) -> None:
    async with http.get(t["url"]) as answer:
        assert answer.status == 200
        assert answer.charset == "iso-8859-1"
        html = (await answer.read()).decode("iso-8859-1")
    assert "ld+json" not in html
    assert "itemprop" not in html
    tree = LexborHTMLParser(html)
    assert tree.css_first("h2.title").text() == t["name"]
    assert tree.css_first("div.maker").text() == t["brand"]
    assert eu_amount(tree.css_first("div.cost").text()) == Decimal(t["price"])
    assert (tree.css_first("div.was") is not None) == t["is_discounted"]
    stock = tree.css_first("div.stock")
    assert ("in" in stock.attributes.get("class", "").split()) == (t["availability"] == "in_stock")


CHECKERS: dict[str, Checker] = {
    "jsonld": _check_jsonld,
    "microdata": _check_microdata,
    "api": _check_api,
    "spa": _check_spa,
    "plain": _check_plain,
}


@pytest.mark.parametrize("shop", list(CHECKERS))
async def test_every_product_page_shows_its_truth(
    shop: str, demo: DemoServer, http: aiohttp.ClientSession
) -> None:
    """Every product of every shop is served with the name, price, GTIN and stock of its truth."""
    truth = truth_of(shops_like(400, 7)[shop], DAY, demo.url)
    assert len(truth) >= 100
    assert any(t["is_discounted"] for t in truth)
    assert any(t["availability"] == "out_of_stock" for t in truth)
    limit = asyncio.Semaphore(16)

    async def check(record: dict[str, Any]) -> None:
        async with limit:
            await CHECKERS[shop](http, demo, record)

    await asyncio.gather(*(check(t) for t in truth))


@pytest.mark.parametrize("shop", ["jsonld", "microdata", "plain"])
async def test_following_links_finds_every_product(
    shop: str, big_demo: DemoServer, http: aiohttp.ClientSession
) -> None:
    """From the home page, categories and rel=next pagination reach every product, no more."""
    demo = big_demo
    truth = {t["url"] for t in truth_of(shops_like(4000, 7)[shop], DAY, demo.url)}
    robots = Protego.parse(await _text(http, f"{demo.url}/{shop}/robots.txt"))
    prefix = f"{demo.url}/{shop}/"
    seen, queue, found = {prefix}, [prefix], set()
    saw_next = False
    while queue:
        url = queue.pop()
        async with http.get(url) as answer:
            assert answer.status == 200, url
            tree = LexborHTMLParser(await answer.read())
        saw_next = saw_next or tree.css_first("link[rel=next]") is not None
        for anchor in tree.css("a[href]"):
            link = urljoin(url, anchor.attributes["href"] or "")
            if not link.startswith(prefix) or link in seen or not robots.can_fetch(link, "pf"):
                continue
            seen.add(link)
            if link in truth:
                found.add(link)
            else:
                queue.append(link)
    assert saw_next
    assert found == truth


async def test_api_shop_categories_reach_every_product(
    big_demo: DemoServer, http: aiohttp.ClientSession
) -> None:
    """The JSON API's category tree, page by page via `next`, lists every product once."""
    demo = big_demo
    truth = {t["id"] for t in truth_of(shops_like(4000, 7)["api"], DAY, demo.url)}
    pages = 0
    async with http.get(f"{demo.url}/api/api/categories/") as answer:
        departments = (await answer.json())["results"]
    found: list[str] = []
    for department in departments:
        for category in department["categories"]:
            url: str | None = f"{demo.url}/api/api/categories/{category['id']}/"
            while url:
                async with http.get(url) as answer:
                    assert answer.status == 200
                    data = await answer.json()
                found += [p["id"] for leaf in data["categories"] for p in leaf["products"]]
                url = data["next"]
                pages += 1
    assert pages > sum(len(d["categories"]) for d in departments)  # some categories paginate
    assert len(found) == len(set(found))
    assert set(found) == truth


async def test_unknown_pages_are_404_and_bad_parameters_400(
    demo: DemoServer, http: aiohttp.ClientSession
) -> None:
    """Missing products, categories and pages answer 404; malformed parameters 400."""
    cases = {
        "/jsonld/p/999999999/x": 404,
        "/jsonld/c/no-such-thing/": 404,
        "/jsonld/c/leche/page/999/": 404,
        "/microdata/producto/x-MD9999999.html": 404,
        "/api/api/products/1/": 404,
        "/api/api/categories/1/": 404,  # a department, not a category
        "/spa/p/sku-0": 404,
        "/plain/product?id=abc": 404,
        "/plain/list?cat=leche&p=zero": 400,
        "/microdata/categoria/leche?page=-1": 400,
        "/jsonld/c/leche/?day=yesterday": 400,
    }
    for path, status in cases.items():
        async with http.get(demo.url + path) as answer:
            assert answer.status == status, path
            assert (await answer.text()).strip()


async def test_day_parameter_moves_prices(demo: DemoServer, http: aiohttp.ClientSession) -> None:
    """`?day=N` shows the prices of day N, as the truth of day N says."""
    shop = shops_like(400, 7)["api"]
    later = {t["id"]: t for t in truth_of(shop, 40, demo.url)}
    moved = [t for t in truth_of(shop, DAY, demo.url) if t["price"] != later[t["id"]]["price"]]
    assert len(moved) > 50
    for t in moved[:20]:
        async with http.get(f"{demo.url}/api/api/products/{t['id']}/?day=40") as answer:
            data = await answer.json()
        assert data["price_instructions"]["unit_price"] == later[t["id"]]["price"]


async def test_json_ld_fault_breaks_the_block(
    demo: DemoServer, http: aiohttp.ClientSession
) -> None:
    """`?fault=badjsonld` serves a JSON-LD block that no strict JSON parser accepts."""
    t = truth_of(shops_like(400, 7)["jsonld"], DAY, demo.url)[0]
    html = await _text(http, t["url"] + "?fault=badjsonld")
    with pytest.raises(orjson.JSONDecodeError):
        json_ld_product(html)
    assert t["name"] in html  # the rest of the page is intact
