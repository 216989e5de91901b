"""Cross-shop product identity: GTIN first; name, brand and size matching comes later."""

from __future__ import annotations

from pricefleet.match.gtin import gtin_group, normalize_gtin

__all__ = ["gtin_group", "normalize_gtin"]
