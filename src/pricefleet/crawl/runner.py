"""Crawling sites in this process: recipe → fetch policy → fetchers → `SiteCrawl`, one per site.

Owns the fetchers' life (one HTTP session per process, a browser only when a recipe asks for
one). The queue issue moves the same jobs onto workers; this stays the in-process path that
`pricefleet crawl` and `pricefleet demo` use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

from pricefleet.crawl.engine import WHOLE, CrawlReport, Share, SiteCrawl
from pricefleet.fetch import BrowserFetcher, Fetcher, Response, SitePolicy
from pricefleet.sites.schema import Recipe
from pricefleet.store.base import Store

__all__ = ["crawl_sites", "fetchers", "policy_of"]


def policy_of(recipe: Recipe, *, share: int = 1) -> SitePolicy:
    """The fetch policy a recipe asks for; with `share` processes crawling the site at once,
    this process's part of it (rate, burst and concurrency divided among them)."""
    fetch, polite = recipe.fetch, recipe.politeness
    return SitePolicy(
        site_id=recipe.id,
        requests_per_second=polite.requests_per_second / share,
        burst=max(1, polite.burst // share),
        max_concurrency=max(1, polite.max_concurrency // share),
        share=share,
        obey_robots=fetch.obey_robots,
        user_agents=tuple(fetch.user_agents),
        headers=dict(fetch.headers),
        proxies=tuple(fetch.proxies),
        timeout=fetch.timeout,
        retries=fetch.retries,
        allow_private_network=fetch.allow_private_network,
        robots_url=fetch.robots_url,
        impersonate="chrome" if fetch.mode == "impersonate" else None,
    )


@contextlib.asynccontextmanager
async def fetchers(
    recipes: Sequence[Recipe],
) -> AsyncIterator[tuple[Fetcher, BrowserFetcher | None]]:
    """One HTTP fetcher, and a browser when a recipe needs one; closed on exit."""
    fetcher = Fetcher()
    browser = None
    try:
        if any(r.fetch.mode == "browser" for r in recipes):
            browser = BrowserFetcher(fetcher)
        yield fetcher, browser
    finally:
        if browser is not None:
            await browser.close()
        await fetcher.close()


async def crawl_sites(
    recipes: Sequence[Recipe],
    store: Store,
    *,
    on_progress: Callable[[CrawlReport], None] | None = None,
    share: Share = WHOLE,
) -> list[CrawlReport]:
    """Crawl every site once, all at the same time; one report per site, in recipe order.
    `share`: this process crawls only its part of each site's pages, with its part of the
    site's politeness (`pricefleet crawl --processes`)."""
    async with fetchers(recipes) as (fetcher, browser):

        def make_fetch(recipe: Recipe) -> Callable[..., object]:
            policy = policy_of(recipe, share=share.of)

            async def fetch(
                url: str, etag: str | None, last_modified: str | None, use_browser: bool
            ) -> Response:
                if use_browser and browser is not None:
                    return await browser.fetch(url, policy, wait_for=recipe.fetch.wait_for)
                return await fetcher.fetch(url, policy, etag=etag, last_modified=last_modified)

            return fetch

        crawls = [
            SiteCrawl(recipe, store, make_fetch(recipe), on_progress=on_progress, share=share)  # type: ignore[arg-type]
            for recipe in recipes
        ]
        return list(await asyncio.gather(*(crawl.run() for crawl in crawls)))
