"""The product universe: deterministic, overlapping across shops, moving prices, valid GTINs."""

from __future__ import annotations

from collections import Counter

from pricefleet.demo import DemoConfig, create_app
from pricefleet.demo.shops.base import DemoShop
from pricefleet.demo.universe import Universe, gtin_check_digit


def _shops(products: int = 600, seed: int = 3) -> dict[str, DemoShop]:
    shops: dict[str, DemoShop] = create_app(DemoConfig(products=products, seed=seed)).state.shops
    return shops


def test_same_seed_same_products_other_seed_others() -> None:
    """A universe is a pure function of its seed."""
    a, b, c = Universe(1, 500), Universe(1, 500), Universe(2, 500)
    assert [a.item(u) for u in range(0, a.size, 37)] == [b.item(u) for u in range(0, b.size, 37)]
    names_a = [a.item(u).gtin for u in range(0, a.size, 37)]
    names_c = [c.item(u).gtin for u in range(0, c.size, 37)]
    assert names_a != names_c


def test_gtins_are_valid_ean13_and_unique() -> None:
    """Every universe GTIN is 13 digits with a correct GS1 check digit, and no two are equal."""
    universe = Universe(5, 2000)
    gtins = [universe.item(uid).gtin for uid in range(universe.size)]
    assert all(len(g) == 13 and g.isdigit() for g in gtins)
    assert all(g[-1] == gtin_check_digit(g[:-1]) for g in gtins)
    assert len(set(gtins)) == len(gtins)
    assert gtin_check_digit("400638133393") == "1"  # a published GS1 example


def test_product_identities_are_distinct() -> None:
    """No two universe products share name, brand, size and pack (the matching ground truth)."""
    universe = Universe(9, 5000)
    keys = Counter(
        (i.leaf.slug, i.name, i.brand, i.size, i.pack)
        for i in (universe.item(uid) for uid in range(universe.size))
    )
    assert keys.most_common(1)[0][1] == 1


def test_shops_share_most_but_not_all_products() -> None:
    """The same universe product is sold by several shops, under each shop's own name."""
    shops = _shops()
    carried = {name: {x.item.uid: x for x in shop.catalogue} for name, shop in shops.items()}
    jsonld, microdata = carried["jsonld"], carried["microdata"]
    common = jsonld.keys() & microdata.keys()
    assert 0.3 * len(microdata) < len(common) < len(microdata)
    uid = next(iter(common))
    names = {shops[n].display_name(carried[n][uid]) for n in ("jsonld", "microdata")}
    assert len(names) == 2  # different house styles
    in_three = [u for u in common if all(u in carried[n] for n in ("api", "plain"))]
    assert in_three, "some products should be sold by four shops"


def test_every_shop_index_maps_to_a_distinct_product() -> None:
    """Within one shop, no universe product is listed twice."""
    for shop in _shops().values():
        uids = [x.item.uid for x in shop.catalogue]
        assert len(set(uids)) == len(uids) == shop.catalogue.products


def test_prices_drift_and_discounts_come_and_go() -> None:
    """Over 60 days most products change price, some get discounted, a few run out."""
    shop = _shops()["jsonld"]
    listings = [shop.catalogue.listing(i) for i in range(200)]
    changed = sum(
        len({shop.state_of(x, day).regular_price for day in range(0, 60, 5)}) > 1 for x in listings
    )
    assert changed > 150
    discounted = [sum(shop.state_of(x, day).is_discounted for x in listings) for day in (0, 20)]
    assert all(10 < d < 70 for d in discounted)
    ever_discounted = {
        x.index for x in listings for d in range(30) if shop.state_of(x, d).is_discounted
    }
    assert 20 < len(ever_discounted) < 200
    out = sum(not shop.state_of(x, 10).in_stock for x in listings)
    assert 0 < out < 30


def test_discount_price_is_below_regular() -> None:
    """A discounted product sells below its regular price; an undiscounted one at it."""
    shop = _shops()["microdata"]
    for listing in shop.catalogue:
        state = shop.state_of(listing, 12)
        if state.is_discounted:
            assert state.price < state.regular_price
        else:
            assert state.price == state.regular_price


def test_changed_day_is_when_the_state_began() -> None:
    """`changed_day` is the first day of the current run of identical price states."""
    shop = _shops()["api"]
    for index in range(0, 300, 7):
        listing = shop.catalogue.listing(index)
        state = shop.state_of(listing, 40)
        first = shop.state_of(listing, state.changed_day)
        assert (first.price, first.regular_price, first.in_stock) == (
            state.price,
            state.regular_price,
            state.in_stock,
        )
        before = shop.state_of(listing, state.changed_day - 1)
        assert (before.price, before.regular_price, before.in_stock) != (
            state.price,
            state.regular_price,
            state.in_stock,
        )


def test_a_million_products_cost_no_memory_per_product() -> None:
    """A 1,000,000-product shop answers for its last product without building the others."""
    shop = _shops(products=1_000_000)["jsonld"]
    last = shop.catalogue.listing(shop.catalogue.products - 1)
    assert shop.catalogue.products == 1_000_000
    assert shop.truth(last, 3, "http://x")["id"] == str(100_000 + 999_999)
    leaf = last.item.leaf
    assert shop.page_count(leaf) > 400
    assert len(shop.page_listings(leaf, shop.page_count(leaf) - 1)) == shop.config.page_size
