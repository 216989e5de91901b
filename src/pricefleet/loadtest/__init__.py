"""`pricefleet loadtest`: open-model HTTP load (constant arrival rate, spike) with latency
percentiles and error rates, and thresholds to gate on. See docs/loadtest.md."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from pricefleet.loadtest.plan import LoadPlan, LoadTestError, Phase, Scenario, build_plan
from pricefleet.loadtest.report import LoadReport, PhaseReport, percentile, summarise
from pricefleet.loadtest.runner import PhaseSamples, run_load

__all__ = [
    "LoadPlan",
    "LoadReport",
    "LoadTestError",
    "Phase",
    "PhaseReport",
    "PhaseSamples",
    "Scenario",
    "build_plan",
    "load_test",
    "percentile",
    "read_paths",
    "run_load",
    "summarise",
]


def read_paths(file: Path) -> list[str]:
    """Paths from a file, one a line (`/path` or `WEIGHT /path`); blank lines and `#` comments
    are skipped."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LoadTestError(f"cannot read paths file {file}: {exc.strerror or exc}") from None
    paths = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not paths:
        raise LoadTestError(f"paths file {file} holds no path")
    return paths


def load_test(
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
    p99_ms: float | None = None,
    max_error_rate: float | None = None,
    seed: int = 1,
) -> LoadReport:
    """Plan, run and summarise one load test (blocks for about `duration` seconds)."""
    if max_error_rate is not None and not 0 <= max_error_rate <= 1:
        raise LoadTestError(f"--max-error-rate {max_error_rate:g}: a fraction from 0 to 1")
    if p99_ms is not None and p99_ms <= 0:
        raise LoadTestError(f"--p99-ms {p99_ms:g}: must be a positive number of milliseconds")
    plan = build_plan(
        url,
        rate=rate,
        duration=duration,
        scenario=scenario,
        peak=peak,
        paths=paths,
        headers=headers,
        timeout=timeout,
        connections=connections,
        seed=seed,
    )
    phases = asyncio.run(run_load(plan))
    return summarise(plan, phases, p99_ms=p99_ms, max_error_rate=max_error_rate)
