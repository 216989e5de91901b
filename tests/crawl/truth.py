"""Checking a crawl's store against the demo shops' truth (shared by crawl and worker tests)."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from pricefleet.match import normalize_gtin
from pricefleet.sites import Recipe, load_recipes
from pricefleet.store import Store
from tests.demo.helpers import shops_like, truth_of
from tests.servers import DemoServer

RECIPES = Path(__file__).parents[2] / "recipes"


def recipes_for(server: DemoServer, names: tuple[str, ...]) -> list[Recipe]:
    """The shipped demo recipes, pointed at `server`."""
    previous = os.environ.get("PRICEFLEET_DEMO_URL")
    os.environ["PRICEFLEET_DEMO_URL"] = server.url
    try:
        recipes = load_recipes(RECIPES)
    finally:
        if previous is None:
            del os.environ["PRICEFLEET_DEMO_URL"]
        else:
            os.environ["PRICEFLEET_DEMO_URL"] = previous
    return [recipes[f"demo-{name}"] for name in names]


async def assert_matches_truth(
    store: Store, server: DemoServer, shop: str, products: int, seed: int, day: int
) -> int:
    """Every truth product of `shop` is stored with the same price, currency, unit price, GTIN
    and availability; returns how many products were checked."""
    truth = truth_of(shops_like(products, seed)[shop], day, server.url)
    site_id = f"demo-{shop}"
    missing, wrong = [], []
    for t in truth:
        product = await store.get_product(site_id, t["id"])
        if product is None:
            missing.append(t["id"])
            continue
        problems = _differences(product, t)
        if problems:
            wrong.append((t["id"], problems))
    assert not missing, f"{shop}: {len(missing)} of {len(truth)} missing, e.g. {missing[:5]}"
    assert not wrong, f"{shop}: {len(wrong)} differ, e.g. {wrong[:3]}"
    return len(truth)


def _differences(product: dict[str, Any], t: dict[str, Any]) -> list[str]:
    problems = []
    if product["price"] != Decimal(t["price"]):
        problems.append(f"price {product['price']} != {t['price']}")
    if product["currency"] != t["currency"]:
        problems.append(f"currency {product['currency']} != {t['currency']}")
    if product["gtin"] != normalize_gtin(t["gtin"]):
        problems.append(f"gtin {product['gtin']} != {t['gtin']}")
    if product["availability"] != t["availability"]:
        problems.append(f"availability {product['availability']} != {t['availability']}")
    if product["is_discounted"] != t["is_discounted"]:
        problems.append(f"discounted {product['is_discounted']} != {t['is_discounted']}")
    if t["is_discounted"] and product["regular_price"] != Decimal(t["regular_price"]):
        problems.append(f"regular {product['regular_price']} != {t['regular_price']}")
    unit = product["unit_price"]
    if unit is None or abs(unit - Decimal(t["unit_price"])) > Decimal("0.0051"):
        problems.append(f"unit price {unit} != {t['unit_price']}")
    if product["unit"] != t["unit"]:
        problems.append(f"unit {product['unit']} != {t['unit']}")
    return problems
