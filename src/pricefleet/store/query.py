"""Pure helpers of store queries: search words and list cursors. No SQL, no I/O."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from pricefleet.errors import InvalidQuery
from pricefleet.store.records import SortKey

__all__ = [
    "NULL_LAST",
    "SEARCH_CANDIDATES",
    "decode_cursor",
    "encode_cursor",
    "offer_order",
    "search_words",
    "sort_value",
]

#: Sorts on nullable columns put products without a value last, through this stand-in.
NULL_LAST = Decimal("99999999")
#: At most this many matches of a search are ranked, in the order the search index yields
#: them; up to that many the ranking is exact. A common word (`leche`: 58,000 of 1,000,000
#: products) would otherwise have every match read and ranked on every query.
SEARCH_CANDIDATES = 5_000


def search_words(q: str) -> list[str]:
    """The searchable words of a query, without accents, lower-case: `Jamón 5J` → jamon, 5j."""
    ascii_text = unicodedata.normalize("NFKD", q).encode("ascii", "ignore").decode().lower()
    return re.findall(r"[a-z0-9]+", ascii_text)[:12]


def offer_order(offer: dict[str, Any]) -> tuple[Any, ...]:
    """How `compare` orders offers: by unit (kg, l, unit), then cheapest per unit, offers
    without a unit price last, then by price and identity (stable across shards)."""
    return (
        offer["unit"] or "~",
        offer["unit_price"] is None,
        offer["unit_price"] or 0,
        offer["price"],
        offer["site_id"],
        offer["id"],
    )


def sort_value(item: dict[str, Any], sort: SortKey) -> Any:
    """The value a list is ordered by, for one item (None prices sort last)."""
    value = item[sort.value]
    if value is None and sort in (SortKey.PRICE, SortKey.UNIT_PRICE):
        return NULL_LAST
    return value


def encode_cursor(sort: SortKey, descending: bool, key: Any, site_id: str, product_id: str) -> str:
    """An opaque cursor pointing just after the item with this sort key and identity."""
    if isinstance(key, datetime):
        key = key.isoformat()
    elif isinstance(key, Decimal):
        key = str(key)
    data = orjson.dumps([sort.value, descending, key, site_id, product_id])
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(cursor: str, sort: SortKey, descending: bool) -> tuple[Any, str, str]:
    """The (sort key, site_id, product_id) a cursor points after; InvalidQuery if it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, desc, key, site_id, product_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidQuery(f"cursor {cursor[:40]!r} is not one this API gave out") from exc
    if kind != sort.value or desc != descending:
        raise InvalidQuery("the cursor belongs to a list with another sort order")
    try:
        if sort is SortKey.LAST_SEEN:
            key = datetime.fromisoformat(key)
        elif sort in (SortKey.PRICE, SortKey.UNIT_PRICE):
            key = Decimal(key)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise InvalidQuery(f"cursor {cursor[:40]!r} is damaged") from exc
    return key, str(site_id), str(product_id)
