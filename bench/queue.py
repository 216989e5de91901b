"""How fast is the job queue? No-op jobs through `JobQueue` on SQLite and on Redis, side by side.

Per backend, in rounds that alternate which backend goes first:

- **enqueue**: N no-op jobs (`NewJob(site, key, JobKind.PRODUCT, url)`, spread round-robin over
  SITES sites) in calls of 1 and of 100 jobs, one client;
- **lease+ack**: the queue is drained with `lease(batch)` then `ack(leases)`, batch 1 and 100,
  by one client and by CLIENTS concurrent clients (asyncio tasks, each on its own `JobQueue`,
  so its own connection): batch-1 throughput is bound by round trips, not by the server;
- **lease+ack, 2 processes** (Redis only): two OS processes with CLIENTS clients each drain the
  same queue at once, so both cores work; the figure is their combined jobs/s;
- **shared, batch 1**: TASKS tasks (1, and 64 as a worker's tasks or API handlers) share ONE
  `JobQueue` in one process and call `enqueue([job])`, then `lease(1)` + `ack([lease])` until
  drained; concurrent single-job calls share round trips (the queue's group commit, issue 5).
  Each runs in a child process of its own, once with this tree's `pricefleet` and, given
  `--baseline SRC` (e.g. `/work/main/src` before the change), once with that tree's, in the
  same round, alternating which goes first; per-call latency p50/p99 (enqueue; lease + ack of
  one job) and the Redis server's CPU share over the timed window. On Redis also 2 processes ×
  64 tasks. One task alone stays round-trip bound: it has nothing to share round trips with;
- **latency**: a producer enqueues at a steady rate with `time.time()` in each job's payload
  while LATENCY_CONSUMERS consumers lease batches of 100 (sleeping IDLE_POLL when nothing came,
  like a worker's idle poll) and ack; enqueue → lease latency p50/p99.

Leases go through `lease(count)` without `sites` (every known site: a worker without
`--sites`). Throughputs are medians across rounds; targets (issue 5): ≥ 10,000 jobs/s on
Redis, ≥ 3,000 on SQLite. The machine is small and shared, so the load average before and
after is part of the results.

Redis is `PRICEFLEET_BENCH_REDIS` (default `redis://127.0.0.1:6379/0`); every key has the
prefix `pfbench-<hex>` and is deleted at the end (SCAN, never FLUSHDB). The SQLite file lives in
a temporary folder, removed at the end.

    python -m bench.queue            # default run, a few minutes
    python -m bench.queue --quick    # smoke run
    python -m bench.queue --baseline /work/main/src --label coalesce   # before/after
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from bench import Benchmark, Options, percentile
from pricefleet.models import JobKind
from pricefleet.queue import JobQueue, Lease, NewJob

__all__ = ["BENCHMARK", "main", "render", "run"]

REDIS_ENV = "PRICEFLEET_BENCH_REDIS"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
SITES = 5
#: Jobs per measurement with calls of 1 job, and of 100 (full run, quick run).
JOBS_BATCH_1 = 3_000
JOBS_BATCH_100 = 20_000
QUICK_JOBS_BATCH_1 = 300
QUICK_JOBS_BATCH_100 = 2_000
BATCHES = (1, 100)
CLIENTS = 4
PROCESSES = 2
VISIBILITY = 60.0
#: Latency: producer rate (jobs/s) per backend, seconds it produces, consumers and their poll.
LATENCY_RATE = {"sqlite": 500, "redis": 2_000}
LATENCY_SECONDS = 6.0
QUICK_LATENCY_SECONDS = 2.0
LATENCY_CONSUMERS = 2
LATENCY_BATCH = 100
IDLE_POLL = 0.05
PRODUCER_TICK = 0.01
TARGET = {"sqlite": 3_000, "redis": 10_000}
BACKENDS = ("sqlite", "redis")
MEASURE_LIMIT_S = 240.0
CHILD_START_LIMIT_S = 60.0
ROOT = Path(__file__).resolve().parent.parent
#: Shared-queue rows: tasks on one `JobQueue`; jobs per measurement with many tasks (full run,
#: quick run); one task takes JOBS_BATCH_1 (it is slow).
SHARED_TASKS = (1, 64)
JOBS_SHARED = 10_000
QUICK_JOBS_SHARED = 2_000
THIS = "this tree"
BASELINE = "baseline"


# --- helpers ---------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float | None:
    """CPU time process `pid` used so far (all threads), from /proc; None when it cannot tell."""
    try:
        total = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9
    except (OSError, IndexError, ValueError):
        return None


def _load() -> list[float]:
    return [round(load, 2) for load in os.getloadavg()]


def _sites(prefix: str) -> list[str]:
    return [f"{prefix}-s{n}" for n in range(SITES)]


def _jobs(sites: Sequence[str], tag: str, count: int) -> list[NewJob]:
    """`count` no-op jobs, round-robin over `sites`, keys unique per `tag`."""
    return [
        NewJob(
            sites[n % len(sites)],
            f"{tag}-{n}",
            JobKind.PRODUCT,
            f"https://{sites[n % len(sites)]}.bench.invalid/p/{tag}/{n}",
        )
        for n in range(count)
    ]


@dataclass
class Sample:
    """One timed measurement of one round."""

    jobs: int
    seconds: float
    jobs_per_second: float
    client_cpu_percent: float | None
    redis_cpu_percent: float | None = None
    note: str = ""
    #: Shared rows: per call (enqueue) or per job (lease + ack), milliseconds.
    p50_ms: float | None = None
    p99_ms: float | None = None


@dataclass
class Row:
    """One measurement across rounds."""

    backend: str
    operation: str
    batch: int
    clients: int
    processes: int = 1
    #: Which `pricefleet` ran: this tree, or the baseline (shared rows only).
    code: str = THIS
    #: Clients are tasks sharing one `JobQueue` (group commit), not a queue each.
    shared: bool = False
    samples: list[Sample] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        values = [s.jobs_per_second for s in self.samples]
        return round(statistics.median(values), 1) if values else None


class Bench:
    """The queues under test and what they measured."""

    def __init__(self, directory: Path, redis_url: str, prefix: str) -> None:
        self.urls = {"sqlite": f"sqlite:///{directory / 'queue.db'}", "redis": redis_url}
        self.prefix = prefix
        self.sites = _sites(prefix)
        self.redis_pid: int | None = None
        self.anomalies: list[str] = []
        self._tags = 0

    def tag(self) -> str:
        self._tags += 1
        return f"j{self._tags}"

    def open(self, backend: str) -> JobQueue:
        return JobQueue.from_url(self.urls[backend], prefix=self.prefix)

    async def timed(
        self, backend: str, work: Callable[[], Awaitable[int]], note: str = ""
    ) -> Sample:
        """Run `work` (returns the jobs it handled) and time it, with CPU of this process and
        (Redis) of the server."""
        redis_before = (
            _cpu_seconds(self.redis_pid) if backend == "redis" and self.redis_pid else None
        )
        cpu_before = time.process_time()
        began = time.perf_counter()
        async with asyncio.timeout(MEASURE_LIMIT_S):
            jobs = await work()
        seconds = time.perf_counter() - began
        cpu = time.process_time() - cpu_before
        redis_after = _cpu_seconds(self.redis_pid) if redis_before is not None else None
        return Sample(
            jobs=jobs,
            seconds=round(seconds, 3),
            jobs_per_second=round(jobs / seconds, 1),
            client_cpu_percent=round(100 * cpu / seconds, 1),
            redis_cpu_percent=None
            if redis_before is None or redis_after is None
            else round(100 * (redis_after - redis_before) / seconds, 1),
            note=note,
        )

    async def fill(self, backend: str, count: int) -> None:
        """Untimed: queue `count` jobs in calls of 100."""
        queue = self.open(backend)
        try:
            jobs = _jobs(self.sites, self.tag(), count)
            added = 0
            for start in range(0, count, 100):
                added += await queue.enqueue(jobs[start : start + 100])
            if added != count:
                self.anomalies.append(f"{backend}: fill enqueued {added} of {count} new jobs")
        finally:
            await queue.close()

    async def check_empty(self, backend: str, what: str) -> None:
        """After a drain nothing may be queued, delayed or leased."""
        queue = self.open(backend)
        try:
            stats = await queue.stats(self.sites)
        finally:
            await queue.close()
        left = {s: (x.queued, x.delayed, x.leased) for s, x in stats.items() if x.depth}
        if left:
            self.anomalies.append(f"{backend}: after {what}, (queued, delayed, leased) {left}")

    # -- enqueue ---------------------------------------------------------------------------

    async def enqueue(self, backend: str, batch: int, count: int) -> Sample:
        queue = self.open(backend)
        jobs = _jobs(self.sites, self.tag(), count)
        await queue.sites()  # connect before the clock starts

        async def work() -> int:
            added = 0
            for start in range(0, count, batch):
                added += await queue.enqueue(jobs[start : start + batch])
            if added != count:
                self.anomalies.append(
                    f"{backend}: enqueue batch {batch}: {added} new of {count} jobs"
                )
            return added

        try:
            return await self.timed(backend, work)
        finally:
            await queue.close()

    # -- lease + ack -----------------------------------------------------------------------

    async def drain(self, backend: str, batch: int, clients: int, count: int) -> Sample:
        """Time `clients` clients draining `count` queued jobs with lease(batch) + ack."""
        queues = [self.open(backend) for _ in range(clients)]
        for queue in queues:
            await queue.sites()
        lost = 0

        async def client(queue: JobQueue) -> int:
            nonlocal lost
            handled = 0
            while True:
                leases = await queue.lease(batch, visibility=VISIBILITY)
                if not leases:
                    return handled
                acked = await queue.ack(leases)
                lost += len(leases) - acked
                handled += len(leases)

        async def work() -> int:
            return sum(await asyncio.gather(*(client(q) for q in queues)))

        try:
            sample = await self.timed(backend, work)
        finally:
            for queue in queues:
                await queue.close()
        what = f"lease+ack batch {batch} × {clients} clients"
        if sample.jobs != count or lost:
            self.anomalies.append(
                f"{backend}: {what}: leased {sample.jobs} of {count} queued, {lost} acks refused"
            )
        await self.check_empty(backend, what)
        return sample

    def drain_processes(self, backend: str, batch: int, count: int) -> Sample:
        """PROCESSES processes with CLIENTS clients each drain `count` queued jobs at once;
        combined jobs/s from the first start to the last finish."""
        spec = orjson.dumps(
            {"url": self.urls[backend], "prefix": self.prefix, "batch": batch, "clients": CLIENTS}
        ).decode()
        code = "import sys; from bench.queue import _child; sys.exit(_child(sys.argv[1]))"
        children = [
            subprocess.Popen(
                [sys.executable, "-c", code, spec],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        try:
            for child in children:  # each connects, then says so
                assert child.stdout is not None
                if child.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"a drain process failed to start ({child.wait(10)})")
            redis_before = _cpu_seconds(self.redis_pid) if self.redis_pid else None
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            reports = []
            for child in children:
                out, _ = child.communicate(timeout=MEASURE_LIMIT_S)
                if child.returncode != 0:
                    raise RuntimeError(f"a drain process exited with {child.returncode}")
                reports.append(orjson.loads(out.strip().splitlines()[-1]))
            redis_after = _cpu_seconds(self.redis_pid) if redis_before is not None else None
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        began = min(r["began"] for r in reports)
        ended = max(r["ended"] for r in reports)
        seconds = ended - began
        jobs = sum(r["jobs"] for r in reports)
        lost = sum(r["lost"] for r in reports)
        if jobs != count or lost:
            self.anomalies.append(
                f"{backend}: {PROCESSES} processes batch {batch}: leased {jobs} of {count}, "
                f"{lost} acks refused"
            )
        return Sample(
            jobs=jobs,
            seconds=round(seconds, 3),
            jobs_per_second=round(jobs / seconds, 1),
            client_cpu_percent=round(100 * sum(r["cpu"] for r in reports) / seconds, 1),
            redis_cpu_percent=None
            if redis_before is None or redis_after is None
            else round(100 * (redis_after - redis_before) / seconds, 1),
            note="per process jobs: " + "/".join(str(r["jobs"]) for r in reports),
        )

    # -- shared queue, batch 1 ---------------------------------------------------------------

    def shared(
        self, backend: str, operation: str, tasks: int, count: int, processes: int, src: str | None
    ) -> Sample:
        """`processes` child processes, each with `tasks` tasks on one shared `JobQueue`, do
        `operation` ("enqueue": count jobs in all, one per call; "lease+ack": drain the queue
        one job per lease) with `pricefleet` from `src` (None: this tree)."""
        tag = self.tag()
        specs = [
            {
                "url": self.urls[backend],
                "prefix": self.prefix,
                "sites": self.sites,
                "operation": operation,
                "tasks": tasks,
                "count": count // processes + (n < count % processes),
                "tag": f"{tag}p{n}",
                "redis_pid": self.redis_pid if backend == "redis" else None,
            }
            for n in range(processes)
        ]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([src or str(ROOT / "src"), str(ROOT)])
        code = (
            "import sys; from bench.queue import _shared_child; "
            "sys.exit(_shared_child(sys.argv[1]))"
        )
        children = [
            subprocess.Popen(
                [sys.executable, "-c", code, orjson.dumps(spec).decode()],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for spec in specs
        ]
        try:
            for child in children:
                assert child.stdout is not None
                if child.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"a shared-queue process failed to start ({child.wait(10)})")
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            reports = []
            for child in children:
                out, _ = child.communicate(timeout=MEASURE_LIMIT_S)
                if child.returncode != 0:
                    raise RuntimeError(f"a shared-queue process exited with {child.returncode}")
                reports.append(orjson.loads(out.strip().splitlines()[-1]))
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        seconds = max(r["ended"] for r in reports) - min(r["began"] for r in reports)
        jobs = sum(r["jobs"] for r in reports)
        latencies = [x for r in reports for x in r["latencies_ms"]]
        what = f"{src or THIS}: shared {operation} {processes}×{tasks} tasks"
        if operation == "enqueue" and sum(r["added"] for r in reports) != count:
            self.anomalies.append(f"{backend}: {what}: {sum(r['added'] for r in reports)} new")
        if jobs != count or sum(r["lost"] for r in reports):
            self.anomalies.append(
                f"{backend}: {what}: {jobs} of {count} jobs, "
                f"{sum(r['lost'] for r in reports)} acks refused"
            )
        redis = [r for r in reports if r["redis_cpu"] is not None]
        redis_cpu = (
            None
            if len(redis) != len(reports)
            else round(
                100
                * (max(r["redis_cpu"][1] for r in redis) - min(r["redis_cpu"][0] for r in redis))
                / seconds,
                1,
            )
        )
        return Sample(
            jobs=jobs,
            seconds=round(seconds, 3),
            jobs_per_second=round(jobs / seconds, 1),
            client_cpu_percent=round(100 * sum(r["cpu"] for r in reports) / seconds, 1),
            redis_cpu_percent=redis_cpu,
            note=""
            if processes == 1
            else "per process jobs: " + "/".join(str(r["jobs"]) for r in reports),
            p50_ms=round(percentile(latencies, 0.50), 3),
            p99_ms=round(percentile(latencies, 0.99), 3),
        )

    # -- latency ---------------------------------------------------------------------------

    async def latency(self, backend: str, rate: float, seconds: float) -> dict[str, Any]:
        """A producer at `rate` jobs/s for `seconds`; consumers lease, note now − enqueued."""
        producer = self.open(backend)
        consumers = [self.open(backend) for _ in range(LATENCY_CONSUMERS)]
        for queue in (producer, *consumers):
            await queue.sites()
        total = round(rate * seconds)
        tag = self.tag()
        latencies: list[float] = []
        produced = 0
        done = asyncio.Event()
        idle_polls = 0

        async def produce() -> float:
            nonlocal produced
            began = time.monotonic()
            while produced < total:
                due = min(total, int((time.monotonic() - began) * rate) + 1)
                if due > produced:
                    batch = [
                        NewJob(
                            self.sites[n % len(self.sites)],
                            f"{tag}-{n}",
                            JobKind.PRODUCT,
                            f"https://bench.invalid/{tag}/{n}",
                            payload={"t": time.time()},
                        )
                        for n in range(produced, due)
                    ]
                    await producer.enqueue(batch)
                    produced = due
                await asyncio.sleep(PRODUCER_TICK)
            return time.monotonic() - began

        async def consume(queue: JobQueue) -> None:
            nonlocal idle_polls
            while not done.is_set():
                leases: list[Lease] = await queue.lease(LATENCY_BATCH, visibility=VISIBILITY)
                now = time.time()
                if not leases:
                    idle_polls += 1
                    await asyncio.sleep(IDLE_POLL)
                    continue
                latencies.extend(now - lease.payload["t"] for lease in leases)
                await queue.ack(leases)
                if len(latencies) >= total:
                    done.set()

        try:
            async with asyncio.timeout(MEASURE_LIMIT_S):
                tasks = [asyncio.create_task(consume(q)) for q in consumers]
                took = await produce()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), timeout=30)
                done.set()
                await asyncio.gather(*tasks)
        finally:
            for queue in (producer, *consumers):
                await queue.close()
        if len(latencies) != total:
            self.anomalies.append(f"{backend}: latency: leased {len(latencies)} of {total} jobs")
        await self.check_empty(backend, "latency")
        return {
            "jobs": total,
            "leased": len(latencies),
            "rate_asked": rate,
            "rate_produced": round(total / took, 1),
            "idle_polls": idle_polls,
            "p50_ms": round(1000 * percentile(latencies, 0.50), 2),
            "p90_ms": round(1000 * percentile(latencies, 0.90), 2),
            "p99_ms": round(1000 * percentile(latencies, 0.99), 2),
            "max_ms": round(1000 * max(latencies), 2) if latencies else None,
            "latencies_ms": [round(1000 * x, 2) for x in latencies],
        }


def _child(spec_json: str) -> int:
    """A drain process of `drain_processes`: connect, say "ready", wait for "go", drain, and
    print what it did as one JSON line."""
    spec = orjson.loads(spec_json)

    async def go() -> dict[str, Any]:
        queues = [
            JobQueue.from_url(spec["url"], prefix=spec["prefix"]) for _ in range(spec["clients"])
        ]
        for queue in queues:
            await queue.sites()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        lost = 0

        async def client(queue: JobQueue) -> int:
            nonlocal lost
            handled = 0
            while True:
                leases = await queue.lease(spec["batch"], visibility=VISIBILITY)
                if not leases:
                    return handled
                acked = await queue.ack(leases)
                lost += len(leases) - acked
                handled += len(leases)

        cpu = time.process_time()
        began = time.monotonic()
        jobs = sum(await asyncio.gather(*(client(q) for q in queues)))
        ended = time.monotonic()
        cpu = time.process_time() - cpu
        for queue in queues:
            await queue.close()
        return {"jobs": jobs, "lost": lost, "began": began, "ended": ended, "cpu": cpu}

    print(orjson.dumps(asyncio.run(go())).decode(), flush=True)
    return 0


def _shared_child(spec_json: str) -> int:
    """A process of `Bench.shared`: open one `JobQueue`, say "ready", wait for "go", run the
    operation with `tasks` tasks sharing it, print what it did as one JSON line."""
    spec = orjson.loads(spec_json)
    redis_pid = spec["redis_pid"]

    async def go() -> dict[str, Any]:
        queue = JobQueue.from_url(spec["url"], prefix=spec["prefix"])
        await queue.sites()
        jobs = _jobs(spec["sites"], spec["tag"], spec["count"])
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        latencies: list[float] = []
        added = lost = handled = 0
        position = 0

        async def enqueue() -> None:
            nonlocal added, position, handled
            while position < len(jobs):
                job = jobs[position]
                position += 1
                began = time.perf_counter()
                new = await queue.enqueue([job])  # (`added += await` would lose updates)
                added += new
                latencies.append(1000 * (time.perf_counter() - began))
                handled += 1

        async def drain() -> None:
            nonlocal lost, handled
            while True:
                began = time.perf_counter()
                leases = await queue.lease(1, visibility=VISIBILITY)
                if not leases:
                    return
                acked = await queue.ack(leases)
                latencies.append(1000 * (time.perf_counter() - began))
                lost += len(leases) - acked
                handled += len(leases)

        work = enqueue if spec["operation"] == "enqueue" else drain
        redis_before = _cpu_seconds(redis_pid) if redis_pid else None
        cpu = time.process_time()
        began = time.monotonic()
        await asyncio.gather(*(work() for _ in range(spec["tasks"])))
        ended = time.monotonic()
        cpu = time.process_time() - cpu
        redis_after = _cpu_seconds(redis_pid) if redis_pid else None
        await queue.close()
        return {
            "jobs": handled,
            "added": added,
            "lost": lost,
            "began": began,
            "ended": ended,
            "cpu": cpu,
            "redis_cpu": None
            if redis_before is None or redis_after is None
            else [redis_before, redis_after],
            "latencies_ms": latencies,
        }

    print(orjson.dumps(asyncio.run(go())).decode(), flush=True)
    return 0


# --- the benchmark ---------------------------------------------------------------------------


def _redis_pid(url: str) -> int | None:
    """The server's process id when it runs on this machine (for its CPU use), else None."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    return pid if Path(f"/proc/{pid}").exists() else None


def _redis_cleanup(url: str, prefix: str) -> int:
    """Delete every key under `prefix` (SCAN, never FLUSHDB); returns how many went."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        gone = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1_000):
            batch.append(key)
            if len(batch) >= 500:
                gone += int(client.delete(*batch))
                batch = []
        if batch:
            gone += int(client.delete(*batch))
        return gone
    finally:
        client.close()


async def _measure(
    bench: Bench, options: Options, baseline: str | None, shared_only: bool
) -> dict[str, Any]:
    quick = options.quick
    counts = {
        1: QUICK_JOBS_BATCH_1 if quick else JOBS_BATCH_1,
        100: QUICK_JOBS_BATCH_100 if quick else JOBS_BATCH_100,
    }
    latency_seconds = QUICK_LATENCY_SECONDS if quick else LATENCY_SECONDS
    rows: dict[tuple[str, str, int, int, int], Row] = {}
    latency: dict[str, list[dict[str, Any]]] = {b: [] for b in BACKENDS}

    def row(backend: str, operation: str, batch: int, clients: int, processes: int = 1) -> Row:
        key = (backend, operation, batch, clients, processes)
        if key not in rows:
            rows[key] = Row(backend, operation, batch, clients, processes)
        return rows[key]

    shared_rows: dict[tuple[str, str, int, int, str], Row] = {}
    shared_count = QUICK_JOBS_SHARED if quick else JOBS_SHARED
    codes: list[tuple[str, str | None]] = [(THIS, None)]
    if baseline:
        codes.append((BASELINE, baseline))

    def shared(backend: str, tasks: int, processes: int, code: str, src: str | None) -> None:
        for operation in ("enqueue", "lease+ack"):
            key = (backend, operation, tasks, processes, code)
            if key not in shared_rows:
                shared_rows[key] = Row(backend, operation, 1, tasks, processes, code, shared=True)
            count = counts[1] if tasks == 1 else shared_count
            sample = bench.shared(backend, operation, tasks, count, processes, src)
            shared_rows[key].samples.append(sample)

    for number in range(options.rounds):
        order = BACKENDS if number % 2 == 0 else tuple(reversed(BACKENDS))
        code_order = codes if number % 2 == 0 else list(reversed(codes))
        for tasks in SHARED_TASKS:
            for backend in order:
                for code, src in code_order:
                    shared(backend, tasks, 1, code, src)
                    await bench.check_empty(backend, f"{code}: shared {tasks} tasks")
        for code, src in code_order:
            shared("redis", SHARED_TASKS[-1], PROCESSES, code, src)
            await bench.check_empty("redis", f"{code}: shared {PROCESSES} processes")
        if shared_only:
            continue
        for batch in BATCHES:
            count = counts[batch]
            for backend in order:
                # Enqueue timed, then the same jobs drained by one client.
                sample = await bench.enqueue(backend, batch, count)
                row(backend, "enqueue", batch, 1).samples.append(sample)
                sample = await bench.drain(backend, batch, 1, count)
                row(backend, "lease+ack", batch, 1).samples.append(sample)
            for backend in order:
                await bench.fill(backend, count)
                sample = await bench.drain(backend, batch, CLIENTS, count)
                row(backend, "lease+ack", batch, CLIENTS).samples.append(sample)
            await bench.fill("redis", count)
            sample = await asyncio.to_thread(bench.drain_processes, "redis", batch, count)
            await bench.check_empty("redis", f"{PROCESSES} processes batch {batch}")
            row("redis", "lease+ack", batch, CLIENTS, PROCESSES).samples.append(sample)
        for backend in order:
            latency[backend].append(
                await bench.latency(backend, LATENCY_RATE[backend], latency_seconds)
            )
    return {"rows": list(rows.values()) + list(shared_rows.values()), "latency": latency}


def _latency_summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    pooled = [x for r in rounds for x in r["latencies_ms"]]
    return {
        "rate_asked": rounds[0]["rate_asked"],
        "consumers": LATENCY_CONSUMERS,
        "batch": LATENCY_BATCH,
        "idle_poll_seconds": IDLE_POLL,
        "median_of_rounds": {
            key: round(statistics.median(r[key] for r in rounds), 2)
            for key in ("p50_ms", "p90_ms", "p99_ms", "rate_produced")
        },
        "pooled": {
            "jobs": len(pooled),
            "p50_ms": round(percentile(pooled, 0.50), 2),
            "p99_ms": round(percentile(pooled, 0.99), 2),
            "max_ms": round(max(pooled), 2) if pooled else None,
        },
        "rounds": [{k: v for k, v in r.items() if k != "latencies_ms"} for r in rounds],
    }


def run(options: Options, baseline: str | None = None, shared_only: bool = False) -> dict[str, Any]:
    """Measure both backends in alternating rounds; clean up Redis keys and the SQLite file.
    `baseline`: another tree's `src` to measure the shared-queue rows with too."""
    redis_url = os.environ.get(REDIS_ENV, DEFAULT_REDIS)
    prefix = f"pfbench-{secrets.token_hex(4)}"
    load_before = _load()
    began = time.perf_counter()
    directory = Path(tempfile.mkdtemp(prefix="pricefleet-bench-queue-"))
    bench = Bench(directory, redis_url, prefix)
    try:
        bench.redis_pid = _redis_pid(redis_url)
        measured = asyncio.run(_measure(bench, options, baseline, shared_only))
    finally:
        left = _redis_cleanup(redis_url, prefix)
        shutil.rmtree(directory, ignore_errors=True)
    rows: list[Row] = measured["rows"]
    by_key = {
        (r.backend, r.operation, r.batch, r.clients, r.processes, r.code, r.shared): r for r in rows
    }
    out_rows = []
    for r in rows:
        sqlite_twin = by_key.get(
            ("sqlite", r.operation, r.batch, r.clients, r.processes, r.code, r.shared)
        )
        base_twin = by_key.get(
            (r.backend, r.operation, r.batch, r.clients, r.processes, BASELINE, r.shared)
        )
        out_rows.append(
            {
                "backend": r.backend,
                "operation": r.operation,
                "batch": r.batch,
                "clients": r.clients,
                "processes": r.processes,
                "code": r.code,
                "shared_queue": r.shared,
                "jobs_per_round": r.samples[0].jobs if r.samples else 0,
                "median_jobs_per_second": r.median,
                "target_jobs_per_second": TARGET[r.backend],
                "meets_target": r.median is not None and r.median >= TARGET[r.backend],
                "redis_over_sqlite": round(r.median / sqlite_twin.median, 2)
                if r.backend == "redis" and sqlite_twin and r.median and sqlite_twin.median
                else None,
                "median_client_cpu_percent": _median_of(r.samples, "client_cpu_percent"),
                "median_redis_cpu_percent": _median_of(r.samples, "redis_cpu_percent"),
                "median_p50_ms": _median_of(r.samples, "p50_ms", 3),
                "median_p99_ms": _median_of(r.samples, "p99_ms", 3),
                "over_baseline": round(r.median / base_twin.median, 2)
                if r.code == THIS and base_twin and r.median and base_twin.median
                else None,
                "rounds": [asdict(s) for s in r.samples],
            }
        )
    return {
        "benchmark": "queue",
        "parameters": {
            "rounds": options.rounds,
            "quick": options.quick,
            "sites": SITES,
            "jobs_batch_1": QUICK_JOBS_BATCH_1 if options.quick else JOBS_BATCH_1,
            "jobs_batch_100": QUICK_JOBS_BATCH_100 if options.quick else JOBS_BATCH_100,
            "clients": CLIENTS,
            "processes": PROCESSES,
            "visibility": VISIBILITY,
            "lease_sites": "all known (sites=None)",
            "latency_seconds": QUICK_LATENCY_SECONDS if options.quick else LATENCY_SECONDS,
            "latency_rate": LATENCY_RATE,
            "redis_url": redis_url,
            "key_prefix": prefix,
            "targets": TARGET,
            "shared_tasks": SHARED_TASKS,
            "jobs_shared": QUICK_JOBS_SHARED if options.quick else JOBS_SHARED,
            "baseline_src": baseline,
            "shared_only": shared_only,
        },
        "load_average_before": load_before,
        "load_average_after": _load(),
        "seconds": round(time.perf_counter() - began, 1),
        "throughput": out_rows,
        "latency": {b: _latency_summary(r) for b, r in measured["latency"].items() if r},
        "anomalies": bench.anomalies,
        "redis_keys_deleted_at_end": left,
    }


def _median_of(samples: Sequence[Sample], key: str, digits: int = 1) -> float | None:
    values = [getattr(s, key) for s in samples if getattr(s, key) is not None]
    return round(statistics.median(values), digits) if values else None


def _number(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def render(result: dict[str, Any]) -> list[RenderableType]:
    """Throughput table, latency table, then load, targets and anomalies."""
    parameters = result["parameters"]
    table = Table(
        title=(
            f"Job queue, no-op jobs — median of {parameters['rounds']} rounds, "
            f"{parameters['sites']} sites"
        )
    )
    for column in ("backend", "operation", "batch", "clients", "jobs"):
        table.add_column(column, justify="left" if column in {"backend", "operation"} else "right")
    table.add_column("jobs/s", justify="right")
    table.add_column("jobs/s per round", justify="right")
    table.add_column("target", justify="right")
    table.add_column("redis ÷ sqlite", justify="right")
    table.add_column("client CPU", justify="right")
    table.add_column("redis CPU", justify="right")
    for row in result["throughput"]:
        if row.get("shared_queue"):
            continue
        clients = (
            f"{row['processes']}×{row['clients']}" if row["processes"] > 1 else str(row["clients"])
        )
        met = "met" if row["meets_target"] else "[red]not met[/]"
        table.add_row(
            row["backend"],
            row["operation"],
            str(row["batch"]),
            clients,
            _number(row["jobs_per_round"]),
            _number(row["median_jobs_per_second"]),
            " / ".join(_number(r["jobs_per_second"]) for r in row["rounds"]),
            f"{_number(row['target_jobs_per_second'])} {met}",
            _number(row["redis_over_sqlite"], 2) + ("×" if row["redis_over_sqlite"] else ""),
            f"{_number(row['median_client_cpu_percent'])} %",
            "–"
            if row["median_redis_cpu_percent"] is None
            else f"{_number(row['median_redis_cpu_percent'])} %",
        )
    shared = Table(
        title="Batch 1, tasks sharing one JobQueue (group commit) — median of rounds; "
        "latency per call (enqueue) or per job (lease + ack)"
    )
    for column in ("backend", "operation", "tasks", "code", "jobs/s", "jobs/s per round"):
        shared.add_column(column, justify="left" if column in {"backend", "operation"} else "right")
    for column in ("÷ baseline", "target", "p50 ms", "p99 ms", "client CPU", "redis CPU"):
        shared.add_column(column, justify="right")
    for row in result["throughput"]:
        if not row.get("shared_queue"):
            continue
        met = "met" if row["meets_target"] else "[red]not met[/]"
        shared.add_row(
            row["backend"],
            row["operation"],
            f"{row['processes']}×{row['clients']}" if row["processes"] > 1 else str(row["clients"]),
            row["code"],
            _number(row["median_jobs_per_second"]),
            " / ".join(_number(r["jobs_per_second"]) for r in row["rounds"]),
            _number(row["over_baseline"], 2) + ("×" if row["over_baseline"] else ""),
            f"{_number(row['target_jobs_per_second'])} {met}",
            _number(row["median_p50_ms"], 2),
            _number(row["median_p99_ms"], 2),
            f"{_number(row['median_client_cpu_percent'])} %",
            "–"
            if row["median_redis_cpu_percent"] is None
            else f"{_number(row['median_redis_cpu_percent'])} %",
        )
    latency = Table(title="Queue latency, enqueue → lease (median of rounds; pooled)")
    for column in ("backend", "rate asked", "rate made", "p50 ms", "p90 ms", "p99 ms"):
        latency.add_column(column, justify="left" if column == "backend" else "right")
    latency.add_column("pooled p50 / p99 / max ms", justify="right")
    for backend, summary in result["latency"].items():
        if not summary:
            continue
        median, pooled = summary["median_of_rounds"], summary["pooled"]
        latency.add_row(
            backend,
            _number(summary["rate_asked"]),
            _number(median["rate_produced"]),
            _number(median["p50_ms"], 1),
            _number(median["p90_ms"], 1),
            _number(median["p99_ms"], 1),
            f"{_number(pooled['p50_ms'], 1)} / {_number(pooled['p99_ms'], 1)} / "
            f"{_number(pooled['max_ms'], 1)}",
        )
    lines = [
        "client CPU: this process (all threads; for 2×N rows both drain processes) in % of one "
        "core; redis CPU: the redis-server process. 2 cores in all.",
        f"latency: {LATENCY_CONSUMERS} consumers leasing batches of {LATENCY_BATCH}, "
        f"{IDLE_POLL * 1000:.0f} ms sleep when a lease came back empty.",
        f"load average before {result['load_average_before']}, after "
        f"{result['load_average_after']} (1, 5, 15 min) — the machine was shared.",
        f"run took {result['seconds']:.0f} s; redis keys deleted at the end: "
        f"{result['redis_keys_deleted_at_end']}",
    ]
    anomalies = result["anomalies"]
    lines.append(
        "anomalies: none" if not anomalies else "anomalies:\n  " + "\n  ".join(anomalies[:20])
    )
    return [table, shared, latency, Text("\n".join(lines))]


BENCHMARK = Benchmark(
    name="queue",
    summary="no-op jobs/s through the job queue (enqueue, lease+ack) and enqueue→lease latency",
    run=run,
    render=render,
)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.queue [--quick] [--rounds N] [--no-save]`: this benchmark alone, saved
    like `python -m bench` saves its results."""
    from bench.__main__ import console, machine, save

    parser = argparse.ArgumentParser(
        prog="python -m bench.queue", description="Run the job queue benchmark."
    )
    parser.add_argument("--quick", action="store_true", help="fewer jobs: a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement")
    parser.add_argument("--no-save", action="store_true", help="print the tables only")
    parser.add_argument(
        "--baseline",
        metavar="SRC",
        help="another tree's src folder (e.g. /work/main/src): shared-queue rows run with it too",
    )
    parser.add_argument(
        "--shared-only", action="store_true", help="only the shared-queue (batch 1) rows"
    )
    parser.add_argument("--label", help="results file queue-LABEL-DATE.json (keeps others)")
    given = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(given)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    options = Options(quick=args.quick, rounds=args.rounds)
    console.rule(f"[bold]{BENCHMARK.name}[/]: {BENCHMARK.summary}")
    started = datetime.now(UTC)
    host = machine()
    began = time.perf_counter()
    result = run(options, args.baseline, args.shared_only)
    record = {
        "benchmark": BENCHMARK.name,
        "started_utc": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - began, 1),
        "command": " ".join(["python -m bench.queue", *given]),
        "options": asdict(options),
        "machine": host,
        "result": result,
    }
    for renderable in BENCHMARK.render(result):
        console.print(renderable)
    if not args.no_save:
        if args.label:
            path = ROOT / "bench" / "results" / f"queue-{args.label}-{started:%Y-%m-%d}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n")
            console.print(f"results: {path}")
        else:
            console.print(f"results: {save(BENCHMARK, options, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
