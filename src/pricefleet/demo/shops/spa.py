"""`spa`: a shop whose product grid and product pages are rendered in the browser by JavaScript.

The HTML is an empty shell (`<div id="app">`); `static/app.js` fetches `/spa/data/…json` and
draws the page. Without a browser a crawler sees no product at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pricefleet.demo.catalog import Category
from pricefleet.demo.formats import euro_eu, euro_plain, metric_size, unit_price
from pricefleet.demo.shops.base import DemoShop, Node, NotFoundPage
from pricefleet.demo.universe import Listing, day_start

__all__ = ["SpaShop"]

_APP_JS = (resources.files(__package__) / "static" / "spa-app.js").read_bytes()


class SpaShop(DemoShop):
    """Client-side rendered: HTML shells plus a JSON data endpoint per page."""

    name = "spa"
    title = "Frescura"
    share = 0.3
    gtin_share = 0.0

    def product_id(self, index: int) -> str:
        return f"sku-{index + 1}"

    def index_of(self, product_id: str) -> int:
        number = product_id.removeprefix("sku-")
        if not product_id.startswith("sku-") or not number.isdigit():
            raise NotFoundPage(product_id)
        return self._checked(int(number) - 1, product_id)

    def display_name(self, listing: Listing) -> str:
        item = listing.item
        return f"{item.brand} - {item.name.title()} ({metric_size(item)})"

    def product_path(self, listing: Listing) -> str:
        return f"{self.prefix}/p/{self.product_id(listing.index)}"

    def category_path(self, node: Node, page: int = 1) -> str:
        path = f"{self.prefix}/c/{node.slug}"
        return path if page == 1 else f"{path}/page/{page}"

    def shop_routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.shell),
            Route("/c/{slug}", self.shell),
            Route("/c/{slug}/page/{page:int}", self.shell),
            Route("/p/{pid}", self.shell),
            Route("/static/app.js", self.script),
            Route("/data/home.json", self.home_data),
            Route("/data/c/{slug}.json", self.category_data),
            Route("/data/p/{pid}.json", self.product_data),
        ]

    async def script(self, request: Request) -> Response:
        """The app itself."""
        return self.respond(request, _APP_JS, "application/javascript", day_start(0))

    async def shell(self, request: Request) -> Response:
        """An empty page that the app fills in; checks the URL names something first."""
        params = request.path_params
        if "pid" in params:
            self.listing(params["pid"])
            view, source = "product", f"{self.prefix}/data/p/{params['pid']}.json"
        elif "slug" in params:
            node = self.node(params["slug"])
            page = int(params.get("page", 1))
            if page > (1 if isinstance(node, Category) else self.page_count(node)):
                raise NotFoundPage(f"{node.slug} page {page}")
            view, source = "category", f"{self.prefix}/data/c/{node.slug}.json?page={page}"
        else:
            view, source = "home", f"{self.prefix}/data/home.json"
        html = (
            '<!doctype html><html lang="es"><head><meta charset="utf-8">'
            f"<title>{self.title}</title>"
            f'</head><body><div id="app" data-view="{view}" data-prefix="{self.prefix}" '
            f'data-source="{source}"></div>'
            "<noscript>Activa JavaScript para ver los productos.</noscript>"
            f'<script src="{self.prefix}/static/app.js" defer></script></body></html>'
        )
        return self.respond(request, html, "text/html; charset=utf-8", day_start(0))

    def _json(self, request: Request, data: Any, day: int) -> Response:
        return self.respond(request, orjson.dumps(data), "application/json", day_start(day))

    def _links(self, nodes: Any) -> list[dict[str, str]]:
        return [{"name": n.name, "url": self.category_path(n)} for n in nodes]

    async def home_data(self, request: Request) -> Response:
        day = self.state.day_for(request)
        tops = [n for n in self.nodes.values() if self.parents[n.slug] is None]
        return self._json(request, {"title": self.title, "children": self._links(tops)}, day)

    async def category_data(self, request: Request) -> Response:
        day = self.state.day_for(request)
        node = self.node(request.path_params["slug"])
        page = self.page_number(request)
        if isinstance(node, Category):
            if page != 1:
                raise NotFoundPage(f"{node.slug} page {page}")
            data: dict[str, Any] = {"title": node.name, "children": self._links(node.children)}
            return self._json(request, data, day)
        products = []
        for listing in self.page_listings(node, page):
            state = self.state_of(listing, day)
            products.append(
                {
                    "id": self.product_id(listing.index),
                    "name": self.display_name(listing),
                    "url": self.product_path(listing),
                    "price": euro_plain(state.price),
                    "price_text": euro_eu(state.price),
                }
            )
        pages = self.page_count(node)
        data = {
            "title": node.name,
            "page": page,
            "pages": pages,
            "products": products,
            "next": self.category_path(node, page + 1) if page < pages else None,
        }
        return self._json(request, data, day)

    async def product_data(self, request: Request) -> Response:
        day = self.state.day_for(request)
        listing = self.listing(request.path_params["pid"])
        item, state = listing.item, self.state_of(listing, day)
        product = {
            "id": self.product_id(listing.index),
            "name": self.display_name(listing),
            "brand": item.brand,
            "price": euro_plain(state.price),
            "price_text": euro_eu(state.price),
            "was_text": euro_eu(state.regular_price) if state.is_discounted else None,
            "unit_price_text": f"{euro_eu(unit_price(state.price, item))}/{item.size.unit}",
            "in_stock": state.in_stock,
            "size": metric_size(item),
        }
        data = {"title": self.display_name(listing), "product": product}
        return self.respond(
            request, orjson.dumps(data), "application/json", day_start(state.changed_day)
        )

    def export_paths(self) -> Iterator[str]:
        yield from super().export_paths()
        yield f"{self.prefix}/static/app.js"
        yield f"{self.prefix}/data/home.json"
        for node in self.nodes.values():
            pages = 1 if isinstance(node, Category) else self.page_count(node)
            for page in range(1, pages + 1):
                yield f"{self.prefix}/data/c/{node.slug}.json?page={page}"
        for listing in self.catalogue:
            yield f"{self.prefix}/data/p/{self.product_id(listing.index)}.json"
