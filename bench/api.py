"""The HTTP API under load: wrk against `pricefleet api --workers 2` (granian) on PostgreSQL.

A catalogue of 1,000,000 products (`bench.api_data`: 10 shops, GTINs shared across shops, three
price states each) is built in a database of its own (or reused), then three servers start,
each granian with 2 workers: `pricefleet api` in the cluster profile (PostgreSQL, Redis, its own
key prefix, an API key sent with every request, `PRICEFLEET_RATE_LIMIT` so high that nothing is
refused — the limiter still counts every request in Redis), the same app with the limiter's
counting skipped (`bench.api_serve nolimit`), and a bare FastAPI hello (`bench.api_serve
hello`). The product, search and compare URLs are warmed (each fetched four times per server,
so both workers' memory tiers most likely hold them, and Redis does), then wrk (`--latency`,
a Lua script picking a random URL of the workload per request) runs each workload in rounds,
the order rotated each round:

- **hello**: the bare app, the ceiling for this machine;
- **product**: GET of 10,000 distinct warmed products; **product, limiter off** the same on
  the app without rate limiting; **product, cold**: random products of the whole catalogue,
  mostly never asked before (a cache miss: one PostgreSQL query, then cached);
- **search**: a mix of 300 warmed queries; **search, uncached**: the same queries with a
  unique extra parameter, so every request misses the cache and searches PostgreSQL;
- **compare**: 2,000 warmed GTINs, each offered by 2–5 shops.

Last, `pricefleet loadtest` holds a constant arrival rate (open model, latency from each
request's scheduled instant) on warmed products at 1,000 requests/s (with the limiter, then
without), on warmed searches at the same rate, and on uncached searches at half the rate wrk
found them to sustain. Targets
(issue 6): product ≥ 80 % of hello's requests/s; product p99 < 25 ms at 1,000 requests/s;
search p95 < 50 ms.

    python -m bench --only api            # 1,000,000 products: ~8 min, 1 of them the load
    python -m bench --only api --quick    # 20,000 products, short rounds: a smoke run

With `PRICEFLEET_BENCH_API_BEFORE=<another checkout>` (e.g. `/work/main`), a fourth server runs
that checkout's `pricefleet api` on the same settings, and the product workload and load test
run on it too ("product, before"), alternating with this checkout's in every round: a before /
after comparison in one run, on one machine state.

PostgreSQL is `PRICEFLEET_BENCH_POSTGRES` (default `postgresql://postgres@127.0.0.1:5432`), Redis
`PRICEFLEET_BENCH_REDIS` (default `redis://127.0.0.1:6379/0`; keys under a fresh prefix, deleted
at the end). The database is dropped at the end unless `PRICEFLEET_BENCH_API_KEEP_DB=1`; a kept
one is reused by the next run of the same size.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import aiohttp
import orjson
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from bench import Benchmark, Options
from bench.api_data import Catalogue, build_database
from bench.queue import _redis_cleanup, _redis_pid
from bench.store import cpu_seconds, postgres_facts, postgres_pids
from pricefleet.api.auth import Scope
from pricefleet.api.keys import create_key
from pricefleet.store import Store

__all__ = ["BENCHMARK", "render", "run"]

POSTGRES_ENV = "PRICEFLEET_BENCH_POSTGRES"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS_ENV = "PRICEFLEET_BENCH_REDIS"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
KEEP_ENV = "PRICEFLEET_BENCH_API_KEEP_DB"
BEFORE_ENV = "PRICEFLEET_BENCH_API_BEFORE"
PRODUCTS = 1_000_000
QUICK_PRODUCTS = 20_000
WORKERS = 2
WARM_PRODUCTS = 10_000
COLD_PRODUCTS = 200_000
SEARCHES = 300
COMPARES = 2_000
WRK_SECONDS = 10
QUICK_WRK_SECONDS = 3
WRK_THREADS = 1
WRK_CONNECTIONS = 32
LOAD_RATE = 1_000
QUICK_LOAD_RATE = 300
LOAD_SECONDS = 30
QUICK_LOAD_SECONDS = 5
#: Entries per process in the memory tier: the warmed set (12,300 URLs) must fit.
CACHE_SIZE = 50_000
RATE_LIMIT = "100000000/minute"
#: Paths whose answers are cached for 5 minutes (PRICEFLEET_CACHE_TTL_SEARCH): re-warmed.
SHORT_LIVED = frozenset({"searches", "compares"})
TARGET_RATIO = 0.80
TARGET_PRODUCT_P99_MS = 25.0
TARGET_SEARCH_P95_MS = 50.0
ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass(frozen=True, slots=True)
class Workload:
    """What wrk loads: a server and a list of paths (with a cache-busting parameter, or not)."""

    name: str
    server: str
    paths: str
    nonce: bool = False


WORKLOADS = (
    Workload("hello", "hello", "hello"),
    Workload("product", "api", "products"),
    Workload("product, limiter off", "nolimit", "products"),
    Workload("product, cold", "api", "cold"),
    Workload("search", "api", "searches"),
    Workload("search, uncached", "api", "searches", nonce=True),
    Workload("compare", "api", "compares"),
)
#: Run only when `PRICEFLEET_BENCH_API_BEFORE` names another checkout.
BEFORE_WORKLOADS = (Workload("product, before", "before", "products"),)

_LUA = """\
local paths = {%(paths)s}
local nonce = %(nonce)s
local counter = 0
math.randomseed(os.time())
wrk.headers["Authorization"] = "Bearer %(key)s"
request = function()
  local path = paths[math.random(#paths)]
  if nonce then
    counter = counter + 1
    path = path .. "&_n=" .. counter .. "x" .. math.random(1000000000)
  end
  return wrk.format("GET", path)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, '
    .. '"write": %%d, "status": %%d, "timeout": %%d, "p50": %%d, "p90": %%d, "p99": %%d, '
    .. '"p999": %%d, "max": %%d, "mean": %%f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""


# --- servers ---------------------------------------------------------------------------------


@dataclass
class Server:
    """A granian server process and its workers."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    pids: list[int]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found += _tree(int(child))
    return found


def _start(name: str, argv: list[str], env: dict[str, str], folder: Path, probe: str) -> Server:
    port = _free_port()
    log = folder / f"{name}.log"
    metrics = folder / f"metrics-{name}"
    metrics.mkdir(exist_ok=True)
    env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*argv, "--port", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        try:
            with urlopen(f"http://127.0.0.1:{port}{probe}", timeout=2):
                break
        except OSError:
            time.sleep(0.3)
    else:
        process.terminate()
        raise RuntimeError(f"{name} did not answer {probe} within 60 s: {log.read_text()[-2000:]}")
    time.sleep(1.0)  # every worker up
    return Server(name, port, process, log, _tree(process.pid))


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


# --- load ------------------------------------------------------------------------------------


async def _warm(url: str, paths: Sequence[str], key: str, passes: int) -> Counter[str]:
    """Fetch every path `passes` times (32 at once); statuses counted."""
    statuses: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        queue = [p for _ in range(passes) for p in paths]
        gate = asyncio.Semaphore(32)

        async def one(path: str) -> None:
            async with gate:
                try:
                    async with session.get(url + path) as response:
                        await response.read()
                        statuses[str(response.status)] += 1
                except aiohttp.ClientError as exc:
                    statuses[type(exc).__name__] += 1

        await asyncio.gather(*(one(p) for p in queue))
    return statuses


def _lua(folder: Path, name: str, paths: Sequence[str], key: str, nonce: bool) -> Path:
    file = folder / f"{name}.lua"
    quoted = ",".join(f'"{p}"' for p in paths)
    file.write_text(_LUA % {"paths": quoted, "nonce": "true" if nonce else "false", "key": key})
    return file


def _fixed(pids: list[int]) -> Callable[[], list[int]]:
    return lambda: pids


def _wrk(
    url: str, script: Path, seconds: int, cpu_pids: dict[str, Callable[[], list[int]]]
) -> dict[str, Any]:
    """One wrk run; its summary (latencies in ms) with the CPU each party used (`cpu_pids`
    lists each party's processes; asked before and after, as database connections come and
    go: one that appeared during the run counts from 0, one that left is not counted)."""
    before = {
        party: {pid: cpu_seconds([pid]) for pid in lister()} for party, lister in cpu_pids.items()
    }
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(
        [
            "wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--latency",
            "--timeout", "10s", "-s", str(script), url,
        ],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )  # fmt: skip
    took = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRKJSON "))
    raw = orjson.loads(line.removeprefix("WRKJSON "))
    duration = raw["duration_us"] / 1e6
    cpu = {
        party: round(
            100
            * sum(max(0.0, cpu_seconds([p]) - before[party].get(p, 0.0)) for p in lister())
            / took,
            1,
        )
        for party, lister in cpu_pids.items()
    }
    cpu["wrk"] = round(
        100 * (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) / took, 1
    )
    errors = {k: raw[k] for k in ("connect", "read", "write", "status", "timeout") if raw[k]}
    return {
        "requests": raw["requests"],
        "requests_per_second": round(raw["requests"] / duration, 1),
        "p50_ms": round(raw["p50"] / 1000, 2),
        "p90_ms": round(raw["p90"] / 1000, 2),
        "p99_ms": round(raw["p99"] / 1000, 2),
        "p999_ms": round(raw["p999"] / 1000, 2),
        "max_ms": round(raw["max"] / 1000, 2),
        "mean_ms": round(raw["mean"] / 1000, 2),
        "errors": errors,
        "cpu_percent": cpu,
    }


def _loadtest(
    url: str, paths_file: Path, key: str, rate: float, seconds: int, threshold: dict[str, str]
) -> dict[str, Any]:
    """`pricefleet loadtest --json` at a constant rate; its report."""
    argv = [
        PYTHON, "-m", "pricefleet", "loadtest", url, "--rate", f"{rate:g}",
        "--duration", str(seconds), "--paths-file", str(paths_file), "--header",
        f"Authorization: Bearer {key}", "--json",
    ]  # fmt: skip
    for option, value in threshold.items():
        argv += [option, value]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 120, cwd=ROOT, env=dict(os.environ)
    )
    if done.returncode not in (0, 1):
        raise RuntimeError(f"pricefleet loadtest failed: {done.stderr[-2000:]}")
    report: dict[str, Any] = orjson.loads(done.stdout)
    report["command"] = " ".join(
        re.sub(r"pf_\S+", "pf_…", a) if "Bearer" in a else a for a in argv[1:]
    )
    report["exit_status"] = done.returncode
    return report


# --- the benchmark ---------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


@contextlib.contextmanager
def _servers(env: dict[str, str], folder: Path) -> Iterator[dict[str, Server]]:
    servers: dict[str, Server] = {}
    try:
        workers = ["--workers", str(WORKERS)]
        servers["hello"] = _start(
            "hello", [PYTHON, "-m", "bench.api_serve", "hello", *workers], env, folder, "/hello"
        )
        servers["api"] = _start(
            "api", [PYTHON, "-m", "pricefleet", "api", *workers], env, folder, "/healthz"
        )
        servers["nolimit"] = _start(
            "nolimit",
            [PYTHON, "-m", "bench.api_serve", "nolimit", *workers],
            env,
            folder,
            "/healthz",
        )
        before = os.environ.get(BEFORE_ENV)
        if before:
            old = {**env, "PYTHONPATH": os.pathsep.join([str(Path(before) / "src"), before])}
            servers["before"] = _start(
                "before", [PYTHON, "-m", "pricefleet", "api", *workers], old, folder, "/healthz"
            )
        yield servers
    finally:
        for server in servers.values():
            _stop(server)


def run(options: Options) -> dict[str, Any]:
    """Build or reuse the catalogue, start the servers, warm, run wrk and the load tests."""
    quick = options.quick
    server_url = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES).rstrip("/")
    redis_url = os.environ.get(REDIS_ENV, DEFAULT_REDIS)
    catalogue = Catalogue(QUICK_PRODUCTS if quick else PRODUCTS)
    database = f"pfbench_api_{catalogue.products}"
    prefix = f"pfbenchapi{secrets.token_hex(4)}"
    load_before = [round(x, 2) for x in os.getloadavg()]
    began = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="pricefleet-bench-api-"))
    keep = os.environ.get(KEEP_ENV, "") == "1"
    try:
        built = asyncio.run(build_database(server_url, database, catalogue))
        dsn = f"{server_url}/{database}"
        facts = asyncio.run(postgres_facts(server_url, database))
        result = _measure(options, catalogue, dsn, database, redis_url, prefix, folder)
    finally:
        # The cache's tag sets (cashews) are `_tag:<prefix>:cache:…`, outside the prefix.
        left = _redis_cleanup(redis_url, prefix) + _redis_cleanup(redis_url, f"_tag:{prefix}")
        shutil.rmtree(folder, ignore_errors=True)
        if not keep:
            asyncio.run(_drop(server_url, database))
    return {
        "benchmark": "api",
        "parameters": {
            "products": catalogue.products,
            "workers": WORKERS,
            "warm_products": WARM_PRODUCTS,
            "cold_products": min(COLD_PRODUCTS, catalogue.products // 2),
            "searches": SEARCHES,
            "compares": COMPARES,
            "wrk": {
                "threads": WRK_THREADS,
                "connections": WRK_CONNECTIONS,
                "seconds": QUICK_WRK_SECONDS if quick else WRK_SECONDS,
            },
            "rounds": options.rounds,
            "cache_size": CACHE_SIZE,
            "rate_limit": RATE_LIMIT,
            "targets": {
                "product_over_hello": TARGET_RATIO,
                "product_p99_ms_at_1000": TARGET_PRODUCT_P99_MS,
                "search_p95_ms": TARGET_SEARCH_P95_MS,
            },
        },
        "database": {**built, "kept": keep, "postgres": facts},
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.perf_counter() - began, 1),
        "redis_keys_deleted_at_end": left,
        **result,
    }


async def _drop(server_url: str, database: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{server_url}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


async def _api_key(dsn: str) -> str:
    async with Store.from_url(dsn) as store:
        _, key = await create_key(store, "bench-api", [Scope.READ], actor="bench")
    return key


def server_env(dsn: str, redis_url: str, prefix: str, path: Sequence[str] = ()) -> dict[str, str]:
    """The environment of a benchmarked `pricefleet api`: cluster profile on `dsn` and Redis
    under `prefix`, this tree's code (after the folders of `path`), a limit that refuses
    nothing, a memory tier that holds every warmed answer."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*path, str(ROOT / "src"), str(ROOT)]),
        "PRICEFLEET_DATABASE_URL": dsn,
        "PRICEFLEET_REDIS_URL": redis_url,
        "PRICEFLEET_QUEUE_PREFIX": prefix,
        "PRICEFLEET_RATE_LIMIT": RATE_LIMIT,
        "PRICEFLEET_CACHE_SIZE": str(CACHE_SIZE),
        "PRICEFLEET_LOG_LEVEL": "WARNING",
    }


def _measure(
    options: Options,
    catalogue: Catalogue,
    dsn: str,
    database: str,
    redis_url: str,
    prefix: str,
    folder: Path,
) -> dict[str, Any]:
    quick = options.quick
    key = asyncio.run(_api_key(dsn))
    paths = {
        "hello": ["/hello"],
        "products": catalogue.product_paths(WARM_PRODUCTS, seed=1),
        "cold": catalogue.product_paths(min(COLD_PRODUCTS, catalogue.products // 2), seed=2),
        "searches": catalogue.search_paths(SEARCHES, seed=3),
        "compares": catalogue.compare_paths(COMPARES, seed=4),
    }
    env = server_env(dsn, redis_url, prefix)
    anomalies: list[str] = []
    seconds = QUICK_WRK_SECONDS if quick else WRK_SECONDS
    redis_pid = _redis_pid(redis_url)
    with _servers(env, folder) as servers:
        workloads = WORKLOADS + (BEFORE_WORKLOADS if "before" in servers else ())
        warmed: dict[str, dict[str, int]] = {}
        for target, names in (
            ("api", ("products", "searches", "compares")),
            ("nolimit", ("products",)),
            ("before", ("products",)),
        ):
            if target not in servers:
                continue
            for name in names:
                statuses = asyncio.run(_warm(servers[target].url, paths[name], key, passes=4))
                warmed[f"{target} {name}"] = dict(statuses)
                if set(statuses) != {"200"}:
                    anomalies.append(f"warming {name} on {target}: statuses {dict(statuses)}")
        scripts = {
            w.name: _lua(folder, f"w{i}", paths[w.paths], key, w.nonce)
            for i, w in enumerate(workloads)
        }
        samples: dict[str, list[dict[str, Any]]] = {w.name: [] for w in workloads}
        postgres_url = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)

        def postgres() -> list[int]:
            return asyncio.run(postgres_pids(postgres_url, database))

        def rewarm(names: Sequence[str]) -> None:
            """Search and compare answers live 5 minutes (the default TTL): fetch them again
            right before they are measured, so "warmed" holds over a long run."""
            for name in names:
                statuses = asyncio.run(_warm(servers["api"].url, paths[name], key, passes=2))
                if set(statuses) != {"200"}:
                    anomalies.append(f"re-warming {name}: statuses {dict(statuses)}")

        for number in range(options.rounds):
            shift = number % len(workloads)
            for workload in workloads[shift:] + workloads[:shift]:
                server = servers[workload.server]
                if workload.paths in SHORT_LIVED and not workload.nonce:
                    rewarm([workload.paths])
                cpu_pids: dict[str, Callable[[], list[int]]] = {
                    "server": _fixed(server.pids),
                    "postgres": postgres,
                }
                if redis_pid is not None:
                    cpu_pids["redis"] = _fixed([redis_pid])
                sample = _wrk(server.url, scripts[workload.name], seconds, cpu_pids)
                if sample["errors"]:
                    anomalies.append(f"{workload.name} round {number + 1}: {sample['errors']}")
                samples[workload.name].append(sample)
        rows = []
        for workload in workloads:
            taken = samples[workload.name]
            rows.append(
                {
                    "workload": workload.name,
                    "server": workload.server,
                    "paths": len(paths[workload.paths]),
                    "median": {
                        k: _median([s[k] for s in taken])
                        for k in ("requests_per_second", "p50_ms", "p90_ms", "p99_ms", "max_ms")
                    },
                    "median_cpu_percent": {
                        party: _median([s["cpu_percent"][party] for s in taken])
                        for party in taken[0]["cpu_percent"]
                    },
                    "rounds": taken,
                }
            )
        ratios = [
            round(p["requests_per_second"] / h["requests_per_second"], 3)
            for p, h in zip(samples["product"], samples["hello"], strict=True)
        ]
        before_ratios = [
            round(p["requests_per_second"] / h["requests_per_second"], 3)
            for p, h in zip(samples.get("product, before", []), samples["hello"], strict=False)
        ]
        off_ratios = [
            round(p["requests_per_second"] / h["requests_per_second"], 3)
            for p, h in zip(samples["product, limiter off"], samples["hello"], strict=True)
        ]
        rate = QUICK_LOAD_RATE if quick else LOAD_RATE
        load_seconds = QUICK_LOAD_SECONDS if quick else LOAD_SECONDS
        files = {}
        for name in ("products", "searches"):
            files[name] = folder / f"{name}.txt"
            files[name].write_text("\n".join(paths[name]) + "\n")
        uncached = folder / "uncached.txt"
        uncached.write_text(
            "\n".join(f"{p}&_n={n}" for n, p in enumerate(paths["searches"] * 200)) + "\n"
        )
        search_capacity = _median([s["requests_per_second"] for s in samples["search, uncached"]])
        cold_rate = max(5, round(0.5 * (search_capacity or 10)))
        api, nolimit = servers["api"].url, servers["nolimit"].url
        gate = {"--p99-ms": f"{TARGET_PRODUCT_P99_MS:g}"}
        loads = {
            "product": _loadtest(api, files["products"], key, rate, load_seconds, gate),
            "product, limiter off": _loadtest(
                nolimit, files["products"], key, rate, load_seconds, gate
            ),
        }
        if "before" in servers:
            loads["product, before"] = _loadtest(
                servers["before"].url, files["products"], key, rate, load_seconds, gate
            )
        rewarm(["searches"])
        loads["search"] = _loadtest(api, files["searches"], key, rate, load_seconds, {})
        loads["search, uncached"] = _loadtest(api, uncached, key, cold_rate, load_seconds, {})
    product = loads["product"]["total"]
    targets = {
        "product_over_hello": {
            "target": TARGET_RATIO,
            "measured": _median(ratios),
            "met": (_median(ratios) or 0) >= TARGET_RATIO,
        },
        "product_p99_ms_at_rate": {
            "target": TARGET_PRODUCT_P99_MS,
            "rate": rate,
            "measured": product["latency_ms"]["p99"],
            "met": product["latency_ms"]["p99"] is not None
            and product["latency_ms"]["p99"] < TARGET_PRODUCT_P99_MS
            and product["errors"] == 0,
        },
        "search_p95_ms": {
            "target": TARGET_SEARCH_P95_MS,
            "measured_cached_mix": loads["search"]["total"]["latency_ms"]["p95"],
            "measured_uncached": loads["search, uncached"]["total"]["latency_ms"]["p95"],
            "uncached_rate": cold_rate,
        },
    }
    search = targets["search_p95_ms"]
    search["met_cached_mix"] = (search["measured_cached_mix"] or 1e9) < TARGET_SEARCH_P95_MS
    search["met_uncached"] = (search["measured_uncached"] or 1e9) < TARGET_SEARCH_P95_MS
    return {
        "warmed": warmed,
        "wrk": rows,
        "product_over_hello": {"per_round": ratios, "median": _median(ratios)},
        "product_limiter_off_over_hello": {"per_round": off_ratios, "median": _median(off_ratios)},
        "product_before_over_hello": {
            "per_round": before_ratios,
            "median": _median(before_ratios),
            "before": os.environ.get(BEFORE_ENV),
        },
        "loadtests": loads,
        "targets": targets,
        "anomalies": anomalies,
    }


def _n(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def render(result: dict[str, Any]) -> list[RenderableType]:
    """wrk table, load test table, targets."""
    parameters = result["parameters"]
    wrk = parameters["wrk"]
    table = Table(
        title=(
            f"wrk against granian ×{parameters['workers']} workers, "
            f"{parameters['products']:,} products — median of {parameters['rounds']} rounds "
            f"× {wrk['seconds']} s, {wrk['connections']} connections"
        )
    )
    for column in ("workload", "URLs", "req/s", "req/s per round", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    table.add_column("CPU % server / pg / redis / wrk", justify="right")
    for row in result["wrk"]:
        median, cpu = row["median"], row["median_cpu_percent"]
        table.add_row(
            row["workload"],
            f"{row['paths']:,}",
            _n(median["requests_per_second"], 0),
            " / ".join(_n(r["requests_per_second"], 0) for r in row["rounds"]),
            _n(median["p50_ms"], 2),
            _n(median["p90_ms"], 2),
            _n(median["p99_ms"], 2),
            " / ".join(_n(cpu.get(p), 0) for p in ("server", "postgres", "redis", "wrk")),
        )
    loads = Table(title="pricefleet loadtest, constant arrival rate (latency from schedule, ms)")
    for column in ("workload", "asked/s", "sent/s", "sent", "errors", "p50", "p95", "p99", "max"):
        loads.add_column(column, justify="left" if column == "workload" else "right")
    loads.add_column("lag p99", justify="right")
    loads.add_column("outcomes", justify="left")
    for name, report in result["loadtests"].items():
        total = report["total"]
        lat = total["latency_ms"]
        loads.add_row(
            name,
            _n(total["rate"], 0),
            _n(total["sent_per_second"], 0),
            f"{total['sent']:,}",
            f"{total['errors']:,}",
            *(_n(lat[k]) for k in ("p50", "p95", "p99", "max")),
            _n(total["lag_ms"]["p99"]),
            ", ".join(f"{k}: {v:,}" for k, v in total["by_outcome"].items()),
        )
    targets = result["targets"]
    ratio, p99, search = (
        targets["product_over_hello"],
        targets["product_p99_ms_at_rate"],
        targets["search_p95_ms"],
    )

    def met(flag: bool) -> str:
        return "met" if flag else "NOT met"

    lines = [
        f"product ÷ hello req/s: {_n(ratio['measured'], 3)} (per round "
        f"{result['product_over_hello']['per_round']}; target ≥ {ratio['target']}): "
        f"{met(ratio['met'])}; limiter off: {result['product_limiter_off_over_hello']['median']}"
        + (
            f"; before ({before['before']}): {before['median']} (per round {before['per_round']})"
            if (before := result.get("product_before_over_hello", {})).get("per_round")
            else ""
        ),
        f"product p99 at {p99['rate']:,}/s: {_n(p99['measured'])} ms (target < "
        f"{p99['target']:g}): {met(p99['met'])}",
        f"search p95: cached mix {_n(search['measured_cached_mix'])} ms "
        f"({met(search['met_cached_mix'])}), uncached at {search['uncached_rate']}/s "
        f"{_n(search['measured_uncached'])} ms ({met(search['met_uncached'])}); target < "
        f"{search['target']:g}",
        f"database: {result['database']}",
        f"load average before {result['load_average_before']}, after "
        f"{result['load_average_after']}; run took {result['seconds']:.0f} s",
        "anomalies: " + ("none" if not result["anomalies"] else "; ".join(result["anomalies"])),
    ]
    return [table, loads, Text("\n".join(lines))]


BENCHMARK = Benchmark(
    name="api",
    summary="wrk against pricefleet api (granian, 2 workers) on 1M products, beside a hello",
    run=run,
    render=render,
)
