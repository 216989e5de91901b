"""`jsonld`: a modern shop with schema.org Product JSON-LD on heavy (40-70 KB) product pages.

Publishes gtin13 on most products; listing pages paginate by path (`/c/leche/page/2/`).
The `badjsonld` fault makes the JSON-LD block of a page malformed, as broken themes do.
"""

from __future__ import annotations

from functools import cached_property
from html import escape
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pricefleet.demo.catalog import Category
from pricefleet.demo.formats import euro_eu, euro_plain, size_label, unit_price
from pricefleet.demo.shops.base import DemoShop, Node, NotFoundPage
from pricefleet.demo.shops.chrome import inline_styles, menu, padding_to, tracking_script
from pricefleet.demo.universe import Listing, day_start

__all__ = ["JsonLdShop"]

_AVAILABILITY = {True: "https://schema.org/InStock", False: "https://schema.org/OutOfStock"}
_UNIT_CODES = {"kg": "KGM", "l": "LTR", "unit": "C62"}


class JsonLdShop(DemoShop):
    """Product JSON-LD with offers, brand, gtin13 and availability; breadcrumbs as JSON-LD too."""

    name = "jsonld"
    title = "Mercado Central"
    share = 1.0
    gtin_share = 0.9

    def display_name(self, listing: Listing) -> str:
        item = listing.item
        return f"{item.name} {item.brand} {size_label(item)}"

    def category_path(self, node: Node, page: int = 1) -> str:
        path = f"{self.prefix}/c/{node.slug}/"
        return path if page == 1 else f"{path}page/{page}/"

    def shop_routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.home),
            Route("/c/{slug}/", self.category),
            Route("/c/{slug}/page/{page:int}/", self.category),
            Route("/p/{pid}/{slug}", self.product),
        ]

    @cached_property
    def _chrome(self) -> tuple[str, str]:
        """The header and footer every page shares, rendered once."""
        departments = [(self.category_path(node), node.name) for node in self.nodes.values()]
        header = (
            f"{inline_styles(self.name)}</head><body>"
            f'<header class="site-header"><a class="logo" href="{self.prefix}/">{self.title}</a>'
            f'<form action="{self.prefix}/search"><input name="q"></form>'
            f'<a href="{self.prefix}/cart">Carrito</a> '
            f'<a href="{self.prefix}/account">Mi cuenta</a>'
            f'<nav class="mega-menu">{menu(departments, "nav")}</nav></header>'
        )
        footer = (
            f'<footer class="site-footer">{menu(departments[:30], "footer")}'
            "<p>© Mercado Central S.A. Precios con IVA incluido.</p></footer>"
        )
        return header, footer

    def _page(self, title: str, canonical: str, body: str, head: str = "") -> str:
        header, footer = self._chrome
        return (
            '<!doctype html><html lang="es"><head><meta charset="utf-8">'
            f"<title>{escape(title)} | {self.title}</title>"
            f'<link rel="canonical" href="{escape(canonical)}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'{head}{header}<main id="main">{body}</main>{footer}'
            f"{tracking_script(self.name, canonical)}</body></html>"
        )

    async def home(self, request: Request) -> Response:
        day = self.state.day_for(request)
        departments = [node for node in self.nodes.values() if self.parents[node.slug] is None]
        body = "<h1>Bienvenido a Mercado Central</h1>" + menu(
            ((self.category_path(d), d.name) for d in departments), "departments"
        )
        html = self._page("Inicio", f"{request.base_url}{self.name}/", body)
        return self.respond(request, html, "text/html; charset=utf-8", day_start(day))

    async def category(self, request: Request) -> Response:
        day = self.state.day_for(request)
        node = self.node(request.path_params["slug"])
        page = int(request.path_params.get("page", 1))
        trail = self._breadcrumbs(self.trail(node))
        head = ""
        if isinstance(node, Category):
            if page != 1:
                raise NotFoundPage(f"{node.slug} page {page}")
            body = f"{trail}<h1>{escape(node.name)}</h1>" + menu(
                ((self.category_path(child), child.name) for child in node.children),
                "subcategories",
            )
        else:
            listings = self.page_listings(node, page)
            pages = self.page_count(node)
            cards = "".join(self._card(listing, day) for listing in listings)
            nav = []
            if page > 1:
                prev = self.category_path(node, page - 1)
                head += f'<link rel="prev" href="{prev}">'
                nav.append(f'<a rel="prev" href="{prev}">Anterior</a>')
            if page < pages:
                nxt = self.category_path(node, page + 1)
                head += f'<link rel="next" href="{nxt}">'
                nav.append(f'<a rel="next" class="next" href="{nxt}">Siguiente</a>')
            sort = f'<a href="{self.category_path(node)}?sort=price">Ordenar por precio</a>'
            body = (
                f"{trail}<h1>{escape(node.name)}</h1>{sort}"
                f'<ul class="product-grid">{cards}</ul>'
                f'<nav class="pagination">{" ".join(nav)} Página {page} de {pages}</nav>'
            )
        canonical = f"{str(request.base_url).rstrip('/')}{self.category_path(node, page)}"
        html = self._page(node.name, canonical, body, head)
        return self.respond(request, html, "text/html; charset=utf-8", day_start(day))

    def _card(self, listing: Listing, day: int) -> str:
        state = self.state_of(listing, day)
        name = escape(self.display_name(listing))
        return (
            f'<li class="product-card"><a href="{self.product_path(listing)}">{name}</a>'
            f'<span class="price">{euro_eu(state.price)}</span>'
            f'<a class="add" href="{self.prefix}/cart?add={self.product_id(listing.index)}">'
            "Añadir</a></li>"
        )

    def _breadcrumbs(self, trail: list[Node]) -> str:
        links = " › ".join(
            f'<a href="{self.category_path(node)}">{escape(node.name)}</a>' for node in trail
        )
        return f'<nav class="breadcrumbs"><a href="{self.prefix}/">Inicio</a> › {links}</nav>'

    def product_ld(self, listing: Listing, day: int, url: str) -> dict[str, Any]:
        """The schema.org Product this page describes."""
        item, state = listing.item, self.state_of(listing, day)
        offer: dict[str, Any] = {
            "@type": "Offer",
            "url": url,
            "priceCurrency": "EUR",
            "price": euro_plain(state.price),
            "availability": _AVAILABILITY[state.in_stock],
            "itemCondition": "https://schema.org/NewCondition",
            "priceSpecification": [
                {
                    "@type": "UnitPriceSpecification",
                    "price": euro_plain(unit_price(state.price, item)),
                    "priceCurrency": "EUR",
                    "referenceQuantity": {
                        "@type": "QuantitativeValue",
                        "value": 1,
                        "unitCode": _UNIT_CODES[item.size.unit],
                    },
                }
            ],
        }
        if state.is_discounted:
            offer["priceSpecification"].append(
                {
                    "@type": "UnitPriceSpecification",
                    "priceType": "https://schema.org/StrikethroughPrice",
                    "price": euro_plain(state.regular_price),
                    "priceCurrency": "EUR",
                }
            )
        product: dict[str, Any] = {
            "@context": "https://schema.org",
            "@type": "Product",
            "name": self.display_name(listing),
            "sku": self.product_id(listing.index),
            "brand": {"@type": "Brand", "name": item.brand},
            "category": " > ".join(node.name for node in item.trail),
            "image": f"/{self.name}/img/{item.uid}.jpg",
            "description": f"{item.name} de {item.brand}, {size_label(item)}.",
            "offers": offer,
        }
        if self.shows_gtin(listing):
            product["gtin13"] = item.gtin
        return product

    async def product(self, request: Request) -> Response:
        day = self.state.day_for(request)
        listing = self.listing(request.path_params["pid"])
        item, state = listing.item, self.state_of(listing, day)
        base = str(request.base_url).rstrip("/")
        url = f"{base}{self.product_path(listing)}"
        ld = orjson.dumps(self.product_ld(listing, day, url)).decode()
        if request.scope.get("state", {}).get("fault") == "badjsonld":
            ld = ld[:-1].replace('","', '",\n// precio\n"', 1) + ",}"
        trail = list(item.trail)
        crumbs = {
            "@context": "https://schema.org",
            "@type": "BreadcrumbList",
            "itemListElement": [
                {
                    "@type": "ListItem",
                    "position": n + 1,
                    "name": node.name,
                    "item": f"{base}{self.category_path(node)}",
                }
                for n, node in enumerate(trail)
            ],
        }
        ld = ld.replace("</", "<\\/")  # a name holding "</script>" must not end the block
        head = (
            f'<script type="application/ld+json">{ld}</script>'
            f'<script type="application/ld+json">{orjson.dumps(crumbs).decode()}</script>'
        )
        old = (
            f'<del class="was">{euro_eu(state.regular_price)}</del>' if state.is_discounted else ""
        )
        stock = "En stock" if state.in_stock else "Agotado"
        related = "".join(
            f'<li><a href="{self.product_path(r)}">{escape(self.display_name(r))}</a></li>'
            for r in self.related(listing)
        )
        body = (
            f"{self._breadcrumbs(trail)}<article class='product'>"
            f"<h1>{escape(self.display_name(listing))}</h1>"
            f'<div class="price-box">{old}<span class="now">{euro_eu(state.price)}</span>'
            f'<span class="unit">{euro_eu(unit_price(state.price, item))}/{item.size.unit}</span>'
            f'</div><p class="stock">{stock}</p>'
            f'<a class="add" href="{self.prefix}/cart?add={self.product_id(listing.index)}">'
            f"Añadir al carrito</a></article>"
            f'<section class="related"><h2>También te puede interesar</h2><ul>{related}</ul>'
            "</section>"
        )
        html = self._page(self.display_name(listing), url, body, head)
        target = 41_000 + self.state.universe.hash("page-size", item.uid) % 28_000
        html = html.replace(
            "</main>", padding_to(target, len(html.encode()), f"{self.name}:{item.uid}") + "</main>"
        )
        return self.respond(request, html, "text/html; charset=utf-8", day_start(state.changed_day))
