"""`pricefleet autoscale`: keep as many local worker processes as the queue needs.

The rule has the shape of seed `000`'s worker pools and HPA: between `min_workers` and
`max_workers`; add workers (`up_step` at a time) while the queue's ready depth is above
`scale_up_depth`, remove them (`down_step` at a time) once the queue has been idle (depth below
`scale_down_depth`, nothing leased) for `idle_seconds`; each direction has a cooldown after it
acts and a stabilisation window (a scale-up needs every recommendation of the last `up_window`
seconds to agree, a scale-down those of `down_window`), as Kubernetes' HPA behaviour does. The
same thresholds go into `deploy/`'s KEDA ScaledObject and HPA.

`Policy` is the decision alone (pure, clock passed in); `Supervisor` runs worker processes and
applies it: new workers are started, surplus ones get SIGTERM (they drain, see the worker) and
crashed ones are restarted. Every decision is logged and exported as Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import subprocess
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from pricefleet.errors import ConfigError
from pricefleet.queue import JobQueue
from pricefleet.workers.children import die_with_parent

__all__ = ["Decision", "Policy", "ScalingRule", "Supervisor"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScalingRule:
    """The thresholds; defaults are seed `000`'s for a shop's pool, sized for one machine."""

    min_workers: int = 1
    max_workers: int = 4
    scale_up_depth: int = 1_000
    scale_down_depth: int = 100
    idle_seconds: float = 300.0
    up_step: int = 2
    down_step: int = 1
    up_cooldown: float = 120.0
    down_cooldown: float = 300.0
    up_window: float = 60.0
    down_window: float = 300.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_workers <= self.max_workers or self.max_workers < 1:
            raise ConfigError(
                f"autoscale: need 0 <= min_workers <= max_workers, max >= 1 (got "
                f"{self.min_workers}..{self.max_workers})"
            )
        if self.scale_down_depth > self.scale_up_depth:
            raise ConfigError("autoscale: scale_down_depth must not exceed scale_up_depth")
        if self.up_step < 1 or self.down_step < 1:
            raise ConfigError("autoscale: steps must be at least 1")


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy wants and why."""

    at: float
    current: int
    target: int
    depth: int
    leased: int
    reason: str

    @property
    def direction(self) -> str:
        """up, down or hold."""
        if self.target > self.current:
            return "up"
        return "down" if self.target < self.current else "hold"


@dataclass
class Policy:
    """Turns queue samples into worker counts under a `ScalingRule`."""

    rule: ScalingRule
    _samples: deque[tuple[float, int]] = field(default_factory=deque)
    _idle_since: float | None = None
    _last_up: float = -math.inf
    _last_down: float = -math.inf

    def decide(self, now: float, current: int, depth: int, leased: int) -> Decision:
        """The worker count to run now, given `current` workers, `depth` ready jobs and
        `leased` jobs in flight."""
        rule = self.rule
        idle = depth < rule.scale_down_depth and leased == 0
        if not idle:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        idle_for = 0.0 if self._idle_since is None else now - self._idle_since
        if depth > rule.scale_up_depth:
            wanted, why = current + rule.up_step, f"depth {depth} > {rule.scale_up_depth}"
        elif idle and idle_for >= rule.idle_seconds:
            wanted, why = current - rule.down_step, f"idle for {idle_for:.0f} s"
        else:
            wanted, why = current, "within thresholds"
        wanted = max(rule.min_workers, min(rule.max_workers, wanted))
        if current < rule.min_workers or current > rule.max_workers:
            wanted, why = max(rule.min_workers, min(rule.max_workers, current)), "bounds"
        self._samples.append((now, wanted))
        horizon = now - max(rule.up_window, rule.down_window)
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()
        target = current
        # The window's recommendations only count once the samples span the whole window.
        history = now - self._samples[0][0]
        if wanted > current:
            # Stabilised: the lowest recommendation of the window, and not within the cooldown.
            floor = min(w for t, w in self._samples if t >= now - rule.up_window)
            if why == "bounds":
                target = wanted
            elif now - self._last_up < rule.up_cooldown:
                why = f"{why}; up cooldown"
            elif floor <= current or history < rule.up_window:
                why = f"{why}; stabilising ({rule.up_window:.0f} s window)"
            else:
                target = min(wanted, floor)
        elif wanted < current:
            ceiling = max(w for t, w in self._samples if t >= now - rule.down_window)
            if why == "bounds":
                target = wanted
            elif now - self._last_down < rule.down_cooldown:
                why = f"{why}; down cooldown"
            elif ceiling >= current or history < rule.down_window:
                why = f"{why}; stabilising ({rule.down_window:.0f} s window)"
            else:
                target = max(wanted, ceiling)
        if target > current:
            self._last_up = now
        elif target < current:
            self._last_down = now
        return Decision(now, current, target, depth, leased, why)


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.workers = Gauge(
            "pricefleet_autoscale_workers", "Worker processes running", registry=registry
        )
        self.target = Gauge(
            "pricefleet_autoscale_target_workers", "Workers the policy wants", registry=registry
        )
        self.depth = Gauge(
            "pricefleet_queue_ready_jobs", "Jobs ready to lease, all sites", registry=registry
        )
        self.leased = Gauge(
            "pricefleet_queue_leased_jobs", "Jobs leased, all sites", registry=registry
        )
        self.decisions = Counter(
            "pricefleet_autoscale_decisions",
            "Scaling decisions that changed the worker count",
            ["direction"],
            registry=registry,
        )
        self.restarts = Counter(
            "pricefleet_autoscale_restarts", "Workers restarted after a crash", registry=registry
        )


class Supervisor:
    """Runs `command` as worker processes, as many as the policy says."""

    def __init__(
        self,
        queue: JobQueue,
        command: Sequence[str],
        rule: ScalingRule,
        *,
        interval: float = 5.0,
        grace: float = 120.0,
        sites: Sequence[str] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.queue = queue
        self.command = list(command)
        self.policy = Policy(rule)
        self.interval = interval
        self.grace = grace
        self.sites = list(sites) if sites else None
        self.registry = registry or CollectorRegistry()
        self.metrics = _Metrics(self.registry)
        self.workers: list[subprocess.Popen[bytes]] = []
        self.draining: list[tuple[subprocess.Popen[bytes], float]] = []
        self.decisions: list[Decision] = []
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """End `run`: workers are sent SIGTERM and waited for (up to the grace period)."""
        self._stop.set()

    async def step(self, now: float | None = None) -> Decision:
        """One round: reap and restart crashed workers, sample the queue, apply a decision."""
        now = time.monotonic() if now is None else now
        self._reap()
        stats = await self.queue.stats(self.sites)
        depth = sum(s.queued for s in stats.values())
        leased = sum(s.leased for s in stats.values())
        decision = self.policy.decide(now, len(self.workers), depth, leased)
        self.decisions.append(decision)
        if decision.direction != "hold":
            log.info(
                "autoscale %s: %d -> %d workers (%s)",
                decision.direction,
                decision.current,
                decision.target,
                decision.reason,
            )
            self.metrics.decisions.labels(decision.direction).inc()
        while len(self.workers) < decision.target:
            self.workers.append(self._start())
        while len(self.workers) > decision.target:
            worker = self.workers.pop()  # the newest goes first
            worker.send_signal(signal.SIGTERM)
            self.draining.append((worker, now + self.grace))
        self.metrics.workers.set(len(self.workers))
        self.metrics.target.set(decision.target)
        self.metrics.depth.set(depth)
        self.metrics.leased.set(leased)
        return decision

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command, start_new_session=True, preexec_fn=die_with_parent)

    def _reap(self) -> None:
        for index, worker in enumerate(self.workers):
            code = worker.poll()
            if code is not None:
                log.warning("autoscale: worker %d exited with %d; restarting", worker.pid, code)
                self.metrics.restarts.inc()
                self.workers[index] = self._start()
        now = time.monotonic()
        still = []
        for worker, deadline in self.draining:
            if worker.poll() is None:
                if now > deadline:
                    worker.kill()  # past its grace period
                still.append((worker, deadline))
        self.draining = [(w, d) for w, d in still if w.poll() is None]

    async def run(self) -> None:
        """Supervise until `stop()`; then drain every worker."""
        try:
            while not self._stop.is_set():
                await self.step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval)
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """SIGTERM every worker and wait for them, killing those past the grace period."""
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        self.draining.extend((w, deadline) for w in self.workers)
        self.workers = []
        while any(w.poll() is None for w, _ in self.draining):
            if time.monotonic() > deadline:
                for worker, _ in self.draining:
                    if worker.poll() is None:
                        worker.kill()
            await asyncio.sleep(0.1)
        self.draining = []
