"""What a page shows people, for what its structured data leaves out: the price element near
the product title, a struck-through regular price next to the price, the stock line.

Heuristics, used only as gap fillers by `page.py`; site recipes (`sites/`) replace them where
they are wrong. A price element is one whose class or id says "price", that shows exactly one
amount with a currency, and is not struck through, hidden, a unit price, saving or tax line,
inside a carousel or related-products block, or in one of several alike cards that link
elsewhere (a listing); the first one after the product's `<h1>` wins.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

from selectolax.lexbor import LexborHTMLParser, LexborNode

from pricefleet.extract.availability import availability_of
from pricefleet.extract.prices import parse_price, plausible
from pricefleet.extract.record import Found
from pricefleet.models import Availability

__all__ = ["availability_of_page", "product_of", "struck_price"]

_PRICE_NODES = 'h1, [class*="price" i], [id*="price" i]'
_STRUCK_TAGS_CSS = "del, s, strike"
_STRUCK_CLASSES_CSS = '[class*="strike" i], [class*="old-price" i], [class*="oldprice" i]'
_STOCK_NODES = (
    '[class*="availab" i], [id*="availab" i], [class*="stock" i], [id*="stock" i], '
    '[itemprop="availability"]'
)
_BUY_NODES = (
    'button, input[type="submit" i], input[type="button" i], a[class*="cart" i], '
    'a[id*="cart" i], a[class*="basket" i], a[class*="buy" i], [class*="add-to" i], '
    '[id*="add-to" i], [class*="addto" i], [id*="addto" i]'
)
_NOT_CONTENT = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "head",
        "meta",
        "link",
        "input",
        "select",
        "option",
        "textarea",
        "form",
        "html",
        "body",
    }
)
_STRUCK_TAGS = frozenset({"del", "s", "strike"})
# Regions that show other products (or the whole site's) prices and buttons.
_ELSEWHERE = re.compile(
    r"carousel|related|recommend|similar|upsell|up-sell|cross-?sell|sims-|p13n|bundle|"
    r"accessor|also-?bought|also-?viewed|footer|swiper|slick|teaser|minicart|mini-cart|"
    r"popover|modal",
    re.IGNORECASE,
)
_HIDDEN_CLASS = re.compile(
    r"(?:^|\s)(?:hidden|hide|d-none|is-hidden|aok-hidden|invisible|display-none)(?:\s|$)",
    re.IGNORECASE,
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
# An element whose class or id says it is not the price to pay now.
_NOT_NOW = re.compile(
    r"strike|saving|shipping|delivery|installment|instalment|monthly|original|regular|before|"
    r"listprice|list-price|per-unit|unitprice|unit-price|filter|range|"
    r"(?<![a-z])(?:old|was|rrp|uvp|ppu|tax|total|unit|save|from)(?![a-z])",
    re.IGNORECASE,
)
# Elements named after one stock state are templates the shop shows or hides with CSS.
_STATE_NAMED = re.compile(
    r"unavailab|out-?of-?stock|sold-?out|can-?not|cannot|can-?buy|not-?available|no-?stock|"
    r"in-?stock|instock|available-label|preorder",
    re.IGNORECASE,
)
_BUY_WORDS = re.compile(
    r"add[\s_-]*to[\s_-]*(?:cart|basket|bag|trolley)|\bbuy\b|start order|warenkorb|"
    r"einkaufswagen|kaufen|ajouter au panier|aggiungi al carrello|anadir|comprar|"
    r"adicionar ao carrinho|do kosika|do koszyka|do kosiku|kosaric|naroci|kupi|kup teraz|"
    r"winkelwagen|ostukorvi|in den korb",
    re.IGNORECASE,
)
_BUY_LABEL = re.compile(
    r"add-?to-?(?:cart|basket|bag|trolley)|addtocart|add_to_cart|buy-?now|buy-?button|btn-?buy|"
    r"button-?cart|btn-?cart|add-?cart",
    re.IGNORECASE,
)
_OUT_WORDS = re.compile(
    r"out of stock|sold out|currently unavailable|agotado|sin existencias|sin stock|"
    r"ausverkauft|nicht lieferbar|nicht verfugbar|rupture de stock|epuise|esaurito|"
    r"non disponibile|esgotado|niedostepn|nedostupn|vypredan|ni na zalogi"
)
_AMOUNTS = re.compile(r"\d[\d.,'\s]*")
_UNIT_LINE = re.compile(r"/\s*(?:\d+\s*)?(?:kg|g|l|ml|cl|m|ud|unit|st|stk|pc|pcs|100)\b|%")
_WORDS = re.compile(r"\w{3,}")
_MAX_TEXT = 60
_MAX_NAME = 500  # an unclosed <h1> can swallow the page
_MAX_DEPTH = 14
_CARD_DEPTH = 5
_CARDS = 3


def _label(node: LexborNode) -> str:
    attributes = node.attributes
    return f"{attributes.get('class') or ''} {attributes.get('id') or ''}"


def _text(node: LexborNode) -> str:
    return " ".join(node.text(deep=True).split())


def _hidden(node: LexborNode) -> bool:
    attributes = node.attributes
    if "hidden" in attributes or attributes.get("aria-hidden") == "true":
        return True
    if _HIDDEN_STYLE.search(attributes.get("style") or ""):
        return True
    return bool(_HIDDEN_CLASS.search(attributes.get("class") or ""))


def _excluded(node: LexborNode) -> bool:
    """Whether the node is hidden, struck through, or in a block about other products."""
    if _hidden(node):
        return True
    parent, depth = node.parent, 0
    while parent is not None and depth < _MAX_DEPTH:
        if parent.tag in _STRUCK_TAGS or _hidden(parent):
            return True
        label = _label(parent)
        if label.strip() and _ELSEWHERE.search(label):
            return True
        parent, depth = parent.parent, depth + 1
    return False


def _in_listing(node: LexborNode) -> bool:
    """Whether the node sits in one of several alike cards that each link elsewhere: a
    listing (category page, search results) rather than the product's own price."""
    card, depth = node.parent, 0
    while card is not None and depth < _CARD_DEPTH:
        parent = card.parent
        kind = (card.tag, card.attributes.get("class"))
        if parent is not None and kind[1] and card.css_first("a[href]") is not None:
            alike = 0
            for sibling in parent.iter():
                if (sibling.tag, sibling.attributes.get("class")) == kind:
                    alike += 1
                    if alike >= _CARDS:
                        return True
        card, depth = parent, depth + 1
    return False


def _one_price(node: LexborNode, hint: str | None) -> tuple[Decimal, str, str] | None:
    """(amount, currency, text) when the node shows exactly one amount with a currency."""
    if node.tag in _NOT_CONTENT or node.tag in _STRUCK_TAGS:
        return None
    text = _text(node)
    if not text or len(text) > _MAX_TEXT or _UNIT_LINE.search(text):
        return None
    if len(_AMOUNTS.findall(text)) != 1:
        return None
    amount, currency = parse_price(text, currency_hint=hint)
    amount = plausible(amount)
    if amount is None or currency is None:
        return None
    return amount, currency, text


def _title_words(tree: LexborHTMLParser) -> set[str]:
    words: set[str] = set()
    for selector in ("title", 'meta[property="og:title"]'):
        node = tree.css_first(selector)
        if node is not None:
            text = node.attributes.get("content") if node.tag == "meta" else node.text()
            words.update(w.lower() for w in _WORDS.findall(text or ""))
    return words


def _product_title(nodes: list[LexborNode], tree: LexborHTMLParser) -> int:
    """The index among `nodes` of the `<h1>` naming the product (pages have popover h1s too):
    the one sharing most words with the page's `<title>`; -1 when there is no h1."""
    heads = [i for i, node in enumerate(nodes) if node.tag == "h1"]
    if len(heads) <= 1:
        return heads[0] if heads else -1
    words = _title_words(tree)
    shared = [len(words & {w.lower() for w in _WORDS.findall(_text(nodes[i]))}) for i in heads]
    return heads[shared.index(max(shared))]


def product_of(tree: LexborHTMLParser, url: str, *, hint: str | None = None) -> Found | None:
    """The price shown first after the product's title, as a `visible` Found, or None.

    `hint` is a currency the page states elsewhere, for prices shown without one.
    """
    nodes = tree.css(_PRICE_NODES)
    title = _product_title(nodes, tree)
    order = nodes[title + 1 :] + nodes[: max(title, 0)][::-1] if title >= 0 else nodes
    for node in order:
        if node.tag == "h1" or _NOT_NOW.search(_label(node)):
            continue
        shown = _one_price(node, hint)
        if shown is None or _excluded(node) or _in_listing(node):
            continue
        amount, currency, text = shown
        found = Found(source="visible", price=amount, currency=currency, raw={"price": text})
        found.name = _text(nodes[title])[:_MAX_NAME] if title >= 0 else None
        if not found.name:
            og_title = tree.css_first('meta[property="og:title"]')
            found.name = (og_title.attributes.get("content") if og_title else None) or None
        return found
    return None


def _shown_as(price: Decimal) -> tuple[str, ...]:
    text = f"{price:.2f}"
    forms = [text, text.replace(".", ",")]
    if price == price.to_integral_value():
        forms.append(f"{price:.0f},-")
    return tuple(forms)


def struck_price(
    tree: LexborHTMLParser, price: Decimal, *, by_class: bool = False
) -> Decimal | None:
    """A struck-through amount above `price`, shown next to it (same block): the regular price
    of a discounted product. None when the page shows none. `del`, `s` and `strike` elements
    only, unless `by_class` also asks for elements styled so (`a-text-strike`, `old-price`),
    which costs a full class scan."""
    forms = _shown_as(price)
    selector = f"{_STRUCK_TAGS_CSS}, {_STRUCK_CLASSES_CSS}" if by_class else _STRUCK_TAGS_CSS
    for node in tree.css(selector):
        if node.tag in _NOT_CONTENT:
            continue
        text = _text(node)
        if not text or len(text) > _MAX_TEXT or len(_AMOUNTS.findall(text)) != 1:
            continue
        amount = plausible(parse_price(text)[0])
        if amount is None or not price < amount < price * 10:
            continue
        block, depth = node.parent, 0
        while block is not None and depth < 3:
            around = block.text(deep=True)
            if len(around) < 2000 and any(form in around for form in forms):
                return None if _excluded(node) else amount
            block, depth = block.parent, depth + 1
    return None


def _fold(text: str) -> str:
    """Accents off (`Naroči` → `Naroci`), in C: the phrases looked for are all Latin script."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _stock_line(tree: LexborHTMLParser) -> Availability:
    for node in tree.css(_STOCK_NODES):
        if node.tag in _NOT_CONTENT - {"link", "meta"} or _STATE_NAMED.search(_label(node)):
            continue
        text = node.attributes.get("href") or node.attributes.get("content") or _text(node)
        if not text or len(text) > 200:
            continue
        availability = availability_of(text)
        if availability is not Availability.UNKNOWN and not _excluded(node):
            return availability
    return Availability.UNKNOWN


def _can_buy(tree: LexborHTMLParser) -> bool:
    for node in tree.css(_BUY_NODES):
        attributes = node.attributes
        if "disabled" in attributes or "disabled" in (attributes.get("class") or "").lower():
            continue
        text = _fold(_text(node) or attributes.get("value") or "")
        if not (len(text) <= 60 and _BUY_WORDS.search(text)) and not _BUY_LABEL.search(
            _label(node)
        ):
            continue
        if not _excluded(node):
            return True
    return False


def availability_of_page(tree: LexborHTMLParser) -> Availability:
    """Stock as the page shows it, for a product whose structured data says nothing: its stock
    line (`En stock`, `Agotado`, `Auf Lager.`) if it has one; else in stock when it offers a
    buy button, or when no out-of-stock wording appears anywhere on the page (shops state
    stock mostly when it runs out); UNKNOWN when such wording appears without a stock line.
    Strips scripts and styles from the tree: call it last."""
    stated = _stock_line(tree)
    if stated is not Availability.UNKNOWN:
        return stated
    if _can_buy(tree):
        return Availability.IN_STOCK
    body = tree.body
    if body is None:
        return Availability.UNKNOWN
    for node in body.css("script, style, noscript, template"):
        node.decompose()  # their text is code; this is the last use of the tree
    text = _fold(" ".join(body.text(separator=" ").split()).lower())
    return Availability.UNKNOWN if _OUT_WORDS.search(text) else Availability.IN_STOCK
