"""Helpers for the fetch tests: demo shops of our own, their meters, a stub DNS, local servers."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.request import Request, urlopen

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from pricefleet.demo import DemoConfig, create_app
from pricefleet.demo.shops.base import DemoShop
from pricefleet.fetch import SitePolicy
from tests.servers import DemoServer, free_port, start_demo

SEED = 7

__all__ = [
    "SEED",
    "Handler",
    "LocalServer",
    "StartServer",
    "StubResolver",
    "demo_shop",
    "free_port",
    "own_shop",
    "policy",
    "product_urls",
    "set_faults",
    "stats",
]


def own_shop(own_demo: list[DemoServer], *options: str, products: int = 400) -> DemoServer:
    """A demo server of this test's own (its meter counts only this test's requests)."""
    server = start_demo("--products", str(products), "--seed", str(SEED), "--day", "10", *options)
    own_demo.append(server)
    return server


@cache
def _shop(name: str, products: int) -> DemoShop:
    shop: DemoShop = create_app(DemoConfig(products=products, seed=SEED)).state.shops[name]
    return shop


def product_urls(server: DemoServer, shop: str, count: int, products: int = 400) -> list[str]:
    """The first `count` product page URLs of `shop` (computed here, not fetched)."""
    demo = _shop(shop, products)
    urls = [server.url + demo.product_path(listing) for listing in demo.catalogue]
    assert len(urls) >= count, f"{shop} has only {len(urls)} products"
    return urls[:count]


def demo_shop(shop: str, products: int = 400) -> DemoShop:
    """The demo shop as a server started with `own_shop` has it."""
    return _shop(shop, products)


def policy(server: DemoServer, shop: str, **changes: Any) -> SitePolicy:
    """A policy for a demo shop: private network allowed (it is ours), its own robots.txt."""
    values: dict[str, Any] = {
        "allow_private_network": True,
        "robots_url": f"{server.url}/{shop}/robots.txt",
        "backoff_base": 0.05,
        "backoff_max": 2.0,
    }
    values.update(changes)
    return SitePolicy(shop, **values)


def stats(server: DemoServer, shop: str) -> dict[str, Any]:
    """The shop's own access-log view (`GET /_stats`), read without going through a Fetcher."""
    with urlopen(f"{server.url}/_stats", timeout=10) as answer:
        data: dict[str, Any] = json.loads(answer.read())
    shop_stats: dict[str, Any] = data["shops"][shop]
    return shop_stats


def set_faults(server: DemoServer, spec: str) -> None:
    """Change the shop's fault rates (`PUT /_faults`)."""
    body = json.dumps({"spec": spec}).encode()
    request = Request(f"{server.url}/_faults", data=body, method="PUT")
    with urlopen(request, timeout=10) as answer:
        assert answer.status == 200


class StubResolver(AbstractResolver):
    """DNS from a table: never asks a real resolver, so tests cannot depend on (or leak to) DNS."""

    def __init__(self, table: Mapping[str, str]) -> None:
        self.table = dict(table)
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The table's address for `host`, or a resolution error."""
        self.asked.append(host)
        address = self.table.get(host.rstrip("."))
        if address is None:
            raise OSError(f"{host}: not in the test's DNS table")
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": family,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        """Nothing to release."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class LocalServer:
    """A tiny aiohttp server on 127.0.0.1 that counts the paths it was asked for."""

    port: int
    hits: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL, without trailing slash."""
        return f"http://127.0.0.1:{self.port}"


#: The `local_server` fixture: starts a counting server for a handler.
StartServer = Callable[[Handler], Awaitable[LocalServer]]
