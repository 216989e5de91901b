"""Per-site crawl job queues: one `JobQueue` interface, SQLite (embedded) and Redis (cluster)."""

from __future__ import annotations

from pricefleet.queue.base import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_VISIBILITY,
    SEEN_SECONDS,
    JobQueue,
    Lease,
    NewJob,
    Retention,
    RunProgress,
    SiteLimits,
    SiteStats,
    backoff,
    run_of,
)

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_VISIBILITY",
    "SEEN_SECONDS",
    "JobQueue",
    "Lease",
    "NewJob",
    "Retention",
    "RunProgress",
    "SiteLimits",
    "SiteStats",
    "backoff",
    "run_of",
]
