"""`python -m pricefleet` runs the CLI."""

from __future__ import annotations

from pricefleet.cli import main

main()
