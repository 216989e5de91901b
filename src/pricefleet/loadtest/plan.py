"""What a load test does: the target, the phases of arrivals, the weighted paths, the headers.

A plan is validated once, here, so the runner never meets bad input: a URL that is not
http(s), a rate or duration that is not positive, a path without its leading slash, a header
without a colon. The scenarios follow the k6 plan of seed 003: `constant` is a
constant-arrival-rate executor (N requests/s for D seconds), `spike` a baseline rate, a jump to
a peak for a while, and back to the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from pricefleet.errors import PricefleetError

__all__ = ["LoadPlan", "LoadTestError", "Phase", "Scenario", "build_plan", "parse_path"]

#: Spike: the share of the duration spent at the baseline before, at the peak, and after.
SPIKE_SHARES = (0.3, 0.4, 0.3)
#: Spike: the peak is this many times the baseline unless given (seed 003: 1,000 → 5,000).
SPIKE_FACTOR = 5.0
#: Seconds of in-flight requests each connection of the pool is sized for.
POOL_SECONDS = 0.1


class LoadTestError(PricefleetError):
    """A load test was asked for with input it cannot run: says which and what to give."""


class Scenario(StrEnum):
    """How arrivals are spread over time (open model: never waiting on responses)."""

    CONSTANT = "constant"
    SPIKE = "spike"


@dataclass(frozen=True, slots=True)
class Phase:
    """`rate` arrivals per second for `seconds`, evenly spaced on the clock."""

    name: str
    rate: float
    seconds: float

    @property
    def requests(self) -> int:
        """How many arrivals the phase schedules."""
        return max(1, round(self.rate * self.seconds))


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """Everything a run needs, validated."""

    base_url: str
    scenario: Scenario
    phases: tuple[Phase, ...]
    #: (weight, path) pairs; a request picks a path with probability weight / total.
    paths: tuple[tuple[float, str], ...]
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 10.0
    connections: int = 64
    seed: int = 1

    @property
    def requests(self) -> int:
        """Arrivals over all phases."""
        return sum(phase.requests for phase in self.phases)


def parse_path(text: str) -> tuple[float, str]:
    """`/v1/x` or `3 /v1/x` (a weight, a space, the path) as (weight, path)."""
    text = text.strip()
    weight = 1.0
    head, _, rest = text.partition(" ")
    if rest:
        try:
            weight = float(head)
        except ValueError:
            raise LoadTestError(
                f"path {text!r}: expected /path or 'WEIGHT /path' (paths hold no spaces)"
            ) from None
        text = rest.strip()
    if not text.startswith("/"):
        raise LoadTestError(f"path {text!r} must start with '/' (e.g. /v1/search?q=leche)")
    if not math.isfinite(weight) or weight <= 0:
        raise LoadTestError(f"path {text!r}: weight {weight:g} must be a positive number")
    return weight, text


def _parse_header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or any(c.isspace() for c in name.strip()):
        raise LoadTestError(f"header {text!r}: expected 'Name: value'")
    return name.strip(), value.strip()


def _positive(value: float, what: str) -> float:
    if not math.isfinite(value) or value <= 0:
        raise LoadTestError(f"{what} must be a positive number, got {value:g}")
    return value


def build_plan(
    url: str,
    *,
    rate: float,
    duration: float,
    scenario: Scenario | str = Scenario.CONSTANT,
    peak: float | None = None,
    paths: Sequence[str] = (),
    headers: Sequence[str] = (),
    timeout: float = 10.0,
    connections: int | None = None,
    seed: int = 1,
) -> LoadPlan:
    """A validated plan. Without `paths`, the URL's own path (and query) is requested; with
    them, the URL is the base they are appended to. `connections` defaults to what the peak
    rate needs with `POOL_SECONDS` of latency per request (16 to 1,024)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadTestError(f"URL {url!r}: expected http://host or http://host:port/path")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise LoadTestError(f"URL {url!r}: {exc}") from None
    try:
        chosen = Scenario(scenario)
    except ValueError:
        raise LoadTestError(
            f"scenario {scenario!r}: one of {', '.join(s.value for s in Scenario)}"
        ) from None
    _positive(rate, "--rate (requests per second)")
    _positive(duration, "--duration (seconds)")
    _positive(timeout, "--timeout (seconds)")
    if chosen is Scenario.CONSTANT:
        phases: tuple[Phase, ...] = (Phase("constant", rate, duration),)
    else:
        top = _positive(peak, "--peak (requests per second)") if peak is not None else None
        top = top or rate * SPIKE_FACTOR
        before, during, after = (duration * share for share in SPIKE_SHARES)
        phases = (Phase("baseline", rate, before), Phase("spike", top, during))
        phases += (Phase("recovery", rate, after),)
    base = f"{parts.scheme}://{parts.netloc}"
    if paths:
        weighted = tuple(parse_path(p) for p in paths)
        base += parts.path.rstrip("/")
    else:
        own = parts.path or "/"
        weighted = ((1.0, own + (f"?{parts.query}" if parts.query else "")),)
    top_rate = max(phase.rate for phase in phases)
    pool = connections if connections is not None else math.ceil(top_rate * POOL_SECONDS)
    if pool < 1:
        raise LoadTestError(f"--connections must be at least 1, got {pool}")
    return LoadPlan(
        base_url=base,
        scenario=chosen,
        phases=phases,
        paths=weighted,
        headers=tuple(_parse_header(h) for h in headers),
        timeout=timeout,
        connections=pool if connections is not None else min(1024, max(16, pool)),
        seed=seed,
    )
