"""What one crawl does: discover, fetch, extract, normalise, store — per site, in process."""

from __future__ import annotations

from pricefleet.crawl.engine import CrawlReport, Failure, SiteCrawl
from pricefleet.crawl.runner import crawl_sites, policy_of

__all__ = ["CrawlReport", "Failure", "SiteCrawl", "crawl_sites", "policy_of"]
