"""Pathologically nested markup is refused before lexbor parses it (its parse time grows with
the square of the nesting depth), while real pages, however large, are let through."""

from __future__ import annotations

import pytest

from pricefleet.extract import PageError, extract_product
from pricefleet.extract.nesting import MAX_DEPTH, nesting_depth, too_deep
from tests.extract.fixtures import zyte_pages, zyte_truth

URL = "https://shop.example/p/1"
PRODUCT = (
    '<script type="application/ld+json">{"@type": "Product", "name": "x", '
    '"offers": {"price": "1.00", "priceCurrency": "EUR"}}</script>'
)


@pytest.mark.parametrize("depth", [100_000, 1_000_000])
@pytest.mark.parametrize("close", [True, False])
def test_deeply_nested_divs_are_refused_quickly(depth: int, close: bool) -> None:
    """100,000 or 1,000,000 nested divs (lexbor: 18 s, and minutes) are a 'too-deep' PageError
    before any parse, whether the page closes them or not (a parse would outlast the test's
    timeout; speed itself is a benchmark's business)."""
    page = PRODUCT + "<div>" * depth + "x" + ("</div>" * depth if close else "")
    with pytest.raises(PageError) as caught:
        extract_product(page.encode(), URL, encoding="utf-8")
    assert caught.value.reason == "too-deep"
    assert caught.value.url == URL
    assert f"{depth:,}" in str(caught.value)


def test_the_limit_is_on_depth_not_on_size() -> None:
    """30,000 sibling divs, or nests just under the limit repeated, are read as usual."""
    siblings = PRODUCT + "<div>x</div>" * 30_000
    assert extract_product(siblings, URL).price is not None
    nests = PRODUCT + ("<div>" * MAX_DEPTH + "</div>" * MAX_DEPTH) * 20
    assert too_deep(nests) is None
    assert extract_product(nests, URL).price is not None


def test_void_and_optional_end_tags_do_not_count() -> None:
    """`<br>`, `<img>` and unclosed `<p>`, `<li>`, `<td>` never stay open, so they add no
    depth; comments and doctype neither."""
    page = "<!DOCTYPE html><!-- x --><div><ul>" + "<li>a<br><img src=x>" * 20_000 + "</ul></div>"
    assert nesting_depth(page) == 2
    assert nesting_depth(page.encode()) == 2
    assert too_deep("<p>x" * 20_000 + "<td>y" * 20_000) is None


def test_a_large_real_page_is_not_refused() -> None:
    """A 5 MB real product page (its body repeated) is under the limit and still read."""
    key = next(k for k in zyte_pages() if k.startswith("e51c765c"))
    page = zyte_pages()[key]
    head, _, body = page.partition(b"<body")
    big = head + b"<body" + body * (5_000_000 // len(body) + 1)
    assert too_deep(big) is None
    assert extract_product(big, zyte_truth()[key]["url"]).price is not None
