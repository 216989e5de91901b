"""The store at catalogue scale: ingest rate and query latency, SQLite beside PostgreSQL.

A seeded synthetic catalogue (10 shops; Spanish grocery names with accents; ~40 % of products
carry a valid EAN-13 shared by 2–4 shops; sizes and units for unit prices) is crawled day after
day: every product is sighted once a day and ~10 % of them change their price state each day,
so the change-only history grows by ~10 % of the catalogue a day. Every batch of sightings goes
through `Store.ingest` on both backends, one after the other (the order alternates), and each
call is timed. After loading, each read (search, compare by GTIN, history, a price-filtered list
and its second page, trending after `refresh_trending`) runs with varied parameters on both
backends in interleaved rounds. Last, a few more batches run under cProfile with every SQL
statement timed, to show where ingest time goes.

The full catalogue is 1,000,000 products and 10,000,000 *stored* history rows, which at 10 %
daily change takes 91 days of sightings (91,000,000 `Sighting`s). `--scale` shrinks products and
stored rows by the same fraction (the 91 days stay), `--quick` is a smoke run. The generator
streams: the only per-product state kept is a few compact integer arrays (prices, flags).

    python -m bench --only store --quick      # smoke run, < 60 s
    python -m bench.store --scale 0.05        # 50,000 products, ~500,000 stored rows

The PostgreSQL server is `PRICEFLEET_BENCH_POSTGRES` (default
`postgresql://postgres@127.0.0.1:5432`); the benchmark creates its own database there and drops
it at the end. The SQLite file lives in a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import io
import json
import math
import os
import pstats
import random
import re
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from array import array
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from sqlalchemy import event

from bench import Benchmark, Options, percentile
from pricefleet.models import Availability, PriceObservation, Product, Site, SizeUnit
from pricefleet.store import ProductFilter, Sighting, SortKey, Store

__all__ = ["BENCHMARK", "main", "render", "run"]

# --- what is generated -------------------------------------------------------------------------

SEED = 20261123
SITE_COUNT = 10
#: Products per shop at scale 1 (10 shops: 1,000,000 products).
PRODUCTS_PER_SITE = 100_000
#: Stored history rows at scale 1.
STORED_ROWS = 10_000_000
#: Share of products whose price state changes on a given day.
CHANGE_RATE = 0.10
#: Share of product slots whose products carry a GTIN shared by 2–4 shops.
GTIN_SHARE = 0.40
#: Sightings per `Store.ingest` call (one shop's consecutive products).
BATCH = 2_000
QUICK_BATCH = 1_000
QUICK_PRODUCTS_PER_SITE = 1_000
QUICK_DAYS = 3
#: Scale used when neither --scale nor the environment says otherwise.
DEFAULT_SCALE = 0.05
SCALE_ENV = "PRICEFLEET_BENCH_STORE_SCALE"
DAYS_ENV = "PRICEFLEET_BENCH_STORE_DAYS"
CHANGE_ENV = "PRICEFLEET_BENCH_STORE_CHANGE_RATE"
POSTGRES_ENV = "PRICEFLEET_BENCH_POSTGRES"
#: Which backends to run (comma-separated), default both.
BACKENDS_ENV = "PRICEFLEET_BENCH_STORE_BACKENDS"
#: Keep the loaded databases under this name and reuse them when they exist (no load).
KEEP_ENV = "PRICEFLEET_BENCH_STORE_KEEP"
#: Spread the crawl's days over this many calendar days (default: one day apart).
SPAN_ENV = "PRICEFLEET_BENCH_STORE_SPAN_DAYS"
#: Concurrent writers on PostgreSQL during the load (SQLite has one writer at a time).
WRITERS_ENV = "PRICEFLEET_BENCH_STORE_WRITERS"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
BACKENDS = ("sqlite", "postgresql")

# --- how reads are measured --------------------------------------------------------------------

#: Timed calls of each read per backend, in total over all rounds.
QUERIES = 200
QUICK_QUERIES = 30
#: Untimed calls of each read per backend before the first round.
WARMUP = 5
#: A read whose calls take longer stops after this many seconds per round and backend.
QUERY_BUDGET_S = 40.0
QUICK_QUERY_BUDGET_S = 3.0
#: Batches of one more day run under the profiler after the reads.
PROFILE_BATCHES = 5
QUICK_PROFILE_BATCHES = 1
READS = ("search", "compare", "history", "list", "list page 2", "trending 7")

# --- the vocabulary ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Category:
    """A kind of product: names are a head, a variety and sometimes an extra word."""

    id: str
    heads: tuple[str, ...]
    varieties: tuple[str, ...]
    unit: SizeUnit
    sizes: tuple[str, ...]
    #: Price per kg, litre or item, in cents: the lowest and highest.
    unit_cents: tuple[int, int]


CATEGORIES: tuple[Category, ...] = (
    Category(
        "leche",
        ("Leche",),
        ("entera", "semidesnatada", "desnatada", "sin lactosa", "de cabra", "fresca"),
        SizeUnit.L,
        ("1", "1.5", "6"),
        (70, 180),
    ),
    Category(
        "aceite",
        ("Aceite de oliva", "Aceite de girasol"),
        ("virgen extra", "suave", "intenso", "arbequina", "picual", "hojiblanca"),
        SizeUnit.L,
        ("0.5", "0.75", "1", "3", "5"),
        (180, 1200),
    ),
    Category(
        "jamon",
        ("Jamón", "Paleta"),
        ("ibérico de bellota", "serrano", "de cebo", "reserva", "gran reserva", "loncheado"),
        SizeUnit.KG,
        ("0.08", "0.1", "0.2", "1"),
        (1500, 9000),
    ),
    Category(
        "queso",
        ("Queso",),
        ("manchego", "curado", "semicurado", "tierno", "de cabra", "azul", "rallado"),
        SizeUnit.KG,
        ("0.15", "0.25", "0.4", "1"),
        (800, 2800),
    ),
    Category(
        "cafe",
        ("Café",),
        ("molido", "en grano", "natural", "mezcla", "descafeinado", "soluble", "cápsulas"),
        SizeUnit.KG,
        ("0.25", "0.5", "1"),
        (800, 3500),
    ),
    Category(
        "azucar",
        ("Azúcar", "Panela"),
        ("blanco", "moreno", "de caña", "glas", "ecológico"),
        SizeUnit.KG,
        ("0.5", "1"),
        (90, 350),
    ),
    Category(
        "fruta",
        ("Limón", "Plátano de Canarias", "Piña", "Melocotón", "Manzana golden", "Naranja"),
        ("a granel", "en malla", "ecológico", "selección", "extra"),
        SizeUnit.KG,
        ("0.5", "1", "2"),
        (100, 450),
    ),
    Category(
        "conservas",
        ("Atún claro", "Bonito del norte", "Sardinas", "Mejillones", "Anchoas", "Berberechos"),
        ("en aceite de oliva", "al natural", "en escabeche", "del Cantábrico", "pack 3"),
        SizeUnit.KG,
        ("0.08", "0.12", "0.24"),
        (900, 6000),
    ),
    Category(
        "galletas",
        ("Galletas", "Magdalenas", "Bizcochos"),
        ("María", "integrales", "de chocolate", "con avena", "sin azúcar", "rellenas"),
        SizeUnit.KG,
        ("0.2", "0.4", "0.8"),
        (200, 900),
    ),
    Category(
        "yogur",
        ("Yogur", "Postre lácteo"),
        ("natural", "griego", "de fresa", "de limón", "desnatado", "bífidus"),
        SizeUnit.UNIT,
        ("4", "6", "8"),
        (20, 70),
    ),
    Category(
        "pan",
        ("Pan de molde", "Pan"),
        ("integral", "sin corteza", "rústico", "de centeno", "multicereales"),
        SizeUnit.KG,
        ("0.35", "0.46", "0.7"),
        (200, 700),
    ),
    Category(
        "legumbres",
        ("Garbanzos", "Lentejas pardinas", "Alubias", "Judías blancas"),
        ("cocidos", "extra", "ecológicos", "de León", "castellanos"),
        SizeUnit.KG,
        ("0.4", "0.5", "1"),
        (150, 600),
    ),
    Category(
        "arroz",
        ("Arroz",),
        ("bomba", "redondo", "largo", "basmati", "integral", "vaporizado"),
        SizeUnit.KG,
        ("0.5", "1", "5"),
        (100, 600),
    ),
    Category(
        "vino",
        ("Vino tinto", "Vino blanco", "Vino rosado"),
        ("Rioja crianza", "Ribera del Duero", "Albariño", "Rueda verdejo", "joven", "reserva"),
        SizeUnit.L,
        ("0.75", "1.5"),
        (300, 2500),
    ),
    Category(
        "cerveza",
        ("Cerveza",),
        ("lager", "sin alcohol", "tostada", "especial", "pack 6 latas", "artesana"),
        SizeUnit.L,
        ("0.33", "1", "1.98"),
        (90, 400),
    ),
    Category(
        "zumo",
        ("Zumo", "Néctar"),
        ("de naranja", "de piña", "de melocotón", "multifrutas", "exprimido"),
        SizeUnit.L,
        ("0.2", "1", "1.5"),
        (90, 450),
    ),
    Category(
        "dulces",
        ("Chocolate", "Turrón", "Cacao en polvo"),
        ("negro 70%", "con leche", "con almendras", "de Jijona", "blando", "crujiente"),
        SizeUnit.KG,
        ("0.1", "0.2", "0.3"),
        (600, 2500),
    ),
    Category(
        "limpieza",
        ("Detergente", "Lejía", "Suavizante", "Lavavajillas"),
        ("líquido", "en cápsulas", "perfumado", "concentrado", "con amoniaco"),
        SizeUnit.L,
        ("1", "2", "3"),
        (100, 800),
    ),
    Category(
        "huevos",
        ("Huevos",),
        ("camperos", "ecológicos", "frescos", "tamaño L", "tamaño XL"),
        SizeUnit.UNIT,
        ("6", "12", "24"),
        (15, 50),
    ),
    Category(
        "embutidos",
        ("Chorizo", "Lomo embuchado", "Salchichón", "Fuet"),
        ("ibérico", "picante", "dulce", "extra", "de Cantimpalos"),
        SizeUnit.KG,
        ("0.2", "0.25", "1"),
        (800, 4000),
    ),
)
EXTRAS = ("", "", "", "familiar", "tradicional", "artesano", "ecológico", "oferta", "clásico")
BRANDS = (
    "Campo Real",
    "La Huerta",
    "El Molino",
    "Doña Pepa",
    "Sierra Alta",
    "Mar Cantábrico",
    "Valle Verde",
    "Los Olivos",
    "Casa Nieves",
    "Granja Rosalía",
    "Bodegas Ebro",
    "Peñalara",
    "La Ibérica",
    "Río Tajo",
    "Huerta de Aragón",
    "Montaña Leonesa",
)
SHOPS = (
    ("mercasol", "Mercasol"),
    ("superahorro", "SuperAhorro"),
    ("la-despensa", "La Despensa"),
    ("mercado-norte", "Mercado Norte"),
    ("hiper-ebro", "Hiper Ebro"),
    ("frescum", "Frescum"),
    ("ultramarinos-pepa", "Ultramarinos Pepa"),
    ("el-zoco", "El Zoco"),
    ("supermercados-iris", "Supermercados Iris"),
    ("compra-facil", "Compra Fácil"),
)


def _compositions(total: int, parts: tuple[int, ...] = (2, 3, 4)) -> list[tuple[int, ...]]:
    """Every way to write `total` as an ordered sum of `parts`."""
    if total == 0:
        return [()]
    return [
        (part, *rest)
        for part in parts
        if part <= total
        for rest in _compositions(total - part, parts)
    ]


_SPLITS = _compositions(SITE_COUNT)


def ean13(number: int) -> str:
    """A valid EAN-13 with the Spanish prefix 84 and `number` (< 10^10) as the item reference."""
    body = f"84{number:010d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


@dataclass(frozen=True, slots=True)
class Item:
    """What a product is, before any shop lists it: shared by every shop of a GTIN group."""

    category: int
    name: str
    brand: str
    size: str
    cents: int
    gtin: str | None


@dataclass(frozen=True, slots=True)
class Plan:
    """How big this run's catalogue and crawl are."""

    scale: float
    quick: bool
    sites: int
    products_per_site: int
    days: int
    target_stored_rows: int
    batch: int = BATCH
    #: Share of products whose price state changes each day after the first.
    change_rate: float = CHANGE_RATE
    #: Time between two crawl days (`--span-days` spreads few days over a longer time, so the
    #: trending windows see moves without crawling every day).
    spacing: timedelta = timedelta(days=1)

    @property
    def products(self) -> int:
        """Products over all shops."""
        return self.sites * self.products_per_site

    @property
    def sightings(self) -> int:
        """Sightings ingested by the load: every product once a day."""
        return self.products * self.days

    @staticmethod
    def make(
        scale: float, quick: bool, days: int | None = None, change_rate: float = CHANGE_RATE
    ) -> Plan:
        """The plan for `--scale` (ignored when quick). `days` cuts the crawl short: the run
        then stores fewer history rows than the scale's share of 10,000,000. A higher
        `change_rate` reaches them in fewer days (1.0: every sighting stores a row)."""
        if quick:
            per_site, length = QUICK_PRODUCTS_PER_SITE, QUICK_DAYS
            target = round(SITE_COUNT * per_site * (1 + change_rate * (length - 1)))
        else:
            per_site = max(BATCH, round(PRODUCTS_PER_SITE * scale))
            target = round(STORED_ROWS * scale)
            # Day 0 stores a row per product, every later day ~CHANGE_RATE of them.
            length = 1 + math.ceil((target / (SITE_COUNT * per_site) - 1) / change_rate)
            if days is not None:
                length = min(length, days)
                target = round(SITE_COUNT * per_site * (1 + change_rate * (length - 1)))
        batch = QUICK_BATCH if quick else BATCH
        return Plan(scale, quick, SITE_COUNT, per_site, max(length, 1), target, batch, change_rate)


class Catalogue:
    """The seeded synthetic catalogue and its daily prices, generated as it is crawled.

    Product slot `i` exists in every shop. For slots below `GTIN_SHARE` of them the shops are
    split into groups of 2–4, each group selling one item under one GTIN; other slots are a
    different item in every shop, without GTIN. Per product only integers are kept: base and
    current price in cents and a state flag, in arrays of `sites × products_per_site`.
    """

    OUT_OF_STOCK = 1
    PROMO = 2

    def __init__(self, plan: Plan, seed: int = SEED) -> None:
        self.plan = plan
        self.seed = seed
        self.sites = [
            Site(id=shop, name=name, base_url=f"https://{shop}.example")
            for shop, name in SHOPS[: plan.sites]
        ]
        self.gtin_slots = round(plan.products_per_site * GTIN_SHARE)
        size = plan.products
        self.base = array("l", bytes(8 * size))
        self.price = array("l", bytes(8 * size))
        self.flags = array("b", bytes(size))
        # The crawl ends an hour ago, so trending windows measured from now() find it all.
        end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
        self.first_day = end - plan.spacing * (plan.days - 1)

    # --- items and products -----------------------------------------------------------------

    def _item(self, rng: random.Random, gtin: str | None) -> Item:
        index = rng.randrange(len(CATEGORIES))
        category = CATEGORIES[index]
        head = rng.choice(category.heads)
        variety = rng.choice(category.varieties)
        extra = rng.choice(EXTRAS)
        size = rng.choice(category.sizes)
        low, high = category.unit_cents
        cents = max(19, round(rng.uniform(low, high) * float(size)))
        brand = rng.choice(BRANDS)
        name = " ".join(part for part in (head, variety, extra) if part)
        return Item(index, name, brand, size, cents, gtin)

    def slot_items(self, slot: int) -> list[Item]:
        """The item each shop sells in product slot `slot` (index = shop)."""
        rng = random.Random(self.seed * 10_000_019 + slot)
        if slot >= self.gtin_slots:
            return [self._item(rng, None) for _ in range(self.plan.sites)]
        shops = list(range(self.plan.sites))
        rng.shuffle(shops)
        split = rng.choice(_SPLITS) if self.plan.sites == SITE_COUNT else (self.plan.sites,)
        items: list[Item | None] = [None] * self.plan.sites
        start = 0
        for part, width in enumerate(split):
            number = (slot * 8 + part) * 2_654_435_761 + self.seed
            item = self._item(rng, ean13(number % 10**10))
            for shop in shops[start : start + width]:
                items[shop] = item
            start += width
        return [item for item in items if item is not None]

    def product_id(self, slot: int) -> str:
        """A product's id in its shop."""
        return f"{slot:07d}"

    def product(self, site: int, slot: int, item: Item) -> Product:
        """Shop `site`'s product in `slot`."""
        site_id = self.sites[site].id
        product_id = self.product_id(slot)
        category = CATEGORIES[item.category]
        return Product(
            site_id=site_id,
            id=product_id,
            url=f"https://{site_id}.example/p/{product_id}",
            name=f"{item.name} {item.brand} {item.size.rstrip('0').rstrip('.')} {category.unit}",
            brand=item.brand,
            gtin=item.gtin,
            sku=f"{site}{product_id}",
            category_id=category.id,
            size_value=Decimal(item.size),
            size_unit=category.unit,
            image_url=f"https://cdn.{site_id}.example/img/{product_id}.jpg",
            raw={"source": "bench", "category": category.id},
        )

    # --- prices -----------------------------------------------------------------------------

    def _start(self, index: int, site: int, item: Item) -> None:
        # Each shop prices the shared item a little differently.
        factor = 0.94 + 0.015 * ((site * 7 + index) % 9)
        self.base[index] = self.price[index] = max(19, round(item.cents * factor))
        self.flags[index] = 0

    def _move(self, index: int, rng: random.Random) -> None:
        """One change of the product's price state: a promotion starts or ends, the base
        price moves, or the product goes out of stock or comes back."""
        flags, base = self.flags[index], self.base[index]
        roll = rng.random()
        if flags & self.OUT_OF_STOCK:
            self.flags[index] = flags & ~self.OUT_OF_STOCK
        elif flags & self.PROMO:
            if roll < 0.7:
                self.flags[index] = flags & ~self.PROMO
                self.price[index] = base
            else:
                self.price[index] = max(10, round(base * rng.uniform(0.6, 0.9)))
        elif roll < 0.35:
            self.flags[index] = flags | self.PROMO
            self.price[index] = max(10, round(base * rng.uniform(0.65, 0.92)))
        elif roll < 0.9:
            moved = max(19, round(base * rng.uniform(0.92, 1.1)))
            self.base[index] = self.price[index] = moved if moved != base else base + 1
        else:
            self.flags[index] = flags | self.OUT_OF_STOCK

    def observation(self, index: int, product: Product, when: datetime) -> PriceObservation:
        """The product's price state as a crawl sees it at `when`."""
        cents, flags = self.price[index], self.flags[index]
        price = Decimal(cents).scaleb(-2)
        size = product.size_value or Decimal(1)
        promo = bool(flags & self.PROMO)
        return PriceObservation(
            site_id=product.site_id,
            product_id=product.id,
            observed_at=when,
            price=price,
            currency="EUR",
            availability=(
                Availability.OUT_OF_STOCK if flags & self.OUT_OF_STOCK else Availability.IN_STOCK
            ),
            unit_price=(price / size).quantize(Decimal("0.0001")),
            unit=product.size_unit,
            regular_price=Decimal(self.base[index]).scaleb(-2) if promo else None,
            is_discounted=promo,
        )

    # --- the crawl --------------------------------------------------------------------------

    def day_batches(self, day: int) -> Iterator[tuple[int, list[Sighting]]]:
        """Day `day`'s sightings in batches of one shop's `plan.batch` consecutive products, with
        the number of products whose price state changed that day. Days must come in order."""
        plan = self.plan
        moment = self.first_day + plan.spacing * day
        for chunk in range(0, plan.products_per_site, plan.batch):
            slots = range(chunk, min(chunk + plan.batch, plan.products_per_site))
            items = [self.slot_items(slot) for slot in slots]
            for site in range(plan.sites):
                rng = random.Random((self.seed * 1_000_003 + day) * 1_009 + site * 7919 + chunk)
                # Shops are crawled one after the other, a product every few milliseconds.
                start = moment + timedelta(minutes=5 * site)
                batch: list[Sighting] = []
                changed = 0
                for offset, slot in enumerate(slots):
                    index = site * plan.products_per_site + slot
                    item = items[offset][site]
                    if day == 0:
                        self._start(index, site, item)
                    elif rng.random() < plan.change_rate:
                        self._move(index, rng)
                        changed += 1
                    product = self.product(site, slot, item)
                    when = start + timedelta(milliseconds=3 * slot)
                    batch.append(Sighting(product, self.observation(index, product, when)))
                yield changed, batch

    # --- what the reads ask for -------------------------------------------------------------

    def random_product(self, rng: random.Random) -> tuple[str, str]:
        """(site_id, product_id) of a random product."""
        site = rng.randrange(self.plan.sites)
        return self.sites[site].id, self.product_id(rng.randrange(self.plan.products_per_site))

    def random_gtin(self, rng: random.Random) -> str:
        """The GTIN of a random product that has one."""
        items = self.slot_items(rng.randrange(self.gtin_slots))
        gtin = items[rng.randrange(len(items))].gtin
        assert gtin is not None
        return gtin

    def random_query(self, rng: random.Random) -> str:
        """A search as people type them: a product word, often a variety, sometimes a brand,
        sometimes without accents, sometimes the last word cut short (a prefix)."""
        category = rng.choice(CATEGORIES)
        words = rng.choice(category.heads).split()[:1]
        roll = rng.random()
        if roll < 0.5:
            words += rng.choice(category.varieties).split()[-1:]
        elif roll < 0.7:
            words += rng.choice(BRANDS).split()[-1:]
        query = " ".join(words)
        if rng.random() < 0.3:
            query = query.lower()
        if rng.random() < 0.3:
            query = query.translate(str.maketrans("áéíóúñÁÉÍÓÚÑ", "aeiounAEIOUN"))
        if rng.random() < 0.3 and len(query.split()[-1]) > 4:
            query = query[: -rng.randint(1, 3)]
        return query

    def random_range(self, rng: random.Random) -> tuple[Decimal, Decimal]:
        """A price range people filter by, in euros."""
        low = rng.choice((0.5, 1, 1.5, 2, 3, 5, 8, 10, 15, 20))
        return Decimal(str(low)), Decimal(str(round(low * rng.uniform(1.3, 3.0), 2)))


# --- the databases ------------------------------------------------------------------------------


@dataclass
class Backend:
    """One store under test, with what was measured on it."""

    name: str
    store: Store
    describe: str
    batch_seconds: list[float] = field(default_factory=list)
    batch_rows: list[int] = field(default_factory=list)
    batch_day: list[int] = field(default_factory=list)
    cpu_client: float = 0.0
    cpu_server: float = 0.0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    server_pids: Callable[[], Awaitable[list[int]]] | None = None
    #: Concurrent writers during the load: consecutive batches (other sites) ingested at once.
    writers: int = 1
    reads: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    read_rounds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    read_rows: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    notes: list[str] = field(default_factory=list)


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time the processes used so far (scheduler run time, nanosecond resolution)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    return total


def _admin_url(server: str) -> dict[str, Any]:
    """asyncpg.connect arguments for the server's `postgres` database."""
    match = re.fullmatch(
        r"postgres(?:ql)?://(?:([^:@/]+)(?::([^@/]*))?@)?([^:/]+)(?::(\d+))?/?", server
    )
    if match is None:
        raise ValueError(f"{POSTGRES_ENV}={server!r}: expected postgresql://user@host:port")
    user, password, host, port = match.groups()
    return {
        "user": user or "postgres",
        "password": password,
        "host": host,
        "port": int(port or 5432),
        "database": "postgres",
    }


@contextlib.asynccontextmanager
async def postgres_database(server: str) -> Any:
    """A fresh database on `server` for this run, dropped afterwards; yields (url, name)."""
    admin = _admin_url(server)
    name = f"pf_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(**admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    auth = admin["user"] + (f":{admin['password']}" if admin["password"] else "")
    try:
        yield f"postgresql://{auth}@{admin['host']}:{admin['port']}/{name}", name
    finally:
        conn = await asyncpg.connect(**admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def postgres_facts(server: str, database: str) -> dict[str, Any]:
    """Server version and settings that matter for write and read speed."""
    conn = await asyncpg.connect(**{**_admin_url(server), "database": database})
    try:
        version = await conn.fetchval("SHOW server_version")
        settings = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in (
                "shared_buffers",
                "work_mem",
                "max_wal_size",
                "synchronous_commit",
                "effective_cache_size",
                "autovacuum",
                "random_page_cost",
                "jit",
            )
        }
    finally:
        await conn.close()
    return {"version": version, "settings": settings}


async def postgres_pids(server: str, database: str) -> list[int]:
    """The server processes serving connections to `database` (the store's)."""
    conn = await asyncpg.connect(**{**_admin_url(server), "database": "postgres"})
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


async def postgres_size(server: str, database: str) -> dict[str, Any]:
    """Database size, table sizes (with indexes, partitions summed) and stored row counts."""
    conn = await asyncpg.connect(**{**_admin_url(server), "database": database})
    try:
        size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        tables = {}
        for table in ("products", "price_observations", "matches"):
            tables[table] = {
                key: int(value or 0)
                for key, value in (
                    await conn.fetchrow(
                        "SELECT sum(pg_total_relation_size(relid))::bigint AS total,"
                        " sum(pg_relation_size(relid))::bigint AS heap,"
                        " sum(pg_indexes_size(relid))::bigint AS indexes"
                        " FROM (SELECT relid FROM pg_partition_tree($1)"
                        " UNION SELECT $1::regclass) AS parts",
                        table,
                    )
                ).items()
            }
        activity = await conn.fetch(
            "SELECT relname, n_live_tup, n_dead_tup, n_tup_hot_upd, n_tup_upd, autovacuum_count,"
            " autoanalyze_count FROM pg_stat_user_tables"
            " WHERE relname IN ('products', 'matches') OR relname LIKE 'price_observations%'"
            " ORDER BY relname"
        )
        counts = {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("products", "price_observations", "matches")
        }
        partitions = await conn.fetch(
            "SELECT c.relname, c.reltuples::bigint AS rows FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'price_observations'::regclass ORDER BY c.relname"
        )
    finally:
        await conn.close()
    return {
        "database_bytes": size,
        "table_bytes": tables,
        "table_activity": {row["relname"]: dict(row) for row in activity},
        "rows": counts,
        "partitions": {row["relname"]: row["rows"] for row in partitions},
    }


def sqlite_size(path: Path) -> dict[str, Any]:
    """File sizes (database, -wal, -shm) and stored row counts."""
    files = {
        suffix or "db": path.with_name(path.name + suffix).stat().st_size
        for suffix in ("", "-wal", "-shm")
        if path.with_name(path.name + suffix).exists()
    }
    with sqlite3.connect(path) as conn:
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("products", "price_observations", "matches")
        }
    conn.close()
    return {"database_bytes": sum(files.values()), "files": files, "rows": counts}


async def postgres_upkeep(server: str, database: str, *, vacuum: bool) -> float:
    """What autovacuum would have done by now: `ANALYZE`, and with `vacuum` also `VACUUM`
    (every product row and most history rows are rewritten each day, so autovacuum's 10 % and
    20 % thresholds are crossed daily). The server this was written on runs with
    `autovacuum = off`, so the benchmark does it itself, untimed. Returns the seconds taken."""
    start = time.perf_counter()
    await _admin_execute(server, database, "VACUUM (ANALYZE)" if vacuum else "ANALYZE")
    return time.perf_counter() - start


async def _admin_execute(server: str, database: str, statement: str) -> None:
    """One statement on `database` of `server` as the admin, on a connection of its own."""
    conn = await asyncpg.connect(**{**_admin_url(server), "database": database})
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def settle_writes(sqlite_path: Path | None, postgres: tuple[str, str] | None) -> float:
    """Untimed, after each round's `refresh_trending` and before its reads: what the refresh
    wrote goes to the disk first (PostgreSQL `CHECKPOINT`, SQLite's WAL checkpoint, then
    `sync`). At 1M products a refresh writes for minutes, and reads timed while the kernel
    writes that back measured the writeback, not the schema (Dec 2 run). Returns the seconds."""
    start = time.perf_counter()
    if postgres is not None:
        await _admin_execute(*postgres, "CHECKPOINT")
    if sqlite_path is not None:

        def checkpoint() -> None:
            db = sqlite3.connect(sqlite_path, timeout=60)
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                db.close()

        await asyncio.to_thread(checkpoint)
    await asyncio.to_thread(os.sync)
    return time.perf_counter() - start


# --- loading ------------------------------------------------------------------------------------


async def load(
    catalogue: Catalogue,
    backends: list[Backend],
    say: Callable[[str], None],
    upkeep: Callable[[bool], Awaitable[float]],
) -> dict[str, Any]:
    """Crawl every day of the plan into every backend, batch by batch, timing each call.

    `upkeep` (untimed) runs after the first batch (planner statistics only: `upkeep(False)`)
    and after every day (`upkeep(True)`): what a database's background maintenance would
    have done by then."""
    plan = catalogue.plan
    upkeep_seconds = 0.0
    generated = 0.0
    changed_total = 0
    number = 0
    began = time.perf_counter()
    # Batches waiting for a backend's concurrent writers (PostgreSQL with --writers N).
    waiting: dict[str, list[list[Sighting]]] = defaultdict(list)

    async def ingest(backend: Backend, batches: list[list[Sighting]], day: int) -> None:
        """Ingest `batches` concurrently (one writer each) and record each batch's share of
        the elapsed time."""
        pids = await backend.server_pids() if backend.server_pids else []
        server_before = cpu_seconds(pids)
        cpu_before = time.process_time()
        start = time.perf_counter()
        results = await asyncio.gather(*(backend.store.ingest(batch) for batch in batches))
        seconds = time.perf_counter() - start
        backend.cpu_client += time.process_time() - cpu_before
        backend.cpu_server += cpu_seconds(pids) - server_before
        for result in results:
            backend.batch_seconds.append(seconds / len(batches))
            backend.batch_rows.append(result.observations_inserted)
            backend.batch_day.append(day)
            backend.inserted += result.observations_inserted
            backend.updated += result.observations_updated
            backend.deleted += result.observations_deleted

    for day in range(plan.days):
        day_began = time.perf_counter()
        tick = time.perf_counter()
        for changed, batch in catalogue.day_batches(day):
            generated += time.perf_counter() - tick
            changed_total += changed
            order = backends if number % 2 == 0 else backends[::-1]
            for backend in order:
                queue = waiting[backend.name]
                queue.append(batch)
                if len(queue) >= backend.writers:
                    await ingest(backend, queue, day)
                    queue.clear()
            number += 1
            if number == 1:
                upkeep_seconds += await upkeep(False)
            tick = time.perf_counter()
        for backend in backends:
            if waiting[backend.name]:
                await ingest(backend, waiting[backend.name], day)
                waiting[backend.name].clear()
        upkeep_seconds += await upkeep(True)
        spent = {
            b.name: sum(s for s, d in zip(b.batch_seconds, b.batch_day, strict=True) if d == day)
            for b in backends
        }
        say(
            f"day {day + 1}/{plan.days}: {time.perf_counter() - day_began:.0f} s "
            + ", ".join(
                f"{name} {plan.products / seconds:,.0f} sightings/s"
                for name, seconds in spent.items()
            )
        )
    return {
        "wall_seconds": round(time.perf_counter() - began, 1),
        "generator_seconds": round(generated, 1),
        "price_changes_generated": changed_total,
        "batches_per_backend": number,
        "upkeep_seconds": round(upkeep_seconds, 1),
    }


def ingest_summary(backend: Backend, plan: Plan) -> dict[str, Any]:
    """Rates per batch (medians, p5 and p95) and overall, for day 0 and for the later days."""

    def rates(days: Callable[[int], bool]) -> dict[str, Any]:
        picked = [
            (seconds, rows)
            for seconds, rows, day in zip(
                backend.batch_seconds, backend.batch_rows, backend.batch_day, strict=True
            )
            if days(day)
        ]
        if not picked:
            return {}
        sizes = plan.batch
        sightings = [sizes / seconds for seconds, _ in picked]
        rows = [count / seconds for seconds, count in picked]
        seconds_total = sum(seconds for seconds, _ in picked)
        rows_total = sum(count for _, count in picked)
        batch_ms = [1000 * seconds for seconds, _ in picked]
        return {
            "batches": len(picked),
            "seconds": round(seconds_total, 1),
            "history_rows": rows_total,
            "sightings_per_s_median": round(statistics.median(sightings)),
            "sightings_per_s_p5": round(percentile(sightings, 0.05)),
            "sightings_per_s_overall": round(len(picked) * sizes / seconds_total),
            "history_rows_per_s_median": round(statistics.median(rows)),
            "history_rows_per_s_overall": round(rows_total / seconds_total),
            "batch_ms_p50": round(percentile(batch_ms, 0.5), 1),
            "batch_ms_p95": round(percentile(batch_ms, 0.95), 1),
            "batch_ms_max": round(max(batch_ms), 1),
        }

    total = sum(backend.batch_seconds)
    per_day: dict[int, float] = defaultdict(float)
    for seconds, day in zip(backend.batch_seconds, backend.batch_day, strict=True):
        per_day[day] += seconds
    # The last tenth of the load: how the rate holds up as the tables grow.
    tail_from = plan.days - max(1, plan.days // 10)
    return {
        "all": rates(lambda day: True),
        "day_0": rates(lambda day: day == 0),
        "later_days": rates(lambda day: day > 0),
        "last_tenth_of_days": rates(lambda day: day >= tail_from) if plan.days > 1 else {},
        "sightings_per_s_by_day": [round(plan.products / per_day[day]) for day in sorted(per_day)],
        "observations_inserted": backend.inserted,
        "observations_updated": backend.updated,
        "observations_deleted": backend.deleted,
        "client_cpu_percent": round(100 * backend.cpu_client / total, 1) if total else None,
        "server_cpu_percent": (
            round(100 * backend.cpu_server / total, 1) if total and backend.server_pids else None
        ),
    }


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Read:
    """One call of one read, with its parameters."""

    kind: str
    args: tuple[Any, ...] = ()


def reads_for(catalogue: Catalogue, rng: random.Random, count: int) -> dict[str, list[Read]]:
    """`count` parameterised calls of each read, the same for every backend."""
    plan: dict[str, list[Read]] = defaultdict(list)
    for _ in range(count):
        low, high = catalogue.random_range(rng)
        shop = rng.choice(catalogue.sites).id
        chosen = ProductFilter(site_id=shop, min_price=low, max_price=high)
        plan["search"].append(Read("search", (catalogue.random_query(rng),)))
        plan["compare"].append(Read("compare", (catalogue.random_gtin(rng),)))
        plan["history"].append(Read("history", catalogue.random_product(rng)))
        plan["list"].append(Read("list", (chosen,)))
        plan["list page 2"].append(Read("list page 2", (chosen,)))
        plan["trending 7"].append(Read("trending 7"))
    return plan


async def _call(store: Store, read: Read, cursor: str | None = None) -> tuple[int, str | None]:
    """Run one read: how many results it gave, and the next page's cursor for lists."""
    if read.kind == "search":
        return len(await store.search(read.args[0], limit=20)), None
    if read.kind == "compare":
        return len(await store.compare(gtin=read.args[0])), None
    if read.kind == "history":
        return len(await store.history(*read.args)), None
    if read.kind in ("list", "list page 2"):
        page = await store.list_products(read.args[0], sort=SortKey.PRICE, limit=50, cursor=cursor)
        return len(page.items), page.next_cursor
    if read.kind == "trending 7":
        return len(await store.trending(7)), None
    raise ValueError(f"unknown read {read.kind!r}")


async def _timed(store: Store, read: Read) -> tuple[float, int]:
    """One timed read. The second list page first fetches page 1, untimed, for its cursor;
    NaN seconds when the list has no second page."""
    cursor = None
    if read.kind == "list page 2":
        _, cursor = await _call(store, read)
        if cursor is None:
            return math.nan, 0
    start = time.perf_counter()
    rows, _ = await _call(store, read, cursor)
    return time.perf_counter() - start, rows


async def measure_reads(
    catalogue: Catalogue,
    backends: list[Backend],
    options: Options,
    say: Callable[[str], None],
    settle: Callable[[], Awaitable[float]],
) -> dict[str, Any]:
    """Every read on every backend in `options.rounds` interleaved rounds; `refresh_trending`
    once per round before them (timed), then `settle` (untimed: its writes reach the disk)."""
    count = QUICK_QUERIES if options.quick else QUERIES
    budget = QUICK_QUERY_BUDGET_S if options.quick else QUERY_BUDGET_S
    plan = reads_for(catalogue, random.Random(SEED + 1), count)
    warm = reads_for(catalogue, random.Random(SEED + 2), WARMUP)
    refresh: dict[str, list[float]] = defaultdict(list)
    settled: list[float] = []
    for backend in backends:
        for kind in READS:
            for read in warm[kind]:
                await _timed(backend.store, read)
    per_round = math.ceil(count / options.rounds)
    for number in range(options.rounds):
        for backend in backends:
            start = time.perf_counter()
            await backend.store.refresh_trending()
            refresh[backend.name].append(round(time.perf_counter() - start, 3))
        settled.append(round(await settle(), 3))
        for step, kind in enumerate(READS):
            calls = plan[kind][number * per_round : (number + 1) * per_round]
            order = backends if (number + step) % 2 == 0 else backends[::-1]
            for backend in order:
                began = time.perf_counter()
                times = []
                for read in calls:
                    seconds, rows = await _timed(backend.store, read)
                    if not math.isnan(seconds):
                        times.append(seconds)
                        backend.read_rows[kind].append(rows)
                    if time.perf_counter() - began > budget:
                        backend.notes.append(
                            f"{kind}: round {number + 1} stopped after {len(times)} calls "
                            f"({budget:g} s budget)"
                        )
                        break
                backend.reads[kind] += times
                if times:
                    backend.read_rounds[kind].append(statistics.median(times))
        say(f"reads: round {number + 1}/{options.rounds} done")
    return {
        "refresh_trending_seconds": dict(refresh),
        "settle_seconds": settled,
        "calls_per_read": count,
    }


def read_summary(backend: Backend) -> dict[str, Any]:
    """p50, p95 and max per read, in milliseconds, with the per-round medians."""
    summary = {}
    for kind in READS:
        times = [1000 * t for t in backend.reads.get(kind, [])]
        rows = backend.read_rows.get(kind, [])
        summary[kind] = {
            "calls": len(times),
            "p50_ms": round(percentile(times, 0.5), 2) if times else None,
            "p95_ms": round(percentile(times, 0.95), 2) if times else None,
            "max_ms": round(max(times), 2) if times else None,
            "round_medians_ms": [round(1000 * t, 2) for t in backend.read_rounds.get(kind, [])],
            "mean_results": round(statistics.fmean(rows), 1) if rows else None,
        }
    return summary


async def explain_reads(
    backend: Backend, catalogue: Catalogue, path: Path, server: str, database: str
) -> dict[str, list[str]]:
    """How the database runs one call of the search, list and trending reads: the read's
    last SELECT, captured as sent, through EXPLAIN ANALYZE (PostgreSQL) or EXPLAIN QUERY PLAN
    (SQLite)."""
    store = backend.store
    writer = getattr(store, "writer", None)
    engines = [e for e in (writer, *getattr(store, "readers", ())) if e is not None]
    captured: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            captured.append((statement, params))

    shop = catalogue.sites[0].id
    reads = {
        "search": Read("search", ("leche",)),
        "list": Read(
            "list", (ProductFilter(site_id=shop, min_price=Decimal(2), max_price=Decimal(5)),)
        ),
        "trending 7": Read("trending 7"),
    }
    plans: dict[str, list[str]] = {}
    for kind, read in reads.items():
        captured.clear()
        for engine in engines:
            event.listen(engine.sync_engine, "before_cursor_execute", grab)
        try:
            await _call(store, read)
        finally:
            for engine in engines:
                event.remove(engine.sync_engine, "before_cursor_execute", grab)
        if not captured:
            continue
        statement, params = captured[-1]
        if backend.name == "postgresql":
            conn = await asyncpg.connect(**{**_admin_url(server), "database": database})
            try:
                rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *params)
            finally:
                await conn.close()
            lines = [row[0] for row in rows]
        else:
            with sqlite3.connect(path) as lite:
                found = lite.execute("EXPLAIN QUERY PLAN " + statement, tuple(params)).fetchall()
            lite.close()
            lines = [str(row[-1]) for row in found]
        plans[kind] = [line[:200] for line in lines[:60]]
    return plans


def jsonable(value: Any) -> Any:
    """`value` with Decimals as floats and datetimes as ISO text, for the JSON results."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# --- profiling ----------------------------------------------------------------------------------

_STATEMENTS = (
    ("insert products", re.compile(r"^\s*INSERT INTO products\b", re.I)),
    ("update products (metadata)", re.compile(r"^\s*UPDATE products\b", re.I)),
    ("upsert matches", re.compile(r"^\s*INSERT INTO matches\b", re.I)),
    ("insert history", re.compile(r"^\s*INSERT INTO price_observations\b", re.I)),
    ("update history", re.compile(r"^\s*UPDATE price_observations\b", re.I)),
    ("delete history", re.compile(r"^\s*DELETE FROM price_observations\b", re.I)),
    ("insert product state", re.compile(r"^\s*INSERT INTO product_state\b", re.I)),
    ("update product state", re.compile(r"^\s*UPDATE product_state\b", re.I)),
    ("lock + read product state", re.compile(r"^\s*SELECT\b.*\bproduct_state\b", re.I | re.S)),
    ("read history slice", re.compile(r"^\s*SELECT\b.*\bFROM price_observations\b", re.I | re.S)),
    ("transaction", re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK)", re.I)),
)


def _statement_kind(statement: str) -> str:
    for name, pattern in _STATEMENTS:
        if pattern.search(statement):
            return name
    return "other: " + " ".join(statement.split())[:40]


#: The ingest statements `pricefleet.store.bulk` sends to the driver itself (SQLAlchemy's
#: cursor events do not see them), timed by wrapping its methods: (method, kind).
_BULK_CALLS = (
    ("_lock_states", "lock + read product state"),
    ("_insert_products", "insert products"),
    ("_update_products", "update products (metadata)"),
    ("_write", "history and state steps (one statement / one thread trip)"),
    ("_upsert_matches", "upsert matches"),
)


@contextlib.contextmanager
def _timed_bulk(statements: dict[str, list[float]], rows_by_kind: dict[str, int]) -> Iterator[None]:
    """Time `Bulk`'s driver-level calls while inside (every dialect), by kind."""
    from pricefleet.store import bulk

    patched: list[tuple[type, str, Any]] = []

    def wrap(cls: type, method: str, kind: str) -> None:
        original = cls.__dict__[method]

        async def timed(self: Any, rows: Any) -> Any:
            start = time.perf_counter()
            try:
                return await original(self, rows)
            finally:
                statements[kind].append(time.perf_counter() - start)
                rows_by_kind[kind] += (
                    sum(len(r) for _, r in rows) if method == "_write" else len(rows)
                )

        patched.append((cls, method, original))
        setattr(cls, method, timed)

    for cls in (bulk.PostgresBulk, bulk.SqliteBulk):
        for method, kind in _BULK_CALLS:
            if method in cls.__dict__:
                wrap(cls, method, kind)
    try:
        yield
    finally:
        for cls, method, original in patched:
            setattr(cls, method, original)


async def time_statements(backend: Backend, batches: list[list[Sighting]]) -> dict[str, Any]:
    """Ingest `batches` with every SQL statement timed (driver call to result), by kind; the
    rest of each call is Python: pricefleet's, SQLAlchemy's and the driver's own. Statements
    `store.bulk` sends to the driver itself are timed around its calls (on SQLite the trip to
    aiosqlite's thread included)."""
    engine = getattr(backend.store, "writer", None)
    statements: dict[str, list[float]] = defaultdict(list)
    rows_by_kind: dict[str, int] = defaultdict(int)
    started: dict[int, float] = {}

    def before(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        started[id(cursor)] = time.perf_counter()

    def after(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        kind = _statement_kind(statement)
        statements[kind].append(time.perf_counter() - started.pop(id(cursor), time.perf_counter()))
        rows_by_kind[kind] += len(params) if many and isinstance(params, list | tuple) else 1

    if engine is None:
        return {}
    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    total = 0.0
    try:
        with _timed_bulk(statements, rows_by_kind):
            for batch in batches:
                start = time.perf_counter()
                await backend.store.ingest(batch)
                total += time.perf_counter() - start
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
        event.remove(engine.sync_engine, "after_cursor_execute", after)
    count = len(batches)
    by_kind = {
        kind: {
            "ms_per_batch": round(1000 * sum(times) / count, 2),
            "share_percent": round(100 * sum(times) / total, 1),
            "executions_per_batch": round(len(times) / count, 1),
            "parameter_sets_per_batch": round(rows_by_kind[kind] / count),
        }
        for kind, times in sorted(statements.items(), key=lambda kv: -sum(kv[1]))
    }
    in_sql = sum(sum(times) for times in statements.values())
    return {
        "batches": count,
        "ms_per_batch": round(1000 * total / count, 1),
        "statements": by_kind,
        "outside_statements_ms_per_batch": round(1000 * (total - in_sql) / count, 1),
        "outside_statements_percent": round(100 * (total - in_sql) / total, 1),
    }


async def profile_python(backend: Backend, batches: list[list[Sighting]]) -> dict[str, Any]:
    """Ingest `batches` under cProfile (this thread only: SQLite's own work runs in aiosqlite's
    thread and shows up as waiting here). Times are inflated by the profiler's overhead."""
    profiler = cProfile.Profile()
    total = 0.0
    for batch in batches:
        start = time.perf_counter()
        profiler.enable()
        await backend.store.ingest(batch)
        profiler.disable()
        total += time.perf_counter() - start
    stats = pstats.Stats(profiler, stream=io.StringIO())
    count = len(batches)
    functions = [
        {
            "function": f"{_short(filename)}:{line}({name})",
            "calls": calls,
            "own_ms_per_batch": round(1000 * own / count, 2),
            "cumulative_ms_per_batch": round(1000 * cumulative / count, 2),
        }
        for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items()  # type: ignore[attr-defined]
    ]
    return {
        "batches": count,
        "ms_per_batch_under_profiler": round(1000 * total / count, 1),
        "top_own_time": sorted(functions, key=lambda f: -f["own_ms_per_batch"])[:25],
        "top_cumulative_pricefleet": [
            f
            for f in sorted(functions, key=lambda f: -f["cumulative_ms_per_batch"])
            if "pricefleet/" in f["function"]
        ][:20],
    }


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# --- the benchmark ------------------------------------------------------------------------------


def plan_from_env(quick: bool) -> Plan:
    """The plan `python -m bench.store --scale F --days N` (or the environment) asked for."""
    raw = os.environ.get(SCALE_ENV)
    scale = float(raw) if raw else DEFAULT_SCALE
    if not 0 < scale <= 1:
        raise ValueError(f"{SCALE_ENV}={raw}: the scale must be in (0, 1]")
    days = os.environ.get(DAYS_ENV)
    if days is not None and int(days) < 1:
        raise ValueError(f"{DAYS_ENV}={days}: at least one day")
    change = float(os.environ.get(CHANGE_ENV) or CHANGE_RATE)
    if not 0 < change <= 1:
        raise ValueError(f"{CHANGE_ENV}={change}: the change rate must be in (0, 1]")
    plan = Plan.make(scale, quick, int(days) if days else None, change)
    span = os.environ.get(SPAN_ENV)
    if span and plan.days > 1:
        plan = dataclasses.replace(plan, spacing=timedelta(days=float(span)) / (plan.days - 1))
    return plan


def _say(message: str) -> None:
    print(f"  [{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def source_fingerprint() -> dict[str, str]:
    """sha256 (first 12 hex digits) of each `pricefleet.store` module as this run loaded it:
    which version of the code the figures belong to."""
    import hashlib

    import pricefleet.store

    folder = Path(pricefleet.store.__file__).parent
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in sorted(folder.glob("*.py"))
    }


def _wanted_backends() -> tuple[str, ...]:
    raw = os.environ.get(BACKENDS_ENV)
    wanted = tuple(name.strip() for name in raw.split(",")) if raw else BACKENDS
    unknown = sorted(set(wanted) - set(BACKENDS))
    if unknown or not wanted:
        raise ValueError(f"{BACKENDS_ENV}={raw}: choose among {', '.join(BACKENDS)}")
    return tuple(name for name in BACKENDS if name in wanted)


@contextlib.asynccontextmanager
async def kept_postgres_database(server: str, name: str) -> Any:
    """The database `pf_bench_keep_<name>` on `server`, created when missing, never dropped;
    yields (url, name)."""
    admin = _admin_url(server)
    database = f"pf_bench_keep_{name}"
    conn = await asyncpg.connect(**admin)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
    auth = admin["user"] + (f":{admin['password']}" if admin["password"] else "")
    yield f"postgresql://{auth}@{admin['host']}:{admin['port']}/{database}", database


def _replay(catalogue: Catalogue, runs: int, count: int) -> None:
    """Bring a fresh catalogue's prices to where a kept database's are: every day of the load
    and the profiled batches of each earlier run, generated and thrown away."""
    plan = catalogue.plan
    for day in range(plan.days):
        for _ in catalogue.day_batches(day):
            pass
    for run in range(runs):
        _take(catalogue.day_batches(plan.days + 2 * run), count)
        _take(catalogue.day_batches(plan.days + 2 * run + 1), count)


async def _run(options: Options) -> dict[str, Any]:
    plan = plan_from_env(options.quick)
    fingerprint = source_fingerprint()
    server = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)
    wanted = _wanted_backends()
    keep = os.environ.get(KEEP_ENV)
    catalogue = Catalogue(plan)
    count = QUICK_PROFILE_BATCHES if options.quick else PROFILE_BATCHES
    _say(
        f"plan: {plan.products:,} products, {plan.days} days, {plan.sightings:,} sightings, "
        f"~{plan.target_stored_rows:,} stored rows per backend"
    )
    if keep:
        scratch = Path(tempfile.gettempdir()) / f"pricefleet-bench-store-{keep}"
        scratch.mkdir(exist_ok=True)
    else:
        scratch = Path(tempfile.mkdtemp(prefix="pricefleet-bench-store-"))
    path = scratch / "store.db"
    meta_path = scratch / "meta.json"
    meta: dict[str, Any] = {}
    if keep and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta["plan"] != repr(plan) or meta["backends"] != list(wanted):
            raise ValueError(f"{meta_path} was loaded with another plan or backends: {meta}")
        catalogue.first_day = datetime.fromisoformat(meta["first_day"])
        _say(f"reusing the databases kept as {keep!r} (run {meta['runs'] + 1}); replaying prices")
        _replay(catalogue, meta["runs"], count)
    runs = meta.get("runs", 0)
    backends: list[Backend] = []
    # A run without PostgreSQL still reads the server's facts, from a database dropped after.
    kept = keep and "postgresql" in wanted
    database_context = kept_postgres_database(server, keep) if kept else postgres_database(server)
    try:
        async with database_context as (pg_url, database):
            facts = await postgres_facts(server, database)
            if "sqlite" in wanted:
                backends.append(
                    Backend(
                        "sqlite",
                        Store.from_url(f"sqlite:///{path}"),
                        f"SQLite {sqlite3.sqlite_version} (WAL)",
                    )
                )
            pg_store = Store.from_url(pg_url) if "postgresql" in wanted else None
            pids_cache: list[int] = []

            async def cached_pids() -> list[int]:
                if not pids_cache:
                    pids_cache.extend(await postgres_pids(server, database))
                return pids_cache

            if pg_store is not None:
                postgres = Backend("postgresql", pg_store, f"PostgreSQL {facts['version']}")
                postgres.server_pids = cached_pids
                postgres.writers = int(os.environ.get(WRITERS_ENV) or 1)
                backends.append(postgres)
            for backend in backends:
                await backend.store.upgrade()
                await backend.store.upsert_sites(catalogue.sites)
            ensure = getattr(pg_store, "ensure_partitions", None)
            if ensure is not None:
                # A deployment's scheduler creates each month's partition as it comes; the
                # benchmark's history starts months ago, so create them the same way.
                months = (datetime.now(UTC).year * 12 + datetime.now(UTC).month) - (
                    catalogue.first_day.year * 12 + catalogue.first_day.month
                )
                await ensure(today=catalogue.first_day.date(), months_ahead=months + 1)

            async def upkeep(vacuum: bool) -> float:
                if pg_store is None:
                    return 0.0
                return await postgres_upkeep(server, database, vacuum=vacuum)

            if meta:
                loading: dict[str, Any] = {"reused": keep, "runs_before": runs}
            else:
                loading = await load(catalogue, backends, _say, upkeep)
                if keep:
                    meta = {
                        "plan": repr(plan),
                        "backends": list(wanted),
                        "first_day": catalogue.first_day.isoformat(),
                        "runs": 0,
                    }
                    meta_path.write_text(json.dumps(meta))
            pids_cache.clear()
            sizes = {}
            if "sqlite" in wanted:
                sizes["sqlite"] = sqlite_size(path)
            if pg_store is not None:
                sizes["postgresql"] = await postgres_size(server, database)
            _say("loaded; measuring reads")

            async def settle() -> float:
                return await settle_writes(
                    path if "sqlite" in wanted else None,
                    (server, database) if pg_store is not None else None,
                )

            reading = await measure_reads(catalogue, backends, options, _say, settle)
            plans = {
                backend.name: await explain_reads(backend, catalogue, path, server, database)
                for backend in backends
            }
            _say("profiling ingest")
            # Two more days, a few batches each: one with SQL statements timed, one under cProfile.
            first = plan.days + 2 * runs
            timed = [batch for _, batch in _take(catalogue.day_batches(first), count)]
            profiled = [batch for _, batch in _take(catalogue.day_batches(first + 1), count)]
            profiles = {}
            for backend in backends:
                profiles[backend.name] = {
                    "statements": await time_statements(backend, timed),
                    "cprofile": await profile_python(backend, profiled),
                }
            if keep:
                meta_path.write_text(json.dumps({**meta, "runs": runs + 1}))
            for backend in backends:
                await backend.store.close()
    finally:
        for backend in backends:
            with contextlib.suppress(Exception):
                await backend.store.close()
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return {
        "benchmark": "store",
        "parameters": {
            "scale": None if plan.quick else plan.scale,
            "quick": plan.quick,
            "seed": SEED,
            "sites": plan.sites,
            "products_per_site": plan.products_per_site,
            "products": plan.products,
            "days": plan.days,
            "sightings_per_backend": plan.sightings,
            "target_stored_rows": plan.target_stored_rows,
            "change_rate": plan.change_rate,
            "gtin_share": GTIN_SHARE,
            "batch": plan.batch,
            "rounds": options.rounds,
            "first_day": catalogue.first_day.isoformat(),
            "spacing_days": plan.spacing / timedelta(days=1),
            "backends": list(wanted),
            "kept_as": keep,
            "postgresql_writers": int(os.environ.get(WRITERS_ENV) or 1),
        },
        "versions": {
            "sqlite": sqlite3.sqlite_version,
            "postgresql": facts["version"],
            "postgresql_settings": facts["settings"],
            "asyncpg": asyncpg.__version__,
            "sqlalchemy": _version("sqlalchemy"),
            "aiosqlite": _version("aiosqlite"),
        },
        "source_sha256": fingerprint,
        "load": loading,
        "ingest": {b.name: ingest_summary(b, plan) for b in backends},
        "sizes": sizes,
        "reads": {b.name: read_summary(b) for b in backends},
        "refresh_trending_seconds": reading["refresh_trending_seconds"],
        "settle_seconds": reading["settle_seconds"],
        "read_notes": {b.name: b.notes for b in backends},
        "profile": profiles,
        "plans": plans,
    }


def _take(iterator: Iterator[Any], count: int) -> list[Any]:
    taken = []
    for item in iterator:
        taken.append(item)
        if len(taken) == count:
            break
    return taken


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


def run(options: Options) -> dict[str, Any]:
    """Load the synthetic catalogue into SQLite and PostgreSQL, then time reads, then profile."""
    result: dict[str, Any] = jsonable(asyncio.run(_run(options)))
    return result


# --- the tables ---------------------------------------------------------------------------------


def _n(value: float | None, digits: int = 0) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:,.{digits}f}")
    )


def _mib(value: float | None) -> str:
    return "–" if value is None else f"{value / 2**20:,.0f} MiB"


def render(result: dict[str, Any]) -> list[RenderableType]:
    """Ingest rates, read latencies, sizes and the profile's statement breakdown."""
    p = result["parameters"]
    ingest = Table(
        title=(
            f"Ingest — {p['products']:,} products × {p['days']} days = "
            f"{p['sightings_per_backend']:,} sightings per backend, batches of {p['batch']:,}"
        )
    )
    for column in (
        "backend",
        "phase",
        "batches",
        "sightings/s median",
        "sightings/s overall",
        "history rows/s median",
        "history rows/s overall",
        "batch p50 ms",
        "batch p95 ms",
        "seconds",
    ):
        ingest.add_column(column, justify="left" if column in {"backend", "phase"} else "right")
    for name, summary in result["ingest"].items():
        for phase in ("all", "day_0", "later_days", "last_tenth_of_days"):
            rates = summary.get(phase) or {}
            if not rates:
                continue
            ingest.add_row(
                name,
                phase.replace("_", " "),
                _n(rates["batches"]),
                _n(rates["sightings_per_s_median"]),
                _n(rates["sightings_per_s_overall"]),
                _n(rates["history_rows_per_s_median"]),
                _n(rates["history_rows_per_s_overall"]),
                _n(rates["batch_ms_p50"], 1),
                _n(rates["batch_ms_p95"], 1),
                _n(rates["seconds"], 1),
            )
    reads = Table(title=f"Reads — {p['rounds']} interleaved rounds, ms")
    for column in ("read", "backend", "calls", "p50", "p95", "max", "round medians", "rows"):
        reads.add_column(column, justify="left" if column in {"read", "backend"} else "right")
    for kind in READS:
        for name, summary in result["reads"].items():
            row = summary[kind]
            reads.add_row(
                kind,
                name,
                _n(row["calls"]),
                _n(row["p50_ms"], 1),
                _n(row["p95_ms"], 1),
                _n(row["max_ms"], 1),
                " / ".join(_n(m, 1) for m in row["round_medians_ms"]),
                _n(row["mean_results"], 1),
            )
    ratios = []
    pg, lite = result["reads"].get("postgresql"), result["reads"].get("sqlite")
    if pg and lite:
        for kind in READS:
            a, b = lite[kind]["p50_ms"], pg[kind]["p50_ms"]
            if a and b:
                ratios.append(f"{kind} {a / b:.2f}×")
    sizes = result["sizes"]
    lines = [
        "SQLite p50 / PostgreSQL p50: " + ", ".join(ratios),
        "refresh_trending s: "
        + ", ".join(
            f"{name} {' / '.join(f'{s:.2f}' for s in seconds)}"
            for name, seconds in result["refresh_trending_seconds"].items()
        )
        + "; then settled (checkpoints, sync, untimed) "
        + " / ".join(f"{s:.2f}" for s in result.get("settle_seconds", [])),
    ]
    for name, size in sizes.items():
        lines.append(
            f"{name}: {_mib(size['database_bytes'])} on disk; rows "
            + ", ".join(f"{table} {count:,}" for table, count in size["rows"].items())
        )
        if "table_bytes" in size:
            lines.append(
                f"{name} tables with indexes: "
                + ", ".join(
                    f"{table} {_mib(parts['total'])} (indexes {_mib(parts['indexes'])})"
                    for table, parts in size["table_bytes"].items()
                )
            )
        summary = result["ingest"][name]
        lines.append(
            f"{name}: history rows inserted {summary['observations_inserted']:,}, updated "
            f"{summary['observations_updated']:,}; client CPU {_n(summary['client_cpu_percent'])} %"
            + (
                f", server CPU {_n(summary['server_cpu_percent'])} %"
                if summary["server_cpu_percent"] is not None
                else ""
            )
            + " of the ingest time"
        )
    for name, notes in result["read_notes"].items():
        if notes:
            lines.append(f"{name}: " + "; ".join(notes[:6]))
    load = result["load"]
    if "reused" in load:
        lines.append(f"no load: the databases kept as {load['reused']!r} were reused")
    else:
        lines.append(
            f"load wall time {load['wall_seconds']:,.0f} s "
            f"(generating sightings: {load['generator_seconds']:,.0f} s)"
        )
    profile = Table(title="Ingest profile — ms per batch, by SQL statement (driver call to result)")
    profile.add_column("statement")
    timed = {name: prof["statements"] for name, prof in result["profile"].items()}
    for name in timed:
        profile.add_column(f"{name} ms", justify="right")
        profile.add_column(f"{name} %", justify="right")
        profile.add_column(f"{name} rows", justify="right")
    kinds = dict.fromkeys(kind for prof in timed.values() for kind in prof.get("statements", {}))
    for kind in kinds:
        cells = []
        for prof in timed.values():
            entry = prof.get("statements", {}).get(kind)
            cells += [
                _n(entry and entry["ms_per_batch"], 1),
                _n(entry and entry["share_percent"], 1),
                _n(entry and entry["parameter_sets_per_batch"]),
            ]
        profile.add_row(kind, *cells)
    cells = []
    for prof in timed.values():
        cells += [
            _n(prof.get("outside_statements_ms_per_batch"), 1),
            _n(prof.get("outside_statements_percent"), 1),
            "",
        ]
    profile.add_row("outside SQL statements (Python)", *cells)
    cells = []
    for prof in timed.values():
        cells += [_n(prof.get("ms_per_batch"), 1), "100", ""]
    profile.add_row("whole ingest call", *cells)
    hot = []
    for name, prof in result["profile"].items():
        top = prof["cprofile"]["top_own_time"][:8]
        hot.append(
            f"{name}, cProfile own time (ms per batch, inflated by the profiler; whole call "
            f"{prof['cprofile']['ms_per_batch_under_profiler']:,.0f} ms): "
            + "; ".join(f"{f['function']} {f['own_ms_per_batch']:.0f}" for f in top)
        )
    return [ingest, reads, Text("\n".join(lines)), profile, Text("\n".join(hot))]


BENCHMARK = Benchmark(
    name="store",
    summary="ingest sightings/s and read latency at catalogue scale, SQLite beside PostgreSQL",
    run=run,
    render=render,
)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.store [--scale F] [--days N] [python -m bench options]`.

    Runs `python -m bench --only store` at that scale; a run given --scale or --days keeps its
    results as `store-scale<F>[-days<N>]-<date>.json`, so it does not overwrite the default one.
    """
    parser = argparse.ArgumentParser(
        prog="python -m bench.store",
        description="Run the store benchmark at a scale; other options go to python -m bench.",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=None,
        help=f"fraction of 1M products and 10M stored rows (default {DEFAULT_SCALE})",
    )
    parser.add_argument(
        "--days", type=int, default=None, help="crawl at most this many days (fewer stored rows)"
    )
    parser.add_argument(
        "--backends",
        default=None,
        help="comma-separated backends to run (default: sqlite,postgresql)",
    )
    parser.add_argument(
        "--keep",
        default=None,
        metavar="NAME",
        help="keep the loaded databases as NAME; a later run with the same NAME and plan "
        "reuses them (no load: migrations, reads and the ingest profile only)",
    )
    parser.add_argument(
        "--span-days",
        type=float,
        default=None,
        help="spread the crawl's days over this many calendar days (trending windows)",
    )
    parser.add_argument(
        "--writers",
        type=int,
        default=None,
        help="PostgreSQL ingests this many consecutive batches (other sites) concurrently, "
        "through its connection pool (default 1; SQLite always has one writer)",
    )
    parser.add_argument(
        "--change-rate",
        type=float,
        default=None,
        help=f"share of products changing price state each day (default {CHANGE_RATE})",
    )
    args, rest = parser.parse_known_args(argv)
    if args.scale is not None:
        if not 0 < args.scale <= 1:
            parser.error("--scale must be in (0, 1]")
        os.environ[SCALE_ENV] = repr(args.scale)
    if args.days is not None:
        if args.days < 1:
            parser.error("--days must be at least 1")
        os.environ[DAYS_ENV] = str(args.days)
    if args.change_rate is not None:
        if not 0 < args.change_rate <= 1:
            parser.error("--change-rate must be in (0, 1]")
        os.environ[CHANGE_ENV] = repr(args.change_rate)
    if args.backends is not None:
        os.environ[BACKENDS_ENV] = args.backends
    if args.keep is not None:
        if not re.fullmatch(r"[a-z0-9_]{1,30}", args.keep):
            parser.error("--keep NAME: lower-case letters, digits and _ only")
        os.environ[KEEP_ENV] = args.keep
    if args.span_days is not None:
        os.environ[SPAN_ENV] = repr(args.span_days)
    if args.writers is not None:
        if not 1 <= args.writers <= 5:
            parser.error("--writers must be between 1 and 5 (the store's pool)")
        os.environ[WRITERS_ENV] = str(args.writers)
    from bench.__main__ import RESULTS
    from bench.__main__ import main as bench_main

    tagged = (
        args.scale is not None
        or args.days is not None
        or args.change_rate is not None
        or args.keep is not None
        or args.writers is not None
    ) and "--quick" not in rest
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    default = RESULTS / f"store-{date}.json"
    kept = default.with_name(default.name + ".kept")
    if tagged and default.exists():
        default.replace(kept)  # the default run's file, put back below
    try:
        status = bench_main(["--only", "store", *rest])
        if tagged and default.exists():
            tag = f"scale{args.scale if args.scale is not None else DEFAULT_SCALE:g}"
            tag += f"-days{args.days}" if args.days is not None else ""
            tag += f"-change{args.change_rate:g}" if args.change_rate is not None else ""
            tag += f"-span{args.span_days:g}" if args.span_days is not None else ""
            tag += f"-{args.backends.replace(',', '-')}" if args.backends is not None else ""
            tag += f"-writers{args.writers}" if args.writers is not None else ""
            tag += f"-{args.keep}" if args.keep is not None else ""
            tag += f"-{datetime.now(UTC):%H%M}"
            target = default.with_name(f"store-{tag}-{date}.json")
            default.replace(target)
            print(f"results kept as {target}")
    finally:
        if kept.exists():
            kept.replace(default)
    return status


if __name__ == "__main__":
    sys.exit(main())
