"""`python -m bench` (`make bench`): run the benchmarks, print their tables, keep their results.

Each benchmark's results go to `bench/results/<name>-<date>.json` (`<name>-quick-<date>.json`
for `--quick` runs, so a smoke run never overwrites the figures a document quotes), together
with the machine they were measured on.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from bench import Benchmark, Options
from bench.api import BENCHMARK as API
from bench.crawl import BENCHMARK as CRAWL
from bench.demo_shop import BENCHMARK as DEMO_SHOP
from bench.queue import BENCHMARK as QUEUE
from bench.store import BENCHMARK as STORE

#: Every benchmark, in the order `python -m bench` runs them.
BENCHMARKS: dict[str, Benchmark] = {
    benchmark.name: benchmark for benchmark in (DEMO_SHOP, STORE, QUEUE, CRAWL, API)
}
RESULTS = Path(__file__).resolve().parent / "results"

#: Wide enough for the tables when the output is a file or a pipe, not a terminal.
console = Console(width=None if sys.stdout.isatty() else 140)


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPUs, memory, Python, kernel."""
    cpu_model = None
    memory_mib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mib = round(int(line.split()[1]) / 1024)
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "memory_mib": memory_mib,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_before": [round(load, 2) for load in os.getloadavg()],
    }


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run pricefleet's benchmarks; results go to bench/results/.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer requests per round: a smoke run"
    )
    parser.add_argument(
        "--only",
        choices=sorted(BENCHMARKS),
        action="append",
        metavar="NAME",
        help=f"run only this benchmark (repeatable; one of: {', '.join(sorted(BENCHMARKS))})",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement (default: 3)")
    parser.add_argument(
        "--no-save", action="store_true", help="print the tables, write no JSON file"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def save(benchmark: Benchmark, options: Options, record: dict[str, Any]) -> Path:
    """Write one benchmark's results as JSON under RESULTS; returns the file."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    stem = f"{benchmark.name}-quick" if options.quick else benchmark.name
    path = RESULTS / f"{stem}-{date}.json"
    path.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks one after the other; exit status 1 when any of them failed."""
    given = list(sys.argv[1:] if argv is None else argv)
    args = parse(given)
    options = Options(quick=args.quick, rounds=args.rounds)
    chosen = [BENCHMARKS[name] for name in (args.only or BENCHMARKS)]
    failed = []
    for benchmark in chosen:
        console.rule(f"[bold]{benchmark.name}[/]: {benchmark.summary}")
        started = datetime.now(UTC)
        host = machine()
        began = time.perf_counter()
        try:
            result = benchmark.run(options)
        except Exception as exc:
            console.print(f"[red]{benchmark.name} failed:[/] {exc!r}")
            failed.append(benchmark.name)
            continue
        record = {
            "benchmark": benchmark.name,
            "started_utc": started.isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - began, 1),
            "command": " ".join(["python -m bench", *given]),
            "options": asdict(options),
            "machine": host,
            "result": result,
        }
        for renderable in benchmark.render(result):
            console.print(renderable)
        if not args.no_save:
            console.print(f"results: {save(benchmark, options, record)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
