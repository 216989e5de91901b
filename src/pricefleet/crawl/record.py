"""From what a page says to what the store keeps: an `Extracted` product becomes a `Sighting`."""

from __future__ import annotations

import re
from datetime import datetime

from pricefleet.errors import ExtractError
from pricefleet.extract import Extracted
from pricefleet.models import PriceObservation, Product
from pricefleet.store.records import Sighting, url_hash

__all__ = ["product_id", "sighting"]


def product_id(extracted: Extracted, page_url: str, id_pattern: str | None) -> str:
    """The shop's id of a product: the recipe's pattern on the URL, else the SKU, else a hash
    of the canonical URL (stable across crawls as long as the URL is)."""
    if id_pattern:
        match = re.search(id_pattern, page_url) or re.search(id_pattern, extracted.url)
        if match:
            return match.group(1)
    if extracted.sku:
        return extracted.sku
    return url_hash(extracted.url)[:20]


def sighting(site_id: str, pid: str, extracted: Extracted, seen_at: datetime) -> Sighting:
    """The store record of one product seen at `seen_at`."""
    if extracted.price is None or extracted.currency is None:
        raise ExtractError(f"{extracted.url}: a product without price or currency cannot be stored")
    product = Product(
        site_id=site_id,
        id=pid,
        url=extracted.url,
        name=extracted.name or pid,
        brand=extracted.brand,
        gtin=extracted.gtin,
        sku=extracted.sku,
        category_id=extracted.category[-1] if extracted.category else None,
        size_value=extracted.size_value,
        size_unit=extracted.size_unit,
        image_url=extracted.image_url,
        raw=extracted.raw,
    )
    observation = PriceObservation(
        site_id=site_id,
        product_id=pid,
        observed_at=seen_at,
        price=extracted.price,
        currency=extracted.currency,
        availability=extracted.availability,
        unit_price=extracted.unit_price,
        unit=extracted.unit,
        regular_price=extracted.regular_price,
        is_discounted=extracted.is_discounted,
        shop_unit_price=extracted.shop_unit_price,
        shop_unit=extracted.shop_unit,
    )
    return Sighting(product, observation)
