"""JSON-LD blocks (`<script type="application/ld+json">`): reading them, leniently, and finding
the page's Product and BreadcrumbList among their nodes.

Reading is strict JSON (orjson) first; only a block that fails gets a lenient second try that
drops HTML comment wrappers, CDATA markers, JS comments and trailing commas, and escapes raw
control characters inside strings - the usual damage of hand-edited shop themes. What the nodes
mean is `schema.py`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from pricefleet.extract.record import Found
from pricefleet.extract.schema import (
    breadcrumb_names,
    choose_product,
    is_product,
    read_product,
    type_names,
)

__all__ = ["JsonLd", "parse_block", "product_of", "read_blocks"]

# Strings are matched first so that `//` or `,}` inside them is never taken for damage.
_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\]|\\.)*"|//[^\n\r]*|/\*.*?(?:\*/|$)', re.DOTALL)
_STRING_OR_TRAILING_COMMA = re.compile(r'"(?:[^"\\]|\\.)*"|,(?=\s*[}\]])', re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f]")
_WRAPPERS = re.compile(r"^\s*(?:<!--|<!\[CDATA\[)|(?:-->|\]\]>)\s*$")
_ADJACENT = re.compile(r"}\s*{")
_MAX_DEPTH = 8
_MAX_NODES = 5000
_MAX_LENIENT = 2_000_000  # the lenient regexes are linear per string; skip absurd blocks


@dataclass(slots=True)
class JsonLd:
    """The JSON-LD of one page: every block that parsed, and how many did not."""

    blocks: list[Any] = field(default_factory=list)
    malformed: int = 0


def _escape_control(match: re.Match[str]) -> str:
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(match[0], f"\\u{ord(match[0]):04x}")


def _drop_comment(match: re.Match[str]) -> str:
    """A comment goes; a string stays, with raw control characters escaped."""
    text = match[0]
    return _CONTROL.sub(_escape_control, text) if text.startswith('"') else ""


def _keep_string(match: re.Match[str]) -> str:
    """A trailing comma goes; a string stays."""
    text = match[0]
    return text if text.startswith('"') else ""


def _lenient(text: str) -> Any:
    cleaned = _WRAPPERS.sub("", text.strip()).strip().rstrip(";")
    cleaned = _STRING_OR_COMMENT.sub(_drop_comment, cleaned)
    cleaned = _STRING_OR_TRAILING_COMMA.sub(_keep_string, cleaned)
    try:
        return orjson.loads(cleaned)
    except orjson.JSONDecodeError:
        pass
    # Several objects in one block without an enclosing array: `{…}{…}`.
    return orjson.loads("[" + _ADJACENT.sub("},{", cleaned) + "]")


def parse_block(text: str) -> Any:
    """One JSON-LD block's value; raises ValueError when even the lenient reading fails."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if len(text) > _MAX_LENIENT:
            raise ValueError(f"malformed JSON-LD: {exc}") from None
    try:
        return _lenient(text)
    except (orjson.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"malformed JSON-LD: {exc}") from None


def read_blocks(texts: Iterable[str]) -> JsonLd:
    """Parse the text of each JSON-LD script; `null` and empty blocks are skipped."""
    result = JsonLd()
    for text in texts:
        if not text or text.isspace():
            continue
        try:
            value = parse_block(text)
        except ValueError:
            result.malformed += 1
            continue
        if value is not None:
            result.blocks.append(value)
    return result


@dataclass(slots=True)
class _Nodes:
    products: list[dict[str, Any]] = field(default_factory=list)
    crumbs: list[dict[str, Any]] = field(default_factory=list)
    index: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: int = 0


def _walk(value: Any, depth: int, nodes: _Nodes) -> None:
    if depth > _MAX_DEPTH or nodes.seen > _MAX_NODES:
        return
    if isinstance(value, list):
        for item in value:
            _walk(item, depth + 1, nodes)
        return
    if not isinstance(value, dict):
        return
    nodes.seen += 1
    node_id = value.get("@id")
    if isinstance(node_id, str) and len(value) > 1:
        nodes.index.setdefault(node_id, value)
    types = type_names(value)
    if is_product(value):
        nodes.products.append(value)
        return  # related products inside a product are not the page's product
    if "BreadcrumbList" in types:
        nodes.crumbs.append(value)
        return
    if types & {"ItemList", "OfferCatalog", "SearchResultsPage", "CollectionPage"}:
        return  # listings name other pages' products
    if "Offer" in types and isinstance(value.get("itemOffered"), dict):
        offered = value["itemOffered"]
        if is_product(offered) and "offers" not in offered:
            offer = {k: v for k, v in value.items() if k != "itemOffered"}
            nodes.products.append({**offered, "offers": offer})
            return
    for key, item in value.items():
        if isinstance(item, dict | list) and key != "@context":
            _walk(item, depth + 1, nodes)


def product_of(jsonld: JsonLd, page_urls: list[str]) -> Found | None:
    """The page's product as its JSON-LD states it (with breadcrumbs as category), or None.

    `page_urls` are the fetched URL first, then any canonical URL: they pick the product (and
    a ProductGroup's variant) the page is about when the JSON-LD describes several.
    """
    nodes = _Nodes()
    _walk(jsonld.blocks, 0, nodes)
    if not nodes.products:
        return None
    node = choose_product(nodes.products, page_urls)
    found = read_product(node, "jsonld", page_urls[0], nodes.index)
    trail = max((breadcrumb_names(c, page_urls[0]) for c in nodes.crumbs), key=len, default=())
    if trail and trail[-1] == found.name:
        trail = trail[:-1]  # the product itself ends many trails
    if trail:
        found.category = trail
    return found
