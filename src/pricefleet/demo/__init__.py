"""The demo shops: five fake shops on one port, drawn from one seeded product universe.

They are pricefleet's test bed, demo and benchmark target (`pricefleet demo-shop`); nothing in
the product itself may depend on them.
"""

from __future__ import annotations

from pricefleet.demo.app import create_app
from pricefleet.demo.state import DemoConfig
from pricefleet.demo.universe import Universe

__all__ = ["DemoConfig", "Universe", "create_app"]
