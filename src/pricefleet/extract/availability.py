"""Stock statements to `Availability`: schema.org values, OpenGraph words and shop phrases.

Owns the vocabulary only (schema.org `ItemAvailability` URLs and short names, OpenGraph's
`in stock`, Spanish, English, German, French, Italian, Portuguese and a few Central-European
shop phrases); where the statement sits on a page is the extractors' business.
"""

from __future__ import annotations

import re
import unicodedata

from pricefleet.models import Availability

__all__ = ["availability_of"]

_IN = Availability.IN_STOCK
_OUT = Availability.OUT_OF_STOCK
_PRE = Availability.PREORDER
_GONE = Availability.DISCONTINUED

# schema.org ItemAvailability members and OpenGraph / Google Merchant values, folded by `_fold`.
_EXACT: dict[str, Availability] = {
    "instock": _IN,
    "instoreonly": _IN,
    "onlineonly": _IN,
    "limitedavailability": _IN,
    "madetoorder": _IN,
    "available": _IN,
    "availablefororder": _IN,
    "true": _IN,
    "1": _IN,
    "yes": _IN,
    "outofstock": _OUT,
    "soldout": _OUT,
    "reserved": _OUT,
    "oos": _OUT,
    "unavailable": _OUT,
    "false": _OUT,
    "0": _OUT,
    "no": _OUT,
    "preorder": _PRE,
    "presale": _PRE,
    # BackOrder: orderable now, shipped when restocked - the same promise as a pre-order.
    "backorder": _PRE,
    "pending": _PRE,
    "discontinued": _GONE,
}

# Phrases searched inside free text, negative ones first ("no disponible" holds "disponible").
_PHRASES: tuple[tuple[str, Availability], ...] = (
    # discontinued
    ("descatalogado", _GONE),
    ("discontinued", _GONE),
    ("no longer available", _GONE),
    ("nicht mehr erhaltlich", _GONE),
    ("plus disponible", _GONE),
    ("fuori produzione", _GONE),
    # pre-order
    ("preventa", _PRE),
    ("pre-order", _PRE),
    ("pre order", _PRE),
    ("preorder", _PRE),
    ("proximamente", _PRE),
    ("coming soon", _PRE),
    ("vorbestell", _PRE),
    ("precommande", _PRE),
    ("back-order", _PRE),
    ("backorder", _PRE),
    ("prenota", _PRE),
    # out of stock
    ("agotado", _OUT),
    ("sin existencias", _OUT),
    ("sin stock", _OUT),
    ("fuera de stock", _OUT),
    ("no disponible", _OUT),
    ("no hay stock", _OUT),
    ("out of stock", _OUT),
    ("out-of-stock", _OUT),
    ("sold out", _OUT),
    ("currently unavailable", _OUT),
    ("not available", _OUT),
    ("unavailable", _OUT),
    ("ausverkauft", _OUT),
    ("nicht lieferbar", _OUT),
    ("nicht verfugbar", _OUT),
    ("derzeit nicht", _OUT),
    ("rupture de stock", _OUT),
    ("epuise", _OUT),
    ("indisponible", _OUT),
    ("non disponibile", _OUT),
    ("esaurito", _OUT),
    ("esgotado", _OUT),
    ("indisponivel", _OUT),
    ("nedostupn", _OUT),
    ("nie je skladom", _OUT),
    ("nie je na sklade", _OUT),
    ("neni skladem", _OUT),
    ("neni na sklade", _OUT),
    ("vypredan", _OUT),
    ("ni na zalogi", _OUT),
    ("niedostepn", _OUT),
    ("brak w magazynie", _OUT),
    # in stock
    ("en stock", _IN),
    ("in stock", _IN),
    ("instock", _IN),
    ("disponible", _IN),
    ("ultimas unidades", _IN),
    ("auf lager", _IN),
    ("lieferbar", _IN),
    ("sofort verfugbar", _IN),
    ("verfugbar", _IN),
    ("disponibile", _IN),
    ("disponivel", _IN),
    ("em estoque", _IN),
    ("na skladu", _IN),
    ("na sklade", _IN),
    ("skladom", _IN),
    ("skladem", _IN),
    ("na zalogi", _IN),
    ("dostupny", _IN),
    ("dostupne", _IN),
    ("dostepny", _IN),
    ("dostepne", _IN),
    ("available", _IN),
)

_URL_PREFIX = re.compile(r"^(?:https?://)?(?:www\.)?(?:schema\.org|schema)[/:]", re.IGNORECASE)
_NOT_WORD = re.compile(r"[\s_\-]+")
_SPACES = re.compile(r"\s+")
_MAX_TEXT = 300


def _strip_accents(text: str) -> str:
    # The phrases are all Latin script, so dropping what is not ASCII after decomposition
    # (combining accents, other scripts) loses nothing they could match.
    if text.isascii():
        return text
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def availability_of(value: str | None) -> Availability:
    """What a stock statement means: `https://schema.org/InStock`, `OutOfStock`, `in stock`,
    `PreOrder`, `Disponible`, `Agotado`, `Sin existencias`... UNKNOWN when it says nothing known.
    """
    if not value:
        return Availability.UNKNOWN
    text = value.strip()[:_MAX_TEXT]
    short = _URL_PREFIX.sub("", text)
    exact = _EXACT.get(_NOT_WORD.sub("", short).lower())
    if exact is not None:
        return exact
    folded = _SPACES.sub(" ", _strip_accents(text).lower())
    for phrase, availability in _PHRASES:
        if phrase in folded:
            return availability
    return Availability.UNKNOWN
