"""How fast does the demo shop serve pages? So crawler benchmarks know whether it is their limit.

One `pricefleet demo-shop` process (uvicorn, single process) and one nginx serving a static export
of the jsonld shop run side by side; an aiohttp client on this process fires a fixed number of
GETs at each workload with 32 connections, in rounds that interleave the workloads, and keeps
requests/s and latency percentiles per round. Results are medians across rounds and the ratio
nginx / demo-shop, plus CPU time of server and client (who was the bottleneck) and the demo
server's peak RSS. Only 127.0.0.1 is ever contacted; every count and wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.error import URLError
from urllib.request import urlopen

import aiohttp
import orjson
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from bench import Benchmark, Options, percentile

__all__ = ["BENCHMARK", "run"]

PRODUCTS = 2000
SEED = 1
DAY = 0
CONCURRENCY = 32
REQUESTS = 2000
QUICK_REQUESTS = 300
#: Untimed requests on each fresh session before a round, so every connection is open.
WARMUP = 2 * CONCURRENCY
HOST = "127.0.0.1"
REQUEST_LIMIT_S = 30.0
ROUND_LIMIT_S = 300.0
START_LIMIT_S = 30.0
STOP_LIMIT_S = 10.0
EXPORT_LIMIT_S = 900.0
DEMO = "demo-shop"
NGINX = "nginx"
#: Base URL used only to turn truth URLs into paths.
_TRUTH_BASE = "http://bench.invalid"


@dataclass(frozen=True, slots=True)
class Workload:
    """A set of paths fired at one server, round-robin."""

    name: str
    server: str
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Round:
    """What one round of one workload measured."""

    requests: int
    errors: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p95_ms: float
    mean_bytes: float
    server_cpu_percent: float | None
    client_cpu_percent: float


@dataclass
class Server:
    """A server process this benchmark started; `stop()` ends it and its workers."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    stop_signal: signal.Signals
    workers: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL, without trailing slash."""
        return f"http://{HOST}:{self.port}"

    def pids(self) -> list[int]:
        """The server's process and its worker processes."""
        return [self.process.pid, *self.workers]

    def log_text(self) -> str:
        """What the server wrote so far (stdout and stderr), for error messages."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        """Ask the server to stop, kill it when it does not within STOP_LIMIT_S, and wait."""
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout=STOP_LIMIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --- the machine's view of a process ---------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pids: Sequence[int]) -> float | None:
    """CPU time the processes (all their threads) used so far; None when /proc cannot tell.

    Reads the scheduler's nanosecond run time (`/proc/PID/task/TID/schedstat`), falling back on
    `/proc/PID/stat`, whose clock ticks are too coarse for rounds of a fraction of a second.
    """
    total = 0.0
    try:
        for pid in pids:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
            try:
                total += (
                    sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9
                )
            except (OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
    return total


def status_kib(pid: int, key: str) -> int | None:
    """A `kB` field of /proc/PID/status (VmHWM: peak RSS, VmRSS: current RSS)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return None


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (nginx's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def mib(kib: int | None) -> float | None:
    """KiB to MiB, one decimal."""
    return None if kib is None else round(kib / 1024, 1)


# --- starting and stopping servers ------------------------------------------------------------


def wait_ready(server: Server, path: str) -> None:
    """Poll `path` until it answers 200; raise with the server's log if it dies or stays silent."""
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}: {server.log_text()}"
            )
        try:
            with urlopen(server.url + path, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not answer within {START_LIMIT_S:g} s")


def start_demo() -> Server:
    """Start `pricefleet demo-shop` in its own process on a free port and wait for /healthz."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "pricefleet", "demo-shop", "--host", HOST, "--port", str(port)),
        *("--products", str(PRODUCTS), "--seed", str(SEED), "--day", str(DAY)),
    ]
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by Server.stop()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = Server(DEMO, port, process, log, signal.SIGINT)
    try:
        wait_ready(server, "/healthz")
    except BaseException:
        server.stop()
        raise
    return server


def export_jsonld(directory: Path, base_url: str) -> dict[str, Any]:
    """Write the jsonld shop as static files with `pricefleet demo-shop export`, timed."""
    command = [
        *(sys.executable, "-m", "pricefleet", "demo-shop", "export", str(directory)),
        *("--shop", "jsonld", "--products", str(PRODUCTS), "--seed", str(SEED)),
        *("--day", str(DAY), "--base-url", base_url),
    ]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, timeout=EXPORT_LIMIT_S, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"export failed ({done.returncode}): {done.stderr.decode()[-4000:]}")
    files = [path for path in directory.rglob("*") if path.is_file()]
    return {
        "seconds": round(seconds, 2),
        "files": len(files),
        "mib": round(sum(path.stat().st_size for path in files) / 2**20, 1),
    }


def nginx_conf(exported: str, port: int, temp: Path) -> str:
    """The export's nginx.conf, listening on `port`, with temp paths under `temp`.

    Running as root, nginx's workers would drop to `nobody`, who may not read the export:
    `user root;` keeps them able to.
    """
    listen = "listen 127.0.0.1:8180;"
    if exported.count(listen) != 1:
        raise RuntimeError(f"export's nginx.conf has no single {listen!r} to rewrite")
    conf = exported.replace(listen, f"listen {HOST}:{port};")
    temps = "".join(
        f"    {kind}_temp_path {temp / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = conf.replace("http {\n", "http {\n" + temps, 1)
    return ("user root;\n" + conf) if os.geteuid() == 0 else conf


def start_nginx(directory: Path, prefix: Path, port: int) -> Server:
    """Serve an export with nginx on `port` (prefix dir holds conf, pid and temp files)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise RuntimeError("nginx is not installed (make system installs nginx-light)")
    temp = prefix / "temp"
    temp.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf((directory / "nginx.conf").read_text(), port, temp))
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by Server.stop()
    command = [nginx, "-e", "stderr", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = Server(NGINX, port, process, log, signal.SIGQUIT)
    try:
        wait_ready(server, "/jsonld/robots.txt")
        server.workers = children_of(process.pid)
    except BaseException:
        server.stop()
        raise
    return server


# --- what to fetch ---------------------------------------------------------------------------


def workload_paths() -> dict[str, tuple[str, ...]]:
    """The paths of every workload, from the shops' own truth and URL helpers (in process)."""
    from pricefleet.demo import DemoConfig, create_app
    from pricefleet.demo.catalog import Leaf

    shops = create_app(DemoConfig(products=PRODUCTS, seed=SEED)).state.shops

    def product_paths(name: str) -> tuple[str, ...]:
        return tuple(
            str(record["url"]).removeprefix(_TRUTH_BASE)
            for record in shops[name].truth_records(DAY, _TRUTH_BASE)
        )

    jsonld, api = shops["jsonld"], shops["api"]
    leaves = [node for node in jsonld.nodes.values() if isinstance(node, Leaf)]
    return {
        "jsonld product": product_paths("jsonld"),
        "microdata product": product_paths("microdata"),
        "api product JSON": tuple(
            f"{api.prefix}/api/products/{record['id']}/"
            for record in api.truth_records(DAY, _TRUTH_BASE)
        ),
        "jsonld listing": tuple(
            jsonld.category_path(leaf, page)
            for leaf in leaves
            for page in range(1, jsonld.page_count(leaf) + 1)
        ),
        "plain product": product_paths("plain"),
    }


# --- firing requests ---------------------------------------------------------------------------


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    received: int = 0
    first_error: str | None = None


async def _fire(
    session: aiohttp.ClientSession, base: str, paths: Sequence[str], count: int
) -> _Tally:
    """GET `count` paths round-robin over CONCURRENCY workers; failures are counted, not raised."""
    tally = _Tally()
    cursor = 0

    async def worker() -> None:
        nonlocal cursor
        while cursor < count:
            url = base + paths[cursor % len(paths)]
            cursor += 1
            began = time.perf_counter()
            try:
                async with session.get(url) as response:
                    body = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, body = 0, repr(exc).encode()
            if status == 200:
                tally.latencies.append(time.perf_counter() - began)
                tally.received += len(body)
            else:
                tally.errors += 1
                tally.first_error = tally.first_error or f"{url}: {status} {body[:200]!r}"

    await asyncio.gather(*(worker() for _ in range(min(CONCURRENCY, count))))
    return tally


async def measure(workload: Workload, server: Server, count: int) -> Round:
    """One round: fresh session, untimed warm-up, then `count` timed GETs."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=REQUEST_LIMIT_S)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        warm = await _fire(session, server.url, workload.paths, WARMUP)
        if warm.errors:
            raise RuntimeError(f"{workload.name} on {server.name}: {warm.first_error}")
        server_before, client_before = cpu_seconds(server.pids()), time.process_time()
        began = time.perf_counter()
        tally = await _fire(session, server.url, workload.paths, count)
        seconds = time.perf_counter() - began
        server_after, client_after = cpu_seconds(server.pids()), time.process_time()
    server_cpu = None
    if server_before is not None and server_after is not None:
        server_cpu = round(100 * (server_after - server_before) / seconds, 1)
    ok = len(tally.latencies)
    return Round(
        requests=count,
        errors=tally.errors,
        seconds=round(seconds, 3),
        requests_per_second=round(ok / seconds, 1),
        p50_ms=round(1000 * percentile(tally.latencies, 0.50), 2),
        p95_ms=round(1000 * percentile(tally.latencies, 0.95), 2),
        mean_bytes=round(tally.received / ok) if ok else 0,
        server_cpu_percent=server_cpu,
        client_cpu_percent=round(100 * (client_after - client_before) / seconds, 1),
    )


async def measure_all(
    workloads: Sequence[Workload], servers: dict[str, Server], count: int, rounds: int
) -> list[list[Round]]:
    """Every workload `rounds` times, interleaved, the order rotated each round, so drift in the
    machine's load spreads over all workloads instead of hitting one; rounds by workload."""
    results: list[list[Round]] = [[] for _ in workloads]
    for number in range(rounds):
        for step in range(len(workloads)):
            index = (number + step) % len(workloads)
            workload = workloads[index]
            async with asyncio.timeout(ROUND_LIMIT_S):
                result = await measure(workload, servers[workload.server], count)
            results[index].append(result)
    return results


# --- the benchmark ----------------------------------------------------------------------------


def _median(rounds: Sequence[Round], key: str) -> float | None:
    values = [getattr(r, key) for r in rounds if getattr(r, key) is not None]
    return round(statistics.median(values), 2) if values else None


def _summary(workload: Workload, server: Server, rounds: Sequence[Round]) -> dict[str, Any]:
    """Medians across rounds, and which side most likely capped the rate: the one whose CPU use
    came closest to its ceiling (100 % per server worker; 100 % for this one-process client)."""
    ceiling = 100.0 * max(1, len(server.workers))
    server_cpu = _median(rounds, "server_cpu_percent")
    client_cpu = _median(rounds, "client_cpu_percent") or 0.0
    bound = (
        None
        if server_cpu is None
        else ("server" if server_cpu / ceiling >= client_cpu / 100 else "client")
    )
    return {
        "workload": workload.name,
        "server": workload.server,
        "server_cpu_ceiling_percent": ceiling,
        "likely_bound_by": bound,
        "distinct_paths": len(workload.paths),
        "median": {
            key: _median(rounds, key)
            for key in (
                "requests_per_second",
                "p50_ms",
                "p95_ms",
                "mean_bytes",
                "server_cpu_percent",
                "client_cpu_percent",
            )
        },
        "errors": sum(r.errors for r in rounds),
        "rounds": [asdict(r) for r in rounds],
    }


def _meter(server: Server) -> dict[str, Any]:
    """The demo server's own /_stats: request counts and statuses confirm what arrived.

    Its `peak_concurrency` counts requests inside the app at once, not open connections: the
    handlers never await, so it stays 1 however many connections the client keeps open.
    """
    with urlopen(f"{server.url}/_stats", timeout=5) as answer:
        stats = orjson.loads(answer.read())
    return {
        name: {key: shop[key] for key in ("requests", "peak_concurrency", "statuses")}
        for name, shop in stats["shops"].items()
        if shop["requests"]
    }


def run(options: Options) -> dict[str, Any]:
    """Export, start both servers, measure every workload in interleaved rounds, stop."""
    count = QUICK_REQUESTS if options.quick else REQUESTS
    paths = workload_paths()
    workloads = [Workload(name, DEMO, found) for name, found in paths.items()]
    workloads.append(Workload("jsonld product", NGINX, paths["jsonld product"]))
    servers: dict[str, Server] = {}
    scratch = Path(tempfile.mkdtemp(prefix="pricefleet-bench-"))
    try:
        nginx_port = free_port()
        export = export_jsonld(scratch / "site", f"http://{HOST}:{nginx_port}")
        servers[NGINX] = start_nginx(scratch / "site", scratch / "nginx", nginx_port)
        servers[DEMO] = demo = start_demo()
        rss_at_start = status_kib(demo.process.pid, "VmHWM")
        results = asyncio.run(measure_all(workloads, servers, count, options.rounds))
        memory = {
            "demo_shop_peak_rss_at_start_mib": mib(rss_at_start),
            "demo_shop_peak_rss_mib": mib(status_kib(demo.process.pid, "VmHWM")),
            "nginx_peak_rss_mib": [mib(status_kib(pid, "VmHWM")) for pid in servers[NGINX].pids()],
        }
        meter = _meter(demo)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    demo_rounds, nginx_rounds = results[0], results[-1]  # both: jsonld product pages
    paired = [
        round(n.requests_per_second / d.requests_per_second, 2)
        for n, d in zip(nginx_rounds, demo_rounds, strict=True)
        if d.requests_per_second
    ]
    demo_rps = _median(demo_rounds, "requests_per_second")
    nginx_rps = _median(nginx_rounds, "requests_per_second")
    return {
        "benchmark": "demo_shop",
        "parameters": {
            "products": PRODUCTS,
            "seed": SEED,
            "day": DAY,
            "concurrency": CONCURRENCY,
            "requests_per_round": count,
            "warmup_per_round": WARMUP,
            "rounds": options.rounds,
            "quick": options.quick,
            "aiohttp": aiohttp.__version__,
        },
        "export": export,
        "workloads": [
            _summary(w, servers[w.server], r) for w, r in zip(workloads, results, strict=True)
        ],
        "nginx_over_demo_shop": {
            "requests_per_second": round(nginx_rps / demo_rps, 2)
            if nginx_rps and demo_rps
            else None,
            "per_round": paired,
        },
        "memory": memory,
        "demo_shop_meter": meter,
    }


def _number(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def render(result: dict[str, Any]) -> list[RenderableType]:
    """A table of the medians, then the ratio, export time and memory."""
    parameters = result["parameters"]
    table = Table(
        title=(
            f"Demo shop serving — median of {parameters['rounds']} rounds × "
            f"{parameters['requests_per_round']} GETs, {parameters['concurrency']} connections"
        )
    )
    for column in ("workload", "server", "req/s", "p50 ms", "p95 ms", "kB/page"):
        table.add_column(column, justify="left" if column in {"workload", "server"} else "right")
    table.add_column("req/s per round", justify="right")
    table.add_column("server CPU", justify="right")
    table.add_column("client CPU", justify="right")
    table.add_column("bound by")
    table.add_column("errors", justify="right")
    for row in result["workloads"]:
        median = row["median"]
        table.add_row(
            row["workload"],
            row["server"],
            _number(median["requests_per_second"]),
            _number(median["p50_ms"], 1),
            _number(median["p95_ms"], 1),
            _number(None if median["mean_bytes"] is None else median["mean_bytes"] / 1000, 1),
            " / ".join(_number(r["requests_per_second"]) for r in row["rounds"]),
            f"{_number(median['server_cpu_percent'])} %",
            f"{_number(median['client_cpu_percent'])} %",
            row["likely_bound_by"] or "–",
            str(row["errors"]),
        )
    ratio = result["nginx_over_demo_shop"]
    nginx_workers = next(
        round(row["server_cpu_ceiling_percent"] / 100)
        for row in result["workloads"]
        if row["server"] == NGINX
    )
    memory = result["memory"]
    export = result["export"]
    lines = [
        "CPU: % of one core during the timed requests (demo-shop: 1 process; nginx: "
        f"{nginx_workers} workers; client: this Python process). "
        "'bound by': the side nearest its CPU ceiling.",
        f"nginx / demo-shop, jsonld product pages: {_number(ratio['requests_per_second'], 2)}× "
        f"req/s (per round: {', '.join(f'{r:.2f}' for r in ratio['per_round'])})",
        f"export of {parameters['products']} jsonld products: {export['seconds']:.1f} s, "
        f"{export['files']} files, {export['mib']:.1f} MiB",
        f"demo-shop peak RSS (VmHWM): {_number(memory['demo_shop_peak_rss_mib'], 1)} MiB "
        f"(after start-up: {_number(memory['demo_shop_peak_rss_at_start_mib'], 1)} MiB)",
    ]
    return [table, Text("\n".join(lines))]


BENCHMARK = Benchmark(
    name="demo_shop",
    summary="pages/s the demo shop serves, against nginx serving its static export",
    run=run,
    render=render,
)
