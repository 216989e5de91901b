"""Constant-rate load tests alone, on the API benchmark's kept database: the cached product GET
at 1,000 requests/s (issue 6: p99 < 25 ms), 300 cached searches at the same rate and uncached
searches at a few lower rates (search p95 < 50 ms), without the wrk rounds of `bench.api`
(which take ten minutes and load the machine). Build the database first with
`PRICEFLEET_BENCH_API_KEEP_DB=1 python -m bench --only api` (or `--quick`, then pass
`--products 20000`), then:

    python -m bench.api_rate [--rounds 2] [--search-rates 10 20] [--gc-log DIR]

One `pricefleet api --workers 2` (cluster profile: the database, Redis under its own prefix),
every product URL warmed four times (each search twice), then `pricefleet loadtest` for 30 s
per load. With `--gc-log DIR` each server process logs its garbage collections there
(generation, ms) through a `sitecustomize` hook, to tell collector pauses from the machine's
own noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.api import (
    DEFAULT_POSTGRES,
    DEFAULT_REDIS,
    POSTGRES_ENV,
    PYTHON,
    REDIS_ENV,
    WARM_PRODUCTS,
    _api_key,
    _loadtest,
    _start,
    _stop,
    _warm,
    server_env,
)
from bench.api_data import Catalogue
from bench.queue import _redis_cleanup

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
_GC_HOOK = """\
import atexit, gc, os, time
_log, _start = [], [0.0]
def _dump():
    with open(os.path.join({folder!r}, f"{{os.getpid()}}.log"), "w") as f:
        f.writelines(f"{{t:.3f}} {{g}} {{ms:.2f}}\\n" for t, g, ms in _log)
def _cb(phase, info):
    if phase == "start":
        _start[0] = time.perf_counter()
        return
    _log.append((time.time(), info["generation"], 1000 * (time.perf_counter() - _start[0])))
    if info["generation"] == 2 or len(_log) % 50 == 0:  # a server's workers may skip atexit
        _dump()
gc.callbacks.append(_cb)
atexit.register(_dump)
"""


def _gc_summary(folder: Path) -> dict[str, Any]:
    """Per process: collections by generation and the longest full ones (ms)."""
    out: dict[str, Any] = {}
    for log in sorted(folder.glob("*.log")):
        rows = [line.split() for line in log.read_text().splitlines()]
        full = sorted((float(ms) for _, g, ms in rows if g == "2"), reverse=True)
        out[log.stem] = {
            "collections": {g: sum(1 for r in rows if r[1] == g) for g in ("0", "1", "2")},
            "full_ms_longest": [round(ms, 1) for ms in full[:5]],
        }
    return out


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    total = report["total"]
    return {
        "rate": total["rate"],
        "sent_per_second": total["sent_per_second"],
        "errors": total["errors"],
        "latency_ms": total["latency_ms"],
        "generator_lag_p99_ms": total["lag_ms"]["p99"],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    database = f"pfbench_api_{args.products}"
    dsn = f"{os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES).rstrip('/')}/{database}"
    redis_url = os.environ.get(REDIS_ENV, DEFAULT_REDIS)
    prefix = f"pfrate{secrets.token_hex(3)}"
    folder = Path(tempfile.mkdtemp(prefix="pricefleet-bench-rate-"))
    catalogue = Catalogue(args.products)
    key = asyncio.run(_api_key(dsn))
    path: list[str] = []
    if args.gc_log:
        hook = folder / "hook"
        hook.mkdir()
        args.gc_log.mkdir(parents=True, exist_ok=True)
        (hook / "sitecustomize.py").write_text(_GC_HOOK.format(folder=str(args.gc_log)))
        path.append(str(hook))
    env = server_env(dsn, redis_url, prefix, path)
    out: dict[str, Any] = {
        "products": args.products,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "loads": {},
    }
    server = _start(
        "api", [PYTHON, "-m", "pricefleet", "api", "--workers", "2"], env, folder, "/healthz"
    )
    try:

        def cached(kind: str, paths: list[str], passes: int) -> None:
            """Warm `paths`, then load them at the rate for `rounds` rounds."""
            out[f"warmed_{kind}s"] = dict(asyncio.run(_warm(server.url, paths, key, passes)))
            listed = folder / f"{kind}s.txt"
            listed.write_text("\n".join(paths) + "\n")
            for number in range(args.rounds):
                report = _loadtest(server.url, listed, key, args.rate, args.seconds, {})
                out["loads"][f"{kind}, cached, {args.rate:g}/s, #{number + 1}"] = _summary(report)

        cached(
            "product", catalogue.product_paths(min(WARM_PRODUCTS, args.products // 2), seed=1), 4
        )
        searches = catalogue.search_paths(300, seed=3)
        cached("search", searches, 2)
        for rate in args.search_rates:
            nonce = secrets.token_hex(3)  # never asked before: every search a miss
            uncached = folder / f"uncached-{rate:g}.txt"
            uncached.write_text(
                "\n".join(f"{p}&_n={nonce}{n}" for n, p in enumerate(searches * 20)) + "\n"
            )
            report = _loadtest(server.url, uncached, key, rate, args.seconds, {})
            out["loads"][f"search, uncached, {rate:g}/s"] = _summary(report)
    finally:
        _stop(server)
        for start in (prefix, f"_tag:{prefix}"):
            _redis_cleanup(redis_url, start)
        shutil.rmtree(folder, ignore_errors=True)
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.gc_log:
        time.sleep(1)  # the workers' exit hooks write their logs
        out["gc"] = _gc_summary(args.gc_log)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_rate")
    parser.add_argument("--products", type=int, default=1_000_000, help="the kept catalogue")
    parser.add_argument("--rate", type=float, default=1_000.0, help="cached product GETs/s")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--search-rates", type=float, nargs="*", default=[10.0, 20.0])
    parser.add_argument("--gc-log", type=Path, default=None, help="log collections here")
    args = parser.parse_args(argv)
    began = time.strftime("%Y-%m-%dT%H%M", time.gmtime())
    result = {"started_utc": began, "command": sys.argv, **run(args)}
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / f"api-rate-{began}.json"
    target.write_text(json.dumps(result, indent=1))
    for name, load in result["loads"].items():
        lat = load["latency_ms"]
        print(
            f"{name:34} p50 {lat['p50']:7.1f}  p95 {lat['p95']:7.1f}  p99 {lat['p99']:7.1f}  "
            f"max {lat['max']:7.1f} ms  errors {load['errors']}  "
            f"lag p99 {load['generator_lag_p99_ms']:.1f} ms  load {load['load_average'][0]}"
        )
    for pid, gc_stats in result.get("gc", {}).items():
        print(f"gc {pid}: {gc_stats}")
    print(f"results: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
