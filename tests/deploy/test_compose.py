"""The Dockerfile, docker-compose.yml and nginx: the compose file validates and hangs together
(ports, healthchecks, start order, mounts, secrets from .env), every container runs a real
pricefleet command, and nginx balances least_conn over the replicas with forwarded headers."""

from __future__ import annotations

import http.server
import json
import re
import shlex
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.commands import check_command
from tests.deploy.promql import DEPLOY
from tests.servers import free_port, require_program

ROOT = DEPLOY.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKER_COMPOSE = Path("/usr/bin/docker-compose")
NGINX = Path("/usr/sbin/nginx")
NGINX_CONF = DEPLOY / "nginx" / "nginx.conf"
#: Services whose image is pricefleet's, and the ones that must be there.
PRICEFLEET = {"migrate", "api1", "api2", "worker", "scheduler", "demo"}
REQUIRED = PRICEFLEET | {"postgres", "pgbouncer", "redis", "nginx", "prometheus", "grafana"}


def _compose(*args: str, env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess[str]:
    require_program(DOCKER_COMPOSE, "docker-compose")
    return subprocess.run(
        [str(DOCKER_COMPOSE), "-f", str(COMPOSE), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def _config() -> dict[str, Any]:
    """The compose file as docker-compose resolves it (anchors merged, .env.example read)."""
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


# --- docker-compose.yml ------------------------------------------------------------------


def test_compose_file_validates() -> None:
    """`docker-compose config -q` accepts the file with the example .env."""
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    """With no passwords in the env file, docker-compose names the one to set: no default
    secret is baked in."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _compose("config", "-q", env_file=empty)
    assert result.returncode != 0
    assert "in .env (see .env.example)" in result.stderr
    raw = COMPOSE.read_text()
    for variable in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert f"{variable}=" in ENV_EXAMPLE.read_text()
        assert re.search(rf"\$\{{{variable}:\?", raw), variable
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_services_start_in_order_and_report_health() -> None:
    """Every long-running service has a healthcheck (the API's is the image's HEALTHCHECK);
    the fleet waits for migrations, PgBouncer and Redis; nginx waits for healthy APIs."""
    services = _config()["services"]
    assert set(services) >= REQUIRED
    for name, service in services.items():
        if name in {"api1", "api2", "migrate"}:
            continue
        assert "test" in service.get("healthcheck", {}), name
    assert services["migrate"]["healthcheck"]["test"] == ["NONE"]  # `disable: true`
    for name in PRICEFLEET - {"migrate", "demo"}:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["pgbouncer"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert "pgbouncer:5432" in services[name]["environment"]["PRICEFLEET_DATABASE_URL"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for api in ("api1", "api2"):
        assert services["nginx"]["depends_on"][api]["condition"] == "service_healthy"
    assert services["pgbouncer"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["stop_grace_period"] == "130s"


def test_every_pricefleet_container_runs_a_real_command() -> None:
    """The command of each pricefleet service is one the CLI accepts, with its options."""
    services = _config()["services"]
    commands = {name: check_command(services[name]["command"], name) for name in PRICEFLEET}
    assert commands["api1"] == commands["api2"] == "api"
    assert commands["migrate"] == "db upgrade"
    assert commands["demo"] == "demo-shop"


def test_nginx_prometheus_and_grafana_agree_with_the_services() -> None:
    """nginx balances exactly the API services; Prometheus scrapes their port and the worker's
    and scheduler's --metrics-port; Grafana gets the provisioning and dashboards folders where
    the provisioning files look."""
    services = _config()["services"]
    apis = sorted(name for name in services if re.fullmatch(r"api\d+", name))
    upstream = re.search(r"upstream pricefleet_api \{(.*?)\}", NGINX_CONF.read_text(), re.S)
    assert upstream is not None
    assert "least_conn;" in upstream.group(1)
    assert re.findall(r"server (\S+?):8000", upstream.group(1)) == apis
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert jobs["pricefleet-api"]["static_configs"][0]["targets"] == [f"{a}:8000" for a in apis]
    for job, service in (("pricefleet-worker", "worker"), ("pricefleet-scheduler", "scheduler")):
        command = services[service]["command"]
        port = command[command.index("--metrics-port") + 1]
        config = jobs[job]
        targets = config.get("static_configs", [{}])[0].get("targets") or [
            f"{name}:{sd['port']}" for sd in config["dns_sd_configs"] for name in sd["names"]
        ]
        assert targets == [f"{service}:{port}"], job
    grafana = _binds(services["grafana"])
    assert grafana["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    assert grafana["/var/lib/grafana/dashboards"] == DEPLOY / "grafana" / "dashboards"
    prometheus = _binds(services["prometheus"])
    assert prometheus["/etc/prometheus"] == DEPLOY / "prometheus"


def _binds(service: dict[str, Any]) -> dict[str, Path]:
    """Container path: host folder, of a service's bind mounts (`SOURCE:TARGET[:MODE]`)."""
    binds = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("/"):
            binds[target] = Path(source).resolve()
    return binds


# --- Dockerfile --------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    """A builder stage and a slim runtime stage; the runtime runs as a non-root user, checks
    /healthz on the API port, and its entrypoint and default command are real CLI ones."""
    instructions = _dockerfile()
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) == 2
    assert stages[0].endswith("AS builder")
    assert "slim" in stages[1]
    runtime = instructions[[op for op, _ in instructions].index("FROM", 1) :]
    (user,) = [args for op, args in runtime if op == "USER"]
    assert user.split(":")[0] not in {"0", "root"}
    (healthcheck,) = [args for op, args in runtime if op == "HEALTHCHECK"]
    assert "/healthz" in healthcheck
    assert "PRICEFLEET_API_PORT" in healthcheck
    (entrypoint,) = [json.loads(args) for op, args in runtime if op == "ENTRYPOINT"]
    (command,) = [json.loads(args) for op, args in runtime if op == "CMD"]
    assert entrypoint == ["pricefleet"]
    assert check_command(command, "Dockerfile CMD") == "api"
    assert any("--from=builder" in args for op, args in runtime if op == "COPY")
    env = " ".join(args for op, args in runtime if op == "ENV")
    assert "PRICEFLEET_API_PORT=8000" in env
    assert "PRICEFLEET_API_HOST=0.0.0.0" in env


def test_dockerignore_lets_in_only_what_the_build_copies() -> None:
    """The build context is pyproject.toml, README.md, src/ and recipes/: no .env, no data,
    no virtualenv, no stray metric files."""
    rules = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line]
    rules = [line for line in rules if not line.startswith("#")]
    assert rules[0] == "**"
    allowed = {line[1:].rstrip("/") for line in rules if line.startswith("!")}
    copied = {
        shlex.split(args)[0].rstrip("/")
        for op, args in _dockerfile()
        if op == "COPY" and not args.startswith("--from")
    }
    assert copied <= allowed | {"pyproject.toml README.md"}
    assert {"pyproject.toml", "README.md", "src", "recipes"} == allowed


# --- nginx -------------------------------------------------------------------------------


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers with its own name and the request's headers, slowly for /slow."""

    name = ""
    #: Set once a backend is inside a /slow request.
    slow_started = threading.Event()

    def do_GET(self) -> None:
        if self.path == "/slow":
            self.slow_started.set()
            time.sleep(1.5)
        body = json.dumps({"backend": self.name, "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def balancer(tmp_path: Path) -> Iterator[str]:
    """nginx with deploy/nginx/nginx.conf, its upstreams pointed at two local echo servers."""
    require_program(NGINX, "nginx-light")
    _Echo.slow_started.clear()
    servers = []
    config = NGINX_CONF.read_text()
    for name in ("api1", "api2"):
        handler = type(f"Echo_{name}", (_Echo,), {"name": name})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        config = config.replace(f"server {name}:8000", f"server 127.0.0.1:{server.server_port}")
    port = free_port()
    config = config.replace("listen 80;", f"listen 127.0.0.1:{port};")
    config = config.replace("listen [::]:80;", "")
    config = config.replace("pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;")
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx.conf").write_text(config)
    command = [str(NGINX), "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(
        [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/nginx-health")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        for server in servers:
            server.shutdown()
            server.server_close()


def test_nginx_balances_least_conn_with_forwarded_headers(balancer: str) -> None:
    """Requests reach both replicas with X-Forwarded-For/-Proto/-Host and X-Real-IP set; while
    one replica is busy with a slow request, new ones go to the other (least_conn); /metrics is
    not served through the balancer."""
    answer = httpx.get(f"{balancer}/v1/sites", headers={"X-Forwarded-For": "203.0.113.9"})
    headers = {k.lower(): v for k, v in answer.json()["headers"].items()}
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "127.0.0.1"
    seen = Counter(httpx.get(f"{balancer}/v1/x").json()["backend"] for _ in range(6))
    assert set(seen) == {"api1", "api2"}
    with httpx.Client(timeout=10) as slow_client:
        busy: list[str] = []
        slow = threading.Thread(
            target=lambda: busy.append(slow_client.get(f"{balancer}/slow").json()["backend"])
        )
        slow.start()
        assert _Echo.slow_started.wait(timeout=5)
        during = {httpx.get(f"{balancer}/v1/x").json()["backend"] for _ in range(5)}
        slow.join()
    assert busy
    assert during == {"api1", "api2"} - set(busy)
    assert httpx.get(f"{balancer}/metrics").status_code == 404
