"""What the demo server knows at run time: its configuration, clock, meter and fault plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.requests import Request

from pricefleet.demo.faults import FaultPlan
from pricefleet.demo.meter import Meter
from pricefleet.demo.universe import EPOCH, Universe

__all__ = ["BadRequest", "DemoConfig", "DemoState"]


class BadRequest(ValueError):
    """A request to a demo shop carries a parameter it cannot use; answered with 400."""


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """How the demo shops are generated and served."""

    products: int = 2000
    seed: int = 1
    day: int | None = None  # None: the demo day follows the real clock from EPOCH
    faults: dict[str, dict[str, float]] = field(default_factory=dict)
    crawl_delay: float = 0.01
    page_size: int = 24
    sitemap_chunk: int = 1000
    slow_seconds: float = 2.0
    hang_seconds: float = 120.0


class DemoState:
    """The one mutable object of a running demo server, shared by every shop."""

    def __init__(self, config: DemoConfig) -> None:
        self.config = config
        self.universe = Universe(config.seed, config.products)
        self.meter = Meter()
        self.faults = FaultPlan(
            seed=config.seed,
            rates={shop: dict(r) for shop, r in config.faults.items()},
            slow_seconds=config.slow_seconds,
            hang_seconds=config.hang_seconds,
        )
        self.fixed_day: int | None = config.day

    @property
    def today(self) -> int:
        """The demo day in force: the fixed one, or days since EPOCH by the real clock."""
        if self.fixed_day is not None:
            return self.fixed_day
        return max(0, (datetime.now(UTC) - EPOCH).days)

    def day_for(self, request: Request) -> int:
        """The demo day a request asks for (`?day=N`), or today."""
        raw = request.query_params.get("day")
        if raw is None:
            return self.today
        try:
            day = int(raw)
        except ValueError:
            raise BadRequest(f"day={raw!r} is not a whole number of days") from None
        if not 0 <= day <= 100_000:
            raise BadRequest(f"day={day} is out of range 0..100000")
        return day
