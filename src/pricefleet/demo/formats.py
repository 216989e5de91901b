"""How the demo shops write the same product differently: names, sizes, prices and slugs.

Each shop has its own house style ("Leche entera Campo Real 1 L" / "LECHE ENTERA CAMPO REAL brik
1l"), as real shops do: matching across shops has to see through these differences.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal

from pricefleet.demo.catalog import Size
from pricefleet.demo.universe import Item

__all__ = [
    "compact_size",
    "euro_eu",
    "euro_plain",
    "metric_size",
    "size_label",
    "slugify",
    "spelled_size",
    "unit_price",
]

_SLUG_JUNK = re.compile(r"[^a-z0-9]+")


def slugify(text: str) -> str:
    """ASCII, lower-case, hyphen-separated: `Jamón ibérico 100 g` → `jamon-iberico-100-g`."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _SLUG_JUNK.sub("-", ascii_text.lower()).strip("-")


def _num(value: Decimal | float, comma: bool = False) -> str:
    text = f"{Decimal(repr(value)) if isinstance(value, float) else value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.replace(".", ",") if comma else text


def _small(size: Size) -> tuple[Decimal, str]:
    """The size in the unit a shelf label would use: 250 g rather than 0.25 kg."""
    value = Decimal(repr(size.value))
    if size.unit == "kg":
        return (value * 1000, "g") if value < 1 else (value, "kg")
    if size.unit == "l":
        return (value * 1000, "ml") if value < 1 else (value, "L")
    return value, "ud" if value == 1 else "uds"


def size_label(item: Item) -> str:
    """`1 L`, `250 g`, `pack 6 x 1 L`, `12 uds`: the style of most shops."""
    value, unit = _small(item.size)
    label = f"{_num(value, comma=True)} {unit}"
    return f"pack {item.pack} x {label}" if item.pack > 1 else label


def compact_size(item: Item) -> str:
    """`1l`, `250g`, `6x1l`: shouted-catalogue style."""
    value, unit = _small(item.size)
    label = f"{_num(value, comma=True)}{unit.lower()}"
    return f"{item.pack}x{label}" if item.pack > 1 else label


def metric_size(item: Item) -> str:
    """`1000 ml`, `250 g`, `6 x 1000 ml`: always the small metric unit."""
    value = Decimal(repr(item.size.value))
    if item.size.unit == "kg":
        label = f"{_num(value * 1000)} g"
    elif item.size.unit == "l":
        label = f"{_num(value * 1000)} ml"
    else:
        label = f"{_num(value)} u."
    return f"{item.pack} x {label}" if item.pack > 1 else label


def spelled_size(item: Item) -> str:
    """`1 litro`, `250 gramos`, `6 x 1,5 litros`: spelled-out units."""
    value, unit = _small(item.size)
    words = {
        "g": ("gramo", "gramos"),
        "kg": ("kilo", "kilos"),
        "ml": ("mililitro", "mililitros"),
        "L": ("litro", "litros"),
        "ud": ("unidad", "unidades"),
        "uds": ("unidad", "unidades"),
    }[unit]
    label = f"{_num(value, comma=True)} {words[0] if value == 1 else words[1]}"
    return f"{item.pack} x {label}" if item.pack > 1 else label


def euro_plain(amount: Decimal) -> str:
    """`1234.56`: schema.org and API style."""
    return f"{amount:.2f}"


def euro_eu(amount: Decimal) -> str:
    """`1.234,56 €`: European shelf style."""
    whole, cents = f"{amount:.2f}".split(".")
    groups = f"{int(whole):,}".replace(",", ".")
    return f"{groups},{cents} €"


def unit_price(price: Decimal, item: Item, places: str = "0.01") -> Decimal:
    """Price per kg, litre or item of the whole pack, rounded half-up to `places`."""
    return (price / item.total_size).quantize(Decimal(places), rounding=ROUND_HALF_UP)
