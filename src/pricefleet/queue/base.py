"""The `JobQueue` interface: per-site crawl jobs with leases, retries, dead letters and gating.

What a backend must do (the conformance suite, `tests/queue/test_conformance.py`, checks each):

- **Per-site queues.** Every job belongs to one site; a job's identity is `(site_id, key)`.
  Enqueueing a key that is queued, delayed or leased is a no-op (dedup); a finished key may be
  enqueued again.
- **Runs (the frontier).** A job given a `run` (one crawl of a site, e.g. its scheduled
  instant) is enqueued at most once per run, even after it finished: URLs a crawl discovers
  again (pagination loops, a product on many listings) are not crawled twice in that crawl.
  The seen keys of a run are kept for `SEEN_SECONDS`.
- **Order.** Higher `priority` first, then the order of enqueueing. A job with `delay` becomes
  leasable once its time has come.
- **Leases.** `lease` hands out jobs for `visibility` seconds, each with a fresh token;
  `heartbeat` extends leases still held; a lease not acked before it expires goes back to the
  queue (it counts as an attempt: the worker probably died on it). Acks, failures and releases
  with a stale token (the lease expired and the job went to someone else) are ignored.
- **Gating at lease time.** A job is only leased from a site that is not paused, not on hold (an
  open breaker, a 429's Retry-After), below its concurrency limit, and whose GCRA rate slot is
  free; each job leased takes one slot. On the Redis backend the limit is cluster-wide.
- **Failures.** `fail` puts the job back with exponential backoff and jitter until it has had
  `max_attempts`, then into the site's dead-letter list with its last error; `replay` re-queues
  dead jobs.
- **Bookkeeping.** `stats` per site (depth, delayed, in flight, oldest age, dead, done and
  failed counts, paused); finished jobs are kept for `retention` (count and age) then dropped.

Times are seconds. Backends use their own clock (Redis: the server's `TIME`, so every worker on
every machine agrees); `now` in the records is that clock's epoch seconds.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pricefleet.errors import ConfigError
from pricefleet.models import JobKind

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

#: Seconds a lease lasts unless the worker heartbeats.
DEFAULT_VISIBILITY = 60.0
#: Attempts before a job goes to the dead-letter list.
DEFAULT_MAX_ATTEMPTS = 5
#: How long a run's seen keys are remembered.
SEEN_SECONDS = 3 * 86_400.0
#: Exponential backoff between attempts: base * 2**(attempt-1), capped, with full jitter.
BACKOFF_BASE = 2.0
BACKOFF_CAP = 600.0


def backoff(attempt: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Seconds before retry number `attempt` (1 = first retry): exponential, capped, with
    "equal jitter" (half fixed, half random) so retries of many jobs spread out."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue. `key` deduplicates it within its site (usually the canonical URL)."""

    site_id: str
    key: str
    kind: JobKind
    url: str
    priority: int = 0
    delay: float = 0.0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    payload: dict[str, Any] = field(default_factory=dict)
    #: The crawl this job belongs to: at most once per run (empty: dedup while pending only).
    run: str = ""


@dataclass(frozen=True, slots=True)
class Lease:
    """A job handed to a worker until `expires_at`; `token` proves this worker holds it."""

    site_id: str
    key: str
    kind: JobKind
    url: str
    token: str
    attempts: int  # including this one
    max_attempts: int
    expires_at: float
    priority: int = 0
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SiteLimits:
    """How fast jobs of one site may be leased: `rate` per second with bursts of `burst`, at
    most `concurrency` leased at once. `rate` 0 means unlimited."""

    rate: float = 0.0
    burst: int = 1
    concurrency: int = 0  # 0: unlimited

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst < 1 or self.concurrency < 0:
            raise ConfigError(
                f"site limits need rate >= 0, burst >= 1, concurrency >= 0, not {self}"
            )


@dataclass(frozen=True, slots=True)
class SiteStats:
    """One site's queue, as `stats` reports it."""

    site_id: str
    queued: int  # leasable now
    delayed: int  # waiting for their time (delays and retry backoff)
    leased: int
    dead: int
    done: int  # finished jobs kept (see Retention)
    oldest_age: float  # seconds the oldest leasable job has waited; 0 when none
    paused: bool
    hold_seconds: float  # seconds until a hold (open breaker, 429) ends; 0 when none
    enqueued_total: int
    acked_total: int
    failed_total: int

    @property
    def depth(self) -> int:
        """Work not finished: queued, delayed and leased jobs."""
        return self.queued + self.delayed + self.leased


@dataclass(frozen=True, slots=True)
class RunProgress:
    """One crawl run's jobs so far: queued under it, finished, given up on."""

    site_id: str
    run: str
    enqueued: int
    done: int
    dead: int

    @property
    def pending(self) -> int:
        """Jobs of the run not finished yet (queued, waiting for a retry, or running)."""
        return max(0, self.enqueued - self.done - self.dead)


def run_of(lease: Lease) -> str:
    """The crawl run a leased job belongs to ("" for none), as its payload records it."""
    run = lease.payload.get("run", "")
    return run if isinstance(run, str) else ""


@dataclass(frozen=True, slots=True)
class Retention:
    """Finished (acked) jobs kept per site: at most `count`, none older than `seconds`."""

    count: int = 1_000
    seconds: float = 86_400.0


class JobQueue(ABC):
    """Per-site job queues; see the module docstring for the contract."""

    @staticmethod
    def from_url(url: str, *, prefix: str = "pf", retention: Retention | None = None) -> JobQueue:
        """`sqlite:///path` (embedded) or `redis://host:port/db` (cluster). `prefix` namespaces
        every key or table row, so tests and tenants can share a server."""
        if url.startswith("sqlite:"):
            from pricefleet.queue.sqlite import SqliteQueue

            return SqliteQueue(url, prefix=prefix, retention=retention or Retention())
        if url.startswith(("redis://", "rediss://", "unix://")):
            from pricefleet.queue.redis import RedisQueue

            return RedisQueue(url, prefix=prefix, retention=retention or Retention())
        raise ConfigError(f"queue URL {url!r}: expected sqlite:///path or redis://host:port/db")

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def enqueue(self, jobs: Sequence[NewJob]) -> int:
        """Add jobs; returns how many were new (duplicates of pending keys are no-ops)."""

    @abstractmethod
    async def lease(
        self,
        count: int,
        *,
        sites: Sequence[str] | None = None,
        visibility: float = DEFAULT_VISIBILITY,
    ) -> list[Lease]:
        """Up to `count` jobs from the sites allowed to give one now (all known sites unless
        `sites`), fairly spread over sites; expired leases are recovered first."""

    @abstractmethod
    async def heartbeat(self, leases: Sequence[Lease], visibility: float) -> list[Lease]:
        """Extend the leases still held by `visibility` seconds from now; returns them with
        their new expiry (lost leases are left out)."""

    @abstractmethod
    async def ack(self, leases: Sequence[Lease]) -> int:
        """The jobs are done; returns how many acks were accepted (stale tokens are not)."""

    @abstractmethod
    async def fail(self, lease: Lease, error: str, *, retry_after: float | None = None) -> bool:
        """The attempt failed with `error`: retry after backoff (or `retry_after`), or move to
        the dead letters once attempts are used up. Returns True when the job went dead."""

    @abstractmethod
    async def release(self, leases: Sequence[Lease]) -> int:
        """Give the jobs back untried (a worker draining): queued again at once, and the
        attempt does not count."""

    @abstractmethod
    async def set_limits(self, site_id: str, limits: SiteLimits) -> None:
        """The site's lease rate and concurrency (recipe politeness, robots Crawl-delay)."""

    @abstractmethod
    async def acquire(self, site_id: str, rate: float, burst: int) -> float:
        """Take one slot of the site's GCRA pacing (the one leases take theirs from) for a
        request that is not a job's own (robots.txt, a retry, a redirect): 0 when taken,
        else the seconds to wait before asking again (nothing taken)."""

    @abstractmethod
    async def advance(self, site_id: str, mark: str, value: float) -> bool:
        """Move the site's named mark forward to `value`: True if it moved (it was lower or
        unset), False if it was already there or past it. Atomic, so of two schedulers only
        one starts a given crawl; lost with the queue's contents, which is what makes the
        scheduler reconcile."""

    @abstractmethod
    async def hold(self, site_id: str, seconds: float) -> None:
        """Lease nothing from the site for `seconds` (an open breaker, a 429's Retry-After);
        a longer hold already in place stays."""

    @abstractmethod
    async def pause(self, site_id: str) -> None:
        """Stop leasing the site's jobs until `resume`; leased jobs run on."""

    @abstractmethod
    async def resume(self, site_id: str) -> None:
        """Lease the site's jobs again."""

    @abstractmethod
    async def sites(self) -> list[str]:
        """Every site the queue has heard of, sorted."""

    @abstractmethod
    async def stats(self, site_ids: Sequence[str] | None = None) -> dict[str, SiteStats]:
        """Per-site figures (all known sites unless `site_ids`)."""

    @abstractmethod
    async def dead(self, site_id: str, limit: int = 100) -> list[tuple[Lease, str]]:
        """The site's dead jobs, newest first, each with its last error."""

    @abstractmethod
    async def replay(self, site_id: str, keys: Sequence[str] | None = None) -> int:
        """Queue dead jobs again (all of the site's unless `keys`) with fresh attempts."""

    @abstractmethod
    async def run_progress(self, site_id: str, run: str) -> RunProgress | None:
        """How far a crawl run has got (jobs enqueued with that `run`, and acked or dead since,
        each job counted once), or None for a run unknown or older than its seen set's
        lifetime (`SEEN_SECONDS`)."""

    @abstractmethod
    async def purge(self, site_id: str) -> None:
        """Forget everything about the site's jobs (tests, a site removed)."""
