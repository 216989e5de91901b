"""`availability_of`: schema.org values, OpenGraph words and shop phrases."""

from __future__ import annotations

import pytest

from pricefleet.extract import availability_of
from pricefleet.models import Availability

IN, OUT = Availability.IN_STOCK, Availability.OUT_OF_STOCK
PRE, GONE, UNKNOWN = Availability.PREORDER, Availability.DISCONTINUED, Availability.UNKNOWN


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://schema.org/InStock", IN),
        ("http://schema.org/InStock", IN),
        ("  http://schema.org/InStock", IN),
        ("schema:InStock", IN),
        ("InStock", IN),
        ("in stock", IN),
        ("in_stock", IN),
        ("LimitedAvailability", IN),
        ("InStoreOnly", IN),
        ("https://schema.org/OutOfStock", OUT),
        ("OutOfStock", OUT),
        ("out of stock", OUT),
        ("SoldOut", OUT),
        ("PreOrder", PRE),
        ("PreSale", PRE),
        ("BackOrder", PRE),
        ("Discontinued", GONE),
        ("Disponible", IN),
        ("En stock", IN),
        ("Agotado", OUT),
        ("Sin existencias", OUT),
        ("No disponible", OUT),
        ("Descatalogado", GONE),
        ("Auf Lager.", IN),
        ("Currently unavailable.", OUT),
        ("Produkt niedostępny", OUT),
        ("Dostępne", IN),
        ("Skladom", IN),
        ("2-3 días", UNKNOWN),
        ("", UNKNOWN),
        (None, UNKNOWN),
    ],
)
def test_availability_of(value: str | None, expected: Availability) -> None:
    """Each statement maps to what it means for buying now; unknown wording to UNKNOWN."""
    assert availability_of(value) is expected
