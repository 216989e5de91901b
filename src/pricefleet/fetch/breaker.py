"""Circuit breakers, one per site: stop hammering a shop that keeps failing.

    closed ──(breaker_failures consecutive failed fetches)──▶ open
    open ──(breaker_cooldown elapsed)──▶ half-open: exactly one probe request at a time
    half-open ──probe succeeds──▶ closed        half-open ──probe fails──▶ open again

A failed fetch is one that exhausted its retries on transient failures; any answer that
retrying would not change (2xx, 3xx, 304, 4xx) counts as a success — the shop is up.

This module owns the state machine only; it must not sleep or send anything. Times are on the
injected monotonic clock; `CircuitOpen.until` is converted to epoch seconds for the queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from pricefleet.errors import CircuitOpen

__all__ = ["BreakerState", "CircuitBreakers"]


class BreakerState(StrEnum):
    """Where a site's breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class _Breaker:
    failures: int = 0
    open: bool = False
    opened_at: float = 0.0
    cooldown: float = 0.0
    probing: bool = False


class CircuitBreakers:
    """The breakers of every site this process fetches from."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sites: dict[str, _Breaker] = {}

    def _get(self, site_id: str) -> _Breaker:
        breaker = self._sites.get(site_id)
        if breaker is None:
            breaker = self._sites[site_id] = _Breaker()
        return breaker

    def state(self, site_id: str) -> BreakerState:
        """The site's state now (half-open once the cooldown is over, probe or not)."""
        breaker = self._sites.get(site_id)
        if breaker is None or not breaker.open:
            return BreakerState.CLOSED
        if self._clock() - breaker.opened_at >= breaker.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def _refuse(self, site_id: str, breaker: _Breaker, url: str | None) -> CircuitOpen:
        now = self._clock()
        reopens = breaker.opened_at + breaker.cooldown
        if breaker.probing and reopens <= now:
            reopens = now + min(breaker.cooldown, 1.0)  # a probe is under way: ask again soon
        until = time.time() + max(0.0, reopens - now)
        return CircuitOpen(
            f"site {site_id!r} failed {breaker.failures} times in a row; its circuit is open "
            f"for {max(0.0, reopens - now):.1f} s more (requests are not sent meanwhile)",
            url=url,
            until=until,
        )

    def admit(self, site_id: str, url: str | None = None) -> bool:
        """Let a fetch through, or raise `CircuitOpen`; True when the fetch is the one probe."""
        breaker = self._get(site_id)
        if not breaker.open:
            return False
        if self._clock() - breaker.opened_at < breaker.cooldown or breaker.probing:
            raise self._refuse(site_id, breaker, url)
        breaker.probing = True
        return True

    def check(self, site_id: str, probe: bool, url: str | None = None) -> None:
        """Before a retry: raise `CircuitOpen` if the circuit opened meanwhile (probes pass)."""
        breaker = self._get(site_id)
        if breaker.open and not probe:
            raise self._refuse(site_id, breaker, url)

    def success(self, site_id: str, probe: bool) -> None:
        """A fetch got an answer: the failure streak ends; a successful probe closes."""
        breaker = self._get(site_id)
        if probe or not breaker.open:
            breaker.failures = 0
            breaker.open = False
            breaker.probing = False

    def failure(self, site_id: str, probe: bool, threshold: int, cooldown: float) -> float:
        """A fetch failed for good; returns seconds until the site may be tried again."""
        breaker = self._get(site_id)
        breaker.failures += 1
        if probe or (not breaker.open and breaker.failures >= threshold):
            breaker.open = True
            breaker.opened_at = self._clock()
            breaker.cooldown = cooldown
            breaker.probing = False
        if not breaker.open:
            return 0.0
        return max(0.0, breaker.opened_at + breaker.cooldown - self._clock())

    def release(self, site_id: str, probe: bool) -> None:
        """A fetch ended with neither verdict (cancelled, refused by robots): free the probe."""
        if probe:
            self._get(site_id).probing = False
