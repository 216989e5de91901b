"""The boilerplate real shop pages carry around their product: styles, menus, scripts, footers.

It makes demo pages weigh what real ones do (40-70 KB for the JSON-LD shop), so that fetch and
parse benchmarks measure something honest. Deterministic: the same inputs give the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterable
from html import escape

__all__ = ["filler_text", "inline_styles", "menu", "padding_to", "tracking_script"]

_WORDS = [
    "calidad",
    "fresco",
    "origen",
    "sabor",
    "receta",
    "tradicional",
    "natural",
    "envase",
    "cosecha",
    "selección",
    "elaborado",
    "ingredientes",
    "conservar",
    "lugar",
    "seco",
    "consumir",
    "preferentemente",
    "antes",
    "producto",
    "nacional",
    "cuidado",
    "proveedor",
    "temporada",
    "equilibrio",
    "textura",
    "aroma",
    "intenso",
    "suave",
    "cremoso",
    "crujiente",
    "ideal",
    "para",
    "desayuno",
    "comida",
    "cena",
    "familia",
    "raciones",
    "nutrición",
    "energía",
    "proteínas",
    "grasas",
    "azúcares",
    "sal",
    "fibra",
    "vitaminas",
    "minerales",
    "garantía",
    "satisfacción",
    "devolución",
    "envío",
    "entrega",
    "tienda",
    "online",
    "oferta",
]


def _stream(key: str) -> Iterable[int]:
    counter = 0
    while True:
        digest = hashlib.blake2b(f"{key}:{counter}".encode(), digest_size=32).digest()
        yield from digest
        counter += 1


def filler_text(key: str, words: int) -> str:
    """`words` words of plausible Spanish shop copy, the same for the same `key`."""
    rng = random.Random(key)  # str seeds hash with SHA-512: stable across runs and platforms
    out = rng.choices(_WORDS, k=words)
    position = 0
    while position < words:
        out[position] = out[position].capitalize()
        position += rng.randint(6, 16)
        out[min(position, words) - 1] += "."
    return " ".join(out)


@functools.cache
def inline_styles(shop: str, rules: int = 120) -> str:
    """A `<style>` block as a theme would ship it."""
    stream = iter(_stream(f"css:{shop}"))
    lines = []
    for number in range(rules):
        colour = f"#{next(stream):02x}{next(stream):02x}{next(stream):02x}"
        lines.append(
            f".{shop}-c{number}{{margin:{next(stream) % 24}px {next(stream) % 16}px;"
            f"color:{colour};font-size:{12 + next(stream) % 10}px;"
            f"line-height:1.{next(stream) % 9}}}"
        )
    return "<style>" + "\n".join(lines) + "</style>"


def tracking_script(shop: str, page: str) -> str:
    """An analytics bootstrap with its data layer, as most shops inline one."""
    events = ",".join(
        f'{{"event":"impression","list":"{escape(page)}","position":{n},"ts_bucket":{n * 37}}}'
        for n in range(40)
    )
    return (
        "<script>window.dataLayer=window.dataLayer||[];"
        f'dataLayer.push({{"shop":"{shop}","page":"{escape(page)}"}});'
        f"dataLayer.push.apply(dataLayer,[{events}]);"
        "(function(w,d){var s=d.createElement('script');s.async=true;"
        "s.src='/static/analytics.js';d.head.appendChild(s)})(window,document);</script>"
    )


def menu(links: Iterable[tuple[str, str]], css_class: str) -> str:
    """A navigation list of (href, label) pairs."""
    items = "".join(
        f'<li class="{css_class}-item"><a class="{css_class}-link" href="{escape(href)}">'
        f"{escape(label)}</a></li>"
        for href, label in links
    )
    return f'<ul class="{css_class}">{items}</ul>'


def padding_to(size: int, current: int, key: str) -> str:
    """Paragraphs of copy bringing a page of `current` bytes to `size` bytes (±1 character)."""
    opening, closing = '<section class="long-description"><p>', "</p></section>"
    missing = size - current - len(opening) - len(closing)
    if missing <= 0:
        return ""
    text = filler_text(key, missing // 5 + 1).encode()[:missing].decode(errors="ignore")
    return f"{opening}{text}{closing}"
