"""The Store conformance suite: every behaviour, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pricefleet.errors import InvalidQuery, UnknownSite
from pricefleet.store.base import Store
from pricefleet.store.records import Direction, FetchState, ProductFilter, SortKey
from tests.store.factories import SITES, at, sighting


@pytest.fixture
async def shops(store: Store) -> Store:
    """The store with two shops registered."""
    await store.upsert_sites(SITES)
    return store


async def test_products_round_trip(shops: Store) -> None:
    """An ingested product reads back with its fields, price state and first/last seen."""
    result = await shops.ingest(
        [sighting("p1", "1.19", at(0), name="Leche entera", regular="1.39")]
    )
    assert (result.products, result.observations_inserted) == (1, 1)
    product = await shops.get_product("shop-a", "p1")
    assert product is not None
    assert product["name"] == "Leche entera"
    assert product["price"] == Decimal("1.19")
    assert product["regular_price"] == Decimal("1.39")
    assert product["is_discounted"] is True
    assert product["unit_price"] == Decimal("1.19")
    assert product["first_seen"] == product["last_seen"] == at(0)
    assert "raw" not in product  # only when asked for
    assert await shops.get_product("shop-a", "nope") is None
    with_raw = await shops.get_product("shop-a", "p1", fields=["raw"])
    assert with_raw == {"site_id": "shop-a", "id": "p1", "raw": {"price": "1.19"}, "group_id": None}


async def test_history_is_change_only(shops: Store) -> None:
    """A new history row only when the state changes; otherwise the run's last_seen moves."""
    for minute, price in [(0, "1.00"), (10, "1.00"), (20, "1.00"), (30, "1.20"), (40, "1.00")]:
        await shops.ingest([sighting("p1", price, at(minute))])
    rows = await shops.history("shop-a", "p1")
    assert [(r["observed_at"], r["price"], r["last_seen"]) for r in rows] == [
        (at(0), Decimal("1.00"), at(20)),
        (at(30), Decimal("1.20"), at(30)),
        (at(40), Decimal("1.00"), at(40)),
    ]
    product = await shops.get_product("shop-a", "p1")
    assert product is not None
    assert (product["price"], product["price_changed_at"], product["last_seen"]) == (
        Decimal("1.00"),
        at(40),
        at(40),
    )
    assert [r["observed_at"] for r in await shops.history("shop-a", "p1", since=at(35))] == [
        at(30),
        at(40),
    ]


async def test_availability_and_discount_changes_are_history(shops: Store) -> None:
    """Stock running out, or a discount starting at the same price, is a change too."""
    await shops.ingest([sighting("p1", "2.00", at(0))])
    await shops.ingest([sighting("p1", "2.00", at(1), available=False)])
    await shops.ingest([sighting("p1", "2.00", at(2), available=False, regular="2.50")])
    rows = await shops.history("shop-a", "p1")
    assert [(r["availability"], r["is_discounted"]) for r in rows] == [
        ("in_stock", False),
        ("out_of_stock", False),
        ("out_of_stock", True),
    ]


async def test_replays_in_any_order_give_the_same_rows(shops: Store) -> None:
    """Replaying batches any number of times, in any order, stores the same history."""
    prices = ["1.00", "1.00", "1.10", "1.10", "0.90", "1.00", "1.00", "1.10"]
    sightings = [sighting("p1", price, at(m * 10)) for m, price in enumerate(prices)]
    batches = [sightings[i : i + 3] for i in range(0, len(sightings), 3)]
    expected = [
        (at(0), "1.00"),
        (at(20), "1.10"),
        (at(40), "0.90"),
        (at(50), "1.00"),
        (at(70), "1.10"),
    ]
    rng = random.Random(4)
    for product_id in ("p1", "p2", "p3", "p4"):
        order = [batch for batch in batches for _ in range(rng.randint(1, 3))]
        rng.shuffle(order)
        for batch in order:
            renamed = [
                sighting(product_id, str(s.observation.price), s.observation.observed_at)
                for s in batch
            ]
            await shops.ingest(renamed)
        rows = await shops.history("shop-a", product_id)
        assert [(r["observed_at"], str(r["price"].normalize())) for r in rows] == [
            (t, str(Decimal(p).normalize())) for t, p in expected
        ], product_id
        product = await shops.get_product("shop-a", product_id)
        assert product is not None
        assert (product["price"], product["last_seen"], product["first_seen"]) == (
            Decimal("1.10"),
            at(70),
            at(0),
        )


async def test_racing_writers_store_no_duplicates(store: Store) -> None:
    """Two writers on separate connections ingesting overlapping batches leave one history."""
    await store.upsert_sites(SITES)
    other = store.reopen()
    try:
        products = [f"p{i}" for i in range(20)]
        timeline = [("1.00", 0), ("1.00", 5), ("1.50", 10), ("1.50", 15), ("1.20", 20)]
        batches = [[sighting(p, price, at(minute)) for p in products] for price, minute in timeline]
        rng = random.Random(9)
        plans = [batches * 2, batches * 2]
        for plan in plans:
            rng.shuffle(plan)

        async def write(target: Store, plan: list[list[object]]) -> None:
            for batch in plan:
                await target.ingest(batch)  # type: ignore[arg-type]

        await asyncio.gather(write(store, plans[0]), write(other, plans[1]))  # type: ignore[arg-type]
        for product_id in products:
            rows = await store.history("shop-a", product_id)
            assert [(r["observed_at"], r["price"]) for r in rows] == [
                (at(0), Decimal("1.00")),
                (at(10), Decimal("1.50")),
                (at(20), Decimal("1.20")),
            ]
    finally:
        await other.close()


async def test_products_of_unknown_sites_are_refused(store: Store) -> None:
    """Writing products for a site never registered fails with a clear error, storing nothing."""
    with pytest.raises(UnknownSite, match="register"):
        await store.ingest([sighting("p1", "1.00", at(0), site_id="ghost")])
    assert (await store.list_products()).items == []


async def test_naive_times_are_refused(shops: Store) -> None:
    """Times without a time zone are refused rather than guessed."""
    with pytest.raises(Exception, match="naive datetime"):
        await shops.ingest([sighting("p1", "1.00", datetime(2026, 1, 1))])


async def test_same_gtin_same_group_and_compare_by_unit_price(shops: Store) -> None:
    """Valid GTINs group offers across shops; compare sorts them by price per litre."""
    gtin = "8410000000000"
    gtin = gtin[:-1] + str(
        (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(gtin[:-1])) % 10) % 10
    )
    await shops.ingest(
        [
            sighting("a1", "1.20", at(0), gtin=gtin, size="1"),
            sighting("b1", "2.10", at(5), gtin=gtin, size="2", site_id="shop-b"),  # 1.05 €/l
            sighting(
                "a2", "0.10", at(0), gtin="8410000000001" if gtin[-1] != "1" else "8410000000002"
            ),
        ]
    )
    offers = await shops.compare(gtin=gtin)
    assert [(o["site_id"], o["unit_price"]) for o in offers] == [
        ("shop-b", Decimal("1.05")),
        ("shop-a", Decimal("1.20")),
    ]
    assert all(o["age_seconds"] > 0 for o in offers)
    assert (await shops.get_product("shop-a", "a2") or {})["gtin"] is None  # bad check digit
    group = (await shops.get_product("shop-a", "a1") or {})["group_id"]
    assert [o["id"] for o in await shops.compare(group_id=group)] == ["b1", "a1"]
    with pytest.raises(InvalidQuery, match="not a valid GTIN"):
        await shops.compare(gtin="123")


SEARCH_CATALOGUE = [
    ("s1", "Leche entera Campo Real 1 L", "Campo Real"),
    ("s2", "Leche semidesnatada sin lactosa 1 L", "Campo Real"),
    ("s3", "Jamón ibérico de bellota 100 g", "Dehesa Sur"),
    ("s4", "Queso manchego curado", "La Leche Feliz"),  # "leche" only in the brand
    ("s5", "Bebida de avena", "Avenida"),
    ("s6", "Leche entera", "Sierra"),
]


async def _catalogue(store: Store) -> None:
    await store.ingest(
        [
            sighting(pid, "1.00", at(0), name=name, brand=brand)
            for pid, name, brand in SEARCH_CATALOGUE
        ]
    )


async def test_search_ranks_the_same_on_both_backends(shops: Store) -> None:
    """Accents and case are ignored, every word must match, names outrank brands."""
    await _catalogue(shops)

    async def ids(q: str) -> list[str]:
        return [hit.item["id"] for hit in await shops.search(q)]

    assert await ids("jamon") == ["s3"]
    assert await ids("JAMÓN Ibérico") == ["s3"]
    assert await ids("leche entera") == ["s6", "s1"]  # the shorter, more focused name first
    found = await ids("leche")
    assert set(found) == {"s1", "s2", "s4", "s6"}
    assert found[-1] == "s4"  # a brand-only match ranks last
    assert await ids("lech") == found  # the last word is a prefix
    assert await ids("avena leche") == []
    assert (
        await ids(
            "leche",
        )
        == found
    )
    hits = await shops.search("leche")
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    hostile = ['leche" OR "', "le:che*", "a & b | !c", "'; DROP TABLE products; --", "NEAR(a b)"]
    for query in hostile:  # query syntax of either backend is never passed through
        await shops.search(query)
    assert await ids("leche") == found
    with pytest.raises(InvalidQuery):
        await shops.search("¿¡ !!")
    assert [h.item["id"] for h in await shops.search("leche", site_id="shop-b")] == []


async def test_search_follows_renames(shops: Store) -> None:
    """A product renamed by a later sighting is found by its new name only."""
    await shops.ingest([sighting("p1", "1.00", at(0), name="Leche entera", brand="Sierra")])
    await shops.ingest([sighting("p1", "1.00", at(5), name="Queso curado", brand="Sierra")])
    await shops.ingest([sighting("p1", "1.10", at(9), name="Queso curado", brand="Monte")])
    assert await shops.search("leche") == []
    assert [h.item["id"] for h in await shops.search("queso curado")] == ["p1"]
    assert [h.item["id"] for h in await shops.search("monte")] == ["p1"]
    assert await shops.search("sierra") == []


async def test_search_ranks_a_bounded_number_of_matches(
    shops: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A word matching more products than the candidate cap still gives a full page of
    matches (the best of the first candidates), never more than asked for."""
    import pricefleet.store.postgres
    import pricefleet.store.sqlite

    for module in (pricefleet.store.postgres, pricefleet.store.sqlite):
        monkeypatch.setattr(module, "SEARCH_CANDIDATES", 4)
    await shops.ingest(
        [sighting(f"p{i}", "1.00", at(i), name=f"Leche {'entera ' * (i % 3)}{i}") for i in range(9)]
    )
    hits = await shops.search("leche", limit=3)
    assert len(hits) == 3
    assert all("Leche" in hit.item["name"] for hit in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(await shops.search("leche", limit=20)) == 4  # one site: one shard when sharded


async def test_search_pages_break_rank_ties_by_identity(shops: Store) -> None:
    """Equally relevant matches come by (site, id), on every page size, with or without a
    site, and fewer matches than the page give them all."""
    await shops.ingest(
        [
            sighting(f"p{i:02d}", "1.00", at(i), site_id=site.id, name="Leche entera")
            for i in range(12)
            for site in SITES
        ]
        + [sighting("q1", "1.00", at(0), name="Leche leche entera")]
    )
    every = [("shop-a", "q1"), *sorted((s.id, f"p{i:02d}") for i in range(12) for s in SITES)]
    for limit in (1, 3, 13, 30):
        hits = await shops.search("leche", limit=limit)
        assert [(h.item["site_id"], h.item["id"]) for h in hits] == every[:limit], limit
    hits = await shops.search("leche", limit=5, site_id="shop-b")
    assert [h.item["id"] for h in hits] == [f"p{i:02d}" for i in range(5)]


async def test_list_filters_cursor_and_fields(shops: Store) -> None:
    """Lists filter by site, category, price and discount, page by cursor, select fields."""
    batch = [
        sighting(
            f"p{i:02d}",
            f"{1 + i / 10:.2f}",
            at(i),
            category="leche" if i % 2 else "queso",
            regular=f"{3 + i:.2f}" if i % 3 == 0 else None,
        )
        for i in range(12)
    ]
    batch.append(sighting("b1", "0.50", at(0), site_id="shop-b"))
    await shops.ingest(batch)
    everything: list[str] = []
    cursor = None
    while True:
        page = await shops.list_products(
            ProductFilter(site_id="shop-a"),
            sort=SortKey.PRICE,
            cursor=cursor,
            limit=5,
            fields=["price"],
        )
        everything += [item["id"] for item in page.items]
        assert all(set(item) == {"site_id", "id", "price"} for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert everything == [f"p{i:02d}" for i in range(12)]
    desc = await shops.list_products(sort=SortKey.PRICE, descending=True, limit=2)
    assert [i["id"] for i in desc.items] == ["p11", "p10"]
    second = await shops.list_products(
        sort=SortKey.PRICE, descending=True, limit=2, cursor=desc.next_cursor
    )
    assert [i["id"] for i in second.items] == ["p09", "p08"]
    ranged = await shops.list_products(
        ProductFilter(min_price=Decimal("1.2"), max_price=Decimal("1.45"))
    )
    assert sorted(i["id"] for i in ranged.items) == ["p02", "p03", "p04"]
    discounted = await shops.list_products(ProductFilter(discounted=True, category_id="queso"))
    assert sorted(i["id"] for i in discounted.items) == ["p00", "p06"]
    with pytest.raises(InvalidQuery, match="cursor"):
        await shops.list_products(cursor="not-a-cursor")
    with pytest.raises(InvalidQuery, match="another sort"):
        await shops.list_products(sort=SortKey.NAME, cursor=desc.next_cursor)
    with pytest.raises(InvalidQuery, match="unknown fields"):
        await shops.list_products(fields=["password"])
    with pytest.raises(InvalidQuery, match="above max_price"):
        await shops.list_products(ProductFilter(min_price=Decimal(5), max_price=Decimal(1)))


async def test_lists_by_a_key_some_products_lack_page_through_all(shops: Store) -> None:
    """Sorted by unit price, products without one come last (first when descending), and
    pages of any size, over one site or all, give every product once in that order."""
    batch = []
    for i in range(9):
        seen = sighting(f"p{i}", f"{1 + (i * 7) % 5 / 10:.2f}", at(i), site_id=SITES[i % 2].id)
        if i % 3 == 0:  # no unit price
            seen = dataclasses.replace(
                seen, observation=dataclasses.replace(seen.observation, unit_price=None)
            )
        batch.append(seen)
    await shops.ingest(batch)
    known = {(s.product.site_id, s.product.id): s.observation.unit_price for s in batch}

    def expected(site_id: str | None, descending: bool) -> list[str]:
        keys = [
            (price if price is not None else Decimal("99999999"), site, pid)
            for (site, pid), price in known.items()
            if site_id in (None, site)
        ]
        return [pid for _, _, pid in sorted(keys, reverse=descending)]

    for site_id in (None, "shop-a"):
        for descending in (False, True):
            for size in (1, 2, 4, 50):
                seen_ids: list[str] = []
                cursor = None
                while True:
                    page = await shops.list_products(
                        ProductFilter(site_id=site_id),
                        sort=SortKey.UNIT_PRICE,
                        descending=descending,
                        cursor=cursor,
                        limit=size,
                    )
                    seen_ids += [item["id"] for item in page.items]
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                assert seen_ids == expected(site_id, descending), (site_id, descending, size)


async def test_trending_finds_the_biggest_moves(shops: Store) -> None:
    """Drops and rises between N days ago and now, biggest first, from the view or live."""
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=10), now - timedelta(days=1)
    moves = {
        "drop25": ("2.00", "1.50"),
        "drop10": ("1.00", "0.90"),
        "rise50": ("1.00", "1.50"),
        "flat": ("1.00", "1.00"),
    }
    await shops.ingest([sighting(p, before, old) for p, (before, _) in moves.items()])
    await shops.ingest([sighting(p, after, recent) for p, (_, after) in moves.items()])
    await shops.refresh_trending()
    for days in (7, 5):  # 7 is a precomputed window on PostgreSQL, 5 is not
        drops = await shops.trending(days, direction=Direction.DROPS)
        assert [(m.product_id, round(m.change, 2)) for m in drops] == [
            ("drop25", -0.25),
            ("drop10", -0.1),
            ("rise50", 0.5),
        ]
        rises = await shops.trending(days, direction=Direction.RISES, limit=1)
        assert [m.product_id for m in rises] == ["rise50"]
        assert rises[0].old_price == Decimal("1.00")
    assert await shops.trending(1) == []  # a day ago nothing had moved yet
    with pytest.raises(InvalidQuery):
        await shops.trending(0)


async def test_fetch_states_round_trip(shops: Store) -> None:
    """Validators and content hashes saved for URLs come back for exactly those URLs."""
    first = FetchState(
        "http://a.test/p/1", etag='"v1"', content_hash="abc", status=200, fetched_at=at(0)
    )
    other = FetchState(
        "http://a.test/p/2",
        last_modified="Mon, 01 Jun 2026 00:00:00 GMT",
        status=200,
        fetched_at=at(0),
    )
    await shops.save_fetch_states("shop-a", [first, other])
    await shops.save_fetch_states(
        "shop-a", [FetchState(first.url, etag='"v2"', status=200, fetched_at=at(5))]
    )
    found = await shops.fetch_states("shop-a", [first.url, other.url, "http://a.test/none"])
    assert found[first.url].etag == '"v2"'
    assert found[first.url].fetched_at == at(5)
    assert found[other.url] == other
    assert set(found) == {first.url, other.url}
    assert await shops.fetch_states("shop-b", [first.url]) == {}


async def test_stale_products_least_recently_seen_first(shops: Store) -> None:
    """The freshness rule's query: products of one site not seen since a time, oldest first."""
    await shops.ingest(
        [
            sighting("p1", "1.00", at(0)),
            sighting("p2", "2.00", at(5)),
            sighting("p3", "3.00", at(50)),
            sighting("q1", "1.00", at(0), site_id="shop-b"),
        ]
    )
    stale = await shops.stale_products("shop-a", at(10))
    assert [pid for pid, _ in stale] == ["p1", "p2"]
    assert [url for _, url in stale] == ["http://shop-a.test/p/p1", "http://shop-a.test/p/p2"]
    assert await shops.stale_products("shop-a", at(10), limit=1) == stale[:1]
    assert await shops.stale_products("shop-a", at(0)) == []


async def test_site_summaries_count_and_freshness(shops: Store) -> None:
    """Each site's product count, how many are stale, and its newest sighting; empty sites too."""
    await shops.ingest(
        [
            sighting("p1", "1.00", at(0)),
            sighting("p2", "2.00", at(50)),
            sighting("p3", "3.00", at(20)),
        ]
    )
    summaries = {s.site_id: s for s in await shops.site_summaries(at(10))}
    assert set(summaries) == {site.id for site in SITES}
    a = summaries["shop-a"]
    assert (a.products, a.stale, a.last_seen) == (3, 1, at(50))
    assert a.name
    assert a.base_url
    b = summaries["shop-b"]
    assert (b.products, b.stale, b.last_seen) == (0, 0, None)
    assert [s.stale for s in await shops.site_summaries(at(100)) if s.site_id == "shop-a"] == [3]


async def test_touch_confirms_without_a_new_state(shops: Store) -> None:
    """Touching products moves their last_seen and their current run's, and nothing else."""
    await shops.ingest([sighting("p1", "1.00", at(0)), sighting("p2", "2.00", at(0))])
    await shops.ingest([sighting("p1", "1.50", at(10))])
    assert await shops.touch("shop-a", ["p1", "ghost"], at(30)) == 1
    assert await shops.touch("shop-a", ["p1"], at(20)) == 0  # older than what is known
    rows = await shops.history("shop-a", "p1")
    assert [(r["observed_at"], r["last_seen"]) for r in rows] == [(at(0), at(0)), (at(10), at(30))]
    product = await shops.get_product("shop-a", "p1")
    assert product is not None
    assert (product["last_seen"], product["price"]) == (at(30), Decimal("1.50"))
    untouched = await shops.get_product("shop-a", "p2")
    assert untouched is not None
    assert untouched["last_seen"] == at(0)
