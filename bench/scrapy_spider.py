"""The Scrapy side of the crawl benchmark (`bench/crawl.py`): a tuned spider for the jsonld shop.

Standalone: it runs in the benchmark's own Scrapy virtualenv, never in pricefleet's, as
`scrapy runspider bench/scrapy_spider.py -a sitemap=URL -a products=REGEX -o out.jsonl`.
It does what pricefleet's recipe for the shop does: read the sitemap index and its gzip
children, fetch every product URL they list (obeying robots.txt), and read the schema.org
Product JSON-LD of each page into one JSON line with the same fields pricefleet stores
(name, brand, GTIN, SKU, price, currency, regular price, shop unit price, availability, image,
category). Settings are the usual ones for a fast crawl of a server you own: 128 concurrent
requests, no AutoThrottle, no download delay.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, ClassVar

from scrapy.http import Response
from scrapy.spiders import SitemapSpider

_STRIKE = "StrikethroughPrice"
_AVAILABILITY = {
    "instock": "in_stock",
    "outofstock": "out_of_stock",
    "limitedavailability": "limited",
    "preorder": "preorder",
    "backorder": "backorder",
    "discontinued": "discontinued",
}


def _products(data: Any) -> Iterator[dict[str, Any]]:
    """Every schema.org Product in a JSON-LD value (`@graph`, lists, list `@type`)."""
    if isinstance(data, list):
        for item in data:
            yield from _products(item)
    elif isinstance(data, dict):
        if "@graph" in data:
            yield from _products(data["@graph"])
        kind = data.get("@type")
        kinds = kind if isinstance(kind, list) else [kind]
        if "Product" in kinds:
            yield data


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _item(product: dict[str, Any], url: str) -> dict[str, Any]:
    offer = _first(product.get("offers")) or {}
    brand = product.get("brand")
    specs = offer.get("priceSpecification") or []
    specs = specs if isinstance(specs, list) else [specs]
    regular = unit_price = unit = None
    for spec in specs:
        if not isinstance(spec, dict):
            continue
        if str(spec.get("priceType", "")).endswith(_STRIKE):
            regular = spec.get("price")
        elif spec.get("@type") == "UnitPriceSpecification":
            unit_price = spec.get("price")
            unit = (spec.get("referenceQuantity") or {}).get("unitCode")
    availability = str(offer.get("availability") or "").rsplit("/", 1)[-1].lower()
    gtin = next(
        (product[k] for k in ("gtin13", "gtin", "gtin12", "gtin14", "gtin8") if product.get(k)),
        None,
    )
    category = product.get("category")
    return {
        "id": product.get("sku") or product.get("productID"),
        "url": offer.get("url") or url,
        "name": product.get("name"),
        "brand": brand.get("name") if isinstance(brand, dict) else brand,
        "gtin": gtin,
        "sku": product.get("sku"),
        "price": offer.get("price"),
        "currency": offer.get("priceCurrency"),
        "regular_price": regular,
        "is_discounted": regular is not None,
        "shop_unit_price": unit_price,
        "shop_unit": unit,
        "availability": _AVAILABILITY.get(availability, availability or None),
        "image_url": response_join(url, _first(product.get("image"))),
        "category": [c.strip() for c in category.split(">")] if isinstance(category, str) else [],
    }


def response_join(base: str, link: Any) -> str | None:
    """`link` made absolute against `base` (the spider's URLs are all http://host/…)."""
    if not isinstance(link, str) or not link:
        return None
    if link.startswith(("http://", "https://")):
        return link
    match = re.match(r"https?://[^/]+", base)
    return (match.group(0) if match else "") + link


class ShopSpider(SitemapSpider):
    """Sitemap → product pages → one JSON line per JSON-LD Product."""

    name = "pricefleet-bench"
    custom_settings: ClassVar[dict[str, Any]] = {
        "CONCURRENT_REQUESTS": 128,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 128,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "ROBOTSTXT_OBEY": True,
        "LOG_LEVEL": "INFO",
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "RETRY_TIMES": 4,
        "REACTOR_THREADPOOL_MAXSIZE": 20,
        "FEED_EXPORT_ENCODING": "utf-8",
    }

    def __init__(self, sitemap: str = "", products: str = r"/p/\d+/", **kwargs: Any) -> None:
        self.sitemap_urls = [sitemap]
        self.sitemap_rules = [(products, "parse_product")]
        super().__init__(**kwargs)

    def parse_product(self, response: Response) -> Iterator[dict[str, Any]]:
        """The first Product of the page's JSON-LD, as one item."""
        found = []
        for text in response.css('script[type="application/ld+json"]::text').getall():
            try:
                found.extend(_products(json.loads(text)))
            except ValueError:
                self.logger.warning("malformed JSON-LD on %s", response.url)
        if found:
            yield _item(found[0], response.url)
