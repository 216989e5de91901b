"""schema.org Product nodes to `Found`: one reader for JSON-LD and microdata alike.

Owns the meaning of schema.org's Product vocabulary as shops use it: `offers` as an Offer, a
list or an AggregateOffer; `priceSpecification` with UnitPriceSpecification (the shop's unit
price) and StrikethroughPrice / ListPrice (the regular price); `price` as a number or a string
with a decimal comma; `gtin*`; `brand` as text or a Brand; ProductGroup with `hasVariant`.
Nodes arrive JSON-LD shaped (`{"@type": …, "offers": {…}}`); microdata is converted to that
shape by `microdata.py`. Finding nodes on a page is the syntax modules' job.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

from pricefleet.extract.availability import availability_of
from pricefleet.extract.currency import currency_code
from pricefleet.extract.prices import decimal_of, parse_price, plausible
from pricefleet.extract.record import Found
from pricefleet.extract.units import parse_size
from pricefleet.match.gtin import normalize_gtin
from pricefleet.models import Availability

__all__ = [
    "PRODUCT_TYPES",
    "absolute_url",
    "as_list",
    "breadcrumb_names",
    "choose_product",
    "is_product",
    "read_product",
    "same_page",
    "text_of",
    "type_names",
]

#: schema.org types that are products in their own right.
PRODUCT_TYPES = frozenset(
    {"Product", "ProductGroup", "IndividualProduct", "ProductModel", "SomeProducts"}
)
# Types shops give a product when they know a more specific class; products only with offers.
_SOLD_TYPES = frozenset(
    {
        "Book",
        "Car",
        "Vehicle",
        "Motorcycle",
        "MusicAlbum",
        "MusicRecording",
        "Movie",
        "VideoGame",
        "SoftwareApplication",
        "DietarySupplement",
        "Drug",
        "CreativeWork",
        "Thing",
    }
)
_REGULAR_TYPES = frozenset({"strikethroughprice", "listprice", "srp", "msrp", "regularprice"})
_GTIN_KEYS = ("gtin14", "gtin13", "gtin", "gtin12", "gtin8", "ean", "ean13", "isbn", "upc")
# UN/CEFACT common codes shops put in `unitCode`, with how we name them.
_UNIT_CODES = {
    "KGM": "kg",
    "GRM": "g",
    "LTR": "l",
    "MLT": "ml",
    "CLT": "cl",
    "DLT": "dl",
    "C62": "unit",
    "H87": "unit",
    "EA": "unit",
    "MTR": "m",
    "MTK": "m2",
}
_SPACES = re.compile(r"\s+")
_VOCABULARY = re.compile(r"[/#:]")
_GS1_DIGITAL_LINK = re.compile(r"/01/(\d{8,14})")
_MAX_TEXT = 2000
_HOME_WORDS = frozenset(
    {
        "home",
        "homepage",
        "home page",
        "inicio",
        "portada",
        "startseite",
        "start",
        "accueil",
        "pagina iniziale",
        "página inicial",
        "strona główna",
        "domů",
        "domov",
        "úvod",
        "hem",
        "forside",
        "etusivu",
        "avaleht",
        "kezdőlap",
        "начало",
        "главная",
    }
)


def type_names(node: dict[str, Any]) -> frozenset[str]:
    """The node's `@type`s without vocabulary prefix (`http://schema.org/Product` → `Product`)."""
    raw = node.get("@type", node.get("type"))
    if isinstance(raw, str) and raw.isalnum():
        return frozenset((raw,))  # the common case, `"Product"`, without the regex
    names = []
    for value in raw if isinstance(raw, list) else (raw,):
        if isinstance(value, str) and value:
            names.append(_VOCABULARY.split(value.strip())[-1])
    return frozenset(names)


def is_product(node: dict[str, Any]) -> bool:
    """Whether a node describes something a shop sells."""
    types = type_names(node)
    if types & PRODUCT_TYPES:
        return True
    return bool(types & _SOLD_TYPES) and "offers" in node


def as_list(value: Any) -> list[Any]:
    """A JSON value as a list: lists as they are, None as empty, anything else alone."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def text_of(value: Any) -> str | None:
    """Readable text of a JSON value: strings tidied, `{"name": …}` / `{"@value": …}` unwrapped,
    the first usable item of a list; None when there is none."""
    if isinstance(value, str) and len(value) < _MAX_TEXT:
        # The common case: already tidy text, checked in C before any regex runs.
        text = value.strip()
        if not ("  " in text or "\n" in text or "\t" in text or "\r" in text or "&" in text):
            return text or None
    for item in as_list(value)[:20]:
        if isinstance(item, dict):
            item = item.get("name", item.get("@value"))
            if isinstance(item, list):
                item = item[0] if item else None
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, int | float):
            item = str(item)
        if not isinstance(item, str):
            continue
        text = item[:_MAX_TEXT]
        if "&" in text:
            text = html.unescape(text)
        text = _SPACES.sub(" ", text).strip()
        if text:
            return text
    return None


# The common relative URL, a plain root-relative path (`/img/332.jpg`) against an http(s)
# page, joined without urljoin's two parses (a product page has a few, and urljoin was a
# visible share of a crawl's CPU): printable ASCII, no `?`/`#` (urljoin drops an empty query
# or fragment), no dot segment (urljoin removes them), no `;` (urljoin drops an empty last
# parameter: "/a;" → "/a"), no backslash; the page's origin plain.
_ROOTED = re.compile(r"/[^/\x00-\x20\x7f-\U0010ffff?#;\\][^\x00-\x20\x7f-\U0010ffff?#;\\]*")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9_.\-]+(?::[0-9]+)?(?=[/?#]|\Z)")


def _joined(base: str, text: str) -> str | None:
    """`urljoin(base, text)` when `text` is a plain root-relative path and `base` an http(s)
    URL with a plain host; None when urljoin has to decide."""
    if "/." in text or _ROOTED.fullmatch(text) is None:
        return None
    origin = _ORIGIN.match(base)
    return origin[0] + text if origin is not None else None


def absolute_url(value: Any, base: str) -> str | None:
    """The first http(s) URL in a JSON value (string, `{"url": …}`, ImageObject, list)."""
    for item in as_list(value)[:20]:
        if isinstance(item, dict):
            item = item.get("url", item.get("contentUrl", item.get("@id")))
            if isinstance(item, list):
                item = item[0] if item else None
        if not isinstance(item, str):
            continue
        text = item.strip()
        if not text or len(text) > _MAX_TEXT:
            continue
        if text.startswith(("https://", "http://")) and " " not in text:
            return text
        joined = _joined(base, text)
        if joined is not None:
            return joined
        try:
            url = urljoin(base, text)
        except ValueError:
            continue
        if url.startswith(("http://", "https://")):
            return url
    return None


def _page_key(url: str) -> tuple[str, str, str]:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ("", url, "")
    host = parts.hostname or ""
    return (host.removeprefix("www."), parts.path.rstrip("/") or "/", parts.query)


def _join(base: str, url: str) -> str:
    try:
        return urljoin(base, url)
    except ValueError:  # `http://[bad` and the like: compare it as written
        return url


def same_page(a: str | None, b: str | None) -> bool:
    """Whether two URLs name the same page (scheme, `www.`, trailing slash, fragment aside)."""
    if not a or not b:
        return False
    return _page_key(a) == _page_key(b)


def _gtin(node: dict[str, Any]) -> str | None:
    for key in _GTIN_KEYS:
        for value in as_list(node.get(key))[:5]:
            if isinstance(value, str):
                link = _GS1_DIGITAL_LINK.search(value)
                value = link.group(1) if link else value
            if isinstance(value, str | int) and not isinstance(value, bool):
                gtin = normalize_gtin(value)
                if gtin is not None:
                    return gtin
    return None


def _price_and_currency(value: Any, currency: Any) -> tuple[Decimal | None, str | None]:
    code = currency_code(currency) if isinstance(currency, str) else None
    if isinstance(value, str) and value.strip() and not value.strip()[0].isdigit():
        amount, stated = parse_price(value, currency_hint=currency if code else None)
        return plausible(amount), code or stated
    if isinstance(value, list):
        value = value[0] if value else None
    return decimal_of(value), code


def _specs(offer: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for spec in as_list(offer.get("priceSpecification"))[:20]:
        if isinstance(spec, dict):
            yield spec


def _reference_unit(spec: dict[str, Any]) -> str | None:
    quantity = spec.get("referenceQuantity")
    if not isinstance(quantity, dict):
        code = spec.get("unitCode")
        return _UNIT_CODES.get(code.upper(), code.lower()) if isinstance(code, str) else None
    code, label = quantity.get("unitCode"), quantity.get("unitText")
    unit = None
    if isinstance(code, str) and code.strip():
        unit = _UNIT_CODES.get(code.strip().upper(), code.strip().lower())
    elif isinstance(label, str) and label.strip():
        unit = label.strip().lower()
    if unit is None:
        return None
    amount = decimal_of(quantity.get("value"))
    if amount is None or amount == 1:
        return unit
    return f"{amount.normalize():f} {unit}"


def _is_regular(spec: dict[str, Any]) -> bool:
    kind = spec.get("priceType")
    if not isinstance(kind, str):
        return False
    return _VOCABULARY.split(kind.strip())[-1].lower() in _REGULAR_TYPES


def _offer_list(value: Any, index: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The offers to choose from; an AggregateOffer stands for its inner offers if it lists any."""
    offers: list[dict[str, Any]] = []
    for item in as_list(value)[:50]:
        item = _resolve(item, index)
        if not isinstance(item, dict):
            continue
        inner = [_resolve(o, index) for o in as_list(item.get("offers"))[:50]]
        priced = [o for o in inner if isinstance(o, dict) and _offer_price(o)[0] is not None]
        offers.extend(priced or [item])  # an AggregateOffer's own `lowPrice` as the fallback
    return offers


def _resolve(value: Any, index: dict[str, dict[str, Any]]) -> Any:
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("@id"), str):
        return index.get(value["@id"], value)
    return value


def _offer_price(offer: dict[str, Any]) -> tuple[Decimal | None, str | None]:
    currency = offer.get("priceCurrency")
    price, code = _price_and_currency(offer.get("price"), currency)
    if price is None:
        price, code = _price_and_currency(offer.get("lowPrice"), currency)
    if price is None:
        for spec in _specs(offer):
            if _is_regular(spec) or "referenceQuantity" in spec:
                continue
            price, code = _price_and_currency(spec.get("price"), spec.get("priceCurrency"))
            if price is not None:
                break
    return price, code


def _offer_rank(offer: dict[str, Any], price: Decimal) -> tuple[int, int, Decimal]:
    availability = availability_of(text_of(offer.get("availability")))
    sold_out = availability in (Availability.OUT_OF_STOCK, Availability.DISCONTINUED)
    condition = (text_of(offer.get("itemCondition")) or "").lower()
    second_hand = "used" in condition or "refurbished" in condition
    return (int(sold_out), int(second_hand), price)


def _pick_offer(offers: list[dict[str, Any]], page_url: str) -> dict[str, Any] | None:
    """The offer the page sells: the one at the page's URL when offers are per-variant (each
    its own URL), else the cheapest new one in stock (sellers, or list and sale price)."""
    if len(offers) == 1:
        return offers[0]
    priced = [(offer, price) for offer in offers if (price := _offer_price(offer)[0]) is not None]
    if not priced:
        return offers[0] if offers else None
    urls = {o.get("url") for o, _ in priced if isinstance(o.get("url"), str)}
    if len(urls) > 1:
        for offer, _ in priced:
            url = offer.get("url")
            if isinstance(url, str) and same_page(_join(page_url, url), page_url):
                return offer
    return min(priced, key=lambda pair: _offer_rank(*pair))[0]


def _apply_offer(found: Found, offer: dict[str, Any]) -> None:
    found.price, found.currency = _offer_price(offer)
    for spec in _specs(offer):
        amount, code = _price_and_currency(spec.get("price"), spec.get("priceCurrency"))
        if amount is None:
            continue
        if found.currency is None:
            found.currency = code
        if _is_regular(spec):
            if found.regular_price is None:
                found.regular_price = amount
        elif found.shop_unit_price is None and (
            spec.get("referenceQuantity") is not None or spec.get("unitCode") is not None
        ):
            found.shop_unit_price = amount
            found.shop_unit = _reference_unit(spec)
    found.availability = availability_of(text_of(offer.get("availability")))


def _variant_score(variant: dict[str, Any], page_url: str) -> int:
    for key in ("url", "@id"):
        url = variant.get(key)
        if isinstance(url, str) and same_page(_join(page_url, url), page_url):
            return 2
    for offer in as_list(variant.get("offers"))[:10]:
        url = offer.get("url") if isinstance(offer, dict) else None
        if isinstance(url, str) and same_page(_join(page_url, url), page_url):
            return 2
    sku = text_of(variant.get("sku"))
    if sku:
        try:
            parts = urlsplit(page_url)
        except ValueError:
            return 0
        if sku in {v for _, v in parse_qsl(parts.query)} or parts.path.rstrip("/").endswith(sku):
            return 1
    return 0


def _variant(group: dict[str, Any], page_url: str, index: dict[str, dict[str, Any]]) -> Any:
    """A ProductGroup narrowed to the variant the page shows (the URL's, else the first)."""
    variants = [_resolve(v, index) for v in as_list(group.get("hasVariant"))[:500]]
    variants = [v for v in variants if isinstance(v, dict)]
    if not variants:
        return group
    best = max(variants, key=lambda v: _variant_score(v, page_url))
    merged = {k: v for k, v in group.items() if k not in ("hasVariant", "@type")}
    merged.update(best)
    if "offers" not in best and "offers" in group:
        merged["offers"] = group["offers"]
    return merged


def _category(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        names = [text_of(item) for item in value[:20]]
        return tuple(n for n in names if n and not n.startswith("http"))
    text = text_of(value)
    if not text or text.startswith("http") or text.isdigit():
        return ()
    for separator in (">", "|", "/"):
        if separator in text:
            return tuple(p.strip() for p in text.split(separator) if p.strip())
    return (text,)


def _size(node: dict[str, Any]) -> Any:
    value = node.get("size")
    if isinstance(value, dict):
        amount, unit = value.get("value"), value.get("unitCode", value.get("unitText"))
        if isinstance(amount, int | float | str) and isinstance(unit, str):
            return parse_size(f"{amount} {_UNIT_CODES.get(unit.upper(), unit)}")
        return None
    text = text_of(value)
    return parse_size(text) if text else None


def read_product(
    node: dict[str, Any],
    source: str,
    page_url: str,
    index: dict[str, dict[str, Any]] | None = None,
) -> Found:
    """What a schema.org Product (or ProductGroup, narrowed to the page's variant) states."""
    index = index or {}
    if "hasVariant" in node:
        node = _variant(node, page_url, index)
    found = Found(source=source, raw=node)
    found.name = text_of(node.get("name"))
    brand = _resolve(node.get("brand"), index)
    found.brand = text_of(brand) or text_of(node.get("manufacturer"))
    found.sku = text_of(node.get("sku")) or text_of(node.get("productID"))
    found.gtin = _gtin(node)
    found.image_url = absolute_url(node.get("image"), page_url)
    found.url = absolute_url(node.get("url"), page_url)
    found.category = _category(node.get("category"))
    found.size = _size(node)
    offer = _pick_offer(_offer_list(node.get("offers"), index), page_url)
    if offer is not None:
        _apply_offer(found, offer)
    if found.availability is Availability.UNKNOWN:
        found.availability = availability_of(text_of(node.get("availability")))
    return found


def _product_score(node: dict[str, Any], page_urls: Iterable[str]) -> int:
    urls = [node.get("url"), node.get("@id")]
    urls += [o.get("url") for o in as_list(node.get("offers"))[:10] if isinstance(o, dict)]
    for url in urls:
        if isinstance(url, str) and any(same_page(_join(p, url), p) for p in page_urls):
            return 3
    if "offers" in node or "hasVariant" in node:
        return 1
    return 0


def choose_product(nodes: list[dict[str, Any]], page_urls: Iterable[str]) -> dict[str, Any]:
    """The node the page is about: the one naming the page's URL, else the first with offers,
    else the first. `nodes` must not be empty."""
    if len(nodes) == 1:
        return nodes[0]
    urls = [u for u in page_urls if u]
    return max(nodes, key=lambda node: _product_score(node, urls))


def _is_home(name: str, link: Any, page_url: str) -> bool:
    """Whether a first breadcrumb is the shop's home page rather than a category: named
    "Home" / "Inicio" / the shop, or linking to the site root or a bare locale (`/de`)."""
    if name.lower() in _HOME_WORDS:
        return True
    try:
        host = (urlsplit(page_url).hostname or "").removeprefix("www.")
        url = absolute_url(link, page_url)
        path = urlsplit(url).path if url else None
    except ValueError:
        return False
    if host and name.lower().replace(" ", "") in host.replace("-", ""):
        return True
    if path is None:
        return False
    segments = [p for p in path.split("/") if p and not p.startswith("index.")]
    return not segments or (len(segments) == 1 and len(segments[0]) <= 5)


def breadcrumb_names(node: dict[str, Any], page_url: str = "") -> tuple[str, ...]:
    """The names of a BreadcrumbList's items in position order, without a leading home link."""
    items = []
    for number, item in enumerate(as_list(node.get("itemListElement"))[:50]):
        if not isinstance(item, dict):
            continue
        target = item.get("item")
        name = text_of(item.get("name"))
        if name is None and isinstance(target, dict):
            name = text_of(target.get("name"))
        position = item.get("position")
        try:
            order = float(position) if position is not None else float(number)
        except (TypeError, ValueError):
            order = float(number)
        if name:
            items.append((order, number, name, target))
    items.sort(key=lambda entry: entry[:2])
    if items and page_url and _is_home(items[0][2], items[0][3], page_url):
        items = items[1:]
    names = [name for _, _, name, _ in items]
    return tuple(name for i, name in enumerate(names) if i == 0 or names[i - 1] != name)
