"""Site recipes: the YAML files that say how to crawl each shop, and their validation."""

from __future__ import annotations

from pricefleet.sites.loader import load_recipe, load_recipes, parse_recipe
from pricefleet.sites.schema import Recipe

__all__ = ["Recipe", "load_recipe", "load_recipes", "parse_recipe"]
