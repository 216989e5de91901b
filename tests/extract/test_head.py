"""The head-only parse (`extract/head.py`, used by `page.py`) finds exactly what a CSS query
over the whole page's tree finds, on saved real pages, on every demo shop page, and on pages
made to trip it; and a page it calls free of struck-through elements has none."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator

import aiohttp
import pytest
from selectolax.lexbor import LexborHTMLParser

from pricefleet.demo import DemoConfig, create_app
from pricefleet.extract import PageError, extract_product
from pricefleet.extract.head import head_of
from pricefleet.extract.opengraph import is_og_property
from pricefleet.extract.page import _Page, _scan, parse_page
from pricefleet.extract.schema import absolute_url
from tests.extract.fixtures import EXTRUCT, ZYTE
from tests.servers import DemoServer, start_demo

URL = "https://shop.example/p/1"
# What `_scan` looked for with one CSS query before it read lexbor's tag index.
_HEAD_NODES = 'script[type*="ld+json" i], link[rel~="canonical" i], meta[property], meta[name]'
_STRUCK = "del, s, strike"
LD = (
    '<script type="application/ld+json">{"@type":"Product","name":"P",'
    '"offers":{"price":"2.50","priceCurrency":"EUR"}}</script>'
)


def _reference(tree: LexborHTMLParser) -> tuple[list[str], str | None, list[tuple[str, str]]]:
    """Scripts, canonical link and OpenGraph metas as the CSS query over `tree` finds them."""
    scripts: list[str] = []
    canonical: str | None = None
    og: list[tuple[str, str]] = []
    for node in tree.css(_HEAD_NODES):
        attributes = node.attributes
        if node.tag == "script":
            scripts.append(node.text(deep=True))
        elif node.tag == "link":
            if canonical is None:
                canonical = absolute_url(attributes.get("href"), URL)
        else:
            name = attributes.get("property") or attributes.get("name") or ""
            if is_og_property(name):
                og.append((name, attributes.get("content") or ""))
    return scripts, canonical, og


def _same_product(body: bytes | str, url: str = URL) -> None:
    """The product (or the error) from the cheap path and from the whole tree are the same
    (bytes of an unknown charset always take the whole tree)."""
    whole = body.encode() if isinstance(body, str) else body
    try:
        found = extract_product(body, url, encoding="utf-8")
    except PageError as exc:
        reason = exc.reason
    else:
        assert found == extract_product(whole, url)
        return
    with pytest.raises(PageError) as caught:
        extract_product(whole, url)
    assert caught.value.reason == reason


def _check(body: bytes | str, encoding: str | None = "utf-8") -> bool:
    """Assert the page's cheap path agrees with the whole tree; True when it was taken."""
    page = _Page(body, encoding)
    tree = page.head_tree()
    cheap = page._tree is None
    found = _scan(tree, URL)
    whole = parse_page(body, encoding)
    assert (found.scripts, found.canonical, found.og) == _reference(whole)
    if not page.struck():
        assert not whole.css(_STRUCK)
    return cheap


def _page(head: str, body: str) -> str:
    return f"<!doctype html><html><head><title>P</title>{head}</head><body>{body}</body></html>"


def test_plain_page_takes_the_head_only() -> None:
    """A page with JSON-LD in its head and a bare script in its body is read from its head;
    the product is the same as from the whole tree (bytes of unknown charset take that path)."""
    body = _page(LD + '<meta property="og:title" content="T">', "<script>x()</script><p>2,50 €")
    assert _check(body.encode())
    _same_product(body)


@pytest.mark.parametrize(
    ("html", "cheap"),
    [
        # `</head>` inside the JSON-LD text: the cut would truncate the script.
        (_page(LD.replace('"P"', '"a </head> b"'), ""), False),
        # `</head>` inside a comment, then JSON-LD still in the head (after the cut).
        (_page("<!-- </head> -->" + LD, ""), False),
        # `</head>` inside a meta's attribute: the meta would be dropped.
        (
            _page('<meta name="d" content="x</head>y"><meta property="og:title" content="T">', ""),
            False,
        ),
        # JSON-LD, a canonical link or a meta in the body.
        (_page("", LD), False),
        (_page(LD, '<link rel="canonical" href="/c">'), False),
        (_page(LD, '<meta property="og:price:amount" content="3">'), False),
        (_page(LD, '<script/type="application/ld+json">{}</script>'), False),
        (_page(LD, '<SCRIPT type="application/ld+json">{}</SCRIPT>'), False),
        # A meta spelled in a comment of the head: counted, not an element.
        (_page("<!-- <meta name=x> -->" + LD, ""), False),
        # No `</head>` at all, or only an upper-case one.
        (f"<html><head>{LD}<body><p>x", False),
        (f"<HTML><HEAD>{LD}</HEAD><BODY><S>3,00 €</S> 2,50 €", True),
        # Struck-through elements the bytes spell out, in any case, or only in a script.
        (_page(LD, "<del>3,00 €</del> 2,50 €"), True),
        (_page(LD, "<Strike>3,00 €</Strike> 2,50 €"), True),
        (_page(LD, "<script>var s = '<s>';</script>"), True),
        (_page(LD, "<section><span>2,50 €</span><strong>x</strong><sup>1</sup></section>"), True),
        # Relative canonical link and OpenGraph metas in the head.
        (
            _page(
                '<link rel="Canonical alternate" href="/c">'
                + LD
                + '<meta property="og:url" content="/u">',
                "",
            ),
            True,
        ),
    ],
)
def test_tricky_pages_agree(html: str, cheap: bool) -> None:
    """Pages made to fool the cut (its text in scripts, comments, attributes; tags after it;
    upper case; no head end) give what the whole tree gives; the cheap path is taken only
    where it is safe, and struck-through tags are seen wherever the text spells them."""
    assert _check(html) is cheap
    assert _check(html.encode()) is cheap
    _same_product(html)


def test_struck_tags_are_seen() -> None:
    """`<s>`, `<del>` and `<strike>` in any case make the page struck; look-alikes do not."""
    assert head_of("<p><s>1</s>").struck
    assert head_of(b"<DEL\n>1</DEL>").struck
    assert head_of("<strike/>").struck
    assert not head_of("<section><span><script><style><sup><s\x0b>").struck


def test_saved_real_pages_agree() -> None:
    """Every saved page of the Zyte benchmark and extruct's samples, read as UTF-8 text and
    as bytes: the cheap path finds what the whole tree does (and is taken on some pages)."""
    bodies = [gzip.decompress(path.read_bytes()) for path in sorted(ZYTE.glob("html/*.html.gz"))]
    bodies += [path.read_bytes() for path in sorted(EXTRUCT.glob("*.html"))]
    assert len(bodies) > 20
    cheap = 0
    for body in bodies:
        cheap += _check(body.decode("utf-8", "replace"), None)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            continue
        _check(body, "utf-8")
    assert cheap > 0


@pytest.fixture(scope="module")
def shop_server() -> Iterator[DemoServer]:
    """A demo server of 120 products, seed 5, frozen on day 2."""
    server = start_demo("--products", "120", "--seed", "5", "--day", "2")
    yield server
    server.stop()


async def test_every_demo_page_agrees(shop_server: DemoServer, http: aiohttp.ClientSession) -> None:
    """Every product page of every demo shop serving HTML, and their home pages: the cheap
    path agrees with the whole tree, and the extracted product is the same either way; the
    jsonld shop's pages all take the cheap path."""
    shops = create_app(DemoConfig(products=120, seed=5)).state.shops
    urls: dict[str, list[str]] = {}
    for name in ("jsonld", "microdata", "plain"):
        urls[name] = [t["url"] for t in shops[name].truth_records(2, shop_server.url)]
        urls[name].append(f"{shop_server.url}/{name}/")
    limit = asyncio.Semaphore(16)

    async def fetch(url: str) -> bytes:
        async with limit, http.get(url) as answer:
            assert answer.status == 200, url
            return await answer.read()

    for name, shop_urls in urls.items():
        bodies = await asyncio.gather(*(fetch(url) for url in shop_urls))
        cheap = [_check(body) for body in bodies]
        for url, body in zip(shop_urls, bodies, strict=True):
            _same_product(body, url)
        if name == "jsonld":
            assert all(cheap[:-1]), name
