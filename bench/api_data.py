"""The API benchmark's catalogue: N products in PostgreSQL, through the real schema, fast.

`Store.upgrade()` creates the schema (migrations, partitions for the history's months), then
the rows go in with binary COPY: 10 shops; names from `bench.store`'s Spanish grocery
vocabulary, drawn as it draws them (a product word is in ~1 product in 20–60, a variety in ~1
in 200; 2 % of names also carry one of a few rare words, ~1 in 400 each); 40 % of product slots
carry an EAN-13 shared by 2–5 shops, with a `gtin` match group each, as ingest would write;
three price states per product in `price_observations`, the current one also on the product
row. The product table's secondary indexes (tsvector and trigram GIN, gtin, price, category)
are dropped before the COPY and re-created from their own definitions after it: one index
build instead of a million index inserts.

A database that already holds a complete catalogue of the same size and generator version (a
`COMMENT ON DATABASE` marks it) is reused, so a re-run skips the load.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import asyncpg

from bench.store import BRANDS, CATEGORIES, EXTRAS, SHOPS, ean13
from pricefleet.store import Store
from pricefleet.store.postgres import PostgresStore

__all__ = ["Catalogue", "build_database"]

VERSION = "api-bench-2"  # 2: the price state in `product_state` (migration 0005)
SEED = 20261201
SITES = 10
GTIN_SHARE = 0.4
#: Words that few products carry: searches for them match a handful of rows.
RARE = ("trufado", "bellota", "azafrán", "km0", "gourmet", "sin gluten", "sin lactosa", "bio")
RARE_SHARE = 0.02
HISTORY_DAYS = (28, 14, 3)
_CENT = Decimal("0.01")
_UNIT = Decimal("0.0001")

PRODUCT_COLUMNS = (
    "site_id", "id", "url", "name", "brand", "gtin", "sku", "category_id", "size_value",
    "size_unit", "image_url", "raw",
)  # fmt: skip
STATE_COLUMNS = (
    "site_id", "id", "first_seen", "last_seen", "price", "currency", "regular_price",
    "is_discounted", "unit_price", "unit", "availability", "price_changed_at",
)  # fmt: skip
HISTORY_COLUMNS = (
    "site_id", "product_id", "observed_at", "last_seen", "price", "currency", "regular_price",
    "is_discounted", "unit_price", "unit", "availability",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Item:
    category: int
    name: str
    brand: str
    size: Decimal
    cents: int
    gtin: str | None  # 14 digits, as ingest stores it


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The generated catalogue's shape, and how to pick URLs from it."""

    products: int

    @property
    def slots(self) -> int:
        """Product ids per shop."""
        return self.products // SITES

    @property
    def gtin_slots(self) -> int:
        """The first slots, whose products carry a shared GTIN."""
        return round(self.slots * GTIN_SHARE)

    def product_paths(self, count: int, seed: int) -> list[str]:
        """`count` distinct product URLs, random over the whole catalogue."""
        rng = random.Random(seed)
        chosen = rng.sample(range(self.slots * SITES), min(count, self.slots * SITES))
        return [f"/v1/products/{SHOPS[n % SITES][0]}/{n // SITES:07d}" for n in chosen]

    def compare_paths(self, count: int, seed: int) -> list[str]:
        """`count` compare-by-GTIN URLs (13 digits, as shoppers type them)."""
        rng = random.Random(seed)
        out = []
        for slot in rng.sample(range(self.gtin_slots), min(count, self.gtin_slots)):
            group = rng.randrange(2 + slot % 3)
            out.append(f"/v1/compare?gtin={ean13(slot * 4 + group)}")
        return out

    def search_paths(self, count: int, seed: int) -> list[str]:
        """`count` distinct searches as people type them: a common product word, a word and a
        variety or brand, a rare word, sometimes unaccented or cut short (a prefix)."""
        rng = random.Random(seed)
        seen: set[str] = set()
        while len(seen) < count:
            category = rng.choice(CATEGORIES)
            words = rng.choice(category.heads).split()[:1]
            roll = rng.random()
            if roll < 0.4:
                words += rng.choice(category.varieties).split()[-1:]
            elif roll < 0.55:
                words += rng.choice(BRANDS).split()[-1:]
            elif roll < 0.7:
                words = rng.choice(RARE).split()[:1]
            query = " ".join(words).lower() if rng.random() < 0.5 else " ".join(words)
            if rng.random() < 0.3:
                query = query.translate(str.maketrans("áéíóúñÁÉÍÓÚÑ", "aeiounAEIOUN"))
            if rng.random() < 0.3 and len(query.split()[-1]) > 4:
                query = query[: -rng.randint(1, 2)]
            seen.add(query)
        return [f"/v1/search?q={quote(q)}" for q in sorted(seen)]


def _item(rng: random.Random, gtin: str | None) -> _Item:
    index = rng.randrange(len(CATEGORIES))
    category = CATEGORIES[index]
    parts = [rng.choice(category.heads), rng.choice(category.varieties), rng.choice(EXTRAS)]
    if rng.random() < RARE_SHARE:
        parts.append(rng.choice(RARE))
    size = Decimal(rng.choice(category.sizes))
    low, high = category.unit_cents
    cents = max(19, round(rng.uniform(low, high) * float(size)))
    name = " ".join(part for part in parts if part)
    return _Item(index, name, rng.choice(BRANDS), size, cents, gtin)


def _rows(
    catalogue: Catalogue, now: datetime
) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...], list[Any]]]:
    """(product row, its state row, its history rows) for every product, slot by slot."""
    first_seen = now - timedelta(days=HISTORY_DAYS[0])
    for slot in range(catalogue.slots):
        rng = random.Random(SEED * 1_000_003 + slot)
        if slot < catalogue.gtin_slots:
            groups = 2 + slot % 3
            shared = [_item(rng, "0" + ean13(slot * 4 + g)) for g in range(groups)]
            items = [shared[site % groups] for site in range(SITES)]
        else:
            items = [_item(rng, None) for _ in range(SITES)]
        for site, item in enumerate(items):
            shop = SHOPS[site][0]
            product_id = f"{slot:07d}"
            category = CATEGORIES[item.category]
            cents = round(item.cents * rng.uniform(0.9, 1.15))
            price = (Decimal(cents) / 100).quantize(_CENT)
            discounted = rng.random() < 0.1
            regular = (price * Decimal("1.25")).quantize(_CENT) if discounted else None
            unit_price = (price / item.size).quantize(_UNIT)
            available = "in_stock" if rng.random() < 0.95 else "out_of_stock"
            last_seen = now - timedelta(seconds=rng.randrange(6 * 3600))
            states = [(price * Decimal(f)).quantize(_CENT) for f in ("1.06", "0.97", "1")]
            changed = now - timedelta(days=HISTORY_DAYS[-1])
            yield (
                (
                    shop, product_id, f"https://{shop}.example/p/{product_id}", item.name,
                    item.brand, item.gtin, f"{shop[:3]}-{slot}", category.id, item.size,
                    category.unit.value, f"https://{shop}.example/img/{product_id}.jpg", None,
                ),
                (
                    shop, product_id, first_seen, last_seen, price, "EUR", regular, discounted,
                    unit_price, category.unit.value, available, changed,
                ),
                [
                    (
                        shop, product_id, now - timedelta(days=days),
                        (now - timedelta(days=HISTORY_DAYS[i + 1], hours=1))
                        if i + 1 < len(HISTORY_DAYS) else last_seen,
                        state, "EUR", regular if i == 2 else None, discounted and i == 2,
                        (state / item.size).quantize(_UNIT), category.unit.value,
                        available if i == 2 else "in_stock",
                    )
                    for i, (days, state) in enumerate(zip(HISTORY_DAYS, states, strict=True))
                ],
            )  # fmt: skip


async def _load(dsn: str, catalogue: Catalogue) -> dict[str, float]:
    timings: dict[str, float] = {}
    conn = await asyncpg.connect(dsn)
    try:
        began = time.perf_counter()
        await conn.executemany(
            "INSERT INTO sites (id, name, base_url) VALUES ($1, $2, $3)",
            [(shop, name, f"https://{shop}.example") for shop, name in SHOPS[:SITES]],
        )
        await conn.executemany(
            "INSERT INTO categories (site_id, id, name) VALUES ($1, $2, $3)",
            [(shop, c.id, c.id.capitalize()) for shop, _ in SHOPS[:SITES] for c in CATEGORIES],
        )
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE tablename IN ('products', 'product_state') "
            "AND indexname NOT IN ('pk_products', 'pk_product_state')"
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        now = datetime.now(UTC).replace(microsecond=0)
        products: list[tuple[Any, ...]] = []
        states: list[tuple[Any, ...]] = []
        history: list[tuple[Any, ...]] = []

        async def copy() -> None:
            await conn.copy_records_to_table("products", records=products, columns=PRODUCT_COLUMNS)
            await conn.copy_records_to_table("product_state", records=states, columns=STATE_COLUMNS)
            await conn.copy_records_to_table(
                "price_observations", records=history, columns=HISTORY_COLUMNS
            )
            products.clear()
            states.clear()
            history.clear()

        for product, state, rows in _rows(catalogue, now):
            products.append(product)
            states.append(state)
            history.extend(rows)
            if len(products) >= 50_000:
                await copy()
        if products:
            await copy()
        await conn.execute(
            "INSERT INTO matches (site_id, product_id, group_id, method, score) "
            "SELECT site_id, id, 'gtin:' || gtin, 'gtin', 1.0 FROM products "
            "WHERE gtin IS NOT NULL"
        )
        timings["copy_seconds"] = round(time.perf_counter() - began, 1)
        began = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for index in indexes:
            await conn.execute(index["indexdef"])
        timings["index_seconds"] = round(time.perf_counter() - began, 1)
        began = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        timings["vacuum_seconds"] = round(time.perf_counter() - began, 1)
    finally:
        await conn.close()
    return timings


async def build_database(server: str, name: str, catalogue: Catalogue) -> dict[str, Any]:
    """Make database `name` on `server` (`postgresql://user@host:port`) hold `catalogue`,
    reusing it when it already does; returns what was done and how long it took."""
    marker = f"{VERSION} products={catalogue.products}"
    admin = await asyncpg.connect(server.rstrip("/") + "/postgres")
    try:
        comment = await admin.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            name,
        )
        if comment == marker:
            return {"reused": True, "database": name}
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = f"{server.rstrip('/')}/{name}"
    began = time.perf_counter()
    store = Store.from_url(dsn)
    try:
        await store.upgrade()
        if isinstance(store, PostgresStore):  # partitions for the history's months too
            start = (datetime.now(UTC) - timedelta(days=HISTORY_DAYS[0] + 1)).date()
            await store.ensure_partitions(date(start.year, start.month, 1), months_ahead=4)
    finally:
        await store.close()
    timings = await _load(dsn, catalogue)
    admin = await asyncpg.connect(server.rstrip("/") + "/postgres")
    try:
        await admin.execute(f"COMMENT ON DATABASE \"{name}\" IS '{marker}'")
    finally:
        await admin.close()
    return {
        "reused": False,
        "database": name,
        "seconds": round(time.perf_counter() - began, 1),
        **timings,
    }
