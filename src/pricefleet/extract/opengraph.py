"""OpenGraph and Facebook product tags (`og:*`, `product:*`) to `Found`.

Owns the meaning of the product tags shops put in `<meta property=…>`: `product:price:amount`
and `og:price:amount`, `product:sale_price:*` (the current price when present),
`product:original_price:*` / `og:price:standard_amount` (the regular price),
`product:availability`, `product:brand`, `product:retailer_item_id`, `og:url`, `og:image`.
Collecting the meta tags is `page.py`'s job (it scans the head once for everything).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from pricefleet.extract.availability import availability_of
from pricefleet.extract.currency import currency_code
from pricefleet.extract.prices import decimal_of
from pricefleet.extract.record import Found
from pricefleet.extract.schema import absolute_url, text_of
from pricefleet.match.gtin import normalize_gtin

__all__ = ["is_og_property", "product_of", "properties_dict"]

_PREFIXES = ("og:", "product:", "article:", "book:", "music:", "video:", "profile:")


def is_og_property(name: str) -> bool:
    """Whether a meta `property` / `name` belongs to OpenGraph or its product namespace."""
    return name.startswith(_PREFIXES)


def properties_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`(property, content)` pairs as a dict; repeated properties (`og:image`) become lists."""
    result: dict[str, Any] = {}
    for name, content in pairs:
        present = result.get(name)
        if present is None:
            result[name] = content
        elif isinstance(present, list):
            present.append(content)
        else:
            result[name] = [present, content]
    return result


def _first(props: dict[str, Any], *names: str) -> str | None:
    for name in names:
        text = text_of(props.get(name))
        if text:
            return text
    return None


def _amount(props: dict[str, Any], *names: str) -> Decimal | None:
    for name in names:
        amount = decimal_of(_first(props, name))
        if amount is not None:
            return amount
    return None


def product_of(props: dict[str, Any], page_url: str) -> Found | None:
    """The product the OpenGraph tags describe, or None when they describe no product (no
    `og:type` product and no price)."""
    kind = (_first(props, "og:type") or "").lower()
    price = _amount(props, "product:price:amount", "og:price:amount", "product:price")
    sale = _amount(props, "product:sale_price:amount", "og:sale_price:amount")
    if "product" not in kind and price is None and sale is None:
        return None
    found = Found(source="opengraph", raw=props)
    found.name = _first(props, "og:title")
    found.brand = _first(props, "product:brand", "og:brand")
    found.sku = _first(props, "product:retailer_item_id", "product:sku", "og:sku")
    for name in ("product:gtin", "product:ean", "product:upc", "product:isbn", "og:upc"):
        gtin = normalize_gtin(_first(props, name))
        if gtin is not None:
            found.gtin = gtin
            break
    found.url = absolute_url(_first(props, "og:url"), page_url)
    found.image_url = absolute_url(
        _first(props, "og:image:secure_url", "og:image", "og:image:url"), page_url
    )
    regular = _amount(
        props, "product:original_price:amount", "og:price:standard_amount", "og:original_price"
    )
    if sale is not None and (price is None or sale < price):
        price, regular = sale, price if price is not None else regular
    found.price = price
    found.regular_price = regular if regular is not None and price is not None else None
    found.currency = currency_code(
        _first(
            props,
            "product:price:currency",
            "og:price:currency",
            "product:sale_price:currency",
            "product:original_price:currency",
        )
    )
    found.availability = availability_of(_first(props, "product:availability", "og:availability"))
    return found
