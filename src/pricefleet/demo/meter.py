"""The shops' own view of how they are crawled: requests, peak rate and peak concurrency per shop.

Tests prove politeness at the shop's side with it (`GET /_stats`), as a real shop's access log
would: the busiest one-second window and the most connections open at once.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Meter", "ShopMeter"]


@dataclass(slots=True)
class ShopMeter:
    """Counters for one shop."""

    requests: int = 0
    peak_rps: int = 0
    in_flight: int = 0
    peak_concurrency: int = 0
    disallowed: int = 0
    not_modified: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    _window: deque[float] = field(default_factory=deque)

    def started(self, now: float) -> None:
        """Count a request that just arrived."""
        self.requests += 1
        self.in_flight += 1
        self.peak_concurrency = max(self.peak_concurrency, self.in_flight)
        window = self._window
        window.append(now)
        while window and window[0] <= now - 1.0:
            window.popleft()
        self.peak_rps = max(self.peak_rps, len(window))

    def finished(self, status: int) -> None:
        """Count a request that has been answered (or abandoned, status 0)."""
        self.in_flight -= 1
        self.statuses[status] += 1
        if status == 304:
            self.not_modified += 1

    def as_dict(self) -> dict[str, Any]:
        """The counters as JSON-ready values."""
        return {
            "requests": self.requests,
            "peak_requests_per_second": self.peak_rps,
            "peak_concurrency": self.peak_concurrency,
            "in_flight": self.in_flight,
            "disallowed_requests": self.disallowed,
            "not_modified": self.not_modified,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "faults": dict(sorted(self.faults.items())),
        }


class Meter:
    """Per-shop meters, created on first use; `clock` is injectable for tests of the window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.shops: dict[str, ShopMeter] = {}
        self.started_at = clock()

    def shop(self, name: str) -> ShopMeter:
        """The meter of shop `name`."""
        meter = self.shops.get(name)
        if meter is None:
            meter = self.shops[name] = ShopMeter()
        return meter

    def reset(self) -> None:
        """Forget every count (requests still in flight keep being tracked)."""
        for name, old in self.shops.items():
            fresh = self.shops[name] = ShopMeter()
            fresh.in_flight = old.in_flight
        self.started_at = self.clock()

    def as_dict(self) -> dict[str, Any]:
        """All shops' counters, and how long they have been counting."""
        return {
            "since_seconds": round(self.clock() - self.started_at, 3),
            "shops": {name: m.as_dict() for name, m in sorted(self.shops.items())},
        }
