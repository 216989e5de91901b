"""A million products per shop are served without holding them in memory."""

from __future__ import annotations

import gzip
from pathlib import Path

import aiohttp

from tests.demo.helpers import json_ld_product, shops_like
from tests.servers import DemoServer, start_demo

MILLION = 1_000_000


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_million_product_shops_serve_their_far_ends(own_demo: list[DemoServer]) -> None:
    """The last product, the last listing page and the last sitemap child answer at 10⁶ products."""
    server = start_demo("--products", str(MILLION), "--seed", "11", "--day", "5")
    own_demo.append(server)
    shop = shops_like(MILLION, 11)["jsonld"]
    last = shop.catalogue.listing(MILLION - 1)
    leaf = last.item.leaf
    pages = shop.page_count(leaf)
    children = -(-shop.sitemap_entries() // shop.config.sitemap_chunk)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}{shop.product_path(last)}") as answer:
            assert answer.status == 200
            product = json_ld_product(await answer.text())
        assert product["sku"] == str(100_000 + MILLION - 1)
        async with http.get(f"{server.url}{shop.category_path(leaf, pages)}") as answer:
            assert answer.status == 200
        async with http.get(f"{server.url}{shop.category_path(leaf, pages + 1)}") as answer:
            assert answer.status == 404
        async with http.get(f"{server.url}/jsonld/sitemaps/sitemap-{children}.xml.gz") as answer:
            assert answer.status == 200
            xml = gzip.decompress(await answer.read()).decode()
        assert shop.product_path(last) in xml
        async with http.get(f"{server.url}/plain/product?id={MILLION // 2}") as answer:
            assert answer.status == 200
        async with http.get(f"{server.url}/plain/product?id={MILLION // 2 + 1}") as answer:
            assert answer.status == 404  # plain carries half as many products
    assert pages > 10_000 // 24
    assert _rss_mib(server.process.pid) < 200
