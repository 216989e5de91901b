"""`SiteCrawl.process`, a queue worker's entry point: what it remembers of a fetched page.

The fetch is the crawl's own seam, answered from memory; the store is a real SQLite file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pricefleet.crawl.engine import SiteCrawl
from pricefleet.crawl.urls import canonical
from pricefleet.fetch import Response
from pricefleet.fetch.response import content_hash
from pricefleet.models import JobKind, Site
from pricefleet.sites.loader import parse_recipe
from pricefleet.store import Store

BASE = "https://shop.example"
RECIPE = f"""
id: one-shop
name: One shop
base_url: {BASE}/
discovery:
  sitemap:
    urls: ["{BASE}/sitemap.xml"]
    product_url: "/p/\\\\d+"
"""
PAGE = b"""<!doctype html><html><head><title>Tea</title>
<script type="application/ld+json">{"@context": "https://schema.org", "@type": "Product",
"name": "Green tea 100 g", "sku": "77", "offers": {"@type": "Offer", "price": "3.10",
"priceCurrency": "EUR", "availability": "https://schema.org/InStock"}}</script>
</head><body><h1>Green tea 100 g</h1></body></html>"""
#: Not canonical: w3lib sorts the query.
URL = f"{BASE}/p/77?b=2&a=1"


@pytest.mark.parametrize("is_canonical", [True, False])
async def test_fetch_state_is_kept_under_the_job_url(tmp_path: Path, is_canonical: bool) -> None:
    """A job whose URL the caller says is canonical (a queue key) is remembered under that
    URL as it is; otherwise under its canonical form."""

    async def fetch(url: str, etag: str | None, modified: str | None, browser: bool) -> Response:
        headers = {"Content-Type": "text/html; charset=utf-8", "ETag": '"v1"'}
        return Response(url, 200, headers, PAGE, False, content_hash(PAGE), 0.0, 1, ())

    store = Store.from_url(f"sqlite:///{tmp_path / 'crawl.db'}")
    await store.upgrade()
    try:
        recipe = parse_recipe(RECIPE)
        await store.upsert_sites([Site(recipe.id, recipe.name, recipe.base_url, recipe.region)])
        crawl = SiteCrawl(recipe, store, fetch, autoflush=False)
        await crawl.process(JobKind.PRODUCT, URL, looked_up=True, canonical=is_canonical)
        await crawl.flush()
        kept = URL if is_canonical else canonical(URL)
        other = canonical(URL) if is_canonical else URL
        states = await store.fetch_states("one-shop", [kept, other])
    finally:
        await store.close()
    assert canonical(URL) != URL
    assert set(states) == {kept}
    assert states[kept].etag == '"v1"'
    assert states[kept].content_hash == content_hash(PAGE)
    assert states[kept].product_id == "77"
