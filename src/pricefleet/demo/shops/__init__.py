"""The five demo shops, each a different way real shops publish products."""

from __future__ import annotations

from pricefleet.demo.shops.api import ApiShop
from pricefleet.demo.shops.base import DemoShop
from pricefleet.demo.shops.jsonld import JsonLdShop
from pricefleet.demo.shops.microdata import MicrodataShop
from pricefleet.demo.shops.plain import PlainShop
from pricefleet.demo.shops.spa import SpaShop

__all__ = [
    "SHOP_TYPES",
    "ApiShop",
    "DemoShop",
    "JsonLdShop",
    "MicrodataShop",
    "PlainShop",
    "SpaShop",
]

SHOP_TYPES: tuple[type[DemoShop], ...] = (JsonLdShop, MicrodataShop, ApiShop, SpaShop, PlainShop)
