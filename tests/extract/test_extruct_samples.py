"""extruct's own samples: our readings agree with extruct's expected outputs beside each page."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import extruct
import orjson
import pytest
from selectolax.lexbor import LexborHTMLParser

from pricefleet.extract import (
    PageError,
    availability_of,
    extract_product,
    jsonld,
    microdata,
    opengraph,
)
from pricefleet.extract.currency import currency_code
from pricefleet.extract.page import parse_page
from pricefleet.match.gtin import normalize_gtin
from tests.extract.fixtures import EXTRUCT

BASE = "http://some-example.com/"


def _load(name: str) -> Any:
    return orjson.loads((EXTRUCT / name).read_bytes())


def _html(name: str) -> bytes:
    return (EXTRUCT / name).read_bytes()


def _expected_fields(item: dict[str, Any]) -> dict[str, Any]:
    """The fields we extract, read from one of extruct's microdata items."""
    props = item["properties"]
    offer = props["offers"]["properties"]
    return {
        "name": props.get("name"),
        "brand": props.get("brand"),
        "price": Decimal(offer["price"]),
        "currency": currency_code(offer["priceCurrency"]),
        "availability": availability_of(offer.get("availability")),
        "sku": props.get("sku"),
        "gtin": normalize_gtin(props.get("gtin13")),
        "url": props.get("url", BASE),  # no URL stated: the URL it was fetched from
    }


def _our_fields(page: str, url: str = BASE) -> dict[str, Any]:
    found = extract_product(_html(page), url)
    return {
        "name": found.name,
        "brand": found.brand,
        "price": found.price,
        "currency": found.currency,
        "availability": found.availability,
        "sku": found.sku,
        "gtin": found.gtin,
        "url": found.url,
    }


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("schema.org_product.html", "schema.org_product.json"),
        ("schema.org_product-ref.html", "schema.org_product-ref.json"),
        ("schema.org_product.html", "schema.org_product_custom_url.json"),
        ("schema.org_product.html", "schema.org_product_custom_url_and_node_id.json"),
    ],
)
def test_microdata_product_fields_agree_with_extruct(page: str, expected: str) -> None:
    """Name, brand, price, currency, availability, sku and gtin match extruct's expected item."""
    items = [i for i in _load(expected) if "offers" in i["properties"]]
    assert len(items) == 1
    assert _our_fields(page) == _expected_fields(items[0])


def test_microdata_image_resolved_like_extruct_with_base_url() -> None:
    """The image URL (with stray whitespace in `src`) resolves against the page URL as extruct's
    custom-url expectation says."""
    expected = _load("schema.org_product_custom_url.json")[0]["properties"]["image"]
    assert extract_product(_html("schema.org_product.html"), BASE).image_url == expected


def test_microdata_items_match_extruct_item_for_item() -> None:
    """Our microdata reader finds the same top-level items and properties as extruct,
    itemref included (extruct's `type`/`properties` shape against our JSON-LD shape)."""

    def ours_as_extruct(item: Any) -> Any:
        if isinstance(item, list):
            return [ours_as_extruct(i) for i in item]
        if not isinstance(item, dict):
            return item
        props = {k: ours_as_extruct(v) for k, v in item.items() if not k.startswith("@")}
        return {"type": item["@type"], "properties": props}

    for page, expected in (
        ("schema.org_product.html", "schema.org_product.json"),
        ("schema.org_product-ref.html", "schema.org_product-ref.json"),
    ):
        items = microdata.read_items(LexborHTMLParser(_html(page)))
        assert [ours_as_extruct(i) for i in items] == _load(expected), page


def test_microdata_without_expected_file_agrees_with_live_extruct() -> None:
    """`misc_product_microdata.html` has no expected file upstream: extruct itself, run now,
    is the reference for the fields we extract."""
    html = _html("misc_product_microdata.html")
    [item] = [
        i
        for i in extruct.extract(html, base_url=BASE, syntaxes=["microdata"])["microdata"]
        if i["type"].endswith("/Product")
    ]
    assert _our_fields("misc_product_microdata.html") == _expected_fields(item)


@pytest.mark.parametrize(
    "name",
    [
        "misc_null_ld_mock",
        "custom.invalid_JSONLD_with_JS_comment",
        "custom.invalid_JSONLD_with_control_characters",
    ],
)
def test_jsonld_blocks_agree_with_extruct(name: str) -> None:
    """`null` blocks are dropped; JS comments and raw control characters are read leniently
    into exactly the values extruct expects."""
    tree = parse_page(_html(f"{name}.html"))
    texts = [n.text() for n in tree.css('script[type="application/ld+json"]')]
    blocks = jsonld.read_blocks(texts)
    assert blocks.blocks == _load(f"{name}.jsonld")
    assert blocks.malformed == 0


@pytest.mark.parametrize(
    "name",
    [
        "misc_null_ld_mock",
        "custom.invalid_JSONLD_with_JS_comment",
        "custom.invalid_JSONLD_with_control_characters",
        "misc_opengraph_test",
        "misc_expanded_OG_support_test",
    ],
)
def test_pages_without_product_raise_no_product(name: str) -> None:
    """A business, a news article or a bare data block is not a product page."""
    with pytest.raises(PageError) as caught:
        extract_product(_html(f"{name}.html"), BASE)
    assert caught.value.reason == "no-product"


def _og_pairs(page: str) -> dict[str, Any]:
    tree = parse_page(_html(page))
    pairs = [
        (n.attributes.get("property") or "", n.attributes.get("content") or "")
        for n in tree.css("meta[property]")
        if opengraph.is_og_property(n.attributes.get("property") or "")
    ]
    return opengraph.properties_dict(pairs)


def test_opengraph_properties_agree_with_extruct() -> None:
    """Every og:/article: property extruct expects, with the same value."""
    [expected] = _load("misc_opengraph_test.json")
    assert _og_pairs("misc_opengraph_test.html") == dict(expected["properties"])


def test_opengraph_read_as_rdfa_agrees_with_extruct() -> None:
    """The `og:` values extruct's RDFa reader expects on the expanded OG sample are ours."""
    [expected] = _load("misc_expanded_OG_support_test.json")
    ours = _og_pairs("misc_expanded_OG_support_test.html")
    prefix = "https://ogp.me/ns#"
    og = {f"og:{k[len(prefix) :]}": v[0]["@value"] for k, v in expected.items() if prefix in k}
    assert og
    assert all(ours[key] == value for key, value in og.items())


def test_opengraph_product_sample_fields() -> None:
    """extruct's OpenGraph product sample (its page was not saved) read by our OG mapping."""
    [expected] = _load("misc_opengraph_ns_product_test.json")
    props = opengraph.properties_dict([tuple(p) for p in expected["properties"]])
    found = opengraph.product_of(props, "https://www.fye.com/")
    assert found is not None
    assert found.name == props["og:title"]
    assert found.price == Decimal("17.99")
    assert found.currency == "USD"
    assert found.availability == availability_of("in stock")
    assert found.sku == props["product:retailer_item_id"]
    assert found.url == props["og:url"]
    assert found.gtin == normalize_gtin(props["product:gtin"])  # 11 digits: not a GTIN


def test_all_samples_are_used() -> None:
    """Every page in the extruct fixture folder is exercised above."""
    pages = {p.name for p in Path(EXTRUCT).glob("*.html")}
    assert pages == {
        "schema.org_product.html",
        "schema.org_product-ref.html",
        "misc_product_microdata.html",
        "misc_null_ld_mock.html",
        "custom.invalid_JSONLD_with_JS_comment.html",
        "custom.invalid_JSONLD_with_control_characters.html",
        "misc_opengraph_test.html",
        "misc_expanded_OG_support_test.html",
    }
