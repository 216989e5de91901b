"""pricefleet's benchmarks: `make bench` (`python -m bench`) runs them and keeps their results.

The machine they run on is small, shared and noisy, so every benchmark measures the things it
compares side by side in one run, repeats each measurement in rounds, and reports medians and
ratios. None of them passes or fails on an absolute figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import RenderableType

__all__ = ["Benchmark", "Options", "percentile"]


@dataclass(frozen=True, slots=True)
class Options:
    """How `python -m bench` was asked to run."""

    #: Fewer requests per round: a smoke run, not figures to quote.
    quick: bool = False
    #: Rounds per measurement; medians are taken across them.
    rounds: int = 3


@dataclass(frozen=True, slots=True)
class Benchmark:
    """One benchmark: `run` measures and returns JSON-ready results, `render` shows them."""

    name: str
    summary: str
    run: Callable[[Options], dict[str, Any]]
    render: Callable[[dict[str, Any]], list[RenderableType]]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (0.5 = median) of `values`, interpolating between neighbours."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
