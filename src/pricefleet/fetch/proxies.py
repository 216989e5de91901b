"""Forward proxies per site: round-robin, and retirement of a proxy that keeps failing.

A proxy fails when no answer came through it (refused, reset, timed out) or it answered for
itself (407, 502, 504); 3 failures in a row retire it for the life of the pool, a success
resets its count. This module owns the choice and the counts; it must not send anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pricefleet.errors import FetchError

__all__ = ["RETIRE_AFTER", "ProxyPool"]

#: Consecutive failures that retire a proxy.
RETIRE_AFTER = 3


@dataclass(slots=True)
class _SiteProxies:
    cursor: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    retired: set[str] = field(default_factory=set)


class ProxyPool:
    """The proxies of every site, with their failure counts."""

    def __init__(self) -> None:
        self._sites: dict[str, _SiteProxies] = {}

    def _get(self, site_id: str) -> _SiteProxies:
        site = self._sites.get(site_id)
        if site is None:
            site = self._sites[site_id] = _SiteProxies()
        return site

    def choose(self, site_id: str, proxies: tuple[str, ...]) -> str | None:
        """The next live proxy of the site (None when it has none configured)."""
        if not proxies:
            return None
        site = self._get(site_id)
        for _ in range(len(proxies)):
            proxy = proxies[site.cursor % len(proxies)]
            site.cursor += 1
            if proxy not in site.retired:
                return proxy
        raise FetchError(
            f"site {site_id!r}: all {len(proxies)} proxies are retired after {RETIRE_AFTER} "
            f"failures in a row ({', '.join(proxies)}); check them or change the recipe"
        )

    def failed(self, site_id: str, proxy: str) -> None:
        """Count a failure of `proxy`; the third in a row retires it."""
        site = self._get(site_id)
        count = site.failures.get(proxy, 0) + 1
        site.failures[proxy] = count
        if count >= RETIRE_AFTER:
            site.retired.add(proxy)

    def succeeded(self, site_id: str, proxy: str) -> None:
        """An answer came through `proxy`: its failure streak ends."""
        self._get(site_id).failures[proxy] = 0

    def retired(self, site_id: str) -> frozenset[str]:
        """The site's retired proxies."""
        return frozenset(self._get(site_id).retired)
