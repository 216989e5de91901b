"""pricefleet: scrape shop catalogues, keep every price with its history, serve it via an API."""

from __future__ import annotations

from pricefleet.config import Profile, Settings

__all__ = ["Profile", "Settings", "__version__"]

__version__ = "0.1.0"
