"""`api`: a shop whose pages are an app over a JSON API shaped like Mercadona's.

`/api/api/categories/` (departments with their categories), `/api/api/categories/{id}/` (a
category with its leaves and their products, `?page=N` for large leaves, `next` when more),
`/api/api/products/{id}/` (full detail with `ean`). Prices live in `price_instructions`:
`unit_price` for the pack, `bulk_price` per kg/l/unit, `reference_price` with three decimals,
and `previous_unit_price` with its leading spaces when the price went down.
"""

from __future__ import annotations

from collections.abc import Iterator
from html import escape
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pricefleet.demo.catalog import Category, Leaf
from pricefleet.demo.formats import slugify
from pricefleet.demo.shops.base import DemoShop, Node, NotFoundPage
from pricefleet.demo.universe import Listing, day_start

__all__ = ["ApiShop"]

_FORMATS = {"kg": ("kg", "kg"), "l": ("l", "L"), "unit": ("ud", "ud")}
_PACKAGING = {"brik": "Brik", "botella": "Botella", "lata": "Lata", "paquete": "Paquete"}


class ApiShop(DemoShop):
    """JSON API in Mercadona's shape; the HTML pages are an empty app shell."""

    name = "api"
    title = "Tienda Despensa"
    share = 0.6
    gtin_share = 0.7

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.node_ids = {slug: number + 1 for number, slug in enumerate(self.nodes)}
        self.by_id = {number: self.nodes[slug] for slug, number in self.node_ids.items()}

    def product_id(self, index: int) -> str:
        return str(10_000 + index)

    def index_of(self, product_id: str) -> int:
        if not product_id.isdigit():
            raise NotFoundPage(product_id)
        return self._checked(int(product_id) - 10_000, product_id)

    def display_name(self, listing: Listing) -> str:
        return f"{listing.item.name} {listing.item.brand}"

    def packaging(self, listing: Listing) -> str:
        """Mercadona's packaging label: `Brik`, `Pack-6`."""
        item = listing.item
        if item.pack > 1:
            return f"Pack-{item.pack}"
        return _PACKAGING.get(item.size.packaging, item.size.packaging.capitalize())

    def slug(self, listing: Listing) -> str:
        return slugify(f"{self.display_name(listing)} {self.packaging(listing)}")

    def product_path(self, listing: Listing) -> str:
        return f"{self.prefix}/product/{self.product_id(listing.index)}/{self.slug(listing)}"

    def category_path(self, node: Node, page: int = 1) -> str:
        path = f"{self.prefix}/categories/{self.node_ids[node.slug]}"
        return path if page == 1 else f"{path}?page={page}"

    def api_category_path(self, category: Category, page: int = 1) -> str:
        """The API answer of a second-level category."""
        path = f"{self.prefix}/api/categories/{self.node_ids[category.slug]}/"
        return path if page == 1 else f"{path}?page={page}"

    def shop_routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.shell),
            Route("/categories/{number:int}", self.shell),
            Route("/product/{pid}/{slug}", self.shell),
            Route("/api/categories/", self.categories),
            Route("/api/categories/{number:int}/", self.category),
            Route("/api/products/{pid}/", self.product),
        ]

    async def shell(self, request: Request) -> Response:
        """The single-page app's HTML: no products in it, the app reads the API."""
        html = (
            '<!DOCTYPE html><html lang="es"><head><meta charset="utf-8">'
            f'<title>{self.title}</title></head><body><div id="root"></div>'
            "<noscript>Necesitas JavaScript para comprar en Tienda Despensa.</noscript>"
            f'<script>window.__API__="{self.prefix}/api/"</script></body></html>'
        )
        return self.respond(request, html, "text/html; charset=utf-8", day_start(0))

    def _json(self, request: Request, data: Any, day: int, link: str | None = None) -> Response:
        headers = {"Link": f'<{link}>; rel="next"'} if link else None
        body = orjson.dumps(data)
        return self.respond(request, body, "application/json", day_start(day), headers)

    def _category_ref(self, node: Node, level: int) -> dict[str, Any]:
        return {
            "id": self.node_ids[node.slug],
            "name": node.name,
            "level": level,
            "order": self.node_ids[node.slug],
        }

    async def categories(self, request: Request) -> Response:
        day = self.state.day_for(request)
        results = [
            {
                "id": self.node_ids[dept.slug],
                "name": dept.name,
                "order": self.node_ids[dept.slug],
                "is_extended": False,
                "categories": [
                    {
                        "id": self.node_ids[cat.slug],
                        "name": cat.name,
                        "order": self.node_ids[cat.slug],
                        "layout": 1,
                        "published": True,
                        "is_extended": False,
                    }
                    for cat in dept.children
                ],
            }
            for dept in self.nodes.values()
            if isinstance(dept, Category) and self.parents[dept.slug] is None
        ]
        data = {"count": len(results), "next": None, "previous": None, "results": results}
        return self._json(request, data, day)

    async def category(self, request: Request) -> Response:
        day = self.state.day_for(request)
        node = self.by_id.get(int(request.path_params["number"]))
        parent = self.parents.get(node.slug) if node is not None else None
        if not isinstance(node, Category) or parent is None:
            raise NotFoundPage(f"category {request.path_params['number']}")
        page = self.page_number(request)
        leaves = [leaf for leaf in node.children if isinstance(leaf, Leaf)]
        pages = max(self.page_count(leaf) for leaf in leaves)
        if page > pages:
            raise NotFoundPage(f"category {node.slug} page {page}")
        subcategories = []
        for leaf in leaves:
            listings = self.page_listings(leaf, page) if page <= self.page_count(leaf) else []
            subcategories.append(
                {
                    "id": self.node_ids[leaf.slug],
                    "name": leaf.name,
                    "order": self.node_ids[leaf.slug],
                    "layout": 1,
                    "published": True,
                    "is_extended": False,
                    "products": [self.product_summary(x, day) for x in listings],
                }
            )
        base = str(request.base_url).rstrip("/")
        nxt = f"{base}{self.api_category_path(node, page + 1)}" if page < pages else None
        prev = f"{base}{self.api_category_path(node, page - 1)}" if page > 1 else None
        data = {
            "id": self.node_ids[node.slug],
            "name": node.name,
            "order": self.node_ids[node.slug],
            "layout": 2,
            "published": True,
            "is_extended": False,
            "categories": subcategories,
            "next": nxt,
            "previous": prev,
        }
        return self._json(request, data, day, nxt)

    def price_instructions(self, listing: Listing, day: int) -> dict[str, Any]:
        """Mercadona's price block, quirks included."""
        item, state = listing.item, self.state_of(listing, day)
        size_format, reference_format = _FORMATS[item.size.unit]
        per_unit = state.price / item.total_size
        tax = "4.000" if item.path[0].slug.startswith("lact") else "10.000"
        return {
            "iva": int(float(tax)),
            "is_new": False,
            "is_pack": item.pack > 1,
            "pack_size": float(item.size.value) if item.pack > 1 else None,
            "unit_name": f"{item.size.packaging}s" if item.pack > 1 else None,
            "unit_size": float(item.total_size),
            "bulk_price": f"{per_unit:.2f}",
            "unit_price": f"{state.price:.2f}",
            "approx_size": False,
            "size_format": size_format,
            "total_units": item.pack if item.pack > 1 else None,
            "unit_selector": True,
            "bunch_selector": False,
            "drained_weight": None,
            "selling_method": 0,
            "tax_percentage": tax,
            "price_decreased": state.is_discounted,
            "reference_price": f"{per_unit:.3f}",
            "min_bunch_amount": 1.0,
            "reference_format": reference_format,
            "previous_unit_price": (
                f"{state.regular_price:>12.2f}" if state.is_discounted else None
            ),
            "increment_bunch_amount": 1.0,
        }

    def product_summary(self, listing: Listing, day: int) -> dict[str, Any]:
        """A product as listed inside a category answer."""
        item, state = listing.item, self.state_of(listing, day)
        base = f"https://img.example.invalid/{self.name}/{item.uid}.jpg"
        return {
            "id": self.product_id(listing.index),
            "slug": self.slug(listing),
            "limit": 999,
            "badges": {"is_water": False, "requires_age_check": False},
            "status": None,
            "packaging": self.packaging(listing),
            "published": True,
            "share_url": f"{self.prefix}/product/{self.product_id(listing.index)}/"
            f"{self.slug(listing)}",
            "thumbnail": f"{base}?fit=crop&h=300&w=300",
            "categories": [self._category_ref(item.path[0], 0)],
            "display_name": self.display_name(listing),
            "unavailable_from": None if state.in_stock else day_start(day).date().isoformat(),
            "price_instructions": self.price_instructions(listing, day),
            "unavailable_weekdays": [],
            "is_new_arrival": False,
        }

    async def product(self, request: Request) -> Response:
        day = self.state.day_for(request)
        listing = self.listing(request.path_params["pid"])
        item, state = listing.item, self.state_of(listing, day)
        data = self.product_summary(listing, day)
        dept, cat = item.path[0], item.path[1]
        data.update(
            {
                "ean": item.gtin if self.shows_gtin(listing) else None,
                "brand": item.brand,
                "origin": "España",
                "is_bulk": False,
                "is_variable_weight": item.size.unit == "kg" and item.pack == 1,
                "details": {
                    "brand": item.brand,
                    "legal_name": item.name,
                    "description": self.display_name(listing),
                    "suppliers": [{"name": f"{item.brand.upper()}, S.A."}],
                    "storage_instructions": "Conservar en lugar fresco y seco.",
                },
                "categories": [
                    {
                        **self._category_ref(dept, 0),
                        "categories": [
                            {
                                **self._category_ref(cat, 1),
                                "categories": [self._category_ref(item.leaf, 2)],
                            }
                        ],
                    }
                ],
                "photos": [
                    {
                        "zoom": f"{data['thumbnail'].split('?')[0]}?fit=crop&h=1600&w=1600",
                        "regular": f"{data['thumbnail'].split('?')[0]}?fit=crop&h=600&w=600",
                        "thumbnail": data["thumbnail"],
                        "perspective": 2,
                    }
                ],
                "nutrition_information": {
                    "allergens": "",
                    "ingredients": f"<strong>{escape(item.name)}</strong>.",
                },
            }
        )
        return self._json(request, data, state.changed_day)

    def export_paths(self) -> Iterator[str]:
        yield from super().export_paths()
        yield f"{self.prefix}/api/categories/"
        for node in self.nodes.values():
            if isinstance(node, Category) and self.parents[node.slug] is not None:
                leaves = [leaf for leaf in node.children if isinstance(leaf, Leaf)]
                pages = max(self.page_count(leaf) for leaf in leaves)
                for page in range(1, pages + 1):
                    yield self.api_category_path(node, page)
        for listing in self.catalogue:
            yield f"{self.prefix}/api/products/{self.product_id(listing.index)}/"
