"""Faults the demo shops inject, per shop, at configured rates or on demand (`?fault=NAME`).

    5xx        a 500, 502 or 503 answer
    429        Too Many Requests with `Retry-After`
    slow       the answer comes after `slow_seconds`
    hang       the connection stays open with no answer for `hang_seconds`, then closes
    truncate   the body stops halfway, short of its Content-Length, and the connection closes
    badjsonld  the page's JSON-LD is malformed (shops without JSON-LD ignore it)

Which requests fail is a deterministic function of the seed and the shop's request count, so a
run against one shop is repeatable; rates hold over many requests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["FAULTS", "FaultError", "FaultPlan", "parse_faults"]

FAULTS: tuple[str, ...] = ("5xx", "429", "slow", "hang", "truncate", "badjsonld")


class FaultError(ValueError):
    """A fault specification could not be read; the message says which part and why."""


def parse_faults(spec: str, shops: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Read `"jsonld:5xx=0.05,429=0.02;*:slow=0.1"` into rates per shop (`*` means every shop)."""
    rates: dict[str, dict[str, float]] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        target, sep, items = part.partition(":")
        if not sep:
            raise FaultError(f"fault spec {part!r}: expected SHOP:NAME=RATE[,NAME=RATE…]")
        target = target.strip()
        if target != "*" and target not in shops:
            raise FaultError(f"fault spec {part!r}: unknown shop {target!r}; shops: {shops}")
        for item in filter(None, (i.strip() for i in items.split(","))):
            name, eq, value = item.partition("=")
            name = name.strip()
            if not eq or name not in FAULTS:
                raise FaultError(f"fault {item!r}: expected NAME=RATE with NAME in {FAULTS}")
            try:
                rate = float(value)
            except ValueError:
                raise FaultError(f"fault {item!r}: rate {value!r} is not a number") from None
            if not 0.0 <= rate <= 1.0:
                raise FaultError(f"fault {item!r}: rate must be between 0 and 1")
            for shop in shops if target == "*" else (target,):
                rates.setdefault(shop, {})[name] = rate
    for shop, shop_rates in rates.items():
        if sum(shop_rates.values()) > 1.0:
            raise FaultError(f"faults of shop {shop!r} add up to more than 1: {shop_rates}")
    return rates


@dataclass(slots=True)
class FaultPlan:
    """The fault rates in force and the per-shop request counters that draw from them."""

    seed: int
    rates: dict[str, dict[str, float]] = field(default_factory=dict)
    slow_seconds: float = 2.0
    hang_seconds: float = 120.0
    retry_after: int = 1
    _counters: dict[str, int] = field(default_factory=dict)

    def set_rates(self, rates: Mapping[str, Mapping[str, float]]) -> None:
        """Replace every shop's rates."""
        self.rates = {shop: dict(r) for shop, r in rates.items()}

    def draw(self, shop: str, forced: str | None = None) -> str | None:
        """The fault for the next request to `shop`, or None for a healthy answer."""
        count = self._counters.get(shop, 0)
        self._counters[shop] = count + 1
        if forced:
            if forced not in FAULTS:
                return None
            return forced
        shop_rates = self.rates.get(shop)
        if not shop_rates:
            return None
        key = f"{self.seed}\x1f{shop}\x1f{count}".encode()
        roll = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") / 2.0**64
        for name in FAULTS:
            rate = shop_rates.get(name, 0.0)
            if roll < rate:
                return name
            roll -= rate
        return None
