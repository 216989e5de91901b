"""What extraction yields: `Extracted` (one product, normalised), `Found` (what one source on a
page states, possibly partial) and `PageError` (a page that yields no product, with a reason).

Owns the records only; reading pages is the job of the source modules and `page.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pricefleet.errors import ExtractError
from pricefleet.extract.units import Size
from pricefleet.models import Availability, SizeUnit

__all__ = ["Extracted", "Found", "PageError"]

_HINTS = {
    "empty": "the body is empty: check the fetch (status, content type, decompression)",
    "no-product": "the page states no product in JSON-LD, microdata or OpenGraph: "
    "give the site a recipe, or check that the URL is a product page",
    "no-price": "a product was found without a price: the shop may render it with "
    "JavaScript (use the browser fetcher) or hide it; a recipe can name the element",
    "malformed-jsonld": "the page's JSON-LD could not be read even leniently and nothing "
    "else on the page names a product: a recipe can read the visible page instead",
    "too-deep": "the page nests elements deeper than 512, which no real page does and which "
    "would take the parser minutes: it was refused unparsed; check what the shop serves there",
}


class PageError(ExtractError):
    """A page that yields no product. `reason` is a short code: 'empty', 'no-product',
    'no-price', 'malformed-jsonld' or 'too-deep'; `url` is the page's URL."""

    def __init__(self, reason: str, *, url: str, detail: str = "") -> None:
        hint = _HINTS.get(reason, "")
        text = (
            f"{url}: {reason}" + (f" ({detail})" if detail else "") + (f": {hint}" if hint else "")
        )
        super().__init__(text)
        self.reason = reason
        self.url = url
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments need help to cross process boundaries (worker pools pickle).
        return (_rebuild, (self.reason, self.url, self.detail))


def _rebuild(reason: str, url: str, detail: str) -> PageError:
    return PageError(reason, url=url, detail=detail)


@dataclass(frozen=True, slots=True)
class Extracted:
    """One product as a page states it, normalised."""

    url: str
    name: str | None
    brand: str | None
    sku: str | None
    gtin: str | None
    price: Decimal | None
    currency: str | None
    regular_price: Decimal | None
    is_discounted: bool
    availability: Availability
    image_url: str | None
    category: tuple[str, ...]
    size_value: Decimal | None
    size_unit: SizeUnit | None
    pack: int
    unit_price: Decimal | None
    unit: SizeUnit | None
    shop_unit_price: Decimal | None
    shop_unit: str | None
    source: str
    raw: dict[str, Any]


@dataclass(slots=True)
class Found:
    """What one source (`jsonld`, `microdata`, `opengraph`, …) states about the page's product.

    Every field may be missing; `page.py` merges several of these into one `Extracted`.
    """

    source: str
    name: str | None = None
    brand: str | None = None
    sku: str | None = None
    gtin: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    regular_price: Decimal | None = None
    availability: Availability = Availability.UNKNOWN
    image_url: str | None = None
    url: str | None = None
    category: tuple[str, ...] = ()
    size: Size | None = None
    shop_unit_price: Decimal | None = None
    shop_unit: str | None = None
    raw: Any = field(default=None)
