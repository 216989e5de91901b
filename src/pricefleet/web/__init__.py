"""The web dashboard: search, product pages with price-history charts, compare, trending and
the live fleet page, served by the API at `/` (Jinja templates, small static scripts, the
vendored uPlot chart library; no build step). The pages read the public `/v1/…` API from the
browser, so they never show more than the caller's key may read."""

from __future__ import annotations

from pricefleet.web.routes import router, static_files

__all__ = ["router", "static_files"]
