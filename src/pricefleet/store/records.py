"""What the store takes and gives besides domain records: sightings, pages, search hits, moves,
API keys and audit entries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pricefleet.models import PriceObservation, Product

__all__ = [
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
    "SiteSummary",
    "SortKey",
]


@dataclass(frozen=True, slots=True)
class Sighting:
    """A product as a crawl saw it, with its price state at `observation.observed_at`."""

    product: Product
    observation: PriceObservation


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one `ingest` call changed."""

    products: int  # products inserted or updated
    observations_inserted: int
    observations_deleted: int
    observations_updated: int
    price_changes: list[tuple[str, str]] = field(default_factory=list)  # (site_id, product_id)


class SortKey(StrEnum):
    """Orders a product list can come in."""

    NAME = "name"
    PRICE = "price"
    UNIT_PRICE = "unit_price"
    LAST_SEEN = "last_seen"


class Direction(StrEnum):
    """Which price moves `trending` returns."""

    DROPS = "drops"
    RISES = "rises"


@dataclass(frozen=True, slots=True)
class ProductFilter:
    """Filters of `list_products`; None means no filter."""

    site_id: str | None = None
    category_id: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    discounted: bool | None = None
    gtin: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: the items (dicts of the selected fields) and the cursor of the next."""

    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A product matching a search, with its relevance (higher is better)."""

    item: dict[str, Any]
    score: float


@dataclass(frozen=True, slots=True)
class Move:
    """A product's price move over a window: from `old_price` then to `new_price` now."""

    site_id: str
    product_id: str
    name: str
    old_price: Decimal
    new_price: Decimal
    change: float  # relative: -0.25 is a 25 % drop
    since: datetime


@dataclass(frozen=True, slots=True)
class SiteSummary:
    """A shop as the store knows it: how many products, how fresh."""

    site_id: str
    name: str
    base_url: str
    region: str | None
    products: int
    stale: int  # products last seen before the freshness cut-off asked for
    last_seen: datetime | None  # the newest sighting of any of its products


@dataclass(frozen=True, slots=True)
class FetchState:
    """What the last fetch of a URL left: validators for a conditional request, a body hash."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    fetched_at: datetime | None = None
    status: int | None = None
    product_id: str | None = None  # the product the page showed, to confirm it on a 304

    @property
    def url_hash(self) -> str:
        """The key of the URL in `fetch_state` (blake2b-128 of the URL)."""
        return url_hash(self.url)


def url_hash(url: str) -> str:
    """The 32-hex-digit key a URL is stored under."""
    return hashlib.blake2b(url.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: never the key itself, only a hash of its secret part."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    #: sha256 of the secret (see `pricefleet.store.keys`); kept out of reprs and listings.
    secret_hash: str = field(default="", repr=False)

    @property
    def active(self) -> bool:
        """Whether the key may still be used (not revoked)."""
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log: who (`actor`: a key id, `cli` or `anonymous`) did what."""

    actor: str
    action: str
    target: str | None = None
    detail: dict[str, Any] | None = None
    ip: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: int | None = None  # given by the store
