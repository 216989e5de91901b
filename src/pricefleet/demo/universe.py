"""The demo shops' deterministic product universe: every product, price and stock level, on demand.

Nothing is held in memory per product: a product is a pure function of `(seed, uid)`, a shop's
catalogue is a pure function of `(seed, shop, index)` and a price of `(…, day)`, so a shop of
1,000,000 products costs no more memory than one of 100. The same universe product appears in
several shops (under each shop's own name, id and price) - the ground truth for matching.

Layout: the leaves of `TAXONOMY` are numbered `0..L-1`; leaf `l` holds `per_leaf` universe
products, `uid = l * per_leaf + k`. Shop product `i` lives in leaf `i % L` at position `i // L`,
and maps to `k` through an affine permutation of `range(per_leaf)` that differs by shop, so two
shops share most, not all, of their products.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property

from pricefleet.demo.catalog import TAXONOMY, Category, Leaf, Size

__all__ = ["EPOCH", "Item", "Listing", "ShopCatalogue", "State", "Universe", "gtin_check_digit"]

#: Day 0 of the demo clock.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
#: How much larger the universe is than the largest shop: the part no shop carries.
_SPARE = 1.25
_CENT = Decimal("0.01")


def gtin_check_digit(body: str) -> str:
    """The GS1 check digit for the digits of a GTIN without its last digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def _coprime_step(modulus: int, seed: int) -> int:
    """A multiplier coprime to `modulus`, so `(a * x + b) % modulus` permutes the range."""
    if modulus <= 2:
        return 1
    step = seed % (modulus - 1) + 1
    while math.gcd(step, modulus) != 1:
        step += 1
    return step


@dataclass(frozen=True, slots=True)
class Item:
    """One product of the universe, before any shop names or prices it."""

    uid: int
    path: tuple[Category, ...]  # department, category
    leaf: Leaf
    base: str
    variant: str
    brand: str
    size: Size
    pack: int
    line: int  # > 0 only when the universe outgrows the leaf's combinations
    gtin: str
    unit_value: Decimal  # € per kg / l / unit at the universe's reference level

    @property
    def name(self) -> str:
        """The generic product name, without brand or size."""
        name = f"{self.base} {self.variant}".strip()
        return f"{name} {self.line + 1}" if self.line else name

    @property
    def trail(self) -> tuple[Category | Leaf, ...]:
        """Department, category and leaf the product is filed under."""
        return (*self.path, self.leaf)

    @property
    def total_size(self) -> Decimal:
        """Quantity in the pack, in `size.unit` (for a 6 x 1 l pack: 6)."""
        return Decimal(repr(self.size.value)) * self.pack


@dataclass(frozen=True, slots=True)
class State:
    """A shop product's price and stock on one day."""

    price: Decimal
    regular_price: Decimal
    discount_pct: int  # 0 when not discounted
    in_stock: bool
    changed_day: int  # the first day of the run of days with this same state

    @property
    def is_discounted(self) -> bool:
        """Whether the product sells below its regular price today."""
        return self.discount_pct > 0


@dataclass(frozen=True, slots=True)
class Listing:
    """One product as one shop carries it: its index `i` in the shop, and its universe item."""

    shop: str
    index: int
    item: Item


class Universe:
    """All products of all demo shops for one seed; sized for shops of up to `products` each."""

    def __init__(self, seed: int, products: int) -> None:
        if products < 1:
            raise ValueError("products must be at least 1")
        self.seed = seed
        self.products = products
        self.leaves: tuple[Leaf, ...] = tuple(_leaves(TAXONOMY))
        self.paths: tuple[tuple[Category, ...], ...] = tuple(_paths(TAXONOMY))
        self.per_leaf = max(1, math.ceil(products * _SPARE / len(self.leaves)))
        self._seed_bytes = str(seed).encode()

    def hash(self, *parts: object) -> int:
        """A stable 64-bit hash of the seed and `parts`."""
        key = self._seed_bytes + b"\x1f" + "\x1f".join(map(str, parts)).encode()
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return int(struct.unpack("<Q", digest)[0])

    def unit(self, *parts: object) -> float:
        """A stable pseudo-random number in [0, 1) for `parts`."""
        return self.hash(*parts) / 2.0**64

    @property
    def size(self) -> int:
        """How many products the universe holds."""
        return self.per_leaf * len(self.leaves)

    def item(self, uid: int) -> Item:
        """The universe product `uid`."""
        if not 0 <= uid < self.size:
            raise IndexError(uid)
        leaf_no, k = divmod(uid, self.per_leaf)
        leaf = self.leaves[leaf_no]
        radices = (
            len(leaf.bases),
            len(leaf.brands),
            len(leaf.sizes),
            len(leaf.variants),
            len(leaf.packs),
        )
        combos = math.prod(radices)
        line, k_in = divmod(k, combos)
        combo = (_coprime_step(combos, self.hash("combo", leaf.slug)) * k_in + leaf_no) % combos
        digits = []
        for radix in radices:
            combo, digit = divmod(combo, radix)
            digits.append(digit)
        base, brand, size, variant, pack = digits
        low, high = leaf.price_per_unit
        unit_value = low + (high - low) * self.unit("ppu", uid)
        body = f"84{self.hash('gtin', uid) % 10**10:010d}"
        return Item(
            uid=uid,
            path=self.paths[leaf_no],
            leaf=leaf,
            base=leaf.bases[base],
            variant=leaf.variants[variant],
            brand=leaf.brands[brand],
            size=leaf.sizes[size],
            pack=leaf.packs[pack],
            line=line,
            gtin=body + gtin_check_digit(body),
            unit_value=Decimal(f"{unit_value:.4f}"),
        )

    def shop(self, name: str, products: int) -> ShopCatalogue:
        """The catalogue of shop `name`, holding `products` products (at most the universe's)."""
        return ShopCatalogue(self, name, min(products, self.products))


class ShopCatalogue:
    """Which universe products one shop carries, in which leaf and page, at what price."""

    def __init__(self, universe: Universe, name: str, products: int) -> None:
        self.universe = universe
        self.name = name
        self.products = products
        per_leaf = universe.per_leaf
        self._step = _coprime_step(per_leaf, universe.hash("step", name))
        self._offset = universe.hash("offset", name) % per_leaf
        self._price_factor = 0.92 + 0.2 * universe.unit("shop-level", name)

    @cached_property
    def leaf_count(self) -> int:
        """How many leaf categories the shop has."""
        return len(self.universe.leaves)

    def leaf_size(self, leaf_no: int) -> int:
        """How many products the shop has in leaf `leaf_no`."""
        count = self.leaf_count
        return max(0, (self.products - leaf_no + count - 1) // count)

    def index_at(self, leaf_no: int, position: int) -> int:
        """The shop index of the `position`-th product of leaf `leaf_no`."""
        return leaf_no + self.leaf_count * position

    def listing(self, index: int) -> Listing:
        """Shop product `index` (0-based, below `products`)."""
        if not 0 <= index < self.products:
            raise IndexError(index)
        leaf_no, position = index % self.leaf_count, index // self.leaf_count
        k = (self._step * position + self._offset) % self.universe.per_leaf
        return Listing(self.name, index, self.universe.item(leaf_no * self.universe.per_leaf + k))

    def __iter__(self) -> Iterator[Listing]:
        for index in range(self.products):
            yield self.listing(index)

    def has_gtin(self, listing: Listing, share: float) -> bool:
        """Whether this shop prints the GTIN of `listing` (it does for about `share` of them)."""
        return self.universe.unit("shows-gtin", self.name, listing.item.uid) < share

    def state(self, listing: Listing, day: int) -> State:
        """Price and stock of `listing` on `day`, and since when they have been so."""
        current = self._raw_state(listing, day)
        changed = day
        # Prices move at most weekly; 60 days back is far beyond any run of equal states.
        for back in range(day - 1, day - 60, -1):
            if self._raw_state(listing, back) != current:
                break
            changed = back
        return State(*current, changed_day=changed)

    def _raw_state(self, listing: Listing, day: int) -> tuple[Decimal, Decimal, int, bool]:
        u, item, shop = self.universe, listing.item, self.name
        phase = u.hash("phase", shop, item.uid) % 14
        period = (day + phase) // 14
        level = self._price_factor * (0.94 + 0.12 * u.unit("drift", shop, item.uid, period))
        pack_saving = 0.93 if item.pack > 1 else 1.0
        raw = float(item.unit_value) * float(item.total_size) * level * pack_saving
        regular = _shelf_price(raw)
        block = (day + u.hash("disc-phase", shop, item.uid) % 10) // 10
        discount = 0
        if u.unit("disc", shop, item.uid, block) < 0.15:
            discount = (10, 15, 20, 25, 30)[u.hash("pct", shop, item.uid, block) % 5]
        price = _shelf_price(float(regular) * (100 - discount) / 100) if discount else regular
        if price >= regular:
            discount, price = 0, regular
        in_stock = u.unit("stock", shop, item.uid, day // 3) >= 0.04
        return price, regular, discount, in_stock


def _shelf_price(value: float) -> Decimal:
    """Round to a shelf price: cents ending in 5 or 9, never below 0.05."""
    cents = max(5, round(value * 100))
    cents = cents - cents % 10 + (9 if cents % 10 >= 5 else 5)
    return (Decimal(cents) / 100).quantize(_CENT, rounding=ROUND_HALF_UP)


def day_start(day: int) -> datetime:
    """Midnight UTC of demo day `day`."""
    return EPOCH + timedelta(days=day)


def _leaves(nodes: tuple[Category | Leaf, ...]) -> Iterator[Leaf]:
    for node in nodes:
        if isinstance(node, Leaf):
            yield node
        else:
            yield from _leaves(node.children)


def _paths(
    nodes: tuple[Category | Leaf, ...], trail: tuple[Category, ...] = ()
) -> Iterator[tuple[Category, ...]]:
    for node in nodes:
        if isinstance(node, Leaf):
            yield trail
        else:
            yield from _paths(node.children, (*trail, node))
