"""Sizes read from size strings and product names, and the unit prices they give."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricefleet.extract import Size, parse_size, unit_price
from pricefleet.models import SizeUnit

KG, L, UNIT = SizeUnit.KG, SizeUnit.L, SizeUnit.UNIT

# text, expected size (value, unit, pack), a price, the unit price it gives
TABLE: list[tuple[str, tuple[str, SizeUnit, int], str, str]] = [
    # the five demo shops' house styles for the same milk
    ("Leche entera Campo Real 1 L", ("1", L, 1), "1.19", "1.1900"),
    ("LECHE ENTERA CAMPO REAL brik 1l", ("1", L, 1), "1.19", "1.1900"),
    ("Campo Real - Leche Entera (1000 ml)", ("1", L, 1), "1.19", "1.1900"),
    ("Leche entera, Campo Real, 1 litro", ("1", L, 1), "1.19", "1.1900"),
    ("Leche entera Campo Real", None, "1.19", ""),  # the API shop's name holds no size
    # multipacks
    ("pack 6 x 1 L", ("6", L, 6), "6.54", "1.0900"),
    ("6x1l", ("6", L, 6), "6.54", "1.0900"),
    ("(6 x 1000 ml)", ("6", L, 6), "6.54", "1.0900"),
    ("6 briks de 1 l", ("6", L, 6), "6.54", "1.0900"),
    ("6 x 1,5 litros", ("9", L, 6), "5.99", "0.6656"),
    ("Yogur natural pack 6 x 125 g", ("0.75", KG, 6), "2.29", "3.0533"),
    ("BEBIDA DE AVENA brik 3x250ml", ("0.75", L, 3), "0.79", "1.0533"),
    ("Bebida de avena, Aitana, 3 x 250 mililitros", ("0.75", L, 3), "0.85", "1.1333"),
    ("CERVEZA 0,0 % MARCA lata 6x330ml", ("1.98", L, 6), "3.49", "1.7626"),
    # single sizes
    ("250 g", ("0.25", KG, 1), "2.50", "10.0000"),
    ("250 gramos", ("0.25", KG, 1), "2.50", "10.0000"),
    ("0,75 L", ("0.75", L, 1), "3.99", "5.3200"),
    ("33 cl", ("0.33", L, 1), "0.65", "1.9697"),
    ("1,5 L", ("1.5", L, 1), "1.65", "1.1000"),
    ("1000 ml", ("1", L, 1), "1.00", "1.0000"),
    ("1.000 g", ("1", KG, 1), "4.00", "4.0000"),
    ("2 kg aprox.", ("2", KG, 1), "7.00", "3.5000"),
    ("Queso curado Valle Verde 3 kg", ("3", KG, 1), "41.70", "13.9000"),
    # items
    ("12 uds", ("12", UNIT, 1), "2.40", "0.2000"),
    ("1 ud", ("1", UNIT, 1), "24.99", "24.9900"),
    ("1 u.", ("1", UNIT, 1), "24.99", "24.9900"),
    ("Huevos frescos talla L Granja 12 uds", ("12", UNIT, 1), "2.40", "0.2000"),
    ("docena", ("12", UNIT, 1), "2.40", "0.2000"),
    ("Huevos camperos, media docena", ("6", UNIT, 1), "1.50", "0.2500"),
    # a name that states two sizes means the last (the kettle holds 1,7 l, one is sold)
    ("Hervidor eléctrico 1,7 l Hogar Plus 1 ud", ("1", UNIT, 1), "29.90", "29.9000"),
    ("HERVIDOR ELÉCTRICO 1,7 L HOGAR PLUS caja 1ud", ("1", UNIT, 1), "29.90", "29.9000"),
    # numbers that are not sizes
    ("Leche entera 2 Campo Real 1 L", ("1", L, 1), "1.19", "1.1900"),
    ("Chocolate negro 70 % Cacao Real 100 g", ("0.1", KG, 1), "1.85", "18.5000"),
    ("Papel A4 500 hojas", None, "4.99", ""),
    ("1.5", None, "1.00", ""),
    ("", None, "1.00", ""),
]


@pytest.mark.parametrize(("text", "size", "price", "per_unit"), TABLE)
def test_size_and_unit_price(
    text: str, size: tuple[str, SizeUnit, int] | None, price: str, per_unit: str
) -> None:
    """Each house style gives the size in kg / l / items and the price per unit of it."""
    found = parse_size(text)
    if size is None:
        assert found is None
        return
    value, unit, pack = size
    assert found == Size(Decimal(value), unit, pack)
    assert unit_price(Decimal(price), found) == (Decimal(per_unit), unit)


def test_unit_price_rounds_half_up_to_four_places() -> None:
    """A third of a cent per unit is kept to four places, halves rounded up."""
    assert unit_price(Decimal("1.00"), Size(Decimal(3), L)) == (Decimal("0.3333"), L)
    assert unit_price(Decimal("0.00005"), Size(Decimal(1), KG)) == (Decimal("0.0001"), KG)


def test_sizes_come_out_without_exponents() -> None:
    """Whole values read as `6`, not `6.000` or `6E+0`, so they serialise as people write them."""
    size = parse_size("6 x 1000 ml")
    assert size is not None
    assert str(size.value) == "6"
    hundred = parse_size("100 kg")
    assert hundred is not None
    assert str(hundred.value) == "100"
