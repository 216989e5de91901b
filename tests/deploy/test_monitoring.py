"""deploy/prometheus and deploy/grafana: promtool accepts the rules and the configuration, the
alerts fire when they should, and every metric they name is exported by a running fleet."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.promql import (
    DEPLOY,
    PROMETHEUS_GENERATED,
    alert_rules,
    dashboard_expressions,
    metric_names,
    rule_expressions,
    scaler_expressions,
    selectors,
)
from tests.servers import (
    DemoServer,
    create_database,
    drop_database,
    free_port,
    pg_url,
    require_program,
    require_server,
    start_demo,
)

PROMTOOL = Path("/usr/bin/promtool")
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
RECIPES = Path(__file__).resolve().parents[2] / "recipes"
REDIS_URL = "redis://127.0.0.1:6379/0"
#: The jobs of deploy/prometheus/prometheus.yml that scrape pricefleet's own endpoints.
JOBS = ("pricefleet-api", "pricefleet-worker", "pricefleet-scheduler")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    require_program(PROMTOOL, "prometheus")
    return subprocess.run(
        [str(PROMTOOL), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROMETHEUS,
        check=False,
    )


def _all_selectors(*, scalers: bool = True) -> dict[str, set[tuple[str, str | None]]]:
    """Where each (metric, pinned job) is used: alert, panel or (on Kubernetes) autoscaler."""
    used: dict[str, set[tuple[str, str | None]]] = {}
    expressions = {**rule_expressions(), **dashboard_expressions()}
    if scalers:
        expressions |= scaler_expressions()
    for where, expr in expressions.items():
        for selector in selectors(expr):
            used.setdefault(where, set()).add(selector)
    return used


# --- static checks -----------------------------------------------------------------------


def test_promtool_checks_the_rules_and_the_config() -> None:
    """`promtool check rules` and `promtool check config` accept the files as shipped."""
    rules = _promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = _promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    """alerts_test.yml: the alerts fire on the seeds' thresholds and stay quiet under them."""
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {
        test["alertname"]
        for case in yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
        for test in case.get("alert_rule_test", [])
    }
    assert len(tested) >= 6, tested


def test_alerts_use_the_seed_thresholds() -> None:
    """p99 > 500 ms, errors > 1 %, queue > 10,000, scrape errors > 5 %, cache < 60 % / 80 %,
    API down: each alert exists with its threshold and a severity."""
    rules = {rule["alert"]: rule for rule in alert_rules()}
    wanted = {
        "PricefleetApiHighLatency": ("histogram_quantile(0.99", "> 0.5"),
        "PricefleetApiHighErrorRate": ('status=~"5.."', "> 0.01"),
        "PricefleetQueueBacklog": ("scraping_queue_depth", "> 10000"),
        "PricefleetScrapeErrorRate": ("scrape_errors_total", "> 0.05"),
        "PricefleetCacheHitRatioCritical": ("cache_hits_total", "< 0.6"),
        "PricefleetCacheHitRatioLow": ("cache_hits_total", "< 0.8"),
        "PricefleetApiDown": ('up{job="pricefleet-api"}', "== 0"),
    }
    for name, fragments in wanted.items():
        expr = " ".join(rules[name]["expr"].split())
        assert all(fragment in expr for fragment in fragments), (name, expr)
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
    assert rules["PricefleetCacheHitRatioCritical"]["labels"]["severity"] == "critical"
    assert rules["PricefleetCacheHitRatioLow"]["labels"]["severity"] == "warning"


def test_the_metric_name_finder() -> None:
    """Names come out of selectors, not functions, labels, grouping or ranges."""
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(x_seconds_bucket{endpoint!="/m",'
        'job="api"}[5m]))) > 0.5 and on (job) (sum(y_total offset 5m) or vector(0)) == 0'
        " unless max without (instance) (z:ratio[$__rate_interval])"
    )
    assert metric_names(expr) == {"x_seconds_bucket", "y_total", "z:ratio"}
    assert set(selectors(expr)) == {
        ("x_seconds_bucket", "api"),
        ("y_total", None),
        ("z:ratio", None),
    }


def test_dashboard_is_provisioned_with_the_seed_panels() -> None:
    """The provisioned datasource's uid is the one every panel uses; the provider loads the
    folder the compose stack mounts; seed 004's panels are there; panel ids are unique."""
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "pricefleet.yml").read_text()
    )["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboard = json.loads((GRAFANA / "dashboards" / "pricefleet.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"], panel["title"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for wanted in (
        "request rate",
        "p95",
        "cache hit ratio",
        "queue depth per site",
        "active workers",
        "products/s",
        "error rate",
    ):
        assert wanted in titles, wanted


# --- a running fleet ---------------------------------------------------------------------


@dataclass
class Fleet:
    """Processes of one pricefleet deployment and where their metrics are served."""

    api: str
    metrics: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    def start(self, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start `pricefleet ARGS` as a process of the fleet."""
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        command = [sys.executable, "-m", "pricefleet", *args]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        self.logs.append(log)
        return process

    def output(self) -> str:
        """The last lines every process wrote, for failure messages."""
        parts = []
        for process, log in zip(self.processes, self.logs, strict=True):
            log.seek(0)
            text = log.read().decode(errors="replace")[-1500:]
            parts.append(f"--- {process.args[3:]} ({process.poll()}):\n{text}")
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM every process, SIGKILL what does not stop in 30 s."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()

    def scrape(self) -> dict[str, set[str]]:
        """Job: the sample names its /metrics holds now (names with a sample only)."""
        exported: dict[str, set[str]] = {}
        for job, url in self.metrics.items():
            text = httpx.get(url, timeout=10).text
            exported[job] = {
                sample.name
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            }
        return exported


def _recipes(folder: Path, demo: DemoServer) -> Path:
    """demo-jsonld's recipe on the test's demo shops, and a site whose pages are missing (its
    crawl fails, so scrape errors are counted)."""
    folder.mkdir()
    recipe = (RECIPES / "demo-jsonld.yaml").read_text()
    shops = recipe.replace("${PRICEFLEET_DEMO_URL:-http://127.0.0.1:8100}", demo.url)
    (folder / "demo-jsonld.yaml").write_text(shops)
    broken = shops.replace("id: demo-jsonld", "id: demo-gone").replace("/jsonld/", "/gone/")
    (folder / "demo-gone.yaml").write_text(broken)
    return folder


def _environment(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRICEFLEET_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env | {f"PRICEFLEET_{key.upper()}": value for key, value in settings.items()}


def _wait_for(fleet: Fleet, what: str, ready: object, seconds: float = 90) -> None:
    """Poll `ready()` until it is true; fail naming `what` and showing the processes' logs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for process in fleet.processes:
            if process.poll() is not None:
                pytest.fail(f"a process exited while waiting for {what}:\n{fleet.output()}")
        with contextlib.suppress(httpx.TransportError):
            if ready():  # type: ignore[operator]
                return
        time.sleep(0.25)
    pytest.fail(f"no {what} within {seconds:.0f} s:\n{fleet.output()}")


def _traffic(fleet: Fleet) -> None:
    """Reads that fill the cache, hit it, miss a route and find nothing: labelled series."""
    for _ in range(3):
        for path in (
            "/v1/products?site=demo-jsonld&limit=5",
            "/v1/search?q=leche",
            "/v1/sites",
            "/v1/no-such-route",
        ):
            httpx.get(fleet.api + path, timeout=10)


def _crawled(fleet: Fleet, job: str) -> bool:
    """The crawl counted both stored products and failed pages."""
    names = fleet.scrape()[job]
    return {"products_scraped_total", "scrape_errors_total"} <= names


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The cluster profile as deployed: `pricefleet api`, `worker --metrics-port` and
    `scheduler --metrics-port` processes on a PostgreSQL database and a Redis key prefix of
    their own, crawling the demo shops."""
    require_server("127.0.0.1", 6379, "Redis")
    tmp = tmp_path_factory.mktemp("cluster")
    demo = start_demo("--products", "60", "--seed", "7", "--day", "10")
    database = asyncio.run(create_database())
    prefix = f"t{os.urandom(5).hex()}"
    api_port, worker_port, scheduler_port = free_port(), free_port(), free_port()
    env = _environment(
        database_url=pg_url(database),
        redis_url=REDIS_URL,
        queue_prefix=prefix,
        recipes_dir=str(_recipes(tmp / "recipes", demo)),
        data_dir=str(tmp / "data"),
        public_reads="true",
        rate_limit="100000/minute",
        api_port=str(api_port),
    )
    fleet = Fleet(
        api=f"http://127.0.0.1:{api_port}",
        metrics={
            "pricefleet-api": f"http://127.0.0.1:{api_port}/metrics",
            "pricefleet-worker": f"http://127.0.0.1:{worker_port}/metrics",
            "pricefleet-scheduler": f"http://127.0.0.1:{scheduler_port}/metrics",
        },
    )
    try:
        migrated = subprocess.run(
            [sys.executable, "-m", "pricefleet", "db", "upgrade"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stderr
        fleet.start("api", env=env)
        fleet.start("worker", "--concurrency", "8", "--metrics-port", str(worker_port), env=env)
        fleet.start("scheduler", "--tick", "1", "--metrics-port", str(scheduler_port), env=env)
        _wait_for(fleet, "ready API", lambda: httpx.get(f"{fleet.api}/readyz").status_code == 200)
        _wait_for(fleet, "crawl counters", lambda: _crawled(fleet, "pricefleet-worker"))
        _traffic(fleet)
        yield fleet
    finally:
        fleet.stop()
        demo.stop()
        asyncio.run(drop_database(database))
        client = redis.Redis.from_url(REDIS_URL)
        try:
            for pattern in (f"{prefix}:*", f"*{prefix}:cache:*"):
                for key in client.scan_iter(match=pattern, count=1_000):
                    client.delete(key)
        finally:
            client.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_metric_named_is_exported_by_the_cluster(cluster: Fleet) -> None:
    """Every metric the alerts, the dashboard and the Kubernetes autoscalers name has samples on
    the /metrics of the API, a worker or the scheduler (the one its `job` matcher names, when
    it has one); only Prometheus's own `up` comes from elsewhere. No dangling names."""
    exported = cluster.scrape()
    everywhere = set().union(*exported.values())
    dangling = []
    for where, used in _all_selectors().items():
        for name, job in sorted(used, key=str):
            if name in PROMETHEUS_GENERATED:
                assert job is None or job in JOBS, (where, job)
                continue
            found = exported[job] if job is not None else everywhere
            if name not in found:
                dangling.append(f"{where}: {name}" + (f" (job {job})" if job else ""))
    assert dangling == [], "\n".join(dangling)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_embedded_run_exports_what_its_dashboard_needs(tmp_path: Path) -> None:
    """`pricefleet run`'s one /metrics (API and workers summed) exports every name the alerts
    and dashboard use that no job matcher pins to the cluster's scheduler."""
    demo = start_demo("--products", "40", "--seed", "7", "--day", "10")
    port = free_port()
    env = _environment(
        recipes_dir=str(_recipes(tmp_path / "recipes", demo)),
        data_dir=str(tmp_path / "data"),
        api_port=str(port),
    )
    fleet = Fleet(
        api=f"http://127.0.0.1:{port}", metrics={"run": f"http://127.0.0.1:{port}/metrics"}
    )
    try:
        fleet.start("run", "--max-workers", "1", "--tick", "1", env=env)
        _wait_for(fleet, "products and scrape errors", lambda: _crawled(fleet, "run"))
        _traffic(fleet)
        exported = fleet.scrape()["run"]
    finally:
        fleet.stop()
        demo.stop()
    wanted = {
        name
        for used in _all_selectors(scalers=False).values()
        for name, job in used
        if job is None and name not in PROMETHEUS_GENERATED
    }
    assert wanted - exported == set()


def test_worker_refuses_a_metrics_port_in_use(tmp_path: Path) -> None:
    """`pricefleet worker --metrics-port` on a taken port exits 2 naming the port, rather than
    crawling with no metrics for Prometheus."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "pricefleet", "worker", "--burst", "--metrics-port", str(port)],
            env=_environment(data_dir=str(tmp_path), recipes_dir=str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert f"cannot serve metrics on port {port}" in result.stderr
