"""Reading a product with a recipe's own fields: CSS selectors on HTML, JMESPath on JSON.

For shops with no structured data (or an API): the recipe says where each field is; the values
go through the same price, size, unit and availability parsing as structured data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin

import jmespath
from selectolax.lexbor import LexborHTMLParser

from pricefleet.extract import (
    Extracted,
    PageError,
    availability_of,
    parse_price,
    parse_size,
    unit_price,
)
from pricefleet.match import normalize_gtin
from pricefleet.models import SizeUnit

__all__ = ["extract_css", "extract_json"]

_ATTR = re.compile(r"^(.*?)::attr\(([\w:-]+)\)$")
_SHOP_UNITS = {"kg": "kg", "l": "l", "ud": "unit", "unit": "unit", "litro": "l", "kilo": "kg"}
_jmespath_cache: dict[str, Any] = {}


def _css(tree: LexborHTMLParser, selector: str) -> str | None:
    match = _ATTR.match(selector)
    css, attribute = (match.group(1), match.group(2)) if match else (selector, None)
    node = tree.css_first(css)
    if node is None:
        return None
    value = node.attributes.get(attribute) if attribute else node.text(separator=" ")
    return " ".join(value.split()) if value else None


def _jmes(expression: str, data: Any) -> Any:
    compiled = _jmespath_cache.get(expression)
    if compiled is None:
        compiled = _jmespath_cache[expression] = jmespath.compile(expression)
    return compiled.search(data)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        return repr(value)
    return str(value).strip() or None


def _shop_unit(text: str | None) -> str | None:
    if not text:
        return None
    words = re.findall(r"[a-z]+", text.lower())
    for word in reversed(words):
        if word in _SHOP_UNITS:
            return _SHOP_UNITS[word]
    return None


def _build(
    values: Mapping[str, str | None],
    url: str,
    *,
    currency: str,
    decimal_separator: str | None,
    source: str,
    raw: dict[str, Any],
) -> Extracted:
    """An Extracted record from raw field texts."""
    price, found_currency = parse_price(
        values.get("price") or "", currency_hint=currency, decimal_separator=decimal_separator
    )
    if price is None:
        raise PageError("no-price", url=url, detail=f"field 'price' gave {values.get('price')!r}")
    regular, _ = parse_price(
        values.get("regular_price") or "",
        currency_hint=currency,
        decimal_separator=decimal_separator,
    )
    name = values.get("name")
    if not name:
        raise PageError("no-name", url=url, detail="field 'name' is empty")
    size = parse_size(values.get("size") or "") or parse_size(name)
    ours: tuple[Decimal, SizeUnit] | None = unit_price(price, size) if size else None
    stated_text = values.get("unit_price")
    stated, _ = parse_price(
        stated_text or "", currency_hint=currency, decimal_separator=decimal_separator
    )
    category = values.get("category")
    return Extracted(
        url=url,
        name=name,
        brand=values.get("brand"),
        sku=values.get("sku") or values.get("id"),
        gtin=normalize_gtin(values.get("gtin")),
        price=price,
        currency=found_currency or currency,
        regular_price=regular if regular is not None and regular > price else None,
        is_discounted=regular is not None and regular > price,
        availability=availability_of(values.get("availability")),
        image_url=values.get("image"),
        category=(category,) if category else (),
        size_value=size.value if size else None,
        size_unit=size.unit if size else None,
        pack=size.pack if size else 1,
        unit_price=ours[0] if ours else None,
        unit=ours[1] if ours else None,
        shop_unit_price=stated,
        shop_unit=_shop_unit(values.get("unit") or stated_text) if stated is not None else None,
        source="recipe",
        raw=raw,
    )


def extract_css(
    tree: LexborHTMLParser,
    url: str,
    fields: Mapping[str, str],
    *,
    currency: str = "EUR",
    decimal_separator: str | None = None,
) -> Extracted:
    """A product read from an HTML page by the recipe's CSS selectors."""
    values = {name: _css(tree, selector) for name, selector in fields.items()}
    return _build(
        values,
        url,
        currency=currency,
        decimal_separator=decimal_separator,
        source="recipe",
        raw={k: v for k, v in values.items() if v is not None},
    )


def extract_json(
    item: Any,
    base_url: str,
    fields: Mapping[str, str],
    *,
    currency: str = "EUR",
    decimal_separator: str | None = None,
) -> Extracted:
    """A product read from a JSON object by the recipe's JMESPath expressions."""
    try:
        values = {name: _text(_jmes(expression, item)) for name, expression in fields.items()}
    except jmespath.exceptions.JMESPathError as exc:
        raise PageError("bad-json-path", url=base_url, detail=str(exc)) from None
    url = urljoin(base_url, values["url"]) if values.get("url") else base_url
    return _build(
        values,
        url,
        currency=currency,
        # JSON numbers, even when sent as strings ("1.090"), are machine-written: "." is decimal.
        decimal_separator=decimal_separator or ".",
        source="recipe",
        raw=item if isinstance(item, dict) else {"value": item},
    )
