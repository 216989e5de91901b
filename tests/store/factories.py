"""Building sightings for store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pricefleet.models import Availability, PriceObservation, Product, Site, SizeUnit
from pricefleet.store.records import Sighting

__all__ = ["SITES", "T0", "at", "sighting"]

T0 = datetime(2026, 6, 1, tzinfo=UTC)
SITES = [Site("shop-a", "Shop A", "http://a.test"), Site("shop-b", "Shop B", "http://b.test")]


def at(minutes: float) -> datetime:
    """T0 plus some minutes."""
    return T0 + timedelta(minutes=minutes)


def sighting(
    product_id: str,
    price: str,
    when: datetime,
    *,
    site_id: str = "shop-a",
    name: str | None = None,
    brand: str | None = "Campo Real",
    gtin: str | None = None,
    size: str = "1",
    unit: SizeUnit = SizeUnit.L,
    regular: str | None = None,
    available: bool = True,
    category: str | None = "leche",
) -> Sighting:
    """A product seen at `when` selling at `price` (per `size` `unit`)."""
    amount = Decimal(price)
    product = Product(
        site_id=site_id,
        id=product_id,
        url=f"http://{site_id}.test/p/{product_id}",
        name=name or f"Producto {product_id}",
        brand=brand,
        gtin=gtin,
        category_id=category,
        size_value=Decimal(size),
        size_unit=unit,
        raw={"price": price},
    )
    observation = PriceObservation(
        site_id=site_id,
        product_id=product_id,
        observed_at=when,
        price=amount,
        currency="EUR",
        availability=Availability.IN_STOCK if available else Availability.OUT_OF_STOCK,
        unit_price=(amount / Decimal(size)).quantize(Decimal("0.0001")),
        unit=unit,
        regular_price=Decimal(regular) if regular else None,
        is_discounted=regular is not None,
    )
    return Sighting(product, observation)
