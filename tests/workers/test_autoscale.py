"""The autoscaler: its policy on a given clock, and real worker processes supervised."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from pricefleet.errors import ConfigError
from pricefleet.models import JobKind
from pricefleet.queue import JobQueue, NewJob
from pricefleet.workers.autoscale import Policy, ScalingRule, Supervisor

RULE = ScalingRule(
    min_workers=1,
    max_workers=6,
    scale_up_depth=100,
    scale_down_depth=10,
    idle_seconds=30,
    up_step=2,
    down_step=1,
    up_cooldown=20,
    down_cooldown=40,
    up_window=10,
    down_window=60,
)


def test_scale_up_waits_for_the_stabilisation_window() -> None:
    """A deep queue adds workers only once it has stayed deep for the whole up window."""
    policy = Policy(RULE)
    assert policy.decide(0, 1, depth=5, leased=1).target == 1
    assert policy.decide(5, 1, depth=500, leased=1).target == 1  # window still holds a 1
    decision = policy.decide(16, 1, depth=500, leased=1)
    assert (decision.target, decision.direction) == (3, "up")
    assert "depth 500 > 100" in decision.reason


def test_scale_up_cooldown_and_max() -> None:
    """After a scale-up the next waits for the cooldown; never past max_workers."""
    policy = Policy(RULE)
    targets = [policy.decide(t, 1, depth=1_000, leased=0).target for t in range(0, 12, 2)]
    assert targets == [1, 1, 1, 1, 1, 3]  # once the samples span the 10 s window
    assert policy.decide(12, 3, 1_000, 0).target == 3
    assert "cooldown" in policy.decide(20, 3, 1_000, 0).reason
    assert policy.decide(30, 3, 1_000, 0).target == 5
    targets = [policy.decide(t, 5, 1_000, 0).target for t in range(32, 80, 2)]
    assert max(targets) == 6  # capped at max_workers


def test_scale_down_after_idle_and_window() -> None:
    """An idle queue removes one worker at a time, after idle_seconds and the down window."""
    policy = Policy(RULE)
    targets = [policy.decide(t, 4, depth=0, leased=0).target for t in range(0, 100, 5)]
    assert targets[0] == 4
    first_down = next(i for i, target in enumerate(targets) if target < 4) * 5
    assert first_down >= 60  # the down window, after 30 s of idleness
    assert min(targets) == 3  # one step, then the cooldown


def test_leased_work_is_not_idle() -> None:
    """Workers busy on leased jobs are not removed, whatever the ready depth."""
    policy = Policy(RULE)
    assert all(policy.decide(t, 4, depth=0, leased=3).target == 4 for t in range(0, 500, 10))


def test_bounds_apply_at_once() -> None:
    """Below min_workers the policy starts workers without waiting."""
    assert Policy(RULE).decide(0, 0, 0, 0).target == 1


def test_a_bad_rule_is_refused() -> None:
    """Inconsistent thresholds are a configuration error."""
    with pytest.raises(ConfigError, match="min_workers"):
        ScalingRule(min_workers=5, max_workers=2)


SLEEPER = [
    sys.executable,
    "-c",
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "time.sleep(600)\n",
]


async def test_supervisor_runs_restarts_and_drains_real_processes(tmp_path: Path) -> None:
    """Processes follow the queue: up when deep, a SIGKILLed one restarted, down when idle,
    all stopped by SIGTERM at the end."""
    queue = JobQueue.from_url(f"sqlite:///{tmp_path / 'q.db'}")
    rule = ScalingRule(
        min_workers=1,
        max_workers=3,
        scale_up_depth=5,
        scale_down_depth=1,
        idle_seconds=0,
        up_cooldown=0,
        down_cooldown=0,
        up_window=0,
        down_window=0,
    )
    supervisor = Supervisor(queue, SLEEPER, rule, grace=10)
    try:
        assert (await supervisor.step(0)).target == 1
        jobs = [
            NewJob("shop", str(n), JobKind.PRODUCT, f"https://s.example/{n}") for n in range(20)
        ]
        await queue.enqueue(jobs)
        assert (await supervisor.step(1)).target == 3
        await asyncio.sleep(1.0)  # the sleepers install their SIGTERM handler
        pids = [worker.pid for worker in supervisor.workers]
        assert all(worker.poll() is None for worker in supervisor.workers)

        os.kill(pids[1], signal.SIGKILL)
        supervisor.workers[1].wait(timeout=10)
        await supervisor.step(2)
        assert len(supervisor.workers) == 3
        assert supervisor.workers[1].pid != pids[1]
        assert supervisor.workers[1].poll() is None
        await asyncio.sleep(1.0)

        await queue.purge("shop")
        decision = await supervisor.step(3)
        assert (decision.direction, decision.target) == ("down", 2)
        stopped, _ = supervisor.draining[0]
        assert stopped.wait(timeout=10) == 0  # drained on SIGTERM
        value = supervisor.registry.get_sample_value("pricefleet_autoscale_workers")
        assert value == 2
        restarts = supervisor.registry.get_sample_value("pricefleet_autoscale_restarts_total")
        assert restarts == 1
    finally:
        running = list(supervisor.workers)
        await supervisor.shutdown()
        await queue.close()
    assert all(worker.poll() == 0 for worker in running)
