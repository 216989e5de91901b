"""The slow path: extruct's RDFa and microformat readers, for pages the fast readers find no
product on.

extruct re-parses the page with lxml (and RDFa with rdflib), about five times the cost of the
whole fast path, so `page.py` calls it only when JSON-LD, microdata and OpenGraph are all
silent. Its output is reshaped into JSON-LD-like nodes for `schema.py`. This module must not
be imported on the hot path for anything else.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from pricefleet.extract.record import Found
from pricefleet.extract.schema import choose_product, is_product, read_product

__all__ = ["has_markup", "products"]

_log = logging.getLogger(__name__)
_MAX_DEPTH = 6
_MARKUP = '[typeof], [class~="h-product"], [class~="hproduct"]'
# extruct and rdflib warn about their own deprecations and about odd markup; neither is ours.
_THEIR_WARNINGS: tuple[type[Warning], ...] = (DeprecationWarning, UserWarning, SyntaxWarning)


def _key(iri: str) -> str:
    return iri.rstrip("/#").rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def _compact(node: dict[str, Any], index: dict[str, dict[str, Any]], depth: int) -> Any:
    """An expanded RDFa node (`{"http://schema.org/name": [{"@value": …}]}`) made compact."""
    result: dict[str, Any] = {}
    for iri, values in node.items():
        if iri == "@type":
            result["@type"] = [_key(t) for t in values if isinstance(t, str)]
            continue
        if iri.startswith("@") or not isinstance(values, list):
            continue
        compact = []
        for value in values:
            if not isinstance(value, dict):
                continue
            if "@value" in value:
                compact.append(value["@value"])
            elif isinstance(value.get("@id"), str):
                target = index.get(value["@id"])
                if target is not None and depth < _MAX_DEPTH and target is not node:
                    compact.append(_compact(target, index, depth + 1))
                else:
                    compact.append(value["@id"])
        if compact:
            result[_key(iri)] = compact[0] if len(compact) == 1 else compact
    return result


def _from_rdfa(nodes: list[Any]) -> list[dict[str, Any]]:
    index = {n["@id"]: n for n in nodes if isinstance(n, dict) and isinstance(n.get("@id"), str)}
    compacted = [_compact(n, index, 0) for n in nodes if isinstance(n, dict)]
    return [node for node in compacted if is_product(node)]


def _from_microformats(items: list[Any]) -> list[dict[str, Any]]:
    products = []
    for item in items:
        if not isinstance(item, dict) or "h-product" not in (item.get("type") or []):
            continue
        props = item.get("properties") or {}

        def first(name: str, props: dict[str, Any] = props) -> Any:
            values = props.get(name)
            return values[0] if isinstance(values, list) and values else None

        node: dict[str, Any] = {"@type": "Product", "name": first("name")}
        for source, target in (("brand", "brand"), ("photo", "image"), ("url", "url")):
            if first(source) is not None:
                node[target] = first(source)
        if first("price") is not None:
            node["offers"] = {"price": first("price")}
        products.append(node)
    return products


def has_markup(tree: LexborHTMLParser) -> bool:
    """Whether the page has any RDFa type or product microformat for extruct to read: without
    one there is no product to find, and extruct's cost is saved."""
    return tree.css_first(_MARKUP) is not None


def products(body: str, url: str, page_urls: list[str]) -> list[Found]:
    """The page's product as extruct reads it from RDFa or microformats (empty if none)."""
    try:
        import extruct  # slow path only: import on use

        with warnings.catch_warnings():
            for category in _THEIR_WARNINGS:
                warnings.simplefilter("ignore", category)
            data = extruct.extract(
                body, base_url=url, syntaxes=["rdfa", "microformat"], errors="ignore"
            )
    except Exception:  # a third-party parser on hostile input: any failure means "nothing"
        _log.debug("extruct failed on %s", url, exc_info=True)
        return []
    found: list[Found] = []
    for syntax, convert, source in (
        ("rdfa", _from_rdfa, "rdfa"),
        ("microformat", _from_microformats, "extruct"),
    ):
        nodes = convert(data.get(syntax) or [])
        if nodes:
            found.append(read_product(choose_product(nodes, page_urls), source, url))
    return found
