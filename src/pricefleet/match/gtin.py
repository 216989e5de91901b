"""GTIN validation: the GS1 check digit decides whether a code can identify a product across shops.

Shops print EAN-8, UPC-A (12), EAN-13 and GTIN-14, sometimes with spaces or lost leading zeros.
All are compared as GTIN-14 (left-padded with zeros).
"""

from __future__ import annotations

__all__ = ["gtin_group", "normalize_gtin"]

_LENGTHS = frozenset({8, 12, 13, 14})


def _check_digit(body: str) -> int:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def normalize_gtin(raw: str | int | None) -> str | None:
    """The GTIN-14 form of a code, or None when it is not a valid GTIN (bad length or check)."""
    if raw is None:
        return None
    digits = "".join(ch for ch in str(raw) if not ch.isspace() and ch != "-")
    if not digits.isdigit() or len(digits) not in _LENGTHS:
        return None
    if int(digits) == 0 or _check_digit(digits[:-1]) != int(digits[-1]):
        return None
    return digits.zfill(14)


def gtin_group(gtin14: str) -> str:
    """The match group id of every product carrying this (normalised) GTIN."""
    return f"gtin:{gtin14}"
