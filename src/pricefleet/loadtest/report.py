"""A load test's results: per-phase and overall figures, thresholds, a Rich table, JSON.

Errors are every answer outside 2xx/3xx and every request that got no answer (timeouts,
transport errors, requests still unanswered at the end), counted by status or error name.
Percentiles are exact over all samples (linear interpolation between neighbours). Thresholds
apply to the whole run: the p99 latency (from the scheduled instant) and the error rate.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

from pricefleet.loadtest.plan import LoadPlan
from pricefleet.loadtest.runner import PhaseSamples

__all__ = ["LoadReport", "PhaseReport", "percentile", "summarise"]

QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
#: A send lag p99 above this means the generator, not the server, fell behind.
LAG_WARNING_MS = 10.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile of `values` (sorted or not), interpolating; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ms(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {**dict.fromkeys(QUANTILES), "max": None, "mean": None}
    ordered = sorted(values)
    out: dict[str, float | None] = {
        name: round(1000 * percentile(ordered, q), 2) for name, q in QUANTILES.items()
    }
    out["max"] = round(1000 * ordered[-1], 2)
    out["mean"] = round(1000 * sum(ordered) / len(ordered), 2)
    return out


def _is_error(outcome: str) -> bool:
    return not (outcome.isdigit() and 200 <= int(outcome) < 400)


@dataclass(frozen=True, slots=True)
class PhaseReport:
    """One phase (or the whole run): counts, rates and latency figures in milliseconds."""

    name: str
    rate: float
    seconds: float
    sent: int
    completed: int
    errors: int
    error_rate: float
    by_outcome: dict[str, int]
    sent_per_second: float
    latency_ms: dict[str, float | None]
    service_ms: dict[str, float | None]
    lag_ms: dict[str, float | None]


def _phase(name: str, rate: float, seconds: float, parts: Sequence[PhaseSamples]) -> PhaseReport:
    outcomes: Counter[str] = Counter()
    for part in parts:
        outcomes.update(part.outcomes)
    sent = sum(p.sent for p in parts)
    errors = sum(n for outcome, n in outcomes.items() if _is_error(outcome))
    firsts = [p.first_sent for p in parts if p.first_sent is not None]
    lasts = [p.last_sent for p in parts if p.last_sent is not None]
    span = max(lasts) - min(firsts) if firsts and lasts else 0.0
    return PhaseReport(
        name=name,
        rate=rate,
        seconds=round(seconds, 3),
        sent=sent,
        completed=sum(len(p.latency) for p in parts),
        errors=errors,
        error_rate=round(errors / sent, 6) if sent else 0.0,
        by_outcome=dict(sorted(outcomes.items())),
        # n arrivals span n - 1 intervals.
        sent_per_second=round((sent - 1) / span, 1) if span > 0 else float(sent),
        latency_ms=_ms([x for p in parts for x in p.latency]),
        service_ms=_ms([x for p in parts for x in p.service]),
        lag_ms=_ms([x for p in parts for x in p.lag]),
    )


@dataclass(frozen=True, slots=True)
class LoadReport:
    """A whole run: its plan, each phase, the total, and the thresholds it broke."""

    url: str
    scenario: str
    connections: int
    paths: int
    phases: list[PhaseReport]
    total: PhaseReport
    thresholds: dict[str, float | None]
    violations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No threshold was broken."""
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {**asdict(self), "passed": self.passed}

    def table(self) -> Table:
        """Per phase and total: counts, errors, rate, latency percentiles; outcomes by status
        below."""
        table = Table(
            title=f"{self.scenario} load on {self.url} ({self.paths} paths, "
            f"{self.connections} connections); latency from the scheduled instant, ms"
        )
        for column in ("phase", "asked/s", "sent/s", "sent", "done", "errors"):
            table.add_column(column, justify="left" if column == "phase" else "right")
        for column in ("p50", "p90", "p95", "p99", "max", "lag p99"):
            table.add_column(column, justify="right")
        rows = [*self.phases, self.total] if len(self.phases) > 1 else [self.total]
        for row in rows:
            lat = row.latency_ms
            table.add_row(
                row.name,
                f"{row.rate:,.0f}",
                f"{row.sent_per_second:,.0f}",
                f"{row.sent:,}",
                f"{row.completed:,}",
                f"{row.errors:,} ({100 * row.error_rate:.2f} %)",
                *(_shown(lat[k]) for k in ("p50", "p90", "p95", "p99", "max")),
                _shown(row.lag_ms["p99"]),
            )
        outcomes = ", ".join(f"{k}: {v:,}" for k, v in self.total.by_outcome.items())
        table.caption = f"answers and errors: {outcomes or 'none'}"
        return table


def _shown(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def summarise(
    plan: LoadPlan,
    phases: Sequence[PhaseSamples],
    *,
    p99_ms: float | None = None,
    max_error_rate: float | None = None,
) -> LoadReport:
    """The report of a run, checked against the thresholds given."""
    reports = [_phase(p.name, p.rate, p.seconds, [p]) for p in phases]
    seconds = sum(p.seconds for p in phases)
    asked = sum(p.rate * p.seconds for p in phases) / seconds if seconds else 0.0
    total = _phase("total", round(asked, 1), seconds, phases)
    violations = []
    p99 = total.latency_ms["p99"]
    if p99_ms is not None and (p99 is None or p99 > p99_ms):
        shown = "no answer" if p99 is None else f"{p99:,.1f} ms"
        violations.append(f"p99 latency {shown} is over the {p99_ms:g} ms threshold")
    if max_error_rate is not None and total.error_rate > max_error_rate:
        violations.append(
            f"error rate {100 * total.error_rate:.2f} % is over the "
            f"{100 * max_error_rate:g} % threshold ({total.errors:,} of {total.sent:,})"
        )
    warnings = []
    lag = total.lag_ms["p99"]
    if lag is not None and lag > LAG_WARNING_MS:
        warnings.append(
            f"the generator sent late (send lag p99 {lag:,.1f} ms): it could not keep the "
            "schedule on this machine, so latencies include its own delay"
        )
    return LoadReport(
        url=plan.base_url,
        scenario=plan.scenario.value,
        connections=plan.connections,
        paths=len(plan.paths),
        phases=reports,
        total=total,
        thresholds={"p99_ms": p99_ms, "max_error_rate": max_error_rate},
        violations=violations,
        warnings=warnings,
    )
