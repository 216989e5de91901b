"""Structured-data extraction: one fetched product page to one normalised product record.

`extract_product` reads JSON-LD, microdata and OpenGraph from a single lexbor parse (extruct
only as a fallback) and normalises price, currency, availability, GTIN, size and unit price.
`parse_price`, `parse_size`, `unit_price` and `availability_of` are the normalisers it uses,
public for site recipes and shop APIs that read the same values from elsewhere.
"""

from __future__ import annotations

from pricefleet.extract.availability import availability_of
from pricefleet.extract.page import extract_product
from pricefleet.extract.prices import parse_price
from pricefleet.extract.record import Extracted, PageError
from pricefleet.extract.units import Size, parse_size, unit_price

__all__ = [
    "Extracted",
    "PageError",
    "Size",
    "availability_of",
    "extract_product",
    "parse_price",
    "parse_size",
    "unit_price",
]
