"""`Response`: one fetched page as the crawler sees it, and how its body is decoded to text.

This module owns the record and text decoding. It must not fetch anything.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass

import xxhash

__all__ = ["Response", "content_hash", "decode_body"]

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_UTF8 = codecs.lookup("utf-8").name
#: WHATWG: these labels mean windows-1252 on the web.
_WINDOWS_1252 = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1", "ascii", "us-ascii"}


def content_hash(body: bytes) -> str:
    """A body's 128-bit XXH3, hex: the fingerprint incremental crawls compare.

    A fingerprint, not a signature: it only has to tell a changed page from the same page
    (whoever controls the page can serve it unchanged anyway). XXH3 reads a 66 KB page in
    ~1.4 µs where SHA-256 took ~44 µs with the CPU's SHA instructions (3.5 % of a crawl's CPU
    per product). A fingerprint stored by an older version (SHA-256 or blake2b, cut to 128
    bits) differs once, so such a page is parsed again on its next crawl, as if it had
    changed."""
    return xxhash.xxh3_128_hexdigest(body)


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    if label in _WINDOWS_1252:
        return "cp1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _decoding(body: bytes, content_type: str | None) -> tuple[int, str]:
    """How `decode_body` reads a body: bytes of BOM to skip, and the codec."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return len(bom), name
    header = _HEADER_CHARSET.search(content_type or "")
    codec = _codec(header.group(1) if header else None)
    if codec is None:
        meta = _META_CHARSET.search(body[:4096])
        codec = _codec(meta.group(1).decode("ascii", "replace") if meta else None)
    return 0, codec or _UTF8


def decode_body(body: bytes, content_type: str | None) -> str:
    """Text of a body: by its BOM, else the Content-Type charset, else a `<meta>` charset,
    else UTF-8; undecodable bytes become U+FFFD rather than failing.
    """
    skip, codec = _decoding(body, content_type)
    return body[skip:].decode(codec, "replace")


@dataclass(frozen=True, slots=True)
class Response:
    """A page fetched to the end: final URL (after redirects), status, headers and body."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    #: True when the shop answered 304 to our conditional request: `body` is empty.
    not_modified: bool
    #: `content_hash(body)`, 32 hex digits ('' when not_modified).
    content_hash: str
    #: Seconds from the call to the end, including robots.txt, rate-limit waits and backoff.
    elapsed: float
    #: Requests sent for this page: 1 plus the retries it took.
    attempts: int
    #: The URLs redirected from, in order (the final URL is `url`).
    redirects: tuple[str, ...]

    def text(self) -> str:
        """The body decoded: Content-Type charset, else `<meta charset>`, else UTF-8."""
        return decode_body(self.body, self.headers.get("Content-Type"))

    def utf8_body(self) -> bytes | None:
        """The body itself when `text()` would decode it as UTF-8 (no BOM), else None.

        An HTML parser reads UTF-8 bytes as they are: handing it these instead of `text()`
        saves decoding the page and the parser's encoding it back (about 0.09 ms of the
        1.6 ms of CPU a 60 KB product page costs)."""
        skip, codec = _decoding(self.body, self.headers.get("Content-Type"))
        return self.body if not skip and codec == _UTF8 else None
