"""`plain`: an old shop with no structured data at all; only a CSS-selector recipe can read it.

Query-string URLs (`/plain/product?id=17`, `/plain/list?cat=leche&p=2`), comma decimals
without thousands separators, the brand in its own div, stock as words.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pricefleet.demo.catalog import Category
from pricefleet.demo.formats import spelled_size, unit_price
from pricefleet.demo.shops.base import DemoShop, Node, NotFoundPage
from pricefleet.demo.state import BadRequest
from pricefleet.demo.universe import Listing, day_start

__all__ = ["PlainShop"]

_PER = {"kg": "kilo", "l": "litro", "unit": "unidad"}


def _amount(value: object) -> str:
    return str(value).replace(".", ",")


class PlainShop(DemoShop):
    """Hand-written HTML: classes and text, nothing machine-readable."""

    name = "plain"
    title = "Ultramarinos Pepe"
    share = 0.5
    gtin_share = 0.0
    disallow = ("/cart", "/account", "/search", "/*?*sort=", "/print")
    encoding = "iso-8859-1"

    def product_id(self, index: int) -> str:
        return str(index + 1)

    def index_of(self, product_id: str) -> int:
        if not product_id.isdigit():
            raise NotFoundPage(product_id)
        return self._checked(int(product_id) - 1, product_id)

    def display_name(self, listing: Listing) -> str:
        item = listing.item
        return f"{item.name}, {item.brand}, {spelled_size(item)}"

    def product_path(self, listing: Listing) -> str:
        return f"{self.prefix}/product?id={self.product_id(listing.index)}"

    def category_path(self, node: Node, page: int = 1) -> str:
        path = f"{self.prefix}/list?cat={node.slug}"
        return path if page == 1 else f"{path}&p={page}"

    def shop_routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.home),
            Route("/list", self.category),
            Route("/product", self.product),
            Route("/print", self.product),
        ]

    def _page(self, title: str, body: str, head: str = "") -> str:
        return (
            f"<html><head><title>{escape(title)}</title>{head}</head>"
            "<body bgcolor='#ffffff'><table width='100%'><tr><td>"
            f"<a href='{self.prefix}/'><b>{self.title}</b></a></td></tr></table>"
            f"{body}<hr><small>Pedidos por teléfono: 900 000 000</small></body></html>"
        )

    async def home(self, request: Request) -> Response:
        day = self.state.day_for(request)
        links = "".join(
            f"<li><a href='{escape(self.category_path(n))}'>{escape(n.name)}</a></li>"
            for n in self.nodes.values()
            if self.parents[n.slug] is None
        )
        html = self._page(self.title, f"<h3>Secciones</h3><ul class='sections'>{links}</ul>")
        return self.respond(request, html, "text/html; charset=iso-8859-1", day_start(day))

    async def category(self, request: Request) -> Response:
        day = self.state.day_for(request)
        node = self.node(request.query_params.get("cat", ""))
        raw_page = request.query_params.get("p", "1")
        if not raw_page.isdigit() or int(raw_page) < 1:
            raise BadRequest(f"p={raw_page!r} is not a page number")
        page = int(raw_page)
        head = ""
        if isinstance(node, Category):
            if page != 1:
                raise NotFoundPage(f"{node.slug} page {page}")
            items = "".join(
                f"<li><a href='{escape(self.category_path(c))}'>{escape(c.name)}</a></li>"
                for c in node.children
            )
            body = f"<h3>{escape(node.name)}</h3><ul class='sections'>{items}</ul>"
        else:
            rows = "".join(
                f"<div class='item'><a class='item-link' href='{escape(self.product_path(x))}'>"
                f"{escape(self.display_name(x))}</a> "
                f"<span class='item-cost'>{_amount(self.state_of(x, day).price)} EUR</span></div>"
                for x in self.page_listings(node, page)
            )
            more = ""
            if page < self.page_count(node):
                nxt = escape(self.category_path(node, page + 1))
                head = f"<link rel='next' href='{nxt}'>"
                more = f"<a class='more' rel='next' href='{nxt}'>Ver más</a>"
            body = f"<h3>{escape(node.name)}</h3><div class='items'>{rows}</div>{more}"
        html = self._page(node.name, body, head)
        return self.respond(request, html, "text/html; charset=iso-8859-1", day_start(day))

    async def product(self, request: Request) -> Response:
        day = self.state.day_for(request)
        listing = self.listing(request.query_params.get("id", ""))
        item, state = listing.item, self.state_of(listing, day)
        was = (
            f"<div class='was'>antes {_amount(state.regular_price)} EUR</div>"
            if state.is_discounted
            else ""
        )
        stock = "<div class='stock in'>Disponible</div>"
        if not state.in_stock:
            stock = "<div class='stock out'>Sin existencias</div>"
        body = (
            "<div class='product-detail'>"
            f"<h2 class='title'>{escape(self.display_name(listing))}</h2>"
            f"<div class='maker'>{escape(item.brand)}</div>"
            f"<div class='cost'><b>{_amount(state.price)}</b> EUR</div>{was}"
            f"<div class='per-unit'>{_amount(unit_price(state.price, item))} EUR / "
            f"{_PER[item.size.unit]}</div>{stock}"
            f"<a href='{self.prefix}/print?id={self.product_id(listing.index)}'>Imprimir</a>"
            "</div>"
        )
        html = self._page(self.display_name(listing), body)
        return self.respond(
            request,
            html,
            "text/html; charset=iso-8859-1",
            day_start(state.changed_day),
        )
