"""Domain records shared by every layer: what a product, an offer, an observation and a job are.

Plain frozen dataclasses and enums, no ORM: tables live in `pricefleet.store` and map to these.
Money is `Decimal` (never float); times are timezone-aware UTC `datetime`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

__all__ = [
    "Availability",
    "Job",
    "JobKind",
    "JobState",
    "Offer",
    "PriceObservation",
    "Product",
    "Site",
    "SizeUnit",
]


class Availability(StrEnum):
    """Whether a shop can sell a product now (schema.org ItemAvailability, simplified)."""

    IN_STOCK = "in_stock"
    OUT_OF_STOCK = "out_of_stock"
    PREORDER = "preorder"
    DISCONTINUED = "discontinued"
    UNKNOWN = "unknown"


class SizeUnit(StrEnum):
    """The reference unit prices are normalised to: € per kg, per litre or per item."""

    KG = "kg"
    L = "l"
    UNIT = "unit"


class JobKind(StrEnum):
    """What a crawl job fetches (robots.txt is the fetcher's own business, not a job)."""

    SITEMAP = "sitemap"
    LISTING = "listing"
    API = "api"
    DETAIL = "detail"  # one product's own API answer
    PRODUCT = "product"


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    LEASED = "leased"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Site:
    """A shop we crawl, described by its recipe."""

    id: str
    name: str
    base_url: str
    region: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Product:
    """One product of one shop, as last seen. Identity is `(site_id, id)`."""

    site_id: str
    id: str
    url: str
    name: str
    brand: str | None = None
    gtin: str | None = None
    sku: str | None = None
    category_id: str | None = None
    size_value: Decimal | None = None
    size_unit: SizeUnit | None = None
    image_url: str | None = None
    raw: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class PriceObservation:
    """A product's price state from `observed_at` on; a new one is kept only on change."""

    site_id: str
    product_id: str
    observed_at: datetime
    price: Decimal
    currency: str
    availability: Availability = Availability.UNKNOWN
    unit_price: Decimal | None = None
    unit: SizeUnit | None = None
    regular_price: Decimal | None = None
    is_discounted: bool = False
    shop_unit_price: Decimal | None = None
    shop_unit: str | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    """A product with its current price, as compared across shops."""

    product: Product
    observation: PriceObservation
    fetched_at: datetime


@dataclass(frozen=True, slots=True)
class Job:
    """A unit of crawl work for one site, deduplicated by `key` (usually the canonical URL)."""

    site_id: str
    key: str
    kind: JobKind
    url: str
    attempts: int = 0
    state: JobState = JobState.QUEUED
    payload: dict[str, Any] = field(default_factory=dict)
