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


# URLs w3lib would hand back unchanged: http(s), a lower-case ASCII host name or IPv4 address
# (no IDNA `xn--` label), an optional port from 1 to 65535 without a leading zero, and a path
# of unreserved characters and '/' only (no escapes, no query, no fragment, no '.' or '..'
# segment, since any '/.' is refused). A sitemap's URLs are nearly all of this form; for them
# `canonical` skips w3lib's full parse and re-encoding (~14 µs a URL, for every URL of every
# sitemap in every process of `crawl --processes`). tests/crawl/test_urls.py checks that the
# answers are w3lib's.
_ALREADY_CANONICAL = re.compile(
    r"https?://(?!.*xn--)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
    r"(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    r"(?!.*/\.)/[A-Za-z0-9._~/-]*"
)


def canonical(url: str) -> str:
    """One spelling per page: sorted query, no fragment, normalised escapes (w3lib)."""
    if _ALREADY_CANONICAL.fullmatch(url) is not None:
        return url
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
