"""Whatever arrives - broken, empty, cut, binary, huge or random - `extract_product` returns a
product or raises `PageError` with a reason, never anything else."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricefleet.extract import Extracted, PageError, extract_product
from tests.extract.fixtures import EXTRUCT, zyte_pages, zyte_truth

URL = "https://shop.example/p/1"
REASONS = {"empty", "no-product", "no-price", "malformed-jsonld", "too-deep"}


def _outcome(body: bytes | str, url: str = URL, encoding: str | None = None) -> str:
    """'product', or the reason of the PageError; any other exception fails the test."""
    try:
        found: Extracted | PageError = extract_product(body, url, encoding=encoding)
    except PageError as error:
        found = error
    if isinstance(found, PageError):
        assert found.reason in REASONS
        assert found.url == url
        return found.reason
    assert found.price is not None
    assert found.price > 0
    orjson.dumps(found.raw)
    return "product"


@pytest.mark.parametrize(
    "name",
    ["custom.invalid_JSONLD_with_JS_comment", "custom.invalid_JSONLD_with_control_characters"],
)
def test_malformed_jsonld_samples(name: str) -> None:
    """extruct's broken JSON-LD samples are read (leniently) and hold no product."""
    assert _outcome((EXTRUCT / f"{name}.html").read_bytes()) == "no-product"


@pytest.mark.parametrize("body", [b"", "", b"   \n\t ", "\n"])
def test_empty_page(body: bytes | str) -> None:
    """An empty body is reported as 'empty'."""
    assert _outcome(body) == "empty"


@pytest.mark.parametrize("key", sorted(zyte_pages()))
def test_first_half_of_a_real_page(key: str) -> None:
    """A page cut in half (a dropped connection) still yields a product or a reason."""
    body = zyte_pages()[key]
    _outcome(body[: len(body) // 2], zyte_truth()[key]["url"])


@pytest.mark.parametrize("seed", range(5))
def test_binary_garbage(seed: int) -> None:
    """Random bytes (NULs and invalid UTF-8 included) hold no product."""
    body = random.Random(seed).randbytes(200_000)
    assert _outcome(body) in REASONS
    assert _outcome(body, encoding="latin-1") in REASONS
    assert _outcome(body, encoding="no-such-charset") in REASONS


def test_five_megabyte_page() -> None:
    """A 5 MB page (a real product page whose body repeats) is read, and in reasonable time."""
    key = next(k for k in zyte_pages() if k.startswith("e51c765c"))
    page = zyte_pages()[key]
    head, _, body = page.partition(b"<body")
    big = head + b"<body" + body * (5_000_000 // len(body) + 1)
    assert len(big) >= 5_000_000
    started = time.perf_counter()
    assert _outcome(big, zyte_truth()[key]["url"]) == "product"
    assert time.perf_counter() - started < 10


def test_deeply_nested_markup_and_json() -> None:
    """5 000 nested elements and 100 000 nested JSON arrays exhaust no stack. (Markup nested
    deeper than 512 in a page of over 10,000 tags is refused before parsing: lexbor's parse
    time grows with the square of the depth; see test_nesting.py.)"""
    nested_html = "<div>" * 5_000 + '<span class="price">1,00 €</span>' + "</div>" * 5_000
    assert _outcome(nested_html) in REASONS | {"product"}
    nested_json = "[" * 100_000 + "]" * 100_000
    page = f'<script type="application/ld+json">{nested_json}</script>'
    assert _outcome(page) == "malformed-jsonld"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=2000))
def test_any_text(text: str) -> None:
    """Arbitrary text raises nothing but PageError."""
    _outcome(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes(body: bytes) -> None:
    """Arbitrary bytes raise nothing but PageError."""
    _outcome(body)


_json: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(
        ["InStock", "€", "1.234,56", "https://x/", "#o", "KGM", "StrikethroughPrice"]
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "@type",
                    "@id",
                    "@graph",
                    "name",
                    "offers",
                    "price",
                    "lowPrice",
                    "priceCurrency",
                    "availability",
                    "brand",
                    "gtin13",
                    "gtin",
                    "sku",
                    "image",
                    "url",
                    "hasVariant",
                    "priceSpecification",
                    "priceType",
                    "referenceQuantity",
                    "unitCode",
                    "value",
                    "itemListElement",
                    "item",
                    "position",
                    "mainEntity",
                    "itemOffered",
                    "size",
                    "category",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=25,
)
_types = st.sampled_from(
    ["Product", "ProductGroup", "Offer", "AggregateOffer", "BreadcrumbList", "Book"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_types, st.dictionaries(st.text(max_size=12), _json, max_size=4), _json)
def test_any_jsonld_shape(kind: str, extra: dict[str, Any], offers: Any) -> None:
    """Products of any JSON shape (odd types where strings go, loops of `@id`s, nonsense
    specifications) raise nothing but PageError."""
    node = {"@type": kind, "name": "x", "offers": offers, **extra}
    page = f'<script type="application/ld+json">{json.dumps(node)}</script>'
    _outcome(page)
