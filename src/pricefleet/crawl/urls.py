"""URL canonicalisation and the small parsers discovery needs (sitemaps, link selectors).

Must not fetch: it only reads bodies handed to it.
"""

from __future__ import annotations

import gzip
import html
import re
import zlib
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser
from w3lib.url import canonicalize_url

__all__ = ["canonical", "links", "sitemap_locations", "unpack"]

_LOC = re.compile(rb"<loc>\s*(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?\s*</loc>", re.S | re.I)
_INDEX = re.compile(rb"<sitemapindex[\s>]", re.I)
_MAX_UNPACKED = 200_000_000  # a sitemap may be 50 MB; a gzip bomb may not


def canonical(url: str) -> str:
    """One spelling per page: sorted query, no fragment, normalised escapes (w3lib)."""
    return canonicalize_url(url, keep_fragments=False)


def unpack(body: bytes) -> bytes:
    """A body as it was before gzip (sitemaps are often .xml.gz served as plain bytes)."""
    if body[:2] != b"\x1f\x8b":
        return body
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    data = inflater.decompress(body, _MAX_UNPACKED)
    if inflater.unconsumed_tail:
        raise gzip.BadGzipFile(f"unpacks to more than {_MAX_UNPACKED} bytes")
    return data


def sitemap_locations(body: bytes, base_url: str) -> tuple[bool, list[str]]:
    """(is_index, absolute URLs) of a sitemap or sitemap index; entities are not expanded
    beyond the five XML ones, so hostile XML cannot blow up."""
    data = unpack(body)
    is_index = _INDEX.search(data[:4096]) is not None
    urls = [
        urljoin(base_url, html.unescape(match.group(1).decode("utf-8", "replace")).strip())
        for match in _LOC.finditer(data)
    ]
    return is_index, urls


def links(tree: LexborHTMLParser, selector: str, base_url: str) -> list[str]:
    """Absolute http(s) URLs of the elements a CSS selector picks (`href`, else `src`)."""
    found = []
    for node in tree.css(selector):
        target = node.attributes.get("href") or node.attributes.get("src")
        if not target:
            continue
        url = urljoin(base_url, target.strip())
        if urlsplit(url).scheme in ("http", "https"):
            found.append(url)
    return found


def same_site(url: str, bases: Iterable[str]) -> bool:
    """Whether `url` is on one of the hosts of `bases` (discovery stays on the shop)."""
    host = urlsplit(url).netloc.lower()
    return any(urlsplit(base).netloc.lower() == host for base in bases)
