"""HTTP as crawlers rely on it: robots.txt, sitemaps, validators and 304, same seed same bytes."""

from __future__ import annotations

import gzip
import urllib.robotparser
from email.utils import format_datetime, parsedate_to_datetime
from xml.etree import ElementTree

import aiohttp
import pytest
from multidict import CIMultiDict
from protego import Protego

from tests.demo.helpers import shops_like, truth_of
from tests.servers import DemoServer, start_demo

DAY = 10
NS = {"sm": "http://www.sitemaps.org/schemas/sitemap/0.9"}
SHOPS = ("jsonld", "microdata", "api", "spa", "plain")


async def _get(
    http: aiohttp.ClientSession, url: str, **headers: str
) -> tuple[int, bytes, CIMultiDict[str]]:
    async with http.get(url, headers=headers) as answer:
        return answer.status, await answer.read(), CIMultiDict(answer.headers)


@pytest.mark.parametrize("shop", SHOPS)
async def test_robots_parse_with_standard_parsers(
    shop: str, demo: DemoServer, http: aiohttp.ClientSession
) -> None:
    """robots.txt reads the same in urllib.robotparser and protego: rules, agents, sitemap."""
    status, body, headers = await _get(http, f"{demo.url}/{shop}/robots.txt")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    product = truth_of(shops_like(400, 7)[shop], DAY, demo.url)[0]["url"]
    stdlib = urllib.robotparser.RobotFileParser()
    stdlib.parse(text.splitlines())
    protego = Protego.parse(text)
    for parser_allows in (stdlib.can_fetch, lambda agent, url: protego.can_fetch(url, agent)):
        assert parser_allows("pricefleet", product)
        assert not parser_allows("pricefleet", f"{demo.url}/{shop}/cart")
        assert not parser_allows("BadBot", product)
    assert not protego.can_fetch(f"{demo.url}/{shop}/c/x/?page=2&sort=price", "pricefleet")
    assert protego.crawl_delay("pricefleet") == 0.01  # urllib's parser reads whole seconds only
    assert list(protego.sitemaps) == [f"{demo.url}/{shop}/sitemap.xml"]


async def _sitemap_urls(http: aiohttp.ClientSession, url: str) -> tuple[list[str], int]:
    """Every URL a sitemap lists (following an index), and how many children it had."""
    status, body, _ = await _get(http, url)
    assert status == 200
    root = ElementTree.fromstring(body)
    if root.tag.endswith("sitemapindex"):
        urls: list[str] = []
        children = [loc.text or "" for loc in root.findall("sm:sitemap/sm:loc", NS)]
        for child in children:
            assert child.endswith(".xml.gz")
            status, data, _ = await _get(http, child)
            assert status == 200
            tree = ElementTree.fromstring(gzip.decompress(data))
            assert tree.tag.endswith("urlset")
            urls += [loc.text or "" for loc in tree.findall("sm:url/sm:loc", NS)]
        return urls, len(children)
    return [loc.text or "" for loc in root.findall("sm:url/sm:loc", NS)], 0


@pytest.mark.parametrize(("shop", "children"), [("jsonld", 5), ("spa", 2), ("plain", 3)])
async def test_sitemap_lists_every_product_in_gzip_children_when_large(
    shop: str, children: int, own_demo: list[DemoServer], http: aiohttp.ClientSession
) -> None:
    """sitemap.xml parses with ElementTree; large shops get an index of gzip children."""
    own_demo.append(start_demo("--products", "4000", "--seed", "7", "--day", str(DAY)))
    demo = own_demo[0]
    truth = {t["url"] for t in truth_of(shops_like(4000, 7)[shop], DAY, demo.url)}
    urls, found_children = await _sitemap_urls(http, f"{demo.url}/{shop}/sitemap.xml")
    assert found_children == children
    assert len(urls) == len(set(urls))
    assert truth <= set(urls)
    assert f"{demo.url}/{shop}/" in urls


async def test_small_sitemap_is_one_urlset(demo: DemoServer, http: aiohttp.ClientSession) -> None:
    """A shop under the split size serves its URL set directly."""
    urls, children = await _sitemap_urls(http, f"{demo.url}/spa/sitemap.xml")
    assert children == 0
    truth = {t["url"] for t in truth_of(shops_like(400, 7)["spa"], DAY, demo.url)}
    assert truth <= set(urls)


@pytest.mark.parametrize("shop", SHOPS)
async def test_conditional_requests_answer_304(
    shop: str, demo: DemoServer, http: aiohttp.ClientSession
) -> None:
    """Pages carry ETag and Last-Modified; either validator, still current, gets a bare 304."""
    url = truth_of(shops_like(400, 7)[shop], DAY, demo.url)[3]["url"]
    status, body, headers = await _get(http, url)
    assert status == 200
    etag, modified = headers["ETag"], headers["Last-Modified"]
    assert etag.startswith('"')
    assert parsedate_to_datetime(modified).tzinfo is not None
    status, body, again = await _get(http, url, **{"If-None-Match": etag})
    assert (status, body, again["ETag"]) == (304, b"", etag)
    status, body, _ = await _get(http, url, **{"If-None-Match": f'"other", {etag}'})
    assert status == 304
    status, body, _ = await _get(http, url, **{"If-Modified-Since": modified})
    assert (status, body) == (304, b"")
    older = format_datetime(parsedate_to_datetime(modified).replace(year=2020), usegmt=True)
    status, body, _ = await _get(http, url, **{"If-Modified-Since": older})
    assert status == 200
    assert body
    status, body, _ = await _get(
        http, url, **{"If-None-Match": '"stale"', "If-Modified-Since": modified}
    )
    assert status == 200  # If-None-Match wins over If-Modified-Since (RFC 9110)
    status, body, _ = await _get(http, url, **{"If-Modified-Since": "not a date"})
    assert status == 200


async def test_changed_price_changes_validators(
    demo: DemoServer, http: aiohttp.ClientSession
) -> None:
    """When a product's price moves, its old ETag no longer matches and it is modified later."""
    shop = shops_like(400, 7)["microdata"]
    later = {t["id"]: t for t in truth_of(shop, DAY + 30, demo.url)}
    records = truth_of(shop, DAY, demo.url)
    moved = next(t for t in records if t["price"] != later[t["id"]]["price"])
    _, _, first = await _get(http, moved["url"])
    status, _, second = await _get(
        http, f"{moved['url']}?day={DAY + 30}", **{"If-None-Match": first["ETag"]}
    )
    assert status == 200
    assert second["ETag"] != first["ETag"]
    assert parsedate_to_datetime(second["Last-Modified"]) > parsedate_to_datetime(
        first["Last-Modified"]
    )


async def test_same_seed_same_bytes_other_seed_other_bytes(
    demo: DemoServer, own_demo: list[DemoServer], http: aiohttp.ClientSession
) -> None:
    """Two servers with the same seed serve byte-identical shops; another seed does not."""
    own_demo.append(start_demo("--products", "400", "--seed", "7", "--day", str(DAY)))
    own_demo.append(start_demo("--products", "400", "--seed", "8", "--day", str(DAY)))
    same, other = own_demo
    paths = [
        "/jsonld/",
        "/jsonld/sitemap.xml",
        "/jsonld/c/leche/",
        "/microdata/categoria/leche",
        "/api/api/categories/",
        "/api/api/categories/2/",
        "/spa/data/c/leche.json",
        "/plain/list?cat=leche",
    ]
    seeded = []  # pages whose content comes from the seed (app shells do not)
    for shop in SHOPS:
        records = truth_of(shops_like(400, 7)[shop], DAY, demo.url)[:5]
        paths += [t["url"].removeprefix(demo.url) for t in records]
        if shop in {"jsonld", "microdata", "plain"}:
            seeded += [t["url"].removeprefix(demo.url) for t in records]
    host = {"Host": "shop.test"}
    differing = set()
    for path in paths:
        a = await _get(http, demo.url + path, **host)
        b = await _get(http, same.url + path, **host)
        c = await _get(http, other.url + path, **host)
        assert a[0] == b[0] == 200, path
        assert a[1] == b[1], path
        assert a[2]["ETag"] == b[2]["ETag"]
        if a[1] != c[1]:
            differing.add(path)
    assert set(seeded) <= differing
