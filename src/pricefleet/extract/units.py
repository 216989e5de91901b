"""Pack sizes and unit prices: `pack 6 x 1 L` → 6 l in a pack of 6; € 6.54 for it → € 1.09 / l.

Owns reading a size out of a size string or a product name (Spanish and English shop styles:
`250 g`, `33 cl`, `1,5 L`, `6x1l`, `(6 x 1000 ml)`, `6 briks de 1 l`, `12 uds`, `docena`,
`1 litro`, `250 gramos`) and the price-per-unit arithmetic. Sizes are normalised to the three
`SizeUnit`s: kilograms, litres, items.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from pricefleet.models import SizeUnit

__all__ = ["Size", "parse_size", "unit_price"]

_KG, _L, _UNIT = SizeUnit.KG, SizeUnit.L, SizeUnit.UNIT
_MILLI, _CENTI, _DECI, _ONE = Decimal("0.001"), Decimal("0.01"), Decimal("0.1"), Decimal(1)
_PLACES = Decimal("0.0001")
_MAX_TEXT = 1000  # names, not pages


@dataclass(frozen=True, slots=True)
class Size:
    """A product's total quantity: `value` in `unit`, sold as `pack` items (6 x 1 l → 6 l, 6)."""

    value: Decimal
    unit: SizeUnit
    pack: int = 1


_UNITS: dict[str, tuple[SizeUnit, Decimal]] = {}
for _words, _meaning in (
    ("kg kgs kilo kilos kilogramo kilogramos kilogram kilograms kilogramm", (_KG, _ONE)),
    ("g gr grs grm gramo gramos gram grams gramm", (_KG, _MILLI)),
    ("l lt lts ltr ltrs litro litros litre litres liter liters", (_L, _ONE)),
    ("ml mililitro mililitros millilitre millilitres milliliter milliliters", (_L, _MILLI)),
    ("cl centilitro centilitros centilitre centilitres", (_L, _CENTI)),
    ("dl decilitro decilitros", (_L, _DECI)),
    ("u ud uds unidad unidades unit units pc pcs pieza piezas stk stück", (_UNIT, _ONE)),
):
    for _word in _words.split():
        _UNITS[_word] = _meaning

_UNIT_RE = "|".join(sorted(_UNITS, key=len, reverse=True))
# An optional multipack count (`6 x`, `6x`, `6 briks de`), an amount, a unit not followed by a
# letter or digit. The look-behind keeps `A4 1l` and `1.5` from matching mid-token.
_SIZE = re.compile(
    r"(?<![\w.,])"
    r"(?:(?P<count>\d{1,3})\s*(?:[x×*]|\s[^\W\d_]+\s+de)\s*)?"
    r"(?P<number>\d{1,6}(?:[.,]\d{1,3})?)\s*"
    rf"(?P<unit>{_UNIT_RE})(?![^\W_])",
    re.IGNORECASE,
)
_DOZEN = re.compile(r"\b(?P<half>media\s+)?docena\b", re.IGNORECASE)


def _tidy(value: Decimal) -> Decimal:
    """`0.250` → `0.25`, `6.0` → `6`, without the exponent `normalize()` gives `100`."""
    if value == value.to_integral_value():
        return value.quantize(_ONE)
    return value.normalize()


def _amount(number: str, factor: Decimal) -> Decimal:
    whole, sep, fraction = number.replace(",", ".").partition(".")
    if sep and len(fraction) == 3 and factor < _ONE and number[len(whole)] == ".":
        # `1.000 g`, `1.500 ml`: a thousands point, since nobody weighs in thousandths of a gram.
        return Decimal(whole + fraction)
    return Decimal(number.replace(",", "."))


def parse_size(text: str) -> Size | None:
    """The size a size string or product name states; the last one when it states several.

    `250 g` → 0.25 kg; `33 cl` → 0.33 l; `6 x 1 l`, `6x1l`, `6 briks de 1 l` → 6 l in a pack
    of 6; `12 uds`, `docena` → 12 items; `2 kg aprox.` → 2 kg. None when it states none.
    """
    if not text:
        return None
    text = text[:_MAX_TEXT]
    found: Size | None = None
    end = -1
    for match in _SIZE.finditer(text):
        unit, factor = _UNITS[match["unit"].lower()]
        amount = _amount(match["number"], factor)
        if amount <= 0:
            continue
        count = int(match["count"]) if match["count"] else 1
        if count < 1:
            continue
        found = Size(_tidy(amount * factor * count), unit, count)
        end = match.end()
    dozen = None
    for dozen in _DOZEN.finditer(text):  # noqa: B007 - the last one is wanted
        pass
    if dozen is not None and dozen.start() >= end:
        count = 6 if dozen["half"] else 12
        return Size(Decimal(count), _UNIT, 1)
    return found


def unit_price(price: Decimal, size: Size) -> tuple[Decimal, SizeUnit]:
    """Price per kg, litre or item of the whole pack, rounded half-up to 4 decimals."""
    return (price / size.value).quantize(_PLACES, rounding=ROUND_HALF_UP), size.unit
