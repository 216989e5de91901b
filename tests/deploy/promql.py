"""What the monitoring files ask Prometheus for: PromQL expressions and the metric names in them.

Enough of PromQL to find metric names (strings, label matchers, ranges and grouping clauses
removed; function and aggregation names are followed by a parenthesis) and the `job` a
selector is pinned to. Not a parser: tests/deploy/test_monitoring.py checks it on the
constructs the files use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEPLOY",
    "PROMETHEUS_GENERATED",
    "alert_rules",
    "dashboard_expressions",
    "metric_names",
    "rule_expressions",
    "scaler_expressions",
    "selectors",
]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
KUBERNETES = DEPLOY / "kubernetes"

#: Series Prometheus writes itself for every target, not any /metrics endpoint.
PROMETHEUS_GENERATED = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end"})
_SELECTOR = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)\s*\{([^{}]*)\}")
_JOB = re.compile(r"""\bjob\s*=\s*"([^"]*)\"""")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (`x_bucket` stays `x_bucket`)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _IDENT.findall(text) if name.lower() not in _KEYWORDS}


def selectors(expr: str) -> Iterator[tuple[str, str | None]]:
    """Each metric name of `expr` with the job an equality matcher pins it to (else None)."""
    pinned: dict[str, set[str]] = {}
    for name, matchers in _SELECTOR.findall(expr):
        job = _JOB.search(matchers)
        if job:
            pinned.setdefault(name, set()).add(job.group(1))
    unpinned = _SELECTOR.sub(lambda m: m.group(0) if m.group(1) not in pinned else " ", expr)
    for name in metric_names(unpinned):
        yield name, None
    for name, jobs in pinned.items():
        for job in jobs:
            yield name, job


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of alerts.yml."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def rule_expressions() -> dict[str, str]:
    """Alert (or recording rule) name: expression."""
    return {rule.get("alert") or rule["record"]: rule["expr"] for rule in alert_rules()}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_expressions() -> dict[str, str]:
    """`file: panel title #id [refId]`: expression, for every query of every dashboard."""
    found: dict[str, str] = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                where = f"{path.name}: {panel['title']} #{panel['id']} [{target['refId']}]"
                found[where] = target["expr"]
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable.get("query")
            if isinstance(query, dict):
                query = query.get("query")
            if variable.get("type") == "query" and query:
                found[f"{path.name}: variable {variable['name']}"] = str(query)
    return found


def scaler_expressions() -> dict[str, str]:
    """What the Kubernetes autoscalers ask Prometheus for: KEDA `prometheus` trigger queries
    and the metric names of External HPA metrics (served by prometheus-adapter)."""
    found: dict[str, str] = {}
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or "spec" not in doc:
                continue
            where = f"{path.relative_to(KUBERNETES)}: {doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] == "ScaledObject":
                for i, trigger in enumerate(doc["spec"]["triggers"]):
                    if trigger["type"] == "prometheus":
                        found[f"{where} trigger {i}"] = trigger["metadata"]["query"]
            if doc["kind"] == "HorizontalPodAutoscaler":
                for i, metric in enumerate(doc["spec"].get("metrics", [])):
                    if metric["type"] == "External":
                        found[f"{where} metric {i}"] = metric["external"]["metric"]["name"]
    return found
