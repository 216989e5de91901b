"""deploy/'s Kubernetes autoscaling says what the local autoscaler does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pricefleet.workers.autoscale import ScalingRule

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "workers.yaml"


def _documents() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFESTS.read_text()) if doc}


def _behaviour(behavior: dict[str, Any], rule: ScalingRule) -> None:
    up, down = behavior["scaleUp"], behavior["scaleDown"]
    assert up["stabilizationWindowSeconds"] == rule.up_window
    assert down["stabilizationWindowSeconds"] == rule.down_window
    assert up["policies"][0]["value"] == rule.up_step
    assert down["policies"][0]["value"] == rule.down_step


def test_keda_and_hpa_use_the_scaling_rule() -> None:
    """Thresholds, bounds and windows in the manifests equal ScalingRule's defaults."""
    rule = ScalingRule()
    docs = _documents()
    keda = docs["ScaledObject"]["spec"]
    assert (keda["minReplicaCount"], keda["maxReplicaCount"]) == (
        rule.min_workers,
        rule.max_workers,
    )
    assert keda["cooldownPeriod"] == rule.down_cooldown
    (trigger,) = keda["triggers"]
    assert trigger["metadata"]["threshold"] == str(rule.scale_up_depth)
    assert trigger["metadata"]["activationThreshold"] == str(rule.scale_down_depth)
    assert "pricefleet_queue_ready_jobs" in trigger["metadata"]["query"]
    _behaviour(keda["advanced"]["horizontalPodAutoscalerConfig"]["behavior"], rule)
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (rule.min_workers, rule.max_workers)
    assert hpa["metrics"][0]["external"]["target"]["averageValue"] == str(rule.scale_up_depth)
    _behaviour(hpa["behavior"], rule)


def test_pods_get_the_drain_grace_period() -> None:
    """Kubernetes waits longer than the worker's own drain before it kills the pod."""
    pod = _documents()["Deployment"]["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    grace = float(args[args.index("--grace") + 1])
    assert pod["terminationGracePeriodSeconds"] > grace
