"""When to retry and how long to wait: transient statuses, backoff with full jitter, Retry-After.

This module owns the arithmetic only; it must not sleep or send anything.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

__all__ = ["TRANSIENT_STATUSES", "backoff_delay", "is_transient", "parse_retry_after"]

#: Statuses worth retrying besides every 5xx: Too Many Requests and Request Timeout.
TRANSIENT_STATUSES = frozenset({408, 429})


def is_transient(status: int) -> bool:
    """Whether an answer with `status` may succeed if asked again later."""
    return status >= 500 or status in TRANSIENT_STATUSES


def backoff_delay(retry: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^retry)] before retry number `retry` (0-based)."""
    ceiling = min(cap, base * 2.0**retry)
    return (rng or random).uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` value asks for (delta-seconds or HTTP date), None if unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
