"""HTML microdata (`itemscope` / `itemprop`, schema.org or data-vocabulary.org): items read from
the lexbor tree and reshaped like JSON-LD nodes, so that `schema.py` reads both.

Owns the microdata algorithm: property values (`content`, `href`, `src`, `datetime`, text),
nested items, `itemref`. Which item owns which property is worked out with one lexbor query
per item (nested items overwrite their ancestors), not by crawling subtrees or walking up
parents in Python. What the properties mean is `schema.py`'s job.
"""

from __future__ import annotations

import re
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from pricefleet.extract.record import Found
from pricefleet.extract.schema import (
    as_list,
    breadcrumb_names,
    choose_product,
    is_product,
    read_product,
    type_names,
)

__all__ = ["product_of", "read_items"]

_URL_ATTRIBUTES = {
    "a": "href",
    "area": "href",
    "link": "href",
    "img": "src",
    "audio": "src",
    "embed": "src",
    "iframe": "src",
    "source": "src",
    "track": "src",
    "video": "src",
    "object": "data",
    "data": "value",
    "meter": "value",
}
_SPACES = re.compile(r"\s+")
_PLAIN_ID = re.compile(r"[\w.:-]{1,200}")  # ids that are safe inside a CSS string
_MAX_DEPTH = 8
_MAX_PROPERTIES = 5000
_MAX_TEXT = 5000


def _value(node: LexborNode) -> str:
    attributes = node.attributes
    content = attributes.get("content")
    if content is not None:
        return content.strip()
    tag = node.tag or ""
    name = _URL_ATTRIBUTES.get(tag)
    if name is not None:
        return (attributes.get(name) or "").strip()
    if tag == "time" and attributes.get("datetime"):
        return (attributes.get("datetime") or "").strip()
    return _SPACES.sub(" ", node.text(deep=True)[:_MAX_TEXT]).strip()


def _add(item: dict[str, Any], names: str, value: Any) -> None:
    for name in names.split():
        if name in ("@type", "@id"):
            continue
        present = item.get(name)
        if present is None:
            item[name] = value
        elif isinstance(present, list):
            present.append(value)
        else:
            item[name] = [present, value]


def _copy(value: Any, depth: int) -> Any:
    """A tree copy that cuts cycles `itemref` can make (an item holding itself)."""
    if isinstance(value, list):
        return [_copy(v, depth) for v in value]
    if isinstance(value, dict):
        if depth > _MAX_DEPTH:
            return {k: v for k, v in value.items() if not isinstance(v, dict | list)}
        return {k: _copy(v, depth + 1) for k, v in value.items()}
    return value


def read_items(tree: LexborHTMLParser) -> list[dict[str, Any]]:
    """Every top-level microdata item of the page, JSON-LD shaped: `{"@type": itemtype, …}`."""
    scopes = tree.css("[itemscope]")
    if not scopes:
        return []
    items: dict[int, dict[str, Any]] = {}
    owner_of: dict[int, int] = {}
    top: list[dict[str, Any]] = []
    references: list[tuple[str, dict[str, Any]]] = []
    for scope in scopes:
        attributes = scope.attributes
        item: dict[str, Any] = {}
        kinds = (attributes.get("itemtype") or "").split()
        if kinds:
            item["@type"] = kinds[0] if len(kinds) == 1 else kinds
        if attributes.get("itemid"):
            item["@id"] = attributes["itemid"]
        scope_id = scope.mem_id
        items[scope_id] = item
        if "itemprop" not in attributes:
            top.append(item)
        references.extend((ref, item) for ref in (attributes.get("itemref") or "").split())
        # Scopes come in document order, so a nested scope overwrites its ancestors here and
        # each property ends up owned by its nearest enclosing item.
        for prop in scope.css("[itemprop]")[:_MAX_PROPERTIES]:
            if prop.mem_id != scope_id:
                owner_of[prop.mem_id] = scope_id
    extra = _referenced(tree, references, items, owner_of) if references else {}
    for prop in tree.css("[itemprop]")[:_MAX_PROPERTIES]:
        attributes = prop.attributes
        names = attributes.get("itemprop") or ""
        if not names.strip():
            continue
        prop_id = prop.mem_id
        value: Any = items.get(prop_id) if "itemscope" in attributes else None
        if value is None:
            value = _value(prop)
        owner = items.get(owner_of.get(prop_id, -1))
        owners = ([owner] if owner is not None else []) + extra.get(prop_id, [])
        for target in owners:
            if target is not value:
                _add(target, names, value)
        if not owners and isinstance(value, dict):
            top.append(value)  # an item property of no item (`mainEntityOfPage` on a div)
    return [_copy(item, 0) for item in top]


def _referenced(
    tree: LexborHTMLParser,
    references: list[tuple[str, dict[str, Any]]],
    items: dict[int, dict[str, Any]],
    owner_of: dict[int, int],
) -> dict[int, list[dict[str, Any]]]:
    """Properties `itemref` adds to items: the referenced element if it is a property itself,
    else the properties inside it that no item inside it owns (as extruct reads them)."""
    extra: dict[int, list[dict[str, Any]]] = {}
    for ref, item in references[:100]:
        element = tree.css_first(f'[id="{ref}"]') if _PLAIN_ID.fullmatch(ref) else None
        if element is None:
            continue
        if "itemprop" in element.attributes:
            extra.setdefault(element.mem_id, []).append(item)
            continue
        inner = {s.mem_id for s in element.css("[itemscope]")} - {element.mem_id}
        for prop in element.css("[itemprop]")[:_MAX_PROPERTIES]:
            if owner_of.get(prop.mem_id) not in inner:
                extra.setdefault(prop.mem_id, []).append(item)
    return extra


def _offers_of(item: dict[str, Any]) -> None:
    """data-vocabulary.org's `offerDetails`, bare `price` / `currency` and lower-case
    `pricecurrency`, in schema.org terms."""
    if "offers" not in item and "offerDetails" in item:
        item["offers"] = item["offerDetails"]
    if "offers" not in item and "price" in item:
        item["offers"] = {"price": item["price"]}
        if "currency" in item or "priceCurrency" in item:
            item["offers"]["priceCurrency"] = item.get("priceCurrency", item.get("currency"))
    for offer in as_list(item.get("offers")):
        if isinstance(offer, dict) and "priceCurrency" not in offer:
            for key in ("currency", "pricecurrency", "PriceCurrency"):
                if key in offer:
                    offer["priceCurrency"] = offer[key]
                    break


def product_of(items: list[dict[str, Any]], page_urls: list[str]) -> Found | None:
    """The page's product as its microdata states it, or None."""
    products = [item for item in items if is_product(item)]
    if not products:
        return None
    for product in products:
        _offers_of(product)
    node = choose_product(products, page_urls)
    found = read_product(node, "microdata", page_urls[0])
    crumbs = [i for i in items if "BreadcrumbList" in type_names(i)]
    trail = max((breadcrumb_names(c, page_urls[0]) for c in crumbs), key=len, default=())
    if trail and trail[-1] == found.name:
        trail = trail[:-1]
    if trail:
        found.category = trail
    return found
