"""The Mercadona recipe reads Mercadona's real API answers (saved in ../shared/fixtures)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from pricefleet.extract.recipe import extract_json
from pricefleet.models import Availability, SizeUnit
from pricefleet.sites import load_recipe

FIXTURES = Path(__file__).parents[3] / "shared" / "fixtures"
RECIPE = load_recipe(Path(__file__).parents[2] / "recipes" / "mercadona.yaml")


def _fixture(name: str) -> Any:
    path = FIXTURES / name
    if not path.exists():
        pytest.fail(f"fixture {path} is missing: ../shared/fixtures must be beside the repo")
    return orjson.loads(path.read_bytes())


def _read(item: Any) -> Any:
    fields = RECIPE.extraction.fields
    return extract_json(item, RECIPE.base_url, fields, currency=RECIPE.extraction.currency)


def test_product_detail() -> None:
    """/api/products/{id}/: name, brand, EAN, pack price, €/kg ours and the shop's, category."""
    product = _read(_fixture("mercadona-nutridata-readme/mercadona_api_product_23365.json"))
    assert product.name == "Anacardo natural Hacendado"
    assert product.brand == "Hacendado"
    assert product.gtin == "08480000233653"
    assert (product.price, product.currency) == (Decimal("2.40"), "EUR")
    assert (product.size_value, product.size_unit) == (Decimal("0.2"), SizeUnit.KG)
    assert (product.unit_price, product.unit) == (Decimal("12.0000"), SizeUnit.KG)
    assert product.shop_unit_price == Decimal("12.000")
    assert product.shop_unit == "kg"
    assert product.regular_price is None  # previous 2.50 shown, but price_decreased is false
    assert product.is_discounted is False
    assert product.availability is Availability.IN_STOCK
    assert (
        product.url
        == "https://tienda.mercadona.es/product/23365/anacardo-natural-hacendado-paquete"
    )
    assert product.category == ("Frutos secos",)


def test_category_listing_item() -> None:
    """A product inside /api/categories/{id}/: a pack of six briks, priced per litre."""
    product = _read(_fixture("mercadona-serrano1996/mercadona_product_sample.json"))
    assert product.name == "Leche semidesnatada Asturiana"
    assert product.price == Decimal("6.54")
    assert (product.size_value, product.size_unit) == (Decimal("6"), SizeUnit.L)
    assert product.unit_price is not None
    assert product.unit_price.quantize(Decimal("0.01")) == Decimal("1.09")
    assert product.shop_unit_price == Decimal("1.090")
    assert product.shop_unit == "l"
    assert product.gtin is None  # listings carry no EAN: the recipe reads the detail answer


def test_discounted_product() -> None:
    """When Mercadona marks a decrease, the previous price (with its leading spaces) is regular."""
    item = _fixture("mercadona-nutridata-readme/mercadona_api_product_23365.json")
    item["price_instructions"]["price_decreased"] = True
    product = _read(item)
    assert product.regular_price == Decimal("2.50")
    assert product.is_discounted is True
