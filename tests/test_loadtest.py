"""`pricefleet loadtest` against a real aiohttp server on a free port (its own thread and loop)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from pricefleet.loadtest import LoadTestError, build_plan, load_test, run_load, summarise
from tests.servers import free_port

SRC = Path(__file__).resolve().parent.parent / "src"
DELAY = 0.05


@dataclass
class Server:
    """The test server: where it listens and what it was asked."""

    url: str
    hits: Counter[str] = field(default_factory=Counter)


def _app(server: Server) -> web.Application:
    async def fast(request: web.Request) -> web.Response:
        server.hits[request.path] += 1
        return web.Response(text="ok")

    async def slow(request: web.Request) -> web.Response:
        server.hits[request.path] += 1
        await asyncio.sleep(DELAY)
        return web.Response(text="slow")

    async def fail(request: web.Request) -> web.Response:
        server.hits[request.path] += 1
        return web.Response(status=500, text="broken")

    app = web.Application()
    app.router.add_get("/fast", fast)
    app.router.add_get("/slow", slow)
    app.router.add_get("/fail", fail)
    return app


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """The aiohttp server, serving from a thread until the module's tests are done."""
    port = free_port()
    served = Server(f"http://127.0.0.1:{port}")
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(_app(served), access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield served
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(SRC.parent)])}
    return subprocess.run(
        [sys.executable, "-m", "pricefleet", "loadtest", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def test_constant_sends_the_scheduled_requests(server: Server) -> None:
    """A constant 200/s for 1 s sends 200 requests, all answered, at about 200/s."""
    plan = build_plan(server.url + "/fast", rate=200, duration=1)
    report = summarise(plan, await run_load(plan))
    assert (report.total.sent, report.total.completed, report.total.errors) == (200, 200, 0)
    assert 180 <= report.total.sent_per_second <= 220
    assert report.total.by_outcome == {"200": 200}


async def test_latency_reflects_the_server_delay(server: Server) -> None:
    """Percentiles sit at the server's 50 ms sleep, not below it and not far above it."""
    plan = build_plan(server.url + "/slow", rate=50, duration=1)
    latency = summarise(plan, await run_load(plan)).total.latency_ms
    assert latency["p50"] is not None
    assert latency["p99"] is not None
    assert 1000 * DELAY <= latency["p50"] < 1000 * DELAY + 40
    assert latency["p50"] <= latency["p90"] <= latency["p95"] <= latency["p99"]


async def test_latency_counts_from_the_schedule(server: Server) -> None:
    """One connection and a 50 ms server at 40/s (2 s of work a second): requests queue, and
    latency from each scheduled instant shows the queueing a closed-loop client would hide."""
    plan = build_plan(server.url + "/slow", rate=40, duration=1, connections=1)
    report = summarise(plan, await run_load(plan))
    latency, lag = report.total.latency_ms, report.total.lag_ms
    assert latency["p50"] is not None
    assert latency["max"] is not None
    assert lag["p99"] is not None
    assert report.total.sent == report.total.completed == 40
    assert latency["p50"] > 8 * 1000 * DELAY
    assert latency["max"] > 18 * 1000 * DELAY  # the last waits for ~39 others, 1 s after it was due
    assert lag["p99"] < 1000 * DELAY  # the generator itself kept the schedule


async def test_errors_are_counted_by_status_over_a_weighted_mix(server: Server) -> None:
    """Paths weighted 3:1, the second always 500: its answers are the errors, by status."""
    before = server.hits["/fail"]
    plan = build_plan(server.url, rate=400, duration=1, paths=["3 /fast", "1 /fail"])
    report = summarise(plan, await run_load(plan), max_error_rate=0.5)
    failed = server.hits["/fail"] - before
    assert report.total.by_outcome == {"200": 400 - failed, "500": failed}
    assert report.total.errors == failed
    assert 0.15 < report.total.error_rate < 0.35
    assert report.passed


async def test_transport_errors_count_as_errors() -> None:
    """Nobody listening: every request is an error, named by what went wrong."""
    plan = build_plan(f"http://127.0.0.1:{free_port()}/", rate=50, duration=0.2)
    report = summarise(plan, await run_load(plan), max_error_rate=0.0)
    assert report.total.sent == 10
    assert report.total.completed == 0
    assert report.total.by_outcome == {"ClientConnectorError": 10}
    assert report.total.error_rate == 1.0
    assert not report.passed


async def test_spike_reports_each_phase(server: Server) -> None:
    """Spike: baseline, peak and recovery phases, each with its own scheduled count."""
    plan = build_plan(server.url + "/fast", rate=50, duration=2, scenario="spike", peak=250)
    report = summarise(plan, await run_load(plan))
    shape = [(p.name, p.rate, p.sent) for p in report.phases]
    assert shape == [("baseline", 50, 30), ("spike", 250, 200), ("recovery", 50, 30)]
    assert report.total.sent == 260
    assert report.phases[1].sent_per_second > 3 * report.phases[0].sent_per_second


def test_thresholds_set_the_exit_status(server: Server) -> None:
    """The CLI exits 1 when p99 or the error rate break their threshold, 0 when they hold."""
    slow = [server.url + "/slow", "--rate", "40", "--duration", "0.5"]
    assert _cli(*slow, "--p99-ms", "5").returncode == 1
    passed = _cli(*slow, "--p99-ms", "5000", "--json")
    assert passed.returncode == 0, passed.stderr
    result = orjson.loads(passed.stdout)
    assert result["passed"] is True
    assert result["total"]["sent"] == 20
    failing = _cli(
        server.url + "/fail", "--rate", "40", "--duration", "0.5", "--max-error-rate", "0.1"
    )
    assert failing.returncode == 1
    assert "error rate 100.00 %" in failing.stderr


def test_bad_input_is_refused_clearly() -> None:
    """Bad URL, rate or path: exit status 2 and a line saying what to give."""
    assert "expected http://host" in _cli("ftp://x", "--rate", "5").stderr
    refused = _cli("http://127.0.0.1:9/", "--rate", "0")
    assert refused.returncode == 2
    assert "--rate" in refused.stderr
    with pytest.raises(LoadTestError, match="must start with '/'"):
        build_plan("http://127.0.0.1:9", rate=1, duration=1, paths=["v1/x"])
    with pytest.raises(LoadTestError, match="max-error-rate"):
        load_test("http://127.0.0.1:9", rate=1, duration=1, max_error_rate=2)
