"""The SSRF guard: pricefleet fetches public web pages, never the machine or network it runs on.

Refused before anything is sent: schemes other than http(s), credentials in URLs, hosts that are
(or resolve to) loopback, private, link-local, multicast, reserved, unspecified, shared
(100.64/10) or otherwise not globally routable addresses, the same hidden in IPv6 forms
(IPv4-mapped, 6to4, Teredo, NAT64), cloud metadata endpoints (169.254.169.254, fd00:ec2::254,
100.100.100.200, metadata.google.internal), and the legacy IPv4 spellings libc still accepts
(`2130706433`, `0177.0.0.1`, `0x7f.0.0.1`, `127.1`).

Two checks: `check_url` reads the URL itself (every hop, before any request), and
`GuardedResolver` wraps aiohttp's resolver so that every connection is checked at connect time
against the addresses it will actually use — redirects included, and DNS rebinding cannot slip
a private address in between a check and the connection. A site whose recipe sets
`allow_private_network` (a shop you run yourself) skips the address checks, never the metadata
endpoints, schemes or credentials. This module must not send anything.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from pricefleet.errors import BlockedURL

__all__ = [
    "METADATA_ADDRESSES",
    "GuardedResolver",
    "address_problem",
    "check_resolved",
    "check_url",
    "exempt_host",
    "ip_literal",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$", re.I)
_HINT = "pricefleet fetches public addresses only (a shop you run yourself: allow_private_network)"

#: Host names the current request may resolve to anything: the proxy it goes through.
_EXEMPT: ContextVar[frozenset[str]] = ContextVar("pricefleet_ssrf_exempt", default=frozenset())


def ip_literal(host: str) -> IPAddress | None:
    """The address a host names literally (any spelling libc accepts), or None for a name."""
    text = host.strip("[]").rstrip(".").lower()
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _embedded(ip: ipaddress.IPv6Address) -> Iterator[tuple[str, ipaddress.IPv4Address]]:
    if ip.ipv4_mapped is not None:
        yield "IPv4-mapped", ip.ipv4_mapped
    if ip.sixtofour is not None:
        yield "6to4", ip.sixtofour
    if ip.teredo is not None:
        server, client = ip.teredo
        yield "Teredo", server
        yield "Teredo", client
    if ip in _NAT64:
        yield "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def address_problem(ip: IPAddress) -> str | None:
    """Why `ip` must not be fetched from ('loopback', 'cloud metadata', …), None if public."""
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        for form, inner in _embedded(ip):
            problem = address_problem(inner)
            if problem is not None:
                return f"{problem} ({form} {inner})"
        if ip.ipv4_mapped is not None or ip in _NAT64:
            return None  # a public IPv4 address in IPv6 clothes
    checks = (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("shared (carrier-grade NAT)", isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("non-global", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _refuse(url: str, host: str, ip: IPAddress, problem: str) -> BlockedURL:
    shown = host if str(ip) == host.strip("[]") else f"{host} ({ip})"
    return BlockedURL(f"refused {url}: {shown} is a {problem} address; {_HINT}", url=url)


def check_url(url: str | URL, *, allow_private: bool = False, trusted: Collection[str] = ()) -> URL:
    """The URL parsed, or `BlockedURL` if its scheme, credentials or literal host are refused.

    Host names are checked when they are resolved (`GuardedResolver`, `check_resolved`).
    """
    parsed = url if isinstance(url, URL) else URL(url)
    text = str(parsed)
    if parsed.scheme not in {"http", "https"}:
        raise BlockedURL(
            f"refused {text}: scheme {parsed.scheme!r}; only http and https are fetched", url=text
        )
    if parsed.raw_user or parsed.raw_password:
        raise BlockedURL(
            f"refused {text}: credentials in URLs are not sent; use the recipe's headers",
            url=text,
        )
    host = parsed.raw_host
    if not host:
        raise BlockedURL(f"refused {text}: no host", url=text)
    name = host.lower().rstrip(".")
    if name in trusted:
        return parsed
    ip, problem = _literal_problem(name)
    if ip is not None:
        if problem is not None and (problem == "cloud metadata" or not allow_private):
            raise _refuse(text, host, ip, problem)
    elif name in _METADATA_NAMES:
        raise BlockedURL(f"refused {text}: {host} is a cloud metadata endpoint", url=text)
    elif not allow_private and (name == "localhost" or name.endswith(".localhost")):
        raise BlockedURL(f"refused {text}: {host} is this machine (loopback); {_HINT}", url=text)
    return parsed


@lru_cache(maxsize=4096)
def _literal_problem(name: str) -> tuple[IPAddress | None, str | None]:
    """The address a host name spells literally and why it is refused (None, None for a name):
    pure, so remembered; a crawl asks for the same few hosts on every request."""
    ip = ip_literal(name)
    return ip, (address_problem(ip) if ip is not None else None)


@contextmanager
def exempt_host(host: str | None) -> Iterator[None]:
    """Within the block, `host` (the proxy a request goes through) may resolve to anything."""
    if host is None:
        yield
        return
    token = _EXEMPT.set(_EXEMPT.get() | {host.lower().rstrip(".")})
    try:
        yield
    finally:
        _EXEMPT.reset(token)


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses (with `BlockedURL`) names resolving to refused addresses.

    aiohttp calls it for every new connection (the connector is built with
    `use_dns_cache=False`), so the check sees the addresses actually connected to.
    """

    def __init__(self, inner: AbstractResolver, trusted: Collection[str] = ()) -> None:
        self._inner = inner
        self._trusted = frozenset(t.lower().rstrip(".") for t in trusted)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve with the wrapped resolver, then refuse any non-public address."""
        results = await self._inner.resolve(host, port, family)
        name = host.lower().rstrip(".")
        if name in self._trusted or name in _EXEMPT.get():
            return results
        for result in results:
            ip = ipaddress.ip_address(result["host"])
            problem = address_problem(ip)
            if problem is not None:
                raise BlockedURL(
                    f"refused {host}: it resolves to {ip}, a {problem} address; {_HINT}"
                )
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._inner.close()


async def check_resolved(url: URL, resolver: GuardedResolver) -> None:
    """Resolve a URL's host name now and refuse non-public addresses (for requests whose
    connection we do not make ourselves: through a proxy, or by the browser)."""
    host = url.raw_host
    if host is None or ip_literal(host) is not None:
        return
    try:
        await resolver.resolve(host, url.port or 0, socket.AF_UNSPEC)
    except BlockedURL as exc:
        raise BlockedURL(f"refused {url}: {exc}", url=str(url)) from None
    except OSError as exc:
        raise BlockedURL(
            f"refused {url}: {host} could not be resolved to check it is public ({exc})",
            url=str(url),
        ) from None
