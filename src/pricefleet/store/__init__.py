"""Where pricefleet keeps what it knows: sites, products, change-only price history, matches.

`Store.from_url("sqlite:///…" | "postgresql://…")` picks the backend; both pass one conformance
suite (`tests/store/`). Tables, SQL and migrations stay inside this package.
"""

from __future__ import annotations

from pricefleet.store.base import Store
from pricefleet.store.keys import parse_key, verify_key
from pricefleet.store.records import (
    ApiKey,
    AuditEntry,
    Direction,
    FetchState,
    IngestResult,
    Move,
    Page,
    ProductFilter,
    SearchHit,
    Sighting,
    SortKey,
)
from pricefleet.store.sql import PRODUCT_FIELDS

__all__ = [
    "PRODUCT_FIELDS",
    "ApiKey",
    "AuditEntry",
    "Direction",
    "FetchState",
    "IngestResult",
    "Move",
    "Page",
    "ProductFilter",
    "SearchHit",
    "Sighting",
    "SortKey",
    "Store",
    "parse_key",
    "verify_key",
]
