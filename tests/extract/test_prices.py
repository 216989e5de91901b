"""`parse_price` on the price styles our shops write, and currency marks to ISO codes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricefleet.extract import parse_price
from pricefleet.extract.currency import currency_code
from pricefleet.extract.prices import decimal_of


@pytest.mark.parametrize(
    ("text", "hint", "separator", "amount", "currency"),
    [
        ("1.234,56 €", None, None, "1234.56", "EUR"),
        ("1,69", "EUR", None, "1.69", "EUR"),
        ("12.99", None, None, "12.99", None),
        ("£34.99", None, None, "34.99", "GBP"),
        ("CHF 2.25", None, None, "2.25", "CHF"),
        ("997 zł", None, None, "997", "PLN"),
        ("$1,149.00", None, None, "1149.00", "USD"),
        ("€ 20,-", None, None, "20", "EUR"),
        ("8,33 €", None, None, "8.33", "EUR"),
        ("1.000", None, ",", "1000", None),
        ("1.000", None, ".", "1.000", None),
        ("3 Ausgaben für nur 14,85 EUR", None, None, "14.85", "EUR"),
        ("2963 yen", None, None, "2963", "JPY"),
        ("", "EUR", None, None, "EUR"),
        ("Agotado", None, None, None, None),
    ],
)
def test_parse_price(
    text: str, hint: str | None, separator: str | None, amount: str | None, currency: str | None
) -> None:
    """Amount as Decimal and currency as ISO code, whatever the shop's number style."""
    assert parse_price(text, currency_hint=hint, decimal_separator=separator) == (
        Decimal(amount) if amount is not None else None,
        currency,
    )


@pytest.mark.parametrize(
    ("mark", "code"),
    [
        ("€", "EUR"),
        ("EUR", "EUR"),
        ("eur", "EUR"),
        ("£", "GBP"),
        ("$", "USD"),
        ("US$", "USD"),
        ("zł", "PLN"),
        ("CHF", "CHF"),
        ("Fr.", "CHF"),
        ("Kč", "CZK"),
        ("руб.", "RUB"),
        ("kr", None),  # Swedish, Norwegian, Danish or Icelandic: no safe guess
        ("Price", None),
        ("", None),
        (None, None),
    ],
)
def test_currency_code(mark: str | None, code: str | None) -> None:
    """Symbols, names and codes map to ISO 4217; ambiguous or unknown marks to None."""
    assert currency_code(mark) == code


@pytest.mark.parametrize(
    ("value", "amount"),
    [
        (12.99, "12.99"),
        (109.0, "109.0"),
        (1149, "1149"),
        ("12.99", "12.99"),
        ("129.900", "129.9"),  # schema.org prices use a decimal point, always
        ("12,99", "12.99"),
        ("1.234,56", "1234.56"),
        ("0", None),
        (0, None),
        (-5, None),
        (True, None),
        ("NaN", None),
        (float("inf"), None),
        (10**12, None),
        ({"a": 1}, None),
        (None, None),
    ],
)
def test_structured_price_values(value: object, amount: str | None) -> None:
    """JSON-LD `price` as number or string gives a plausible Decimal, or None."""
    assert decimal_of(value) == (Decimal(amount) if amount is not None else None)
