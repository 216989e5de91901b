"""The API's response and request bodies (pydantic): what `/docs` shows and what clients get.

Money is a decimal *string* ("1.19"), never a float, so no client ever sees 1.1899999; times
are ISO 8601 UTC. A product read with `fields=` carries only those fields (and its identity),
so every product field but `site_id` and `id` is optional here.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, PlainSerializer

__all__ = [
    "CompareOut",
    "CrawlIn",
    "CrawlOut",
    "DeadJobOut",
    "HistoryOut",
    "HistoryRow",
    "MoveOut",
    "OfferOut",
    "ProblemOut",
    "ProductOut",
    "ProductPage",
    "QueueOut",
    "QueuesOut",
    "ReadyOut",
    "SearchHitOut",
    "SearchOut",
    "SiteOut",
    "SitesOut",
    "TrendingOut",
]


_CENTS = Decimal("0.01")


def money_text(amount: Decimal) -> str:
    """A money amount as text: at least two decimals, more only when they carry a digit
    (`1.1900` → "1.19", `2.5` → "2.50", `0.9475` → "0.9475")."""
    normal = amount.normalize()
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        normal = normal.quantize(_CENTS)
    return f"{normal:f}"


#: Money in JSON: a decimal string, never a float.
Money = Annotated[Decimal, PlainSerializer(money_text, return_type=str, when_used="json")]


class ProblemOut(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, str]] | None = Field(
        None, description="For invalid requests: each offending field and what was wrong."
    )


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, ser_json_timedelta="float")


class ProductOut(_Out):
    """One product of one shop with its current price state."""

    site_id: str
    id: str
    url: str | None = None
    name: str | None = None
    brand: str | None = None
    gtin: str | None = None
    sku: str | None = None
    category_id: str | None = None
    size_value: Decimal | None = None
    size_unit: str | None = None
    image_url: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    raw: Any = None
    price: Money | None = None
    currency: str | None = None
    regular_price: Money | None = None
    is_discounted: bool | None = None
    unit_price: Money | None = Field(None, description="Our normalised price per `unit`.")
    unit: str | None = Field(None, description="kg, l or unit.")
    availability: str | None = None
    shop_unit_price: Money | None = Field(None, description="The shop's own stated unit price.")
    shop_unit: str | None = None
    price_changed_at: datetime | None = None
    group_id: str | None = Field(None, description="Cross-shop match group, when matched.")


class ProductPage(_Out):
    """A page of products; pass `next_cursor` as `cursor` for the next one."""

    items: list[ProductOut]
    next_cursor: str | None


class HistoryRow(_Out):
    """A price state: in force from `observed_at`, last confirmed at `last_seen`."""

    observed_at: datetime
    last_seen: datetime
    price: Money
    currency: str
    regular_price: Money | None = None
    is_discounted: bool
    unit_price: Money | None = None
    unit: str | None = None
    availability: str
    shop_unit_price: Money | None = None
    shop_unit: str | None = None


class HistoryOut(_Out):
    """A product's change-only price history, oldest first."""

    site_id: str
    product_id: str
    items: list[HistoryRow]


class SearchHitOut(_Out):
    """A product matching a search, with its relevance (higher is better)."""

    score: float
    product: ProductOut


class SearchOut(_Out):
    """Search results, most relevant first."""

    q: str
    items: list[SearchHitOut]


class OfferOut(ProductOut):
    """A product's offer in a comparison, with how long ago it was last seen."""

    age_seconds: float


class CompareOut(_Out):
    """The offers of one product across shops, cheapest per kg, litre or item first."""

    items: list[OfferOut]


class MoveOut(_Out):
    """A product's relative price move over the window (-0.25 is a 25 % drop)."""

    site_id: str
    product_id: str
    name: str
    old_price: Money
    new_price: Money
    change: float
    since: datetime


class TrendingOut(_Out):
    """The biggest price moves over `days`."""

    days: int
    direction: Literal["drops", "rises"]
    items: list[MoveOut]


class QueueOut(_Out):
    """One site's job queue."""

    site_id: str
    depth: int = Field(description="Queued, delayed and leased jobs.")
    queued: int
    delayed: int
    leased: int
    dead: int
    oldest_age_seconds: float
    paused: bool
    hold_seconds: float
    enqueued_total: int
    acked_total: int
    failed_total: int


class DeadJobOut(_Out):
    """A job given up on after its retries, with the error of its last attempt."""

    site_id: str
    url: str
    attempts: int
    error: str


class QueuesOut(_Out):
    """The job queue of every site that has one."""

    items: list[QueueOut]
    recent_dead: list[DeadJobOut] = Field(
        default_factory=list,
        description="Each site's newest dead jobs (a few per site), with their last error.",
    )
    workers: int | None = Field(
        None,
        description="Crawl worker processes alive, counted through the metrics folder that "
        "`pricefleet run` shares with its workers; null where this API cannot see them "
        "(the cluster profile, or no shared folder): sum `active_workers` in Prometheus.",
    )


class SiteOut(_Out):
    """A shop: its products, how fresh they are, and its crawl queue."""

    id: str
    name: str
    base_url: str
    region: str | None
    products: int
    stale_products: int = Field(description="Products not seen within the freshness window.")
    fresh_ratio: float | None = Field(description="Share of products seen within the window.")
    last_seen: datetime | None
    queue: QueueOut | None


class SitesOut(_Out):
    """Every registered shop."""

    freshness_seconds: int
    items: list[SiteOut]


class CrawlIn(BaseModel):
    """A crawl to start: a whole site, or a list of its product URLs."""

    model_config = ConfigDict(extra="forbid")

    site_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    urls: list[HttpUrl] | None = Field(
        None, max_length=1000, description="Product pages to refresh; omit to crawl the site."
    )
    priority: int = Field(0, ge=-100, le=100, strict=True, description="Higher runs first.")


class CrawlOut(_Out):
    """A crawl and its progress."""

    id: str
    site_id: str
    status: Literal["queued", "running", "done"] = Field(
        description="queued: no job finished yet; running: some did; done: none left."
    )
    jobs_enqueued: int = Field(description="Jobs of this crawl, discovered pages included.")
    jobs_done: int
    jobs_dead: int = Field(description="Jobs given up on after their retries.")
    jobs_pending: int
    queue: QueueOut | None = Field(description="The site's whole queue, this crawl's and others'.")


class ReadyOut(_Out):
    """Whether each dependency answers."""

    status: Literal["ok", "degraded"]
    checks: dict[str, str]
