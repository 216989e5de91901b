"""Ingest with several writer processes at once, as a fleet of workers writes: sightings/s of all.

`bench.store` times one writer, batch by batch. A deployment writes from several processes
(each queue worker flushes its own batches; `pricefleet crawl --processes N` writes from N),
each shop's batches from one of them. This runs the store benchmark's catalogue (`bench.store`'s
generator: 10 shops, batches of one shop's consecutive products) through `Store.ingest` from
P processes at once, process k writing the shops with index ≡ k (mod P), into one fresh
database per backend and P. Each process makes its batches before the day starts (untimed);
a barrier starts them together; a day's rate is its sightings over the time from that start to
the last process's end. Between days the parent runs `VACUUM ANALYZE` (PostgreSQL) untimed,
as `bench.store` does.

    python -m bench.store_writers --per-site 4000 --days 3 --change-rate 0.1 --processes 1 2 3

Results: `bench/results/store-writers-<tag>-<date>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import asyncpg

from bench.store import DEFAULT_POSTGRES, Catalogue, Plan
from pricefleet.store import Store

RESULTS = Path(__file__).resolve().parent / "results"
SITES = 10


def _plan(args: argparse.Namespace) -> Plan:
    return Plan(1.0, False, SITES, args.per_site, args.days, 0, args.batch, args.change_rate)


async def _prepare(url: str, catalogue: Catalogue) -> None:
    store = Store.from_url(url)
    try:
        await store.upgrade()
        await store.upsert_sites(catalogue.sites)
        ensure = getattr(store, "ensure_partitions", None)
        if ensure is not None:
            now, first = datetime.now(UTC), catalogue.first_day
            months = (now.year * 12 + now.month) - (first.year * 12 + first.month)
            await ensure(today=first.date(), months_ahead=months + 1)
    finally:
        await store.close()


def _writer(
    url: str,
    args: argparse.Namespace,
    share: int,
    processes: int,
    start: Barrier,
    done: Barrier,
    out: Any,
) -> None:
    """One writer process: every day, its shops' batches, timed from the common start."""

    async def run() -> None:
        catalogue = Catalogue(_plan(args))
        sites = [site.id for site in catalogue.sites]
        mine = {sites[i] for i in range(len(sites)) if i % processes == share}
        store = Store.from_url(url)
        try:
            for day in range(args.days):
                batches = [
                    batch
                    for _, batch in catalogue.day_batches(day)
                    if batch[0].product.site_id in mine
                ]
                start.wait()
                began = time.time()
                for batch in batches:
                    await store.ingest(batch)
                out.put((day, share, began, time.time(), sum(map(len, batches))))
                done.wait()
        finally:
            await store.close()

    asyncio.run(run())


async def _vacuum(url: str) -> None:
    if url.startswith("postgresql"):
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()


async def _database(server: str, name: str, drop: bool = False) -> None:
    conn = await asyncpg.connect(f"{server.rstrip('/')}/postgres")
    try:
        if drop:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _one(url: str, args: argparse.Namespace, processes: int) -> dict[str, Any]:
    asyncio.run(_prepare(url, Catalogue(_plan(args))))
    context = multiprocessing.get_context("spawn")
    start, done = context.Barrier(processes + 1), context.Barrier(processes + 1)
    out = context.Queue()
    workers = [
        context.Process(target=_writer, args=(url, args, k, processes, start, done, out))
        for k in range(processes)
    ]
    for worker in workers:
        worker.start()
    days: list[dict[str, Any]] = []
    try:
        for day in range(args.days):
            start.wait(timeout=600)
            reports = [out.get(timeout=3600) for _ in range(processes)]
            done.wait(timeout=60)
            began = min(r[2] for r in reports)
            wall = max(r[3] for r in reports) - began
            sightings = sum(r[4] for r in reports)
            days.append(
                {
                    "day": day,
                    "sightings": sightings,
                    "seconds": round(wall, 3),
                    "sightings_per_s": round(sightings / wall),
                    "per_process_seconds": [round(r[3] - r[2], 3) for r in sorted(reports)],
                    "load_average": round(os.getloadavg()[0], 2),
                }
            )
            print(f"  day {day}: {days[-1]['sightings_per_s']:,} sightings/s", flush=True)
            asyncio.run(_vacuum(url))
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    later = [d["sightings_per_s"] for d in days[1:]]
    return {
        "processes": processes,
        "days": days,
        "day_0_sightings_per_s": days[0]["sightings_per_s"],
        "later_days_sightings_per_s_median": round(statistics.median(later)) if later else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_writers")
    parser.add_argument("--per-site", type=int, default=4000, help="products per shop (10 shops)")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--change-rate", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--tag", default="run")
    args = parser.parse_args(argv)
    server = os.environ.get("PRICEFLEET_BENCH_POSTGRES", DEFAULT_POSTGRES)
    started = datetime.now(UTC)
    result: dict[str, Any] = {
        "benchmark": "store-writers",
        "parameters": dict(vars(args)),
        "started": started.isoformat(timespec="seconds"),
        "load_average_before": os.getloadavg(),
        "cpus": os.cpu_count(),
        "runs": [],
    }
    folder = Path(tempfile.mkdtemp(prefix="pricefleet-bench-writers-"))
    for processes in args.processes:
        for backend in args.backends:
            print(f"{backend}, {processes} writer process(es)", flush=True)
            if backend == "sqlite":
                url = f"sqlite:///{folder}/writers-{processes}.db"
                run = _one(url, args, processes)
            else:
                name = f"pfbench_writers_{secrets.token_hex(3)}"
                asyncio.run(_database(server, name))
                try:
                    run = _one(f"{server.rstrip('/')}/{name}", args, processes)
                finally:
                    asyncio.run(_database(server, name, drop=True))
            result["runs"].append({"backend": backend, **run})
    result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"store-writers-{args.tag}-{started:%Y-%m-%d}.json"
    path.write_text(json.dumps(result, indent=1))
    for run in result["runs"]:
        later = run["later_days_sightings_per_s_median"]
        print(
            f"{run['backend']:10s} {run['processes']} process(es): "
            f"day 0 {run['day_0_sightings_per_s']:,}/s, later days {later}/s"
        )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
