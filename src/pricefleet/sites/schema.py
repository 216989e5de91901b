"""The site recipe: everything pricefleet needs to know to crawl one shop, validated.

A recipe is the only place a shop is named. Unknown keys are errors (a typo must not silently
turn a setting off); every error names the field.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ApiDiscovery",
    "ApiFollow",
    "Discovery",
    "Extraction",
    "FetchOptions",
    "LinkDiscovery",
    "Politeness",
    "Recipe",
    "Schedule",
    "SitemapDiscovery",
]

FIELD_NAMES = (
    "id",
    "url",
    "name",
    "brand",
    "gtin",
    "sku",
    "price",
    "currency",
    "regular_price",
    "availability",
    "image",
    "size",
    "unit_price",
    "unit",
    "category",
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
    return value


class Politeness(_Strict):
    """How hard the shop may be hit, cluster-wide."""

    requests_per_second: Annotated[float, Field(gt=0, le=10_000)] = 2.0
    burst: Annotated[int, Field(ge=1, le=100)] = 1
    max_concurrency: Annotated[int, Field(ge=1, le=256)] = 4


class FetchOptions(_Strict):
    """How pages are fetched."""

    mode: Literal["http", "impersonate", "browser"] = "http"
    proxies: list[str] = []
    headers: dict[str, str] = {}
    user_agents: list[str] = []
    timeout: Annotated[float, Field(gt=0, le=300)] = 20.0
    retries: Annotated[int, Field(ge=0, le=20)] = 4
    obey_robots: bool = True
    #: The SSRF guard refuses private addresses; only a shop you run yourself sets this.
    allow_private_network: bool = False
    #: Browser mode: a CSS selector that shows the page has rendered.
    wait_for: str | None = None
    #: Where robots.txt is, when not at the root of the host (a shop under a path).
    robots_url: str | None = None

    @field_validator("proxies")
    @classmethod
    def _proxy_urls(cls, value: list[str]) -> list[str]:
        for proxy in value:
            if not re.match(r"^https?://[^/\s]+$", proxy):
                raise ValueError(f"proxy {proxy!r}: expected http://host:port")
        return value


class SitemapDiscovery(_Strict):
    """Product URLs from the sitemaps (robots.txt `Sitemap:` lines, or these URLs)."""

    urls: list[str] = []
    #: Which sitemap URLs are product pages (others are followed as listing pages: no).
    product_url: str

    @field_validator("product_url")
    @classmethod
    def _product_url(cls, value: str) -> str | None:
        return _regex(value)


class LinkDiscovery(_Strict):
    """Product URLs by following category links and pagination from the start URLs."""

    categories: str  # CSS selector of category links
    products: str  # CSS selector of product links
    next: str = "link[rel=next], a[rel=next]"


class ApiFollow(_Strict):
    """From a JSON answer, more API URLs to fetch: `url` with `{value}` for each `select` result."""

    select: str  # JMESPath giving ids or URLs
    url: str = "{value}"


class ApiDiscovery(_Strict):
    """Products from a JSON API: start URLs, answers linking to more, items in answers."""

    start: list[str]
    follow: list[ApiFollow] = []
    next: str | None = None  # JMESPath of the next page's URL
    items: str  # JMESPath of the product objects in an answer
    #: When listings lack fields (a GTIN, say): each item's detail answer, `{id}` filled in.
    detail: str | None = None


class Discovery(_Strict):
    """Where product URLs come from; at least one way."""

    sitemap: SitemapDiscovery | None = None
    links: LinkDiscovery | None = None
    api: ApiDiscovery | None = None

    @model_validator(mode="after")
    def _some(self) -> Discovery:
        if self.sitemap is None and self.links is None and self.api is None:
            raise ValueError("give at least one of sitemap, links or api")
        return self


class Extraction(_Strict):
    """How a product is read: structured data (`auto`), CSS selectors, or JSON paths."""

    mode: Literal["auto", "css", "json"] = "auto"
    #: Field → CSS selector (`::attr(name)` for an attribute) or JMESPath, by mode.
    fields: dict[str, str] = {}
    #: A regex whose first group is the product id, applied to the product URL.
    id_pattern: str | None = None
    currency: str = "EUR"
    decimal_separator: Literal[".", ","] | None = None

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(FIELD_NAMES))
        if unknown:
            raise ValueError(f"unknown fields {unknown}; known: {', '.join(FIELD_NAMES)}")
        return value

    @field_validator("id_pattern")
    @classmethod
    def _id_pattern(cls, value: str | None) -> str | None:
        return _regex(value)

    @model_validator(mode="after")
    def _needs_fields(self) -> Extraction:
        if self.mode != "auto":
            missing = [f for f in ("name", "price") if f not in self.fields]
            if missing:
                raise ValueError(f"mode {self.mode!r} needs fields {missing}")
        return self


class Schedule(_Strict):
    """When the site is crawled: every fixed interval (`every: 6h`, slots aligned on the
    epoch) or on a cron expression in UTC (`cron: "0 */6 * * *"`, with ranges, steps and
    lists). Not both."""

    every: str = "24h"
    cron: str | None = None

    @field_validator("every")
    @classmethod
    def _duration(cls, value: str) -> str:
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r}: expected a duration like 30m, 6h or 1d")
        if float(match.group(1)) <= 0:
            raise ValueError(f"{value!r}: the interval must be longer than zero")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronSim(value, datetime.now(UTC))
            except CronSimError as exc:
                raise ValueError(f"{value!r}: not a cron expression ({exc})") from None
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> Schedule:
        if self.cron is not None and "every" in self.model_fields_set:
            raise ValueError("give `every` or `cron`, not both")
        return self

    @property
    def seconds(self) -> float:
        """The interval in seconds (for `every`)."""
        match = _DURATION.match(self.every)
        assert match is not None
        return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]

    def latest(self, now: datetime) -> datetime:
        """The most recent scheduled instant at or before `now` (aware, UTC)."""
        now = now.astimezone(UTC)
        if self.cron is not None:
            return next(CronSim(self.cron, now + timedelta(seconds=1), reverse=True))
        step = self.seconds
        return datetime.fromtimestamp(math.floor(now.timestamp() / step) * step, UTC)

    def following(self, moment: datetime) -> datetime:
        """The first scheduled instant after `moment`."""
        moment = moment.astimezone(UTC)
        if self.cron is not None:
            return next(CronSim(self.cron, moment))
        return self.latest(moment) + timedelta(seconds=self.seconds)


class Recipe(_Strict):
    """One shop."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    name: str
    base_url: Annotated[str, Field(pattern=r"^https?://")]
    region: str | None = None
    start_urls: list[str] = []
    discovery: Discovery
    extraction: Extraction = Extraction()
    politeness: Politeness = Politeness()
    fetch: FetchOptions = FetchOptions()
    schedule: Schedule = Schedule()

    @property
    def seeds(self) -> list[str]:
        """Where a crawl starts: the start URLs, or the base URL."""
        return self.start_urls or [self.base_url]
