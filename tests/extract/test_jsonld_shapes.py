"""JSON-LD shapes the saved pages do not show (`@graph`, ProductGroup, AggregateOffer, unit
price specifications, `@id` references, broken blocks): small pages written here, since no
real saved page has them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from pricefleet.extract import PageError, extract_product
from pricefleet.models import Availability, SizeUnit

URL = "https://shop.example/p/leche-entera-1l"


def _page(*blocks: Any, extra: str = "") -> str:
    scripts = "".join(
        f'<script type="application/ld+json">'
        f"{b if isinstance(b, str) else orjson.dumps(b).decode()}</script>"
        for b in blocks
    )
    return f"<html><head>{scripts}{extra}</head><body><h1>x</h1></body></html>"


MILK: dict[str, Any] = {
    "@context": "https://schema.org",
    "@type": "Product",
    "name": "Leche entera Campo Real 1 L",
    "brand": "Campo Real",
    "gtin": "8480896701397",
    "offers": {
        "@type": "Offer",
        "price": "1,19",
        "priceCurrency": "€",
        "availability": "InStock",
    },
}


def test_graph_with_main_entity() -> None:
    """A Product reached through `@graph` → WebPage → `mainEntity` is found."""
    page = {"@context": "https://schema.org", "@graph": [{"@type": "WebPage", "mainEntity": MILK}]}
    found = extract_product(_page(page), URL)
    assert (found.name, found.price, found.currency) == (MILK["name"], Decimal("1.19"), "EUR")
    assert found.gtin == "08480896701397"
    assert found.brand == "Campo Real"
    assert found.availability is Availability.IN_STOCK
    assert (found.size_value, found.size_unit, found.unit_price) == (
        Decimal(1),
        SizeUnit.L,
        Decimal("1.1900"),
    )


def test_type_as_list_and_brand_object() -> None:
    """`@type: ["Product", "Thing"]` and `brand: {"@type": "Brand", "name": …}` are read."""
    product = {**MILK, "@type": ["Product", "Thing"], "brand": {"@type": "Brand", "name": "CR"}}
    assert extract_product(_page(product), URL).brand == "CR"


@pytest.mark.parametrize(
    ("url", "sku"),
    [
        ("https://shop.example/p/leche?variant=B", "B"),
        ("https://shop.example/p/leche-b", "B"),
        ("https://shop.example/p/leche", "A"),
    ],
)
def test_product_group_picks_the_pages_variant(url: str, sku: str) -> None:
    """A ProductGroup gives the variant at the page URL (or named by a query value), else the
    first; the group's name and brand fill what the variant leaves out."""
    group = {
        "@context": "https://schema.org",
        "@type": "ProductGroup",
        "name": "Leche",
        "brand": {"name": "Campo Real"},
        "hasVariant": [
            {"@type": "Product", "sku": "A", "offers": {"price": 1, "priceCurrency": "EUR"}},
            {
                "@type": "Product",
                "sku": "B",
                "url": "https://shop.example/p/leche-b",
                "offers": {"price": 2, "priceCurrency": "EUR"},
            },
        ],
    }
    found = extract_product(_page(group), url)
    assert found.sku == sku
    assert found.price == Decimal(1 if sku == "A" else 2)
    assert (found.name, found.brand) == ("Leche", "Campo Real")


def test_aggregate_offer_low_price_and_inner_offers() -> None:
    """AggregateOffer: its inner offers if any (cheapest in stock), else `lowPrice`."""
    low = {**MILK, "offers": {"@type": "AggregateOffer", "lowPrice": 3.5, "priceCurrency": "GBP"}}
    assert (extract_product(_page(low), URL).price, extract_product(_page(low), URL).currency) == (
        Decimal("3.50"),
        "GBP",
    )
    inner = {
        **MILK,
        "offers": {
            "@type": "AggregateOffer",
            "lowPrice": 1,
            "offers": [
                {"price": "0.90", "priceCurrency": "EUR", "availability": "OutOfStock"},
                {"price": "1.10", "priceCurrency": "EUR", "availability": "InStock"},
            ],
        },
    }
    found = extract_product(_page(inner), URL)
    assert (found.price, found.availability) == (Decimal("1.10"), Availability.IN_STOCK)


def test_price_specifications_unit_price_and_list_price() -> None:
    """UnitPriceSpecification with a reference quantity is the shop's unit price; a ListPrice
    or StrikethroughPrice above the price is the regular price."""
    offer = {
        "@type": "Offer",
        "price": 2.99,
        "priceCurrency": "EUR",
        "priceSpecification": [
            {
                "@type": "UnitPriceSpecification",
                "price": 11.96,
                "priceCurrency": "EUR",
                "referenceQuantity": {"value": 1, "unitCode": "KGM"},
            },
            {"@type": "UnitPriceSpecification", "priceType": "ListPrice", "price": 3.49},
        ],
    }
    product = {**MILK, "name": "Queso fresco 250 g", "offers": offer}
    found = extract_product(_page(product), URL)
    assert (found.shop_unit_price, found.shop_unit) == (Decimal("11.96"), "kg")
    assert (found.regular_price, found.is_discounted) == (Decimal("3.49"), True)
    assert (found.unit_price, found.unit) == (Decimal("11.9600"), SizeUnit.KG)
    per_100 = {**offer, "priceSpecification": [{**offer["priceSpecification"][0]}]}
    per_100["priceSpecification"][0]["referenceQuantity"] = {"value": 100, "unitCode": "GRM"}
    found = extract_product(_page({**product, "offers": per_100}), URL)
    assert found.shop_unit == "100 g"
    assert not found.is_discounted


def test_breadcrumbs_and_id_references() -> None:
    """BreadcrumbList names become the category; `offers: {"@id": …}` is resolved in the graph."""
    crumbs = {
        "@type": "BreadcrumbList",
        "itemListElement": [
            {"@type": "ListItem", "position": 2, "item": {"@id": "/c/leche", "name": "Leche"}},
            {"@type": "ListItem", "position": 1, "name": "Lácteos"},
        ],
    }
    graph = {
        "@graph": [
            {**MILK, "offers": {"@id": "#offer"}},
            {"@id": "#offer", "@type": "Offer", "price": "1.05", "priceCurrency": "EUR"},
            crumbs,
        ]
    }
    found = extract_product(_page(graph), URL)
    assert found.category == ("Lácteos", "Leche")
    assert found.price == Decimal("1.05")


def test_offer_with_item_offered() -> None:
    """A top-level Offer naming its product in `itemOffered` is that product's offer."""
    offer = {
        "@type": "Offer",
        "price": 4,
        "priceCurrency": "USD",
        "itemOffered": {"@type": "Product", "name": "Widget"},
    }
    found = extract_product(_page(offer), URL)
    assert (found.name, found.price, found.currency) == ("Widget", Decimal("4.00"), "USD")


def test_the_page_s_product_among_several() -> None:
    """With several Products, the one whose URL is the page's wins over the first."""
    other = {**MILK, "name": "Otra", "url": "https://shop.example/p/otra"}
    mine = {**MILK, "name": "Mía", "url": URL}
    assert extract_product(_page(other, mine), URL).name == "Mía"


@pytest.mark.parametrize(
    "text",
    [
        '<!-- {"@type": "Product", "name": "A", '
        '"offers": {"price": 1, "priceCurrency": "EUR"}} -->',
        '{"@type": "Product", "name": "A", // nombre\n "offers": {"price": 1, '
        '"priceCurrency": "EUR",},}',
        '/*<![CDATA[*/{"@type": "Product", "name": "A", "offers": '
        '{"price": 1, "priceCurrency": "EUR"}}/*]]>*/',
        '{"@type": "Product", "name": "A\tB", "offers": {"price": 1, "priceCurrency": "EUR"}};',
    ],
)
def test_lenient_second_reading(text: str) -> None:
    """Comment wrappers, JS comments, trailing commas, CDATA and raw tabs are forgiven."""
    assert extract_product(_page(text), URL).price == Decimal("1.00")


def test_broken_jsonld_alone_is_malformed_and_og_rescues_it() -> None:
    """JSON-LD beyond repair raises 'malformed-jsonld', unless OpenGraph names a priced product."""
    broken = '{"@type": "Product", "name": "A", "offers": {"price": 1'
    with pytest.raises(PageError) as caught:
        extract_product(_page(broken), URL)
    assert caught.value.reason == "malformed-jsonld"
    og = (
        '<meta property="og:type" content="product"><meta property="og:title" content="A">'
        '<meta property="product:price:amount" content="5.00">'
        '<meta property="product:price:currency" content="EUR">'
    )
    found = extract_product(_page(broken, extra=og), URL)
    assert (found.name, found.price, found.source) == ("A", Decimal("5.00"), "opengraph")


def test_product_without_price_is_no_price() -> None:
    """A Product with no offer anywhere on the page raises 'no-price'."""
    with pytest.raises(PageError) as caught:
        extract_product(_page({"@type": "Product", "name": "A"}), URL)
    assert caught.value.reason == "no-price"


def test_currency_missing_from_jsonld_is_read_from_the_page() -> None:
    """An offer without `priceCurrency` takes the currency the page shows with its price."""
    product = {**MILK, "offers": {"price": "1.19"}}
    page = _page(product).replace("<h1>x</h1>", '<h1>Leche</h1><p class="price">1,19 €</p>')
    assert extract_product(page, URL).currency == "EUR"
    assert extract_product(_page(product), URL).currency is None
