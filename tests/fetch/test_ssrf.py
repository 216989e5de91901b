"""The SSRF guard: hostile URLs are refused before any connection, on every redirect hop too."""

from __future__ import annotations

import pytest
from aiohttp import ThreadedResolver, web

from pricefleet.errors import BlockedURL
from pricefleet.fetch import Fetcher, GuardedResolver, SitePolicy, check_url
from tests.fetch.helpers import LocalServer, StartServer, StubResolver

STRICT = SitePolicy("hostile", requests_per_second=200.0)
#: The test's DNS: a trusted name for the stand-in shop, and a name an attacker pointed home.
DNS = {"shop.test": "127.0.0.1", "evil.test": "127.0.0.1", "evil6.test": "::1"}

# (URL, what the refusal must say); {port} is a server on 127.0.0.1 that must see no request.
HOSTILE = [
    ("http://127.0.0.1:{port}/", "127.0.0.1 is a loopback"),
    ("http://127.0.0.1.:{port}/", "loopback"),
    ("http://localhost:{port}/", "this machine (loopback)"),
    ("http://LOCALHOST./", "loopback"),
    ("http://app.localhost:{port}/", "loopback"),
    ("http://2130706433:{port}/", "2130706433 (127.0.0.1) is a loopback"),
    ("http://0177.0.0.1:{port}/", "(127.0.0.1) is a loopback"),
    ("http://0x7f.0.0.1:{port}/", "(127.0.0.1) is a loopback"),
    ("http://0x7f000001:{port}/", "(127.0.0.1) is a loopback"),
    ("http://127.1:{port}/", "127.1 (127.0.0.1) is a loopback"),
    ("http://[::1]:{port}/", "loopback"),
    ("http://[::ffff:127.0.0.1]:{port}/", "loopback (IPv4-mapped 127.0.0.1)"),
    ("http://[2002:7f00:1::]:{port}/", "loopback (6to4 127.0.0.1)"),
    ("http://[64:ff9b::a00:1]/", "private (NAT64 10.0.0.1)"),
    ("http://0.0.0.0:{port}/", "unspecified"),
    ("http://[::]:{port}/", "unspecified"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://[fd00:ec2::254]/", "cloud metadata"),
    ("http://100.100.100.200/", "cloud metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "shared (carrier-grade NAT)"),
    ("http://169.254.1.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "private"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "reserved"),
    ("http://192.0.2.1/", "private"),
    ("file:///etc/passwd", "scheme 'file'"),
    ("ftp://example.com/", "scheme 'ftp'"),
    ("gopher://example.com/", "scheme 'gopher'"),
    ("http://user:pw@example.com/", "credentials"),
    ("http://user@example.com/", "credentials"),
    ("http://evil.test:{port}/", "evil.test: it resolves to 127.0.0.1, a loopback"),
    ("http://evil6.test:{port}/", "it resolves to ::1, a loopback"),
]


@pytest.fixture
async def sentinel(local_server: StartServer) -> LocalServer:
    """A server on 127.0.0.1 that hostile URLs point at: it must never be asked anything."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text="you should not be here")

    return await local_server(handler)


async def test_hostile_urls_are_refused_before_connecting(sentinel: LocalServer) -> None:
    """Every URL of the table raises BlockedURL naming the address; no request is made."""
    resolver = StubResolver(DNS)
    refusals: dict[str, str] = {}
    async with Fetcher(resolver=resolver) as fetcher:
        for template, reason in HOSTILE:
            url = template.format(port=sentinel.port)
            with pytest.raises(BlockedURL) as refused:
                await fetcher.fetch(url, STRICT)
            refusals[url] = str(refused.value)
            assert reason in str(refused.value), url
    assert sentinel.hits == []
    assert set(resolver.asked) <= {"evil.test", "evil6.test"}  # the rest needed no DNS at all
    assert all("refused" in message for message in refusals.values())


async def test_guard_checks_what_the_system_resolver_returns() -> None:
    """The guard wraps aiohttp's own resolver: `localhost` from /etc/hosts is refused."""
    guard = GuardedResolver(ThreadedResolver())
    try:
        with pytest.raises(BlockedURL, match=r"localhost: it resolves to .*loopback"):
            await guard.resolve("localhost", 80)
    finally:
        await guard.close()


def test_public_addresses_pass() -> None:
    """Public literals, public addresses in IPv6 clothes and ordinary names are let through."""
    for url in (
        "http://93.184.215.14/",
        "https://[2606:4700::6810:85e5]/x",
        "http://[::ffff:93.184.215.14]/",
        "http://[64:ff9b::5db8:d70e]/",
        "https://shop.example/p/1?x=1",
    ):
        assert check_url(url).host


def test_allow_private_network_never_opens_metadata() -> None:
    """A site allowed on private networks still cannot reach cloud metadata or other schemes."""
    assert check_url("http://127.0.0.1:8100/", allow_private=True).port == 8100
    assert check_url("http://10.1.2.3/", allow_private=True).host == "10.1.2.3"
    for url in ("http://169.254.169.254/", "http://[fd00:ec2::254]/", "file:///etc/passwd"):
        with pytest.raises(BlockedURL):
            check_url(url, allow_private=True)


async def test_every_redirect_hop_is_checked_again(local_server: StartServer) -> None:
    """A trusted shop redirecting into a private address is refused at that hop, unsent."""

    async def handler(request: web.Request) -> web.StreamResponse:
        port = request.url.port
        targets = {
            "/to-literal": f"http://127.0.0.1:{port}/secret",
            "/to-name": f"http://evil.test:{port}/secret",
            "/to-mapped": f"http://[::ffff:7f00:1]:{port}/secret",
            "/to-decimal": f"http://2130706433:{port}/secret",
            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
            "/to-file": "file:///etc/passwd",
            "/to-trusted": f"http://shop.test:{port}/fine",
        }
        if request.path in targets:
            raise web.HTTPFound(targets[request.path])
        if request.path == "/robots.txt":
            return web.Response(text="User-agent: *\nAllow: /\n")
        return web.Response(text=f"page {request.path}")

    server = await local_server(handler)
    base = f"http://shop.test:{server.port}"
    async with Fetcher(resolver=StubResolver(DNS), trusted_hosts={"shop.test"}) as fetcher:
        fine = await fetcher.fetch(f"{base}/to-trusted", STRICT)
        for path, says in [
            ("/to-literal", "127.0.0.1 is a loopback"),
            ("/to-name", "resolves to 127.0.0.1"),
            ("/to-mapped", "IPv4-mapped 127.0.0.1"),
            ("/to-decimal", "(127.0.0.1) is a loopback"),
            ("/to-metadata", "cloud metadata"),
            ("/to-file", "scheme 'file'"),
        ]:
            with pytest.raises(BlockedURL, match=says.replace("(", r"\(").replace(")", r"\)")):
                await fetcher.fetch(base + path, STRICT)
    assert fine.text() == "page /fine"
    assert fine.redirects == (f"{base}/to-trusted",)
    assert "/secret" not in server.hits
    assert server.hits.count("/robots.txt") == 1
