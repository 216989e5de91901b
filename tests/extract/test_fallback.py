"""The extruct fallback (RDFa, microformats), for pages the fast readers find nothing on.

None of the saved real pages carries an RDFa or microformat product, so these pages are written
here, in the markup the RDFa and h-product specifications show.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricefleet.extract import PageError, extract_product, fallback
from pricefleet.models import Availability

URL = "https://shop.example/p/anvil"

RDFA = """<html><body vocab="https://schema.org/">
<div typeof="Product">
  <h1 property="name">Executive Anvil</h1>
  <span property="brand" typeof="Brand"><span property="name">ACME</span></span>
  <div property="offers" typeof="Offer">
    <span property="priceCurrency" content="USD">$</span><span property="price">119.99</span>
    <link property="availability" href="https://schema.org/InStock">
  </div>
</div></body></html>"""

MICROFORMAT = """<html><body>
<div class="h-product"><h1 class="p-name">Executive Anvil</h1>
<span class="p-brand">ACME</span><data class="p-price" value="119.99">€119.99</data>
</div></body></html>"""


def test_rdfa_product() -> None:
    """An RDFa Product (no JSON-LD, microdata or OpenGraph) is read through extruct."""
    found = extract_product(RDFA, URL)
    assert (found.name, found.brand, found.source) == ("Executive Anvil", "ACME", "rdfa")
    assert (found.price, found.currency) == (Decimal("119.99"), "USD")
    assert found.availability is Availability.IN_STOCK


def test_microformat_product() -> None:
    """An h-product microformat is read through extruct."""
    found = extract_product(MICROFORMAT, URL)
    assert (found.name, found.price, found.source) == (
        "Executive Anvil",
        Decimal("119.99"),
        "extruct",
    )


def test_page_without_markup_skips_extruct(monkeypatch: pytest.MonkeyPatch) -> None:
    """A page with no RDFa type and no product microformat never reaches extruct."""

    def must_not_run(*args: object) -> list[object]:
        raise AssertionError("extruct ran on a page without RDFa or microformats")

    monkeypatch.setattr(fallback, "products", must_not_run)
    with pytest.raises(PageError) as caught:
        extract_product("<html><body><p>Hola</p></body></html>", URL)
    assert caught.value.reason == "no-product"
