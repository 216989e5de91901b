"""Peak RSS of `pricefleet crawl` and of a queue worker at two shop sizes, this tree against
another source tree (`--old-src`), on exports already served (exporting 200,000 products takes
10–30 minutes, so they are made once: `python -m pricefleet demo-shop export`, served by nginx
as `bench/crawl.py` does).

Each crawl is `bench.crawl.crawl_pricefleet` or `crawl_fleet` (one worker): the real CLI in its
own process under `bench/child.py`, every product compared with the truth. The small shop is
crawled in interleaved rounds (this tree, then the other, order alternating), the large one once
per tree, then once by one worker of this tree.

    python -m bench.crawl_rss --small URL TRUTH --large URL TRUTH --old-src DIR --out FILE
        [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.__main__ import machine
from bench.crawl import Crawl, crawl_fleet, crawl_pricefleet, read_truth, write_recipe

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class _Served:
    """What the crawl functions read of the nginx `Server`: its URL and pids (none here: the
    export was served by another process, so nginx's CPU is not measured)."""

    url: str

    def pids(self) -> list[int]:
        return []


@contextlib.contextmanager
def _src(src: Path) -> Iterator[None]:
    """Crawls started inside run with `src` first on their PYTHONPATH."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT)])
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous


def main(argv: Sequence[str] | None = None) -> int:
    """Crawl, print one line per crawl, save everything to bench/results/."""
    parser = argparse.ArgumentParser(prog="python -m bench.crawl_rss", description=__doc__)
    parser.add_argument("--small", nargs=2, metavar=("URL", "TRUTH"), required=True)
    parser.add_argument("--large", nargs=2, metavar=("URL", "TRUTH"), required=True)
    parser.add_argument("--old-src", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    trees = {"this": ROOT / "src", "old": args.old_src.resolve()}
    scratch = Path(tempfile.mkdtemp(prefix="pricefleet-bench-rss-"))
    recipe = scratch / "demo-jsonld.yaml"
    write_recipe(recipe)
    crawls: list[dict[str, Any]] = []

    def record(tree: str, kind: str, done: Crawl) -> None:
        crawls.append({"tree": tree, "kind": kind, **asdict(done)})
        print(
            f"{tree:4} {kind:14} {done.products:7,} products {done.products_per_second:6.0f}/s "
            f"CPU {done.cpu_ms_per_product:.2f} ms/product peak RSS {done.peak_rss_mib:6.1f} MiB "
            f"correct {done.correct:,}/{done.expected:,} {time.strftime('%H:%M:%S')}",
            flush=True,
        )

    began = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    before = machine()
    for size, (url, truth_file) in (("small", args.small), ("large", args.large)):
        truth = read_truth(Path(truth_file))
        server: Any = _Served(url)  # duck-typed for bench.demo_shop.Server
        rounds = args.rounds if size == "small" else 1
        for number in range(1, rounds + 1):
            order = ["this", "old"] if number % 2 else ["old", "this"]
            for tree in order:
                with _src(trees[tree]):
                    done = crawl_pricefleet(number, scratch, recipe, server, truth)
                record(tree, f"crawl-{size}", done)
        with _src(trees["this"]):
            done = crawl_fleet(0, scratch, recipe, server, truth, workers=1)
        record("this", f"worker-{size}", done)
    result = {
        "benchmark": "crawl-rss",
        "command": " ".join(["python -m bench.crawl_rss", *(argv or sys.argv[1:])]),
        "began": began,
        "ended": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "crawls": crawls,
    }
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
