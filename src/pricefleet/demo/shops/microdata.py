"""`microdata`: an older shop theme with schema.org microdata only, in European number format.

Prices read `1.234,56 €` with no machine-readable `content`; discounted items show the regular
price struck through (`<del>`). About half the products carry a gtin13. Query pagination.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pricefleet.demo.catalog import Category
from pricefleet.demo.formats import compact_size, euro_eu, unit_price
from pricefleet.demo.shops.base import DemoShop, Node, NotFoundPage
from pricefleet.demo.shops.chrome import menu
from pricefleet.demo.universe import Listing, day_start

__all__ = ["MicrodataShop"]

_UNIT_LABELS = {"kg": "kg", "l": "litro", "unit": "ud."}


class MicrodataShop(DemoShop):
    """itemprop microdata, `1.234,56 €` prices, `<del>` regular prices."""

    name = "microdata"
    title = "Supermercados Olivar"
    share = 0.8
    gtin_share = 0.5

    def product_id(self, index: int) -> str:
        return f"MD{index + 1:07d}"

    def index_of(self, product_id: str) -> int:
        digits = product_id.removeprefix("MD")
        if len(digits) != 7 or not digits.isdigit() or not product_id.startswith("MD"):
            raise NotFoundPage(product_id)
        return self._checked(int(digits) - 1, product_id)

    def display_name(self, listing: Listing) -> str:
        item = listing.item
        return (
            f"{item.name.upper()} {item.brand.upper()} {item.size.packaging} {compact_size(item)}"
        )

    def product_path(self, listing: Listing) -> str:
        return f"{self.prefix}/producto/{self.slug(listing)}-{self.product_id(listing.index)}.html"

    def category_path(self, node: Node, page: int = 1) -> str:
        path = f"{self.prefix}/categoria/{node.slug}"
        return path if page == 1 else f"{path}?page={page}"

    def shop_routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.home),
            Route("/categoria/{slug}", self.category),
            Route("/producto/{name}.html", self.product),
        ]

    def _page(self, title: str, body: str, head: str = "") -> str:
        departments = [
            (self.category_path(n), n.name) for n in self.nodes.values() if isinstance(n, Category)
        ]
        return (
            "<!DOCTYPE html>\n<html lang='es'><head><meta charset='utf-8'>"
            f"<title>{escape(title)} - {self.title}</title>{head}</head><body>"
            f"<div id='cabecera'><a href='{self.prefix}/'>{self.title}</a>"
            f"{menu(departments, 'menu')}</div><div id='contenido'>{body}</div>"
            "<div id='pie'>Todos los precios incluyen IVA.</div></body></html>"
        )

    async def home(self, request: Request) -> Response:
        day = self.state.day_for(request)
        tops = [n for n in self.nodes.values() if self.parents[n.slug] is None]
        body = "<h1>Secciones</h1>" + menu(((self.category_path(n), n.name) for n in tops), "sec")
        html = self._page("Inicio", body)
        return self.respond(request, html, "text/html; charset=utf-8", day_start(day))

    async def category(self, request: Request) -> Response:
        day = self.state.day_for(request)
        node = self.node(request.path_params["slug"])
        page = self.page_number(request)
        head = ""
        if isinstance(node, Category):
            if page != 1:
                raise NotFoundPage(f"{node.slug} page {page}")
            body = f"<h1>{escape(node.name)}</h1>" + menu(
                ((self.category_path(c), c.name) for c in node.children), "subsecciones"
            )
        else:
            pages = self.page_count(node)
            rows = []
            for listing in self.page_listings(node, page):
                state = self.state_of(listing, day)
                old = f" <del>{euro_eu(state.regular_price)}</del>" if state.is_discounted else ""
                rows.append(
                    f"<tr><td><a href='{self.product_path(listing)}'>"
                    f"{escape(self.display_name(listing))}</a></td>"
                    f"<td class='precio'>{euro_eu(state.price)}{old}</td></tr>"
                )
            links = []
            if page > 1:
                prev = escape(self.category_path(node, page - 1))
                head += f"<link rel='prev' href='{prev}'>"
                links.append(f"<a rel='prev' href='{prev}'>« anterior</a>")
            if page < pages:
                nxt = escape(self.category_path(node, page + 1))
                head += f"<link rel='next' href='{nxt}'>"
                links.append(f"<a rel='next' href='{nxt}'>siguiente »</a>")
            body = (
                f"<h1>{escape(node.name)}</h1><table class='listado'>{''.join(rows)}</table>"
                f"<p class='paginas'>{' | '.join(links)}</p>"
            )
        html = self._page(node.name, body, head)
        return self.respond(request, html, "text/html; charset=utf-8", day_start(day))

    async def product(self, request: Request) -> Response:
        day = self.state.day_for(request)
        product_id = request.path_params["name"].rpartition("-")[2]
        listing = self.listing(product_id)
        item, state = listing.item, self.state_of(listing, day)
        gtin = f"<meta itemprop='gtin13' content='{item.gtin}'>" if self.shows_gtin(listing) else ""
        availability = "InStock" if state.in_stock else "OutOfStock"
        old = (
            f"<del class='precio-anterior'>{euro_eu(state.regular_price)}</del> "
            if state.is_discounted
            else ""
        )
        per_unit = euro_eu(unit_price(state.price, item))
        body = (
            "<div itemscope itemtype='https://schema.org/Product'>"
            f"<h1 itemprop='name'>{escape(self.display_name(listing))}</h1>"
            f"<p>Marca: <span itemprop='brand'>{escape(item.brand)}</span></p>"
            f"<p>Ref.: <span itemprop='sku'>{self.product_id(listing.index)}</span></p>{gtin}"
            f"<p itemprop='description'>{escape(item.name)} {escape(item.brand)}.</p>"
            "<div itemprop='offers' itemscope itemtype='https://schema.org/Offer'>"
            f"{old}<span class='precio' itemprop='price'>{euro_eu(state.price)[:-2]}</span> "
            "<span itemprop='priceCurrency' content='EUR'>€</span>"
            f"<span class='precio-unidad'>({per_unit}/{_UNIT_LABELS[item.size.unit]})</span>"
            f"<link itemprop='availability' href='https://schema.org/{availability}'>"
            "</div></div>"
            f"<a href='{self.prefix}/cart?add={self.product_id(listing.index)}'>Comprar</a>"
        )
        html = self._page(self.display_name(listing), body)
        return self.respond(request, html, "text/html; charset=utf-8", day_start(state.changed_day))
