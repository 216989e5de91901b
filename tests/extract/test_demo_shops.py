"""The demo shops over real HTTP: every product page of the `jsonld` and `microdata` shops
extracts to exactly what the shop's truth says."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import aiohttp
import pytest

from pricefleet.demo import DemoConfig, create_app
from pricefleet.extract import Extracted, PageError, extract_product
from pricefleet.match.gtin import normalize_gtin
from tests.servers import DemoServer, start_demo

DAY = 5
OPTIONS = ("--products", "200", "--seed", "3", "--day", str(DAY))
_CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def shop_server() -> Iterator[DemoServer]:
    """A demo server of 200 products, seed 3, frozen on day 5."""
    server = start_demo(*OPTIONS)
    yield server
    server.stop()


def _truth(shop: str, base_url: str) -> list[dict[str, Any]]:
    shops = create_app(DemoConfig(products=200, seed=3)).state.shops
    return list(shops[shop].truth_records(DAY, base_url))


async def _fetch_all(
    http: aiohttp.ClientSession, urls: list[str]
) -> list[tuple[bytes, str | None]]:
    limit = asyncio.Semaphore(16)

    async def fetch(url: str) -> tuple[bytes, str | None]:
        async with limit, http.get(url) as answer:
            assert answer.status == 200, url
            return await answer.read(), answer.charset

    return await asyncio.gather(*(fetch(url) for url in urls))


def _differences(found: Extracted, truth: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    regular = Decimal(truth["regular_price"]) if truth["is_discounted"] else None
    ours_per_unit = found.unit_price
    checks = {
        "name": (found.name, truth["name"]),
        "price": (found.price, Decimal(truth["price"])),
        "currency": (found.currency, truth["currency"]),
        "gtin": (found.gtin, normalize_gtin(truth["gtin"])),
        "availability": (found.availability.value, truth["availability"]),
        "regular_price": (found.regular_price, regular),
        "is_discounted": (found.is_discounted, truth["is_discounted"]),
        "unit_price": (
            ours_per_unit.quantize(_CENT, ROUND_HALF_UP) if ours_per_unit is not None else None,
            Decimal(truth["unit_price"]),
        ),
        "unit": (found.unit.value if found.unit else None, truth["unit"]),
        "size": (found.size_value, Decimal(truth["size_value"])),
        "pack": (found.pack, truth["pack"]),
        "brand": (found.brand, truth["brand"]),
        "url": (found.url, truth["url"]),
    }
    return {field: pair for field, pair in checks.items() if pair[0] != pair[1]}


@pytest.mark.parametrize(("shop", "count"), [("jsonld", 200), ("microdata", 160)])
async def test_every_product_matches_the_truth(
    shop_server: DemoServer, http: aiohttp.ClientSession, shop: str, count: int
) -> None:
    """Name, price, currency, GTIN, availability, regular price / discount, our unit price
    (rounded to the truth's two places), size, brand and URL agree for every product."""
    truths = _truth(shop, shop_server.url)
    assert len(truths) == count
    pages = await _fetch_all(http, [t["url"] for t in truths])
    wrong = {}
    timings = []
    for truth, (body, charset) in zip(truths, pages, strict=True):
        started = time.perf_counter()
        found = extract_product(body, truth["url"], encoding=charset)
        timings.append(time.perf_counter() - started)
        assert found.source == shop
        differences = _differences(found, truth)
        if differences:
            wrong[truth["id"]] = differences
    print(f"{shop}: median extract_product {statistics.median(timings) * 1e6:.0f} µs")
    assert not wrong, wrong
    assert sum(t["is_discounted"] for t in truths) > 0  # discounts were really exercised
    assert sum(t["availability"] == "out_of_stock" for t in truths) > 0


async def test_jsonld_shop_categories_and_shop_unit_prices(
    shop_server: DemoServer, http: aiohttp.ClientSession
) -> None:
    """The jsonld shop's breadcrumbs give the category; its UnitPriceSpecification is the
    shop's unit price, which equals the truth's unit price."""
    truths = _truth("jsonld", shop_server.url)[:40]
    pages = await _fetch_all(http, [t["url"] for t in truths])
    for truth, (body, charset) in zip(truths, pages, strict=True):
        found = extract_product(body, truth["url"], encoding=charset)
        assert list(found.category) == truth["category"]
        assert found.shop_unit_price == Decimal(truth["unit_price"])
        assert found.shop_unit == truth["unit"]


async def test_broken_jsonld_fault_is_read_leniently(
    shop_server: DemoServer, http: aiohttp.ClientSession
) -> None:
    """With the `badjsonld` fault (a JS comment and trailing commas in the block) every page
    still gives the same record."""
    truths = _truth("jsonld", shop_server.url)[:30]
    pages = await _fetch_all(http, [f"{t['url']}?fault=badjsonld" for t in truths])
    for truth, (body, charset) in zip(truths, pages, strict=True):
        assert b"// precio" in body
        found = extract_product(body, f"{truth['url']}?fault=badjsonld", encoding=charset)
        assert found.source == "jsonld"
        assert not _differences(found, truth)


@pytest.mark.parametrize(
    "path",
    [
        "/jsonld/",
        "/jsonld/c/leche/",
        "/jsonld/c/lacteos-y-huevos/",
        "/microdata/",
        "/microdata/categoria/leche",
        "/plain/",
        "/spa/",
    ],
)
async def test_listing_and_home_pages_are_not_products(
    shop_server: DemoServer, http: aiohttp.ClientSession, path: str
) -> None:
    """Home and category pages (price cards included) raise 'no-product', not a product."""
    [(body, charset)] = await _fetch_all(http, [shop_server.url + path])
    with pytest.raises(PageError) as caught:
        extract_product(body, shop_server.url + path, encoding=charset)
    assert caught.value.reason == "no-product"
