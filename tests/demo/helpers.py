"""Reading the demo shops the way a crawler would, for tests: ground truth and page parsers."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import orjson

from pricefleet.demo import DemoConfig, create_app
from pricefleet.demo.shops.base import DemoShop

__all__ = ["eu_amount", "json_ld_blocks", "shops_like", "truth_of"]

_LD = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)


def shops_like(products: int, seed: int) -> dict[str, DemoShop]:
    """In-process shops built like a server started with these options."""
    shops: dict[str, DemoShop] = create_app(DemoConfig(products=products, seed=seed)).state.shops
    return shops


def truth_of(shop: DemoShop, day: int, base_url: str) -> list[dict[str, Any]]:
    """Every product of `shop` as it stands on `day`."""
    return list(shop.truth_records(day, base_url))


def json_ld_blocks(html: str) -> list[str]:
    """The raw text of each JSON-LD script of a page."""
    return [m.group(1) for m in _LD.finditer(html)]


def json_ld_product(html: str) -> dict[str, Any]:
    """The schema.org Product of a page."""
    for block in json_ld_blocks(html):
        data = orjson.loads(block.replace("<\\/", "</"))
        if data.get("@type") == "Product":
            product: dict[str, Any] = data
            return product
    raise AssertionError("no Product JSON-LD on the page")


def eu_amount(text: str) -> Decimal:
    """`1.234,56 €` → Decimal('1234.56')."""
    cleaned = text.replace("€", "").replace("EUR", "").strip().replace(".", "").replace(",", ".")
    return Decimal(cleaned)
