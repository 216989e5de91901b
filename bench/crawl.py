"""How fast does `pricefleet crawl` read a shop, against a tuned Scrapy spider on the same pages?

The jsonld demo shop is exported as static files (`pricefleet demo-shop export`, 20,000
products by default) and served by nginx on a free port. In rounds that alternate the two (the
order rotated each round), the real `pricefleet crawl` CLI crawls it from its sitemap into a
fresh SQLite file, and `scrapy runspider bench/scrapy_spider.py` (its own virtualenv, created on
first use) crawls the same sitemap into JSON lines. Each crawler is one child process, started
by the small launcher `bench/child.py` so that its peak RSS is its own (a child's `ru_maxrss`
includes the RSS of the process that spawned it, here the benchmark with the truth loaded); its
wall time, CPU time (user + sys, its whole process tree, from `wait4`) and peak RSS
(`ru_maxrss`) are kept per round, with nginx's CPU beside them. Results are medians and the
ratio pricefleet / Scrapy in products/s.

Correctness: every product pricefleet stored is compared field by field with the shop's truth
(`pricefleet demo-shop truth`); Scrapy's lines are counted and their raw fields compared.
Then one in-process crawl of the same export runs under cProfile, and its time is split by
phase (fetch, parse, extract, normalise, store, crawl bookkeeping, event loop) in ms per
product. With `PRICEFLEET_BENCH_CRAWL_LARGE=1` (or `python -m bench.crawl --large`) pricefleet
also crawls a 200,000-product export once, to compare peak RSS at 20,000 and 200,000 products.

With `--fleet` (`PRICEFLEET_BENCH_CRAWL_FLEET=1`) the same crawl also runs through the queue
with 1 and 2 `pricefleet worker --burst` processes on the embedded profile (SQLite queue and
store); with `--cluster` (`PRICEFLEET_BENCH_CRAWL_CLUSTER=1`) on the cluster profile: Redis
(`PRICEFLEET_BENCH_REDIS`, under a key prefix of its own, deleted afterwards) and PostgreSQL
(`PRICEFLEET_BENCH_POSTGRES`, a database of its own, dropped afterwards), with the servers' CPU
beside the workers'. Each reports the scaling from 1 to 2 processes.

Both crawlers get the same robots.txt rules; the export's `Crawl-delay: 0.01` line is removed,
because pricefleet obeys it (100 requests/s) and Scrapy ignores it. The recipe is the shipped
`recipes/demo-jsonld.yaml` with its politeness limits raised to the schema's ceiling. Only
127.0.0.1 is contacted; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import orjson
import yaml
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from bench import Benchmark, Options
from bench.demo_shop import HOST, Server, cpu_seconds, free_port, start_nginx

__all__ = ["BENCHMARK", "run"]

ROOT = Path(__file__).resolve().parents[1]
SPIDER = Path(__file__).resolve().parent / "scrapy_spider.py"
CHILD = Path(__file__).resolve().parent / "child.py"
RECIPE = ROOT / "recipes" / "demo-jsonld.yaml"
PRODUCTS = 20_000
QUICK_PRODUCTS = 2_000
LARGE_PRODUCTS = 200_000
SEED = 1
DAY = 0
SITE_ID = "demo-jsonld"
#: The recipe schema's ceilings (sites/schema.py): the fastest a recipe may ask to go.
POLITENESS = {"requests_per_second": 5000, "burst": 100, "max_concurrency": 128}
#: Scrapy's own settings live in the spider (CONCURRENT_REQUESTS 128 and so on).
SCRAPY_REQUIREMENT = "scrapy==2.19.0"
LARGE_ENV = "PRICEFLEET_BENCH_CRAWL_LARGE"
VENV_ENV = "PRICEFLEET_BENCH_SCRAPY_VENV"
EXPORT_LIMIT_S = 3600.0
CRAWL_LIMIT_S = 3600.0
INSTALL_LIMIT_S = 900.0
PRICEFLEET = "pricefleet"
SCRAPY = "scrapy"
#: The worker fleet (`pricefleet worker` processes on the embedded queue), by process count.
FLEET_ENV = "PRICEFLEET_BENCH_CRAWL_FLEET"
FLEET_SIZES = (1, 2)
FLEET_CONCURRENCY = 64
#: The cluster profile's fleet: the same workers on Redis (queue, own key prefix) and
#: PostgreSQL (store, own database, dropped afterwards).
CLUSTER_ENV = "PRICEFLEET_BENCH_CRAWL_CLUSTER"
REDIS_ENV = "PRICEFLEET_BENCH_REDIS"
POSTGRES_ENV = "PRICEFLEET_BENCH_POSTGRES"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
EMBEDDED = "embedded"
CLUSTER = "cluster"


def fleet_name(workers: int, profile: str = EMBEDDED) -> str:
    """The crawler name of a fleet of `workers` worker processes on `profile`'s queue and store."""
    if profile == CLUSTER:
        return f"pricefleet-cluster-{workers}"
    return f"pricefleet-workers-{workers}"


def _fleet_of(crawler: str) -> tuple[str, int] | None:
    """(profile, workers) of a fleet crawler's name, None for the others."""
    match = re.fullmatch(r"pricefleet-(workers|cluster)-(\d+)", crawler)
    if match is None:
        return None
    return (CLUSTER if match[1] == CLUSTER else EMBEDDED), int(match[2])


@dataclass(frozen=True, slots=True)
class Crawl:
    """One crawl by one crawler, as measured from outside its process."""

    crawler: str
    round: int
    products: int
    seconds: float
    products_per_second: float
    cpu_seconds: float
    cpu_ms_per_product: float
    peak_rss_mib: float
    nginx_cpu_seconds: float | None
    exit_code: int
    #: pricefleet: products equal to their truth in every compared field; Scrapy: lines whose
    #: raw name, brand, price, currency, GTIN and availability equal the truth's.
    correct: int
    #: Products in the shop's truth.
    expected: int
    #: Field name → how many products differ in it (pricefleet: also 'missing', 'extra').
    problems: dict[str, int]
    #: The cluster profile: CPU seconds of the servers it uses (the PostgreSQL backends of its
    #: database, sampled; Redis's whole server, which others share), beside the workers' own.
    server_cpu_seconds: float | None = None
    #: The same by server: {"postgresql": …, "redis": …}.
    server_cpu_by_server: dict[str, float] | None = None


# --- the shop -----------------------------------------------------------------------------------


def export(directory: Path, products: int, base_url: str) -> dict[str, Any]:
    """The jsonld shop as static files, its robots.txt without Crawl-delay, and its nginx.conf
    also serving that robots.txt at the host root (where Scrapy looks for it)."""
    command = [
        *(sys.executable, "-m", "pricefleet", "demo-shop", "export", str(directory)),
        *("--shop", "jsonld", "--products", str(products), "--seed", str(SEED)),
        *("--day", str(DAY), "--base-url", base_url),
    ]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, timeout=EXPORT_LIMIT_S, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"export failed ({done.returncode}): {done.stderr.decode()[-4000:]}")
    robots = directory / "jsonld" / "robots.txt"
    robots.write_text(
        "".join(
            line
            for line in robots.read_text().splitlines(keepends=True)
            if not line.lower().startswith("crawl-delay")
        )
    )
    conf = directory / "nginx.conf"
    root = f"root {directory.resolve()};\n"
    text = conf.read_text()
    if text.count(root) != 1:
        raise RuntimeError(f"export's nginx.conf has no single {root.strip()!r}")
    conf.write_text(
        text.replace(root, root + f"        location = /robots.txt {{ alias {robots}; }}\n")
    )
    return {"products": products, "seconds": round(seconds, 1), "mib": round(_mib(directory))}


def _mib(directory: Path) -> float:
    total = 0
    for folder, _, files in os.walk(directory):
        total += sum(os.stat(os.path.join(folder, name)).st_size for name in files)
    return total / 2**20


def write_truth(path: Path, products: int, base_url: str) -> None:
    """The shop's truth as JSON lines (`pricefleet demo-shop truth`)."""
    command = [
        *(sys.executable, "-m", "pricefleet", "demo-shop", "truth", "--shop", "jsonld"),
        *("--products", str(products), "--seed", str(SEED), "--day", str(DAY)),
        *("--base-url", base_url, "--out", str(path)),
    ]
    subprocess.run(command, capture_output=True, timeout=EXPORT_LIMIT_S, check=True)


def read_truth(path: Path) -> dict[str, dict[str, Any]]:
    """Truth records by product id."""
    with path.open("rb") as lines:
        return {record["id"]: record for record in map(orjson.loads, lines)}


def write_recipe(path: Path) -> None:
    """The shipped jsonld recipe with its politeness limits raised; `${…}` stays for the env."""
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["politeness"] = dict(POLITENESS)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True))


# --- running one crawler --------------------------------------------------------------------


def measure(
    command: Sequence[str], env: dict[str, str], log: Path
) -> tuple[float, float, int, int]:
    """Run `command` to its end: wall seconds, CPU seconds (user + sys of the process and the
    children it waited for), peak RSS in KiB and exit code, the last three as `bench/child.py`
    saw them from `wait4` (not this process's, whose RSS a child's `ru_maxrss` would include)."""
    with log.open("wb") as sink:
        began = time.perf_counter()
        process, report = launch(command, env, sink, log.with_suffix(".rusage.json"))
        timer = threading.Timer(CRAWL_LIMIT_S, _kill_group, (process,))
        timer.start()
        try:
            process.wait()
        finally:
            timer.cancel()
        seconds = time.perf_counter() - began
    cpu, rss_kib, code = collect(process, report)
    return seconds, cpu, rss_kib, code


def launch(
    command: Sequence[str], env: dict[str, str], sink: IO[bytes], report: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `command` under `bench/child.py` (in its own process group), which writes the
    command's own CPU time and peak RSS to `report` when it ends."""
    report.unlink(missing_ok=True)
    launcher = [sys.executable, "-I", str(CHILD), str(report), *command]
    process = subprocess.Popen(
        launcher, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    return process, report


def collect(process: subprocess.Popen[bytes], report: Path) -> tuple[float, int, int]:
    """CPU seconds, peak RSS in KiB and exit code of a launched command that has ended."""
    try:
        rusage = orjson.loads(report.read_bytes())
    except FileNotFoundError:  # the launcher itself was killed (time limit)
        return 0.0, 0, process.returncode
    return float(rusage["cpu_seconds"]), int(rusage["peak_rss_kib"]), int(rusage["exit_code"])


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _crawl(
    crawler: str,
    number: int,
    command: Sequence[str],
    env: dict[str, str],
    log: Path,
    nginx: Server,
    expected: int,
    check: Callable[[], tuple[int, int, dict[str, int]]],
) -> Crawl:
    before = cpu_seconds(nginx.pids())
    seconds, cpu, rss_kib, code = measure(command, env, log)
    after = cpu_seconds(nginx.pids())
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{crawler} exited with {code}: {tail}")
    found, correct, problems = check()
    return Crawl(
        crawler=crawler,
        round=number,
        products=found,
        seconds=round(seconds, 2),
        products_per_second=round(found / seconds, 1),
        cpu_seconds=round(cpu, 2),
        cpu_ms_per_product=round(1000 * cpu / max(found, 1), 3),
        peak_rss_mib=round(rss_kib / 1024, 1),
        nginx_cpu_seconds=None if before is None or after is None else round(after - before, 2),
        exit_code=code,
        correct=correct,
        expected=expected,
        problems=problems,
    )


def crawl_pricefleet(
    number: int,
    scratch: Path,
    recipe: Path,
    nginx: Server,
    truth: dict[str, dict[str, Any]],
    *,
    processes: int = 1,
    src: Path | None = None,
) -> Crawl:
    """`pricefleet crawl --recipe … --database sqlite:///…` into a fresh file, then checked.
    `processes` > 1: `--processes N` (N processes, CPU and peak RSS of the whole tree); `src`:
    the pricefleet package imported from there (another tree, `--before-src`)."""
    name = crawler_name(processes, before=src is not None)
    database = scratch / f"{name}-{number}.db"
    database.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PRICEFLEET_DEMO_URL": nginx.url,
        "PRICEFLEET_DATA_DIR": str(scratch / "data"),
        "COLUMNS": "160",
    }
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT)])
    command = [
        *(sys.executable, "-m", "pricefleet", "crawl", "--recipe", str(recipe)),
        *("--database", f"sqlite:///{database}"),
    ]
    if processes > 1:
        command += ["--processes", str(processes)]
    result = _crawl(
        name,
        number,
        command,
        env,
        scratch / f"{name}-{number}.log",
        nginx,
        len(truth),
        lambda: asyncio.run(check_store(f"sqlite:///{database}", truth)),
    )
    database.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    return result


def crawler_name(processes: int = 1, *, before: bool = False) -> str:
    """The name of a `pricefleet crawl` crawler: `pricefleet`, `pricefleet-processes-N`, or
    `pricefleet-before` (the tree given by `--before-src`, one process)."""
    if before:
        return f"{PRICEFLEET}-before"
    return PRICEFLEET if processes == 1 else f"{PRICEFLEET}-processes-{processes}"


def crawl_fleet(
    number: int,
    scratch: Path,
    recipe: Path,
    nginx: Server,
    truth: dict[str, dict[str, Any]],
    workers: int,
    profile: str = EMBEDDED,
) -> Crawl:
    """The same crawl through the queue: `pricefleet scheduler --once` starts it, `workers`
    processes of `pricefleet worker --burst` drain it into a fresh store. `embedded`: SQLite
    queue and store files; `cluster`: Redis (own key prefix) and PostgreSQL (own database,
    migrated with `pricefleet db upgrade`), both removed afterwards. Wall time from the workers'
    start to the last one's exit; CPU summed over the workers; peak RSS of the largest worker;
    the cluster's server CPU (PostgreSQL backends of the database, Redis) beside it."""
    home = scratch / f"fleet-{profile}-{workers}-{number}"
    shutil.rmtree(home, ignore_errors=True)
    (home / "recipes").mkdir(parents=True)
    shutil.copy(recipe, home / "recipes" / recipe.name)
    env = {
        **os.environ,
        "PRICEFLEET_DEMO_URL": nginx.url,
        "PRICEFLEET_DATA_DIR": str(home / "data"),
        "PRICEFLEET_RECIPES_DIR": str(home / "recipes"),
        "COLUMNS": "160",
    }
    with contextlib.ExitStack() as cleanup:
        if profile == CLUSTER:
            database, database_name = cleanup.enter_context(_postgres_database())
            redis_url = os.environ.get(REDIS_ENV) or DEFAULT_REDIS
            prefix = f"pfbcrawl{os.getpid()}x{secrets.token_hex(3)}"
            cleanup.callback(_drop_redis_prefix, redis_url, prefix)
            env |= {
                "PRICEFLEET_DATABASE_URL": database,
                "PRICEFLEET_REDIS_URL": redis_url,
                "PRICEFLEET_QUEUE_PREFIX": prefix,
            }
            store_url = database
        else:
            database_name, redis_url = "", ""
            store_url = f"sqlite:///{home / 'data' / 'pricefleet.db'}"
        base = [sys.executable, "-m", "pricefleet"]
        steps = [["scheduler", "--once"]]
        if profile == CLUSTER:
            steps.insert(0, ["db", "upgrade"])
        for step in steps:
            done = subprocess.run(
                [*base, *step], env=env, capture_output=True, timeout=300, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(step)} failed: {done.stderr.decode()[-2000:]}")
        command = [*base, "worker", "--burst", "--concurrency", str(FLEET_CONCURRENCY)]
        sampler = _ServerCpu(database_name, redis_url) if profile == CLUSTER else None
        before = cpu_seconds(nginx.pids())
        logs = [(home / f"worker-{n}.log").open("wb") for n in range(workers)]
        began = time.perf_counter()
        launched = [
            launch(command, env, log, home / f"worker-{n}.rusage.json")
            for n, log in enumerate(logs)
        ]
        cpu, rss_kib, codes = 0.0, 0, []
        for process, report in launched:
            process.wait()
            worker_cpu, worker_rss, code = collect(process, report)
            cpu += worker_cpu
            rss_kib = max(rss_kib, worker_rss)
            codes.append(code)
        seconds = time.perf_counter() - began
        after = cpu_seconds(nginx.pids())
        servers = sampler.stop() if sampler is not None else None
        server_cpu = sum(servers.values()) if servers is not None else None
        for log in logs:
            log.close()
        if any(codes):
            tail = (home / "worker-0.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"a worker exited with {codes}: {tail}")
        found, correct, problems = asyncio.run(check_store(store_url, truth))
    shutil.rmtree(home, ignore_errors=True)
    return Crawl(
        crawler=fleet_name(workers, profile),
        round=number,
        products=found,
        seconds=round(seconds, 2),
        products_per_second=round(found / seconds, 1),
        cpu_seconds=round(cpu, 2),
        cpu_ms_per_product=round(1000 * cpu / max(found, 1), 3),
        peak_rss_mib=round(rss_kib / 1024, 1),
        nginx_cpu_seconds=None if before is None or after is None else round(after - before, 2),
        exit_code=0,
        correct=correct,
        expected=len(truth),
        problems=problems,
        server_cpu_seconds=None if server_cpu is None else round(server_cpu, 2),
        server_cpu_by_server=None
        if servers is None
        else {name: round(value, 2) for name, value in servers.items()},
    )


@contextlib.contextmanager
def _postgres_database() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database for one cluster crawl, dropped afterwards: (url, name)."""
    import asyncpg

    from bench.store import _admin_url

    admin = _admin_url(os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES)
    name = f"pf_bench_crawl_{secrets.token_hex(4)}"

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(**admin)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    auth = admin["user"] + (f":{admin['password']}" if admin["password"] else "")
    try:
        yield f"postgresql://{auth}@{admin['host']}:{admin['port']}/{name}", name
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _drop_redis_prefix(url: str, prefix: str) -> None:
    """Delete this crawl's keys (`prefix:*`) from the shared Redis, and nothing else."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        batch = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
    finally:
        client.close()


class _ServerCpu:
    """CPU seconds the cluster's servers spend during a crawl: the PostgreSQL backends serving
    `database` (found in /proc by their title, sampled every 0.2 s, so a backend's last
    fraction of a second before it exits may be missed) plus Redis's whole server (`INFO cpu`;
    shared with whoever else uses it)."""

    def __init__(self, database: str, redis_url: str) -> None:
        import redis

        self._title = f" {database} ".encode()
        self._redis = redis.Redis.from_url(redis_url)
        self._redis_before = self._redis_cpu()
        self._backends: dict[int, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _redis_cpu(self) -> float:
        info = self._redis.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def _sample(self) -> None:
        while not self._done.wait(0.2):
            self._poll()

    def _poll(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                if pid not in self._backends:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if not (title.startswith(b"postgres: ") and self._title in title):
                        continue
                used = cpu_seconds([pid])
            except OSError:
                continue
            if used is not None:
                self._backends[pid] = used

    def stop(self) -> dict[str, float]:
        """Stop sampling: each server's CPU seconds since the start."""
        self._poll()
        self._done.set()
        self._thread.join()
        redis_cpu = self._redis_cpu() - self._redis_before
        self._redis.close()
        # A backend seen for the first time mid-crawl counts from 0: it was opened by a worker.
        return {"postgresql": sum(self._backends.values()), "redis": redis_cpu}


def crawl_scrapy(
    number: int, scratch: Path, python: Path, nginx: Server, truth: dict[str, dict[str, Any]]
) -> Crawl:
    """`scrapy runspider bench/scrapy_spider.py` on the same sitemap, then its lines checked."""
    out = scratch / f"scrapy-{number}.jsonl"
    out.unlink(missing_ok=True)
    command = [
        *(str(python), "-m", "scrapy", "runspider", str(SPIDER)),
        *("-a", f"sitemap={nginx.url}/jsonld/sitemap.xml", "-a", r"products=/jsonld/p/\d+/"),
        *("-o", f"{out}:jsonlines"),
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIRTUAL_ENV")}
    result = _crawl(
        SCRAPY,
        number,
        command,
        env,
        scratch / f"scrapy-{number}.log",
        nginx,
        len(truth),
        lambda: check_scrapy(out, truth),
    )
    out.unlink(missing_ok=True)
    return result


# --- correctness ------------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal | None:
    try:
        return None if value is None else Decimal(str(value))
    except InvalidOperation:
        return None


def differences(product: dict[str, Any], truth: dict[str, Any]) -> list[str]:
    """The fields in which a stored product differs from its truth (as the crawl tests check
    them, plus name and brand)."""
    from pricefleet.match import normalize_gtin

    wrong = []
    for name in ("name", "brand", "currency", "availability", "is_discounted", "unit"):
        if product.get(name) != truth.get(name):
            wrong.append(name)
    if product.get("price") != _decimal(truth["price"]):
        wrong.append("price")
    if product.get("gtin") != normalize_gtin(truth.get("gtin")):
        wrong.append("gtin")
    if truth["is_discounted"] and product.get("regular_price") != _decimal(truth["regular_price"]):
        wrong.append("regular_price")
    unit_price, expected = product.get("unit_price"), _decimal(truth.get("unit_price"))
    if unit_price is None or expected is None or abs(unit_price - expected) > Decimal("0.0051"):
        wrong.append("unit_price")
    return wrong


async def check_store(
    url: str, truth: dict[str, dict[str, Any]]
) -> tuple[int, int, dict[str, int]]:
    """Products stored (`url`: the store's, SQLite or PostgreSQL), products equal to their
    truth, and problems by field."""
    from pricefleet.store import Store

    problems: Counter[str] = Counter()
    correct = 0
    store = Store.from_url(url)
    async with store:
        for product_id, record in truth.items():
            product = await store.get_product(SITE_ID, product_id)
            if product is None:
                problems["missing"] += 1
                continue
            wrong = differences(product, record)
            problems.update(wrong)
            correct += not wrong
    stored = await _count_products(url)
    if stored > len(truth) - problems["missing"]:
        problems["extra"] = stored - (len(truth) - problems["missing"])
    return int(stored), correct, dict(problems)


async def _count_products(url: str) -> int:
    """Products of the site in the store at `url`."""
    query = "SELECT count(*) FROM products WHERE site_id = "
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            (stored,) = connection.execute(query + "?", (SITE_ID,)).fetchone()
        return int(stored)
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval(query + "$1", SITE_ID))
    finally:
        await connection.close()


def check_scrapy(out: Path, truth: dict[str, dict[str, Any]]) -> tuple[int, int, dict[str, int]]:
    """Lines Scrapy wrote, lines whose raw fields equal the truth, problems by field."""
    problems: Counter[str] = Counter()
    seen: set[str] = set()
    lines = correct = 0
    with out.open("rb") as items:
        for item in map(orjson.loads, items):
            lines += 1
            record = truth.get(str(item.get("id")))
            if record is None or item["id"] in seen:
                problems["extra" if record is None else "duplicate"] += 1
                continue
            seen.add(item["id"])
            wrong = [
                name
                for name in ("name", "brand", "currency", "availability")
                if item.get(name) != record.get(name)
            ]
            if _decimal(item.get("price")) != _decimal(record["price"]):
                wrong.append("price")
            if record.get("gtin") and item.get("gtin") != record["gtin"]:
                wrong.append("gtin")
            problems.update(wrong)
            correct += not wrong
    problems["missing"] = len(truth) - len(seen)
    return lines, correct, {k: v for k, v in problems.items() if v}


# --- Scrapy's virtualenv --------------------------------------------------------------------


def scrapy_python() -> Path:
    """The Python of the benchmark's Scrapy virtualenv, created with Scrapy on first use
    (`$PRICEFLEET_BENCH_SCRAPY_VENV`, else under the user's cache directory)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = Path(os.environ.get(VENV_ENV) or cache / "pricefleet-bench" / "scrapy-venv")
    python = venv / "bin" / "python"
    if not python.exists():
        base = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=INSTALL_LIMIT_S)
    probe = subprocess.run(
        [str(python), "-c", "import scrapy; print(scrapy.__version__)"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", SCRAPY_REQUIREMENT],
            check=True,
            timeout=INSTALL_LIMIT_S,
        )
    return python


def scrapy_version(python: Path) -> str:
    """Scrapy's and Twisted's versions in its virtualenv."""
    done = subprocess.run(
        [
            str(python),
            "-c",
            "import scrapy, twisted; print(scrapy.__version__, twisted.__version__)",
        ],
        capture_output=True,
        check=True,
    )
    scrapy, twisted = done.stdout.decode().split()
    return f"Scrapy {scrapy}, Twisted {twisted}"


# --- the profile --------------------------------------------------------------------------------

#: Where a function's own time goes, by the file it lives in (first match wins). Functions
#: matching none (builtins, the standard library) are charged to their callers' phases.
_PHASES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (phase, re.compile(pattern))
    for phase, pattern in (
        ("parse (lexbor)", r"pricefleet/extract/page\.py:\d+\((parse_page|_scan)\)|/selectolax/"),
        (
            "normalise",
            r"pricefleet/extract/(prices|units|currency|availability)\.py|pricefleet/match/"
            r"|pricefleet/crawl/record\.py|/price_parser/",
        ),
        ("extract (JSON-LD, microdata, …)", r"pricefleet/extract/|/extruct/|/orjson"),
        (
            "fetch (HTTP, politeness, robots)",
            r"pricefleet/fetch/|/aiohttp/|/yarl/|/multidict/|/aiohappyeyeballs/|/propcache/"
            r"|/protego|/frozenlist/|/aiosignal/",
        ),
        ("store (main thread)", r"pricefleet/store/|/sqlalchemy/|/aiosqlite/|/greenlet/"),
        ("crawl (jobs, URLs, dedup)", r"pricefleet/crawl/|/w3lib/"),
        ("event loop", r"/asyncio/|/selectors\.py|epoll"),
    )
)
_OTHER = "other"


def _phase_of(key: tuple[str, int, str]) -> str | None:
    label = f"{key[0]}:{key[1]}({key[2]})" if key[0] != "~" else key[2]
    for phase, pattern in _PHASES:
        if pattern.search(label):
            return phase
    return None


def phases(stats: pstats.Stats) -> dict[str, float]:
    """Seconds of own time by phase; unclassified functions split over their callers' phases
    in proportion to the time each caller spent in them."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    shares: dict[Any, dict[str, float]] = {}

    def share(key: Any, visiting: frozenset[Any]) -> dict[str, float]:
        if key in shares:
            return shares[key]
        phase = _phase_of(key)
        if phase is not None:
            found = {phase: 1.0}
        else:
            callers = table[key][4] if key in table else {}
            weights = {c: edge[3] for c, edge in callers.items() if c not in visiting}
            total = sum(weights.values())
            if not total:
                found = {_OTHER: 1.0}
            else:
                found = {}
                for caller, weight in weights.items():
                    for name, part in share(caller, visiting | {key}).items():
                        found[name] = found.get(name, 0.0) + part * weight / total
        if not visiting:
            shares[key] = found
        return found

    seconds: Counter[str] = Counter()
    for key, (_, _, own, _, _) in table.items():
        for name, part in share(key, frozenset()).items():
            seconds[name] += own * part
    return dict(seconds)


def _thread_cpu(native_id: int) -> float | None:
    try:
        return int(Path(f"/proc/self/task/{native_id}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def profile(recipe: Path, nginx: Server, scratch: Path, products: int) -> dict[str, Any]:
    """One crawl of the export in this process under cProfile (main thread), with the CPU of
    every other thread (aiosqlite's SQLite thread) read from /proc; ms per product by phase."""
    from pricefleet.crawl.runner import crawl_sites
    from pricefleet.sites import load_recipe
    from pricefleet.store import Store

    os.environ["PRICEFLEET_DEMO_URL"] = nginx.url
    site = load_recipe(recipe)
    database = scratch / "profile.db"
    profiler = cProfile.Profile()
    threads: dict[str, float] = {}

    async def crawl() -> tuple[int, int, float, float]:
        store = Store.from_url(f"sqlite:///{database}")
        async with store:
            await store.upgrade()
            known = {thread.native_id for thread in threading.enumerate()}
            before = {n: _thread_cpu(n) or 0.0 for n in known if n is not None}
            began, cpu = time.perf_counter(), time.thread_time()
            profiler.enable()
            try:
                (report,) = await crawl_sites([site], store)
            finally:
                profiler.disable()
            main_cpu = time.thread_time() - cpu
            seconds = time.perf_counter() - began
            main = threading.main_thread().native_id
            for thread in threading.enumerate():
                native = thread.native_id
                if native is None or native == main:
                    continue
                used = (_thread_cpu(native) or 0.0) - before.get(native, 0.0)
                threads[thread.name] = threads.get(thread.name, 0.0) + used
            return report.products, len(report.failures), seconds, main_cpu

    found, failures, seconds, main_cpu = asyncio.run(crawl())
    stats = pstats.Stats(profiler)
    by_phase = phases(stats)
    profiled = sum(by_phase.values())
    others = sum(threads.values())
    per = max(found, 1)
    rows = [
        {
            "phase": name,
            "ms_per_product": round(1000 * value / per, 3),
            "share_of_main_thread": round(value / profiled, 3) if profiled else None,
        }
        for name, value in sorted(by_phase.items(), key=lambda item: -item[1])
    ]
    top = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:25]  # type: ignore[attr-defined]
    return {
        "products": found,
        "failures": failures,
        "export_products": products,
        "wall_seconds": round(seconds, 2),
        "main_thread_cpu_seconds": round(main_cpu, 2),
        "profiled_seconds": round(profiled, 2),
        "other_threads_cpu_seconds": {k: round(v, 2) for k, v in threads.items()},
        "other_threads_ms_per_product": round(1000 * others / per, 3),
        "phases": rows,
        "top_functions": [
            {
                "function": f"{Path(key[0]).name}:{key[1]}({key[2]})",
                "calls": value[1],
                "own_ms_per_product": round(1000 * value[2] / per, 4),
            }
            for key, value in top
        ],
    }


# --- the benchmark ------------------------------------------------------------------------------


def _median(crawls: Sequence[Crawl], key: str) -> float | None:
    values = [getattr(c, key) for c in crawls if getattr(c, key) is not None]
    return round(statistics.median(values), 2) if values else None


def _summary(crawls: Sequence[Crawl]) -> dict[str, Any]:
    return {
        "median": {
            key: _median(crawls, key)
            for key in (
                "products_per_second",
                "seconds",
                "cpu_seconds",
                "cpu_ms_per_product",
                "peak_rss_mib",
                "nginx_cpu_seconds",
            )
        },
        "rounds": [asdict(c) for c in crawls],
    }


@dataclass
class _Shop:
    """An export served by nginx, with its truth."""

    directory: Path
    nginx: Server
    truth: dict[str, dict[str, Any]]
    export: dict[str, Any]


def _serve(scratch: Path, name: str, products: int, keep: Path | None = None) -> _Shop:
    """Export the shop (into `keep`, or reuse the export already there) and serve it."""
    home = scratch if keep is None else keep / f"{name}-{products}"
    made = home / f"{name}.json"
    if keep is not None and made.exists():
        exported = orjson.loads(made.read_bytes())
        port = int(exported["port"])
    else:
        shutil.rmtree(home / name, ignore_errors=True)
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        base = f"http://{HOST}:{port}"
        exported = export(home / name, products, base)
        write_truth(home / f"{name}-truth.jsonl", products, base)
        made.write_bytes(orjson.dumps({**exported, "port": port}))
    exported = {key: value for key, value in exported.items() if key != "port"}
    truth = read_truth(home / f"{name}-truth.jsonl")
    nginx = start_nginx(home / name, scratch / f"{name}-nginx", port)
    return _Shop(home / name, nginx, truth, exported)


def _close(shop: _Shop | None, *, keep: bool = False) -> None:
    if shop is not None:
        shop.nginx.stop()
        if not keep:
            shutil.rmtree(shop.directory, ignore_errors=True)


def run_crawls(
    options: Options,
    *,
    large: bool,
    with_profile: bool = True,
    fleet: bool = False,
    cluster: bool = False,
    only: Sequence[str] = (),
    keep: Path | None = None,
    processes: Sequence[int] = (),
    before_src: Path | None = None,
) -> dict[str, Any]:
    """Export, serve, crawl with both in alternating rounds (and the worker fleets of 1 and 2
    processes: `fleet` on the embedded queue and store, `cluster` on Redis and PostgreSQL),
    profile; then the large export. `only`: just these crawlers (a quick look; the ratios need
    pricefleet and scrapy). `keep`: the export is made there once and reused by later runs.
    `processes`: also `pricefleet crawl --processes N` for each N; `before_src`: also one
    `pricefleet crawl` of the package in that directory (an A/B in the same run)."""
    products = QUICK_PRODUCTS if options.quick else PRODUCTS
    scratch = Path(tempfile.mkdtemp(prefix="pricefleet-bench-crawl-"))
    recipe = scratch / "demo-jsonld.yaml"
    write_recipe(recipe)
    crawls: dict[str, list[Crawl]] = {PRICEFLEET: [], SCRAPY: []}
    if before_src is not None:
        crawls[crawler_name(before=True)] = []
    crawls.update({crawler_name(n): [] for n in processes if n > 1})
    if fleet:
        crawls.update({fleet_name(n): [] for n in FLEET_SIZES})
    if cluster:
        crawls.update({fleet_name(n, CLUSTER): [] for n in FLEET_SIZES})
    if only:
        crawls = {name: runs for name, runs in crawls.items() if name in only}
    python = scrapy_python() if SCRAPY in crawls else None
    shop = big = None
    result: dict[str, Any] = {}
    try:
        shop = _serve(scratch, "shop", products, keep)
        for number in range(1, options.rounds + 1):
            names = list(crawls)
            order = names if number % 2 else names[::-1]
            for crawler in order:
                in_fleet = _fleet_of(crawler)
                several = re.fullmatch(rf"{PRICEFLEET}-processes-(\d+)", crawler)
                if crawler == PRICEFLEET:
                    done = crawl_pricefleet(number, scratch, recipe, shop.nginx, shop.truth)
                elif crawler == crawler_name(before=True):
                    done = crawl_pricefleet(
                        number, scratch, recipe, shop.nginx, shop.truth, src=before_src
                    )
                elif several is not None:
                    done = crawl_pricefleet(
                        number,
                        scratch,
                        recipe,
                        shop.nginx,
                        shop.truth,
                        processes=int(several[1]),
                    )
                elif in_fleet is not None:
                    kind, workers = in_fleet
                    done = crawl_fleet(
                        number, scratch, recipe, shop.nginx, shop.truth, workers, kind
                    )
                else:
                    assert python is not None
                    done = crawl_scrapy(number, scratch, python, shop.nginx, shop.truth)
                crawls[crawler].append(done)
        if with_profile:
            result["profile"] = profile(recipe, shop.nginx, scratch, products)
        result["export"] = shop.export
        _close(shop, keep=keep is not None)
        shop = None
        if large:
            big = _serve(scratch, "large", LARGE_PRODUCTS)
            result["large_export"] = big.export
            result["large"] = asdict(crawl_pricefleet(0, scratch, recipe, big.nginx, big.truth))
            if fleet:
                result["large_fleet"] = asdict(
                    crawl_fleet(0, scratch, recipe, big.nginx, big.truth, FLEET_SIZES[0])
                )
    finally:
        _close(shop, keep=keep is not None)
        _close(big)
        shutil.rmtree(scratch, ignore_errors=True)
    result["all"] = {name: _summary(runs) for name, runs in crawls.items()}
    crawls.setdefault(PRICEFLEET, [])
    crawls.setdefault(SCRAPY, [])
    ours, theirs = crawls[PRICEFLEET], crawls[SCRAPY]
    ours_rate = _median(ours, "products_per_second")
    their_rate = _median(theirs, "products_per_second")
    result.update(
        {
            "benchmark": "crawl",
            "parameters": {
                "products": products,
                "seed": SEED,
                "day": DAY,
                "rounds": options.rounds,
                "quick": options.quick,
                "politeness": POLITENESS,
                "scrapy": scrapy_version(python) if python is not None else None,
                "large": large,
            },
            PRICEFLEET: _summary(ours),
            SCRAPY: _summary(theirs),
            "pricefleet_over_scrapy": {
                "products_per_second": round(ours_rate / their_rate, 2)
                if ours_rate and their_rate
                else None,
                "per_round": [
                    round(a.products_per_second / b.products_per_second, 2)
                    for a, b in zip(ours, theirs, strict=False)
                ],
                "target": 8.0,
            },
        }
    )
    for kind, wanted, key in ((EMBEDDED, fleet, "fleet"), (CLUSTER, cluster, "cluster")):
        names = [fleet_name(n, kind) for n in FLEET_SIZES if fleet_name(n, kind) in crawls]
        if wanted and names:
            result[key] = _fleets(crawls, names, their_rate)
    if large and fleet and "large_fleet" in result:
        small = _median(crawls[fleet_name(FLEET_SIZES[0])], "peak_rss_mib")
        result["fleet_rss_flatness"] = {
            "products": [products, LARGE_PRODUCTS],
            "peak_rss_mib": [small, result["large_fleet"]["peak_rss_mib"]],
            "ratio": round(result["large_fleet"]["peak_rss_mib"] / small, 2) if small else None,
        }
    if large:
        small_rss = _median(ours, "peak_rss_mib")
        result["rss_flatness"] = {
            "products": [products, LARGE_PRODUCTS],
            "peak_rss_mib": [small_rss, result["large"]["peak_rss_mib"]],
            "ratio": round(result["large"]["peak_rss_mib"] / small_rss, 2) if small_rss else None,
        }
    return result


def _fleets(
    crawls: dict[str, list[Crawl]], names: Sequence[str], their_rate: float | None
) -> dict[str, Any]:
    """One profile's fleets: each summarised, the scaling from the first size to the last (in
    products/s), each over Scrapy, and CPU ms per product (workers, and with the servers)."""
    rates = {name: _median(crawls[name], "products_per_second") for name in names}
    one, last = rates[names[0]], rates[names[-1]]
    summary: dict[str, Any] = {name: _summary(crawls[name]) for name in names}
    summary["scaling_ratio"] = round(last / one, 2) if one and last and len(names) > 1 else None
    summary["over_scrapy"] = {
        name: round(rate / their_rate, 2) if rate and their_rate else None
        for name, rate in rates.items()
    }
    summary["cpu_ms_per_product_with_servers"] = {
        name: _median_with_servers(crawls[name]) for name in names
    }
    return summary


def _median_with_servers(crawls: Sequence[Crawl]) -> float | None:
    """Median CPU ms per product of a fleet, its servers' CPU included (cluster only)."""
    values = [
        1000 * (c.cpu_seconds + c.server_cpu_seconds) / max(c.products, 1)
        for c in crawls
        if c.server_cpu_seconds is not None
    ]
    return round(statistics.median(values), 3) if values else None


def run(options: Options) -> dict[str, Any]:
    """`python -m bench`: both crawlers in rounds and the profile; the 200,000-product RSS
    check too when PRICEFLEET_BENCH_CRAWL_LARGE=1."""
    return run_crawls(
        options,
        large=os.environ.get(LARGE_ENV, "") not in ("", "0"),
        fleet=os.environ.get(FLEET_ENV, "") not in ("", "0"),
        cluster=os.environ.get(CLUSTER_ENV, "") not in ("", "0"),
    )


def _number(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _correct(crawl: dict[str, Any]) -> str:
    problems = ", ".join(f"{k} {v}" for k, v in sorted(crawl["problems"].items()) if v)
    return f"{crawl['correct']:,}/{crawl['expected']:,}" + (f" ({problems})" if problems else "")


def render(result: dict[str, Any]) -> list[RenderableType]:
    """The crawlers side by side, the ratio, RSS at scale and the profile."""
    parameters = result["parameters"]
    table = Table(
        title=(
            f"Crawl of the jsonld shop, {parameters['products']:,} products (nginx), median of "
            f"{parameters['rounds']} rounds"
        )
    )
    table.add_column("crawler", no_wrap=True)
    for column in ("products/s", "per round", "wall s", "CPU s", "CPU ms/product"):
        table.add_column(column, justify="right")
    for column in ("peak RSS MiB", "nginx CPU s", "server CPU s", "correct (round 1)"):
        table.add_column(column, justify="right")
    summaries = {
        name: summary for name, summary in result.get("all", {}).items() if summary["rounds"]
    } or {PRICEFLEET: result[PRICEFLEET], SCRAPY: result[SCRAPY]}
    for crawler, summary in summaries.items():
        median = summary["median"]
        rounds = summary["rounds"]
        servers = [r.get("server_cpu_seconds") for r in rounds]
        known = [v for v in servers if v is not None]
        table.add_row(
            crawler,
            _number(median["products_per_second"]),
            " / ".join(_number(r["products_per_second"]) for r in rounds),
            _number(median["seconds"], 1),
            _number(median["cpu_seconds"], 1),
            _number(median["cpu_ms_per_product"], 2),
            _number(median["peak_rss_mib"], 1),
            _number(median["nginx_cpu_seconds"], 1),
            _number(statistics.median(known), 1) if known else "–",
            _correct(rounds[0]),
        )
    ratio = result["pricefleet_over_scrapy"]
    lines = [
        f"pricefleet / Scrapy products/s: {_number(ratio['products_per_second'], 2)}x "
        f"(per round {', '.join(f'{r:.2f}' for r in ratio['per_round'])}; target "
        f"{ratio['target']:g}x); {parameters['scrapy']}",
        "correct: pricefleet = stored products equal to the truth in every field compared; "
        "Scrapy = lines whose raw fields equal the truth.",
    ]
    for key, what in (
        ("fleet", "embedded: SQLite queue and store"),
        ("cluster", "cluster: Redis queue, PostgreSQL store"),
    ):
        if key not in result:
            continue
        fleet = result[key]
        over = ", ".join(f"{k}: {_number(v, 2)}x" for k, v in fleet["over_scrapy"].items())
        lines.append(
            f"worker fleet ({what}): 2 processes / 1 = "
            f"{_number(fleet['scaling_ratio'], 2)}x; over Scrapy {over}"
        )
        with_servers = {k: v for k, v in fleet["cpu_ms_per_product_with_servers"].items() if v}
        if with_servers:
            lines.append(
                "  CPU ms/product with the servers (PostgreSQL backends, Redis): "
                + ", ".join(f"{k}: {_number(v, 2)}" for k, v in with_servers.items())
            )
    if "large_fleet" in result:
        large, flat = result["large_fleet"], result["fleet_rss_flatness"]
        lines.append(
            f"{large['products']:,} products, 1 worker: "
            f"{_number(large['products_per_second'])} products/s, peak RSS "
            f"{_number(large['peak_rss_mib'], 1)} MiB vs {_number(flat['peak_rss_mib'][0], 1)} "
            f"MiB at {flat['products'][0]:,} ({_number(flat['ratio'], 2)}x); correct "
            f"{_correct(large)}"
        )
    if "large" in result:
        large, flat = result["large"], result["rss_flatness"]
        lines.append(
            f"{large['products']:,} products: {_number(large['products_per_second'])} products/s, "
            f"peak RSS {_number(large['peak_rss_mib'], 1)} MiB vs "
            f"{_number(flat['peak_rss_mib'][0], 1)} MiB at {flat['products'][0]:,} "
            f"({_number(flat['ratio'], 2)}x); correct {_correct(large)}"
        )
    out: list[RenderableType] = [table, Text("\n".join(lines))]
    if "profile" in result:
        prof = result["profile"]
        phases_table = Table(
            title=(
                f"pricefleet in process under cProfile: {prof['products']:,} products, "
                f"{prof['wall_seconds']:.1f} s wall, main thread "
                f"{prof['main_thread_cpu_seconds']:.1f} s CPU"
            )
        )
        phases_table.add_column("phase")
        phases_table.add_column("ms/product", justify="right")
        phases_table.add_column("share", justify="right")
        for row in prof["phases"]:
            phases_table.add_row(
                row["phase"],
                _number(row["ms_per_product"], 3),
                f"{100 * (row['share_of_main_thread'] or 0):.0f} %",
            )
        phases_table.add_row(
            "other threads (SQLite), CPU", _number(prof["other_threads_ms_per_product"], 3), "–"
        )
        out.append(phases_table)
    return out


BENCHMARK = Benchmark(
    name="crawl",
    summary="pricefleet crawl against a tuned Scrapy spider on the jsonld shop served by nginx",
    run=run,
    render=render,
)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.crawl [--quick] [--rounds N] [--large] [--fleet] [--no-profile]
    [--no-save]`."""
    from bench.__main__ import console, save

    parser = argparse.ArgumentParser(prog="python -m bench.crawl", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PRODUCTS:,} products")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--large", action="store_true", help=f"also {LARGE_PRODUCTS:,} products (RSS)"
    )
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--fleet",
        action="store_true",
        help="also the embedded profile's worker fleets (SQLite queue and store) of 1 and 2",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="also the cluster profile's worker fleets (Redis queue, PostgreSQL store) of 1 and 2",
    )
    parser.add_argument(
        "--only", nargs="+", default=(), metavar="CRAWLER", help="run only these crawlers"
    )
    parser.add_argument(
        "--keep-export",
        type=Path,
        default=None,
        metavar="DIR",
        help="export into DIR once and reuse it in later runs (the port is kept with it)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=(),
        metavar="N",
        help="also `pricefleet crawl --processes N` for each N (crawler pricefleet-processes-N)",
    )
    parser.add_argument(
        "--before-src",
        type=Path,
        default=None,
        metavar="DIR",
        help="also one `pricefleet crawl` importing pricefleet from DIR (crawler "
        "pricefleet-before: e.g. a `git archive` of the tree before a change)",
    )
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    options = Options(quick=args.quick, rounds=args.rounds)
    started = time.perf_counter()
    result = run_crawls(
        options,
        large=args.large,
        with_profile=not args.no_profile,
        fleet=args.fleet,
        cluster=args.cluster,
        only=args.only,
        keep=args.keep_export,
        processes=args.processes,
        before_src=args.before_src,
    )
    for renderable in render(result):
        console.print(renderable)
    if not args.no_save:
        from bench.__main__ import machine

        record = {
            "benchmark": BENCHMARK.name,
            "seconds": round(time.perf_counter() - started, 1),
            "command": " ".join(["python -m bench.crawl", *(argv or sys.argv[1:])]),
            "options": asdict(options),
            "machine": machine(),
            "result": result,
        }
        console.print(f"results: {save(BENCHMARK, options, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
