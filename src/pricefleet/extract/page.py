"""One fetched product page to one `Extracted` record: parse once, read every source, merge.

Owns the order of trust and the merge: JSON-LD first, then microdata, then OpenGraph; extruct
(RDFa, microformats) only when none of those names a product; what the page visibly shows
(price, struck-through regular price, stock line) only for what structured data leaves out.
A size comes from the structured data or else from the product's name; the unit price is ours,
computed from price and size. A page without a priced product raises `PageError`, and so
does one nested too deep to parse safely (checked before parsing: `nesting.py`).
"""

from __future__ import annotations

import codecs
import re
import string
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from pricefleet.extract import fallback, jsonld, microdata, opengraph, visible
from pricefleet.extract.head import Head, head_of, whole_in
from pricefleet.extract.nesting import check_nesting
from pricefleet.extract.record import Extracted, Found, PageError
from pricefleet.extract.schema import absolute_url
from pricefleet.extract.units import parse_size, unit_price
from pricefleet.models import Availability

__all__ = ["extract_product", "parse_page"]

# Fields that, once JSON-LD has them all (and its availability), make reading microdata
# pointless: the image, say, OpenGraph fills as well and for much less.
_ESSENTIAL = ("name", "price", "currency", "brand", "gtin")
_UTF8 = codecs.lookup("utf-8").name
_CENT = Decimal("0.01")
# CSS's whitespace, and its ASCII-only case folding (attribute selectors' `i` flag).
_TOKENS = re.compile(r"[ \t\n\r\f]+")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER) if not text.islower() else text


@dataclass(slots=True)
class _Head:
    """What one pass over the page's scripts, links and metas collects."""

    scripts: list[str] = field(default_factory=list)
    canonical: str | None = None
    og: list[tuple[str, str]] = field(default_factory=list)


def _utf8(encoding: str | None) -> bool:
    if not encoding:
        return False
    try:
        return codecs.lookup(encoding).name == _UTF8
    except LookupError:
        return False


class _Page:
    """A page's tree, parsed whole only when something asks for more than its head holds."""

    __slots__ = ("_body", "_encoding", "_tree", "head")

    def __init__(self, body: bytes | str, encoding: str | None) -> None:
        self._body = body
        self._encoding = encoding
        self._tree: LexborHTMLParser | None = None
        # Bytes in another charset are not read before they are decoded (by `parse_page`).
        text = isinstance(body, str) or _utf8(encoding)
        self.head: Head | None = head_of(body) if text else None

    @property
    def tree(self) -> LexborHTMLParser:
        """The whole page's tree."""
        if self._tree is None:
            self._tree = parse_page(self._body, self._encoding)
        return self._tree

    def head_tree(self) -> LexborHTMLParser:
        """A tree holding every script, link and meta of the page: its head's alone when that
        can stand for the whole (see `head.py`), else the whole page's."""
        head = self.head
        if head is not None and head.text is not None:
            tree = LexborHTMLParser(head.text)
            if whole_in(tree, head):
                return tree
        return self.tree

    def struck(self) -> bool:
        """Whether the page may have `<del>`, `<s>` or `<strike>` elements."""
        return self.head is None or self.head.struck


def parse_page(body: bytes | str, encoding: str | None = None) -> LexborHTMLParser:
    """The lexbor tree of a page. Bytes are decoded with `encoding` when given (the HTTP
    charset), else by their BOM or `<meta charset>`, else as UTF-8."""
    if isinstance(body, str):
        return LexborHTMLParser(body)
    if encoding:
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            name = None
        if name is not None and name != _UTF8:
            return LexborHTMLParser(body.decode(name, errors="replace"))
        if name == _UTF8:
            return LexborHTMLParser(body)
    return LexborHTMLParser(body, encoding=True)


def _scan(tree: LexborHTMLParser, url: str) -> _Head:
    """JSON-LD texts, the canonical link and OpenGraph metas: what the CSS selector
    `script[type*="ld+json" i], link[rel~="canonical" i], meta[property], meta[name]` finds,
    read by tag name instead (lexbor's tag index; a CSS query first builds a selector engine
    for the tree, which costs more than the query on a small tree). Each kind keeps document
    order; the order across kinds never mattered."""
    head = _Head()
    for node in tree.tags("script"):
        if "ld+json" in _ascii_lower(node.attributes.get("type") or ""):
            head.scripts.append(node.text(deep=True))
    for node in tree.tags("link"):
        if head.canonical is not None:
            break
        attributes = node.attributes
        if "canonical" in _TOKENS.split(_ascii_lower(attributes.get("rel") or "")):
            head.canonical = absolute_url(attributes.get("href"), url)
    for node in tree.tags("meta"):
        attributes = node.attributes
        if "property" not in attributes and "name" not in attributes:
            continue
        name = attributes.get("property") or attributes.get("name") or ""
        if opengraph.is_og_property(name):
            head.og.append((name, attributes.get("content") or ""))
    return head


def _needs_more(found: Found | None) -> bool:
    if found is None or found.availability is Availability.UNKNOWN:
        return True
    return any(getattr(found, name) is None for name in _ESSENTIAL)


def _money(amount: Decimal | None) -> Decimal | None:
    """At least two decimals (`13.4` → `13.40`, `1149` → `1149.00`), more kept as stated."""
    if amount is None:
        return None
    exponent = amount.as_tuple().exponent
    return amount if not isinstance(exponent, int) or exponent <= -2 else amount.quantize(_CENT)


def _first(founds: list[Found], name: str) -> Any:
    for found in founds:
        value = getattr(found, name)
        if value is not None and value != ():
            return value
    return None


def _merge(
    founds: list[Found], priced: Found, price: Decimal, url: str, head: _Head, og: dict[str, Any]
) -> Extracted:
    """One record from every source's statements: the first source stating a field wins, but
    price, currency and regular price stay together from the source `priced` that gave the
    price."""
    currency = priced.currency or _first(founds, "currency")
    regular = None
    for found in [priced, *founds]:
        candidate = found.regular_price
        same_money = found is priced or found.currency in (None, currency)
        if candidate is not None and candidate > price and same_money:
            regular = candidate
            break
    availability = next(
        (f.availability for f in founds if f.availability is not Availability.UNKNOWN),
        Availability.UNKNOWN,
    )
    name = _first(founds, "name")
    size = _first(founds, "size")
    if size is None and name:
        size = parse_size(name)
    per_unit = unit_price(price, size) if size is not None else None
    raw = {found.source: found.raw for found in founds if found.raw is not None}
    return Extracted(
        url=_first(founds, "url") or absolute_url(og.get("og:url"), url) or head.canonical or url,
        name=name,
        brand=_first(founds, "brand"),
        sku=_first(founds, "sku"),
        gtin=_first(founds, "gtin"),
        price=_money(price),
        currency=currency,
        regular_price=_money(regular),
        is_discounted=regular is not None,
        availability=availability,
        image_url=_first(founds, "image_url") or absolute_url(og.get("og:image"), url),
        category=_first(founds, "category") or (),
        size_value=size.value if size is not None else None,
        size_unit=size.unit if size is not None else None,
        pack=size.pack if size is not None else 1,
        unit_price=per_unit[0] if per_unit is not None else None,
        unit=per_unit[1] if per_unit is not None else None,
        shop_unit_price=_money(_first(founds, "shop_unit_price")),
        shop_unit=_first(founds, "shop_unit"),
        source=priced.source,
        raw=raw,
    )


def extract_product(body: bytes | str, url: str, *, encoding: str | None = None) -> Extracted:
    """The product a fetched page states, normalised; raises `PageError` when there is none.

    `body` is the page as fetched; `url` the URL it was fetched from (it resolves relative
    links and picks the product among several); `encoding` the HTTP charset when known.
    """
    if not body or body.isspace():
        raise PageError("empty", url=url)
    check_nesting(body, url)
    # Parsed whole only when something beyond the scripts, links and metas is asked for.
    page = _Page(body, encoding)
    head = _scan(page.head_tree(), url)
    page_urls = [url, head.canonical] if head.canonical else [url]
    founds: list[Found] = []
    blocks = jsonld.read_blocks(head.scripts)
    ld = jsonld.product_of(blocks, page_urls) if blocks.blocks else None
    if ld is not None:
        founds.append(ld)
    if _needs_more(ld):
        md = microdata.product_of(microdata.read_items(page.tree), page_urls)
        if md is not None:
            founds.append(md)
    props = opengraph.properties_dict(head.og)
    og = opengraph.product_of(props, url)
    if og is not None:
        founds.append(og)
    if not founds and fallback.has_markup(page.tree):
        # The tree's own HTML: already decoded, whatever the page's encoding was.
        founds.extend(fallback.products(page.tree.html or "", url, page_urls))
    if all(found.price is None for found in founds):
        hint = next((found.currency for found in founds if found.currency), None)
        shown = visible.product_of(page.tree, url, hint=hint)
        if shown is not None:
            founds.append(shown)
    if not founds:
        reason = "malformed-jsonld" if blocks.malformed else "no-product"
        raise PageError(reason, url=url)
    if all(found.price is None for found in founds):
        reason = "malformed-jsonld" if blocks.malformed and ld is None else "no-price"
        raise PageError(reason, url=url, detail=f"product from {founds[0].source}")
    priced, price = next((f, f.price) for f in founds if f.price is not None)
    by_class = priced.source == "visible"
    # Without such elements (and without a class scan) the check cannot find anything.
    if all(found.regular_price is None for found in founds) and (by_class or page.struck()):
        struck = visible.struck_price(page.tree, price, by_class=by_class)
        if struck is not None:
            priced.regular_price = struck
    if all(found.currency is None for found in founds):
        # A price stated without its currency (`"price": 12.99` alone): the page shows it.
        shown = visible.product_of(page.tree, url)
        priced.currency = shown.currency if shown is not None else None
    if all(found.availability is Availability.UNKNOWN for found in founds):
        priced.availability = visible.availability_of_page(page.tree)
    return _merge(founds, priced, price, url, head, props)
