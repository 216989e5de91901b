"""The in-process frontier stays small: a big sitemap index is opened a few children at a time.

The fetch function is the crawl's own seam (`SiteCrawl(fetch=…)`), answered from memory here:
a real shop with 30,000 products would take minutes to crawl, and the bound being tested is the
engine's, not the network's. Product pages answer with an error, the cheapest page to process.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pricefleet.crawl.engine import SiteCrawl
from pricefleet.errors import FetchError
from pricefleet.fetch import Response
from pricefleet.sites.loader import parse_recipe
from pricefleet.store import Store

BASE = "https://shop.example"
CHILDREN, PER_CHILD = 30, 1000
RECIPE = f"""
id: big-shop
name: Big shop
base_url: {BASE}/
discovery:
  sitemap:
    urls: ["{BASE}/sitemap.xml"]
    product_url: "/p/\\\\d+"
politeness:
  requests_per_second: 1000
  max_concurrency: 16
"""


def _sitemap(tag: str, urls: list[str]) -> bytes:
    inner = "sitemap" if tag == "sitemapindex" else "url"
    locs = "".join(f"<{inner}><loc>{u}</loc></{inner}>" for u in urls)
    return f'<?xml version="1.0"?><{tag}>{locs}</{tag}>'.encode()


def _response(url: str, body: bytes) -> Response:
    return Response(url, 200, {"Content-Type": "application/xml"}, body, False, "", 0.0, 1, ())


async def test_frontier_does_not_grow_with_the_sitemap(tmp_path: Path) -> None:
    """30,000 product URLs in 30 child sitemaps: every page fetched once, and never more than
    ~5,000 URLs listed but not yet fetched (all 30,000 before children were held back)."""
    fetched: Counter[str] = Counter()
    listed = products_fetched = frontier = 0

    async def fetch(url: str, etag: str | None, modified: str | None, browser: bool) -> Response:
        nonlocal listed, products_fetched, frontier
        fetched[url] += 1
        if url == f"{BASE}/sitemap.xml":
            children = [f"{BASE}/sitemap-{n}.xml" for n in range(CHILDREN)]
            return _response(url, _sitemap("sitemapindex", children))
        if "/sitemap-" in url:
            n = int(url.rsplit("-", 1)[1].removesuffix(".xml"))
            listed += PER_CHILD
            products = [f"{BASE}/p/{n * PER_CHILD + i}" for i in range(PER_CHILD)]
            return _response(url, _sitemap("urlset", products))
        # Listed by a sitemap already fetched, not fetched yet: queued or about to be.
        frontier = max(frontier, listed - products_fetched)
        products_fetched += 1
        raise FetchError("gone", url=url)

    store = Store.from_url(f"sqlite:///{tmp_path / 'crawl.db'}")
    await store.upgrade()
    try:
        report = await SiteCrawl(parse_recipe(RECIPE), store, fetch).run()
    finally:
        await store.close()
    assert report.pages == 1 + CHILDREN  # product pages failed: counted as failures
    assert len(report.failures) == CHILDREN * PER_CHILD
    assert set(fetched.values()) == {1}
    assert 0 < frontier <= 6 * PER_CHILD, frontier
