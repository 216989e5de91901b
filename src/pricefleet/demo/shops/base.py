"""What every demo shop has in common: identity of products, category tree, robots.txt, sitemaps.

A shop subclass says how it names and renders things (`product_page`, `category_page`, `home`);
this base class owns the arithmetic that maps URLs to universe products without holding any.
"""

from __future__ import annotations

import gzip
import html
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pricefleet.demo.catalog import TAXONOMY, Category, Leaf
from pricefleet.demo.formats import slugify, unit_price
from pricefleet.demo.http import conditional
from pricefleet.demo.state import BadRequest, DemoState
from pricefleet.demo.universe import Listing, State, day_start

__all__ = ["DemoShop", "Node", "NotFoundPage"]

Node = Category | Leaf


class NotFoundPage(LookupError):
    """The URL names no product, category or page of this shop; answered with 404."""


class DemoShop(ABC):
    """One demo shop, mounted under `/<name>/`."""

    name: ClassVar[str]
    title: ClassVar[str]
    #: This shop's size as a share of `--products`.
    share: ClassVar[float] = 1.0
    #: Share of products whose GTIN the shop publishes.
    gtin_share: ClassVar[float] = 0.0
    #: robots.txt Disallow rules, relative to the shop's prefix.
    disallow: ClassVar[tuple[str, ...]] = ("/cart", "/account", "/search", "/*?*sort=")
    #: How the shop encodes its pages (old shops still send Latin-1).
    encoding: ClassVar[str] = "utf-8"

    def __init__(self, state: DemoState) -> None:
        self.state = state
        self.config = state.config
        count = max(1, round(state.config.products * self.share))
        self.catalogue = state.universe.shop(self.name, count)
        self.prefix = f"/{self.name}"
        self.nodes: dict[str, Node] = {}
        self.parents: dict[str, Category | None] = {}
        self.leaf_numbers: dict[str, int] = {}
        self._index(TAXONOMY, None)
        self._node_list = tuple(self.nodes.values())
        self._disallow_res = [_robots_regex(self.prefix + rule) for rule in self.disallow]

    def _index(self, nodes: tuple[Node, ...], parent: Category | None) -> None:
        for node in nodes:
            self.nodes[node.slug] = node
            self.parents[node.slug] = parent
            if isinstance(node, Leaf):
                self.leaf_numbers[node.slug] = len(self.leaf_numbers)
            else:
                self._index(node.children, node)

    # --- identity -------------------------------------------------------------------------

    def product_id(self, index: int) -> str:
        """The shop's id of its product `index`."""
        return str(100_000 + index)

    def index_of(self, product_id: str) -> int:
        """The product index behind a shop id; raises NotFoundPage for ids the shop lacks."""
        try:
            index = int(product_id) - 100_000
        except ValueError:
            raise NotFoundPage(product_id) from None
        return self._checked(index, product_id)

    def _checked(self, index: int, product_id: str) -> int:
        if not 0 <= index < self.catalogue.products:
            raise NotFoundPage(product_id)
        return index

    def listing(self, product_id: str) -> Listing:
        """The product a shop id names."""
        return self.catalogue.listing(self.index_of(product_id))

    @abstractmethod
    def display_name(self, listing: Listing) -> str:
        """The product's name as this shop writes it."""

    def slug(self, listing: Listing) -> str:
        """The URL slug of a product."""
        return slugify(self.display_name(listing))

    def product_path(self, listing: Listing) -> str:
        """The path of a product's page."""
        return f"{self.prefix}/p/{self.product_id(listing.index)}/{self.slug(listing)}"

    def category_path(self, node: Node, page: int = 1) -> str:
        """The path of a category's page (`page` > 1 for later pages of a leaf)."""
        path = f"{self.prefix}/c/{node.slug}/"
        return path if page == 1 else f"{path}?page={page}"

    # --- categories and pages -------------------------------------------------------------

    def node(self, slug: str) -> Node:
        """The category or leaf with `slug`."""
        try:
            return self.nodes[slug]
        except KeyError:
            raise NotFoundPage(slug) from None

    def trail(self, node: Node) -> list[Node]:
        """The node's ancestors from the department down, and the node itself."""
        trail: list[Node] = [node]
        parent = self.parents[node.slug]
        while parent is not None:
            trail.append(parent)
            parent = self.parents[parent.slug]
        return trail[::-1]

    def leaf_of(self, listing: Listing) -> Leaf:
        """The leaf category a product is listed in."""
        return listing.item.leaf

    def page_count(self, leaf: Leaf, page_size: int | None = None) -> int:
        """How many listing pages a leaf has (at least one, possibly empty)."""
        size = self.catalogue.leaf_size(self.leaf_numbers[leaf.slug])
        return max(1, math.ceil(size / (page_size or self.config.page_size)))

    def page_listings(self, leaf: Leaf, page: int, page_size: int | None = None) -> list[Listing]:
        """The products on page `page` (1-based) of a leaf; NotFoundPage past the last page."""
        per_page = page_size or self.config.page_size
        if not 1 <= page <= self.page_count(leaf, per_page):
            raise NotFoundPage(f"{leaf.slug} page {page}")
        leaf_no = self.leaf_numbers[leaf.slug]
        start = (page - 1) * per_page
        stop = min(start + per_page, self.catalogue.leaf_size(leaf_no))
        return [
            self.catalogue.listing(self.catalogue.index_at(leaf_no, position))
            for position in range(start, stop)
        ]

    def related(self, listing: Listing, count: int = 8) -> list[Listing]:
        """Other products of the same leaf, for 'related products' links."""
        leaf_no = self.leaf_numbers[listing.item.leaf.slug]
        size = self.catalogue.leaf_size(leaf_no)
        position = listing.index // self.catalogue.leaf_count
        picks = [(position + step) % size for step in range(1, min(count, size - 1) + 1)]
        return [self.catalogue.listing(self.catalogue.index_at(leaf_no, p)) for p in picks]

    @staticmethod
    def page_number(request: Request) -> int:
        """The `?page=` of a request (1 when absent)."""
        raw = request.query_params.get("page", "1")
        if not raw.isdigit() or int(raw) < 1:
            raise BadRequest(f"page={raw!r} is not a page number (1, 2, …)")
        return int(raw)

    # --- prices ---------------------------------------------------------------------------

    def state_of(self, listing: Listing, day: int) -> State:
        """Price and stock of a product on `day`."""
        return self.catalogue.state(listing, day)

    def shows_gtin(self, listing: Listing) -> bool:
        """Whether this shop publishes the product's GTIN."""
        return self.catalogue.has_gtin(listing, self.gtin_share)

    # --- routes ---------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """Every route of the shop, relative to its prefix."""
        return [
            Route("/robots.txt", self.robots),
            Route("/sitemap.xml", self.sitemap),
            Route("/sitemaps/sitemap-{number:int}.xml.gz", self.sitemap_child),
            Route("/cart", self.private_page),
            Route("/account", self.private_page),
            Route("/search", self.private_page),
            *self.shop_routes(),
        ]

    @abstractmethod
    def shop_routes(self) -> list[BaseRoute]:
        """The shop's own pages: home, categories, products, APIs."""

    def respond(
        self,
        request: Request,
        body: str | bytes,
        media_type: str,
        last_modified: datetime,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """A conditional answer (ETag, Last-Modified, 304) for a rendered page."""
        data = body.encode(self.encoding, "xmlcharrefreplace") if isinstance(body, str) else body
        return conditional(request, data, media_type, last_modified, headers=headers)

    def is_disallowed(self, path: str, query: str) -> bool:
        """Whether robots.txt forbids this request (so the meter can count impolite crawlers)."""
        target = f"{path}?{query}" if query else path
        return any(rule.match(target) for rule in self._disallow_res)

    async def robots(self, request: Request) -> Response:
        """robots.txt: what crawlers may fetch, how slowly, and where the sitemap is."""
        base = str(request.base_url).rstrip("/")
        lines = ["User-agent: *", *(f"Disallow: {self.prefix}{rule}" for rule in self.disallow)]
        lines += [f"Crawl-delay: {self.config.crawl_delay:g}", ""]
        lines += ["User-agent: BadBot", "Disallow: /", ""]
        lines += [f"Sitemap: {base}{self.prefix}/sitemap.xml", ""]
        return self.respond(request, "\n".join(lines), "text/plain", day_start(0))

    async def private_page(self, request: Request) -> Response:
        """Cart, account and search: pages robots.txt keeps crawlers out of."""
        body = f"<!doctype html><title>{self.title}</title><p>Inicia sesión para continuar.</p>"
        return self.respond(request, body, "text/html; charset=utf-8", day_start(0))

    # --- sitemaps ---------------------------------------------------------------------------

    def sitemap_entries(self) -> int:
        """How many URLs the sitemap lists: the home page, every category, every product."""
        return 1 + len(self.nodes) + self.catalogue.products

    def sitemap_entry(self, number: int, day: int) -> tuple[str, datetime]:
        """The path and last modification of sitemap entry `number`."""
        categories = self._node_list
        if number == 0:
            return f"{self.prefix}/", day_start(day)
        if number <= len(categories):
            return self.category_path(categories[number - 1]), day_start(day)
        listing = self.catalogue.listing(number - 1 - len(categories))
        return self.product_path(listing), day_start(self.state_of(listing, day).changed_day)

    async def sitemap(self, request: Request) -> Response:
        """sitemap.xml: the URL set itself for a small shop, an index of gzip children else."""
        day = self.state.day_for(request)
        base = str(request.base_url).rstrip("/")
        total, chunk = self.sitemap_entries(), self.config.sitemap_chunk
        if total <= chunk:
            return self.respond(
                request, self._urlset(base, 0, total, day), "application/xml", day_start(day)
            )
        lines = ['<?xml version="1.0" encoding="UTF-8"?>']
        lines.append('<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">')
        for number in range(1, math.ceil(total / chunk) + 1):
            lines.append(
                f"<sitemap><loc>{base}{self.prefix}/sitemaps/sitemap-{number}.xml.gz</loc>"
                f"<lastmod>{day_start(day).date().isoformat()}</lastmod></sitemap>"
            )
        lines.append("</sitemapindex>")
        return self.respond(request, "\n".join(lines), "application/xml", day_start(day))

    async def sitemap_child(self, request: Request) -> Response:
        """One gzip-compressed child sitemap of the index."""
        number = int(request.path_params["number"])
        total, chunk = self.sitemap_entries(), self.config.sitemap_chunk
        if total <= chunk or not 1 <= number <= math.ceil(total / chunk):
            raise NotFoundPage(f"sitemap {number}")
        day = self.state.day_for(request)
        base = str(request.base_url).rstrip("/")
        start = (number - 1) * chunk
        xml = self._urlset(base, start, min(start + chunk, total), day)
        data = gzip.compress(xml.encode(), mtime=0)
        return self.respond(request, data, "application/gzip", day_start(day))

    def _urlset(self, base: str, start: int, stop: int, day: int) -> str:
        lines = ['<?xml version="1.0" encoding="UTF-8"?>']
        lines.append('<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">')
        for number in range(start, stop):
            path, modified = self.sitemap_entry(number, day)
            lines.append(
                f"<url><loc>{html.escape(base + path)}</loc>"
                f"<lastmod>{modified.date().isoformat()}</lastmod></url>"
            )
        lines.append("</urlset>")
        return "\n".join(lines)

    # --- export ---------------------------------------------------------------------------

    def export_paths(self) -> Iterator[str]:
        """Every path a complete static copy of the shop needs."""
        yield f"{self.prefix}/robots.txt"
        yield f"{self.prefix}/sitemap.xml"
        total, chunk = self.sitemap_entries(), self.config.sitemap_chunk
        if total > chunk:
            for number in range(1, math.ceil(total / chunk) + 1):
                yield f"{self.prefix}/sitemaps/sitemap-{number}.xml.gz"
        yield f"{self.prefix}/"
        for node in self.nodes.values():
            pages = self.page_count(node) if isinstance(node, Leaf) else 1
            for page in range(1, pages + 1):
                yield self.category_path(node, page)
        for listing in self.catalogue:
            yield self.product_path(listing)

    # --- truth ----------------------------------------------------------------------------

    def truth(self, listing: Listing, day: int, base_url: str) -> dict[str, Any]:
        """The product exactly as this shop shows it on `day`: what a perfect crawler stores."""
        item, state = listing.item, self.state_of(listing, day)
        return {
            "shop": self.name,
            "id": self.product_id(listing.index),
            "url": base_url.rstrip("/") + self.product_path(listing),
            "name": self.display_name(listing),
            "brand": item.brand,
            "gtin": item.gtin if self.shows_gtin(listing) else None,
            "price": str(state.price),
            "regular_price": str(state.regular_price),
            "is_discounted": state.is_discounted,
            "currency": "EUR",
            "unit_price": str(unit_price(state.price, item)),
            "unit": item.size.unit,
            "size_value": str(item.total_size.normalize()),
            "size_unit": item.size.unit,
            "pack": item.pack,
            "availability": "in_stock" if state.in_stock else "out_of_stock",
            "category": [node.name for node in item.trail],
            "universe_id": item.uid,
            "universe_gtin": item.gtin,
        }

    def truth_records(self, day: int, base_url: str) -> Iterator[dict[str, Any]]:
        """Every product of the shop as it stands on `day`, in shop index order."""
        for listing in self.catalogue:
            yield self.truth(listing, day, base_url)


def _robots_regex(rule: str) -> re.Pattern[str]:
    """A robots.txt path rule (`*` any run of characters, `$` end) as an anchored regex."""
    anchored = rule.endswith("$")
    body = re.escape(rule.removesuffix("$")).replace(r"\*", ".*")
    return re.compile(body + ("$" if anchored else ""))


def decimal_str(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: `1.5`, `6`."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
