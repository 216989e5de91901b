"""Price strings to amounts: `1.234,56 €` → (Decimal('1234.56'), 'EUR').

Owns turning a price as a shop writes it into a `Decimal` and an ISO currency, on top of
price-parser (`Price.fromstring`). Machine-readable values (`12.99`, `12`) skip price-parser,
since structured data is the hot path. Finding the price on a page is not this module's job.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from price_parser import Price

from pricefleet.extract.currency import ISO_CODES, currency_code

__all__ = ["MAX_PRICE", "decimal_of", "parse_price", "plausible"]

#: Amounts at or above this are not shop prices (and would overflow Decimal's context later).
MAX_PRICE = Decimal(10) ** 9
_MAX_TEXT = 200  # price strings are short; longer text is a sentence we only skim the start of

_PLAIN = re.compile(r"\d{1,12}(?:\.\d{1,12})?")
# In free text a point before exactly three digits groups thousands (`129.900`), so only
# these forms are unambiguous enough to skip price-parser.
_PLAIN_TEXT = re.compile(r"\d{1,12}(?:\.\d{1,2})?")
# `12,99` with exactly one comma and 1-2 decimals: the European decimal comma.
_COMMA_DECIMAL = re.compile(r"\d{1,12},\d{1,2}")
_SPACES = re.compile(r"\s+")
_NUMBER = r"\.?\d[\d\s.,']*"
_RANGE = re.compile(r"\d\s*(?:-|–|to|bis|a|hasta|à)\s*\D{0,4}\d", re.IGNORECASE)
_TOKENS = re.compile(r"[^\s\d,;:()+*=!?|\-]+")


def plausible(amount: Decimal | None) -> Decimal | None:
    """The amount if it can be a shop price (finite, above zero, below `MAX_PRICE`), else None."""
    if amount is None or not amount.is_finite() or not 0 < amount < MAX_PRICE:
        return None
    return amount


def decimal_of(value: object) -> Decimal | None:
    """A plausible price from structured data: a JSON number or a numeric string (`"12,99"`)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return plausible(Decimal(value))
    if isinstance(value, float):
        try:
            return plausible(Decimal(repr(value)))
        except InvalidOperation:
            return None
    if isinstance(value, str):
        text = value.strip()
        if _PLAIN.fullmatch(text):
            return plausible(Decimal(text))
        if _COMMA_DECIMAL.fullmatch(text):
            return plausible(Decimal(text.replace(",", ".")))
        return plausible(parse_price(text)[0]) if text else None
    return None


def _currency_near(text: str, symbol: str, number: str) -> str | None:
    """The first number written right next to `symbol`, if it is not `number` already:
    price-parser takes the first number of `3 Ausgaben für nur 14,85 EUR`."""
    escaped = re.escape(symbol)
    pattern = rf"{escaped}\s*({_NUMBER})|({_NUMBER})\s*{escaped}"
    match = re.search(pattern, text)
    if match is None:
        return None
    near = (match[1] or match[2]).strip().rstrip(".,")
    if not near or near in number or _RANGE.search(text):
        return None  # `35€ 99` (the euro as decimal sign), `From 26 to 50 €` (a range)
    return near


def _currency_word(text: str) -> str | None:
    """A currency named by a word price-parser does not know (`yuan`, `stg`, `лв`), skipping
    short Latin tokens (`ft`, `L`) that are more often units than money."""
    for token in _TOKENS.findall(text):
        if token.strip(".").upper() in ISO_CODES:
            continue  # price-parser knows the codes; `Ph. Eur.` is a pharmacopoeia
        if len(token) >= 3 or not token.isascii():
            code = currency_code(token)
            if code is not None:
                return code
    return None


def parse_price(
    text: str, *, currency_hint: str | None = None, decimal_separator: str | None = None
) -> tuple[Decimal | None, str | None]:
    """The amount and ISO 4217 currency of a price as written (`1.234,56 €`, `£34.99`, `CHF 2.25`).

    `currency_hint` is text near the price that may name the currency (an ISO code, a symbol);
    a currency inside `text` wins over it. `decimal_separator` (`.` or `,`) settles `1.000`-style
    ambiguity when the shop's convention is known. Either element is None when absent.
    """
    hint = currency_hint[:_MAX_TEXT] if currency_hint else None
    if not text:
        return None, currency_code(hint)
    text = text[:_MAX_TEXT]
    stripped = text.strip()
    hinted = currency_code(hint)
    if (
        (hint is None or hinted)
        and decimal_separator in (None, ".")
        and (_PLAIN_TEXT.fullmatch(stripped))
    ):
        return Decimal(stripped), hinted
    text = _SPACES.sub(" ", text)
    price = Price.fromstring(text, currency_hint=hint, decimal_separator=decimal_separator)
    amount = price.amount
    if price.currency and price.amount_text:
        near = _currency_near(text, price.currency, price.amount_text)
        if near is not None:
            amount = Price.fromstring(near, decimal_separator=decimal_separator).amount
    currency = currency_code(price.currency)
    if currency is None:
        currency = hinted
    if currency is None and amount is not None:
        currency = _currency_word(text) or (_currency_word(hint) if hint else None)
    if amount is not None and not amount.is_finite():
        amount = None
    return amount, currency
