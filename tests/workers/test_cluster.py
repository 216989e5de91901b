"""`pricefleet run --cluster`: the cluster profile as real processes on the real PostgreSQL and
Redis servers (own database, own key prefix), crawling a real demo shop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis

from tests.servers import DemoServer, drop_database, free_port, pg_url, require_server
from tests.test_cli import _alive, _children

RECIPES = Path(__file__).parents[2] / "recipes"


def _free_pair() -> int:
    """A port that is free, and its successor too."""
    for _ in range(50):
        port = free_port()
        if port < 65535:
            with contextlib.suppress(OSError), socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 1))
                return port
    raise AssertionError("no two consecutive free ports")


def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if check():
                return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _cluster_env(tmp_path: Path, demo: DemoServer, database: str, prefix: str) -> dict[str, str]:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    recipe = (RECIPES / "demo-plain.yaml").read_text()
    (recipes / "demo-plain.yaml").write_text(
        recipe.replace("${PRICEFLEET_DEMO_URL:-http://127.0.0.1:8100}", demo.url)
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("PRICEFLEET_")}
    base.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {
        **base,
        "PRICEFLEET_DATABASE_URL": pg_url(database),
        "PRICEFLEET_REDIS_URL": "redis://127.0.0.1:6379/0",
        "PRICEFLEET_QUEUE_PREFIX": prefix,
        "PRICEFLEET_PUBLIC_READS": "true",
        "PRICEFLEET_RECIPES_DIR": str(recipes),
        "PRICEFLEET_DATA_DIR": str(tmp_path / "data"),
    }


def test_print_commands_lists_every_process(tmp_path: Path, demo: DemoServer) -> None:
    """`--print-commands` gives the fleet as shell lines to spread over machines."""
    env = _cluster_env(tmp_path, demo, "pf_unused", "pfc")
    env["PRICEFLEET_API_PORT"] = "8300"
    options = ["--api-replicas", "3", "--metrics-port", "9300", "--concurrency", "8"]
    result = subprocess.run(
        [sys.executable, "-m", "pricefleet", "run", "--cluster", "--print-commands", *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"export PRICEFLEET_DATABASE_URL={pg_url('pf_unused')}" in lines
    assert [line.split(" &")[0] for line in lines if line.startswith("pricefleet api")] == [
        f"pricefleet api --host 127.0.0.1 --port {port}" for port in (8300, 8301, 8302)
    ]
    assert any(
        line.startswith("pricefleet scheduler --tick 30 --metrics-port 9300") for line in lines
    )
    autoscale = next(line for line in lines if line.startswith("pricefleet autoscale"))
    assert "--metrics-port=9301" in autoscale
    assert "--concurrency 8" in autoscale


def test_half_a_cluster_is_refused_clearly(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PRICEFLEET_")}
    result = subprocess.run(
        [sys.executable, "-m", "pricefleet", "run", "--cluster", "--print-commands"],
        env={**base, "PRICEFLEET_REDIS_URL": "redis://127.0.0.1:6379/0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "PRICEFLEET_DATABASE_URL" in result.stderr


@pytest.mark.timeout(300)
def test_cluster_runs_as_processes_restarts_a_dead_api_and_stops(
    tmp_path: Path, demo: DemoServer
) -> None:
    """Two API servers, the scheduler, the autoscaler and its worker as processes: the
    database is created and migrated, the scheduled crawl reaches both APIs, the pool's metrics
    count the products, an API killed with SIGKILL comes back, SIGTERM stops every process."""
    require_server("127.0.0.1", 6379, "Redis")
    require_server("127.0.0.1", 5432, "PostgreSQL")
    database = f"pf_test_{uuid.uuid4().hex[:12]}"  # not created: run --cluster creates it
    prefix = f"pfc{uuid.uuid4().hex[:8]}"
    env = _cluster_env(tmp_path, demo, database, prefix)
    env["PRICEFLEET_API_PORT"] = str(api_port := _free_pair())
    metrics_port = _free_pair()
    command = [sys.executable, "-m", "pricefleet", "run", "--cluster", "--tick", "1"]
    command += ["--max-workers", "1", "--metrics-port", str(metrics_port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    apis = [f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{api_port + 1}"]
    try:
        for api in apis:
            _until(lambda api=api: httpx.get(f"{api}/readyz").status_code == 200, 90, api)

        # Lists are cached for minutes (not invalidated per product): ask once the crawl is in.
        _until(lambda: asyncio.run(_count(database)) >= 10, 120, "the crawl to store products")

        def listed(api: str) -> bool:
            answer = httpx.get(f"{api}/v1/products?site=demo-plain&limit=5")
            return answer.status_code == 200 and len(answer.json()["items"]) == 5

        _until(lambda: all(listed(api) for api in apis), 30, "products on both APIs")
        pool = f"http://127.0.0.1:{metrics_port + 1}/metrics"
        _until(
            lambda: 'products_scraped_total{site="demo-plain"}' in httpx.get(pool).text,
            60,
            "the workers' metrics on the autoscaler's port",
        )
        assert "pricefleet_autoscale_workers 1.0" in httpx.get(pool).text
        queue = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'pricefleet_queue_ready_jobs{site="demo-plain"}' in queue

        servers = [pid for pid in _children(process.pid) if _serves(pid, api_port)]
        assert len(servers) == 1
        os.kill(servers[0], signal.SIGKILL)
        _until(
            lambda: (
                any(_serves(pid, api_port) for pid in _children(process.pid) - set(servers))
                and httpx.get(f"{apis[0]}/healthz").status_code == 200
            ),
            60,
            "the killed API server to come back",
        )
        children = _children(process.pid)
        assert len(children) == 4  # two API servers, the scheduler, the autoscaler
        family = _descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=90)
        except subprocess.TimeoutExpired as late:  # say which processes were still there
            left = {pid: _cmdline(pid) for pid in family | _descendants(process.pid)}
            raise AssertionError(
                f"not stopped in 90 s (exit {process.poll()}); processes: {left}; output: "
                f"{(late.output or b'').decode(errors='replace')[-3000:]}"
            ) from late
        assert process.returncode == 0, output.decode()[-3000:]
        assert [pid for pid in children if _alive(pid)] == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        asyncio.run(drop_database(database))
        client = redis.Redis(host="127.0.0.1", port=6379)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        client.close()


async def _count(database: str) -> int:
    """Products stored so far (0 before the schema exists)."""
    connection = await asyncpg.connect(pg_url(database))
    try:
        return int(await connection.fetchval("SELECT count(*) FROM products"))
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await connection.close()


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, theirs, …)."""
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        below = _children(frontier.pop()) - found
        found |= below
        frontier.extend(below)
    return found


def _cmdline(pid: int) -> str:
    """Process `pid`'s command line, or "gone"."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"


def _serves(pid: int, port: int) -> bool:
    """Whether process `pid` was started to serve the API on `port`."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"api" in argv and str(port).encode() in argv
