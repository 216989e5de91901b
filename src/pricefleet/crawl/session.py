"""What `pricefleet crawl` and `pricefleet demo` do: crawl with live progress, then a summary.

Kept out of the CLI so that the CLI stays a thin layer of option parsing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pricefleet.crawl.engine import WHOLE, CrawlReport, Failure, Share
from pricefleet.crawl.runner import crawl_sites
from pricefleet.errors import ConfigError, PricefleetError
from pricefleet.sites.schema import Recipe
from pricefleet.store.base import Store
from pricefleet.workers.children import gated_output, kill_gated, open_gate

__all__ = [
    "crawl_share",
    "crawl_with_processes",
    "crawl_with_progress",
    "report_json",
    "start_demo_shops",
    "summary_table",
]


async def crawl_with_progress(
    recipes: Sequence[Recipe],
    store: Store,
    console: Console,
    *,
    share: Share = WHOLE,
    upgrade: bool = True,
) -> list[CrawlReport]:
    """Crawl the sites with one live progress line each (this process's `share` of them)."""
    if upgrade:
        await store.upgrade()
    with Progress(
        TextColumn("{task.fields[site]:<16}"),
        BarColumn(),
        TextColumn("{task.fields[pages]:>7} pages {task.fields[products]:>7} products"),
        TextColumn("{task.fields[failures]:>5} failures"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks = {
            r.id: progress.add_task(r.id, total=None, site=r.id, pages=0, products=0, failures=0)
            for r in recipes
        }

        def update(report: CrawlReport) -> None:
            progress.update(
                tasks[report.site_id],
                pages=report.pages,
                products=report.products + report.not_modified + report.unchanged,
                failures=len(report.failures),
            )

        reports = await crawl_sites(recipes, store, on_progress=update, share=share)
        for report in reports:
            update(report)
            progress.update(tasks[report.site_id], total=1, completed=1)
    return reports


async def crawl_with_processes(
    recipe: Recipe, store: Store, console: Console, children: Sequence[subprocess.Popen[bytes]]
) -> CrawlReport:
    """Crawl one site with several processes, so that a crawl uses several cores: this one
    (share 0, with the progress line) and `children`, `pricefleet crawl … --share I/N` started
    by `workers.children.start_gated` (I from 1), each crawling the product pages whose URL
    hashes to its share, with its share of the site's politeness, into the same store. The
    store is migrated once, then the children are let go. One report for the whole crawl; a
    child that fails fails the crawl; the children are killed if this process fails."""
    processes = len(children) + 1
    try:
        await store.upgrade()
        open_gate(children)
        (report,) = await crawl_with_progress(
            [recipe], store, console, share=Share(0, processes), upgrade=False
        )
        outputs = [await asyncio.to_thread(gated_output, child) for child in children]
    finally:
        kill_gated(children)
    for index, (child, out) in enumerate(zip(children, outputs, strict=True), 1):
        if child.returncode != 0:
            raise PricefleetError(
                f"crawl process {index}/{processes} of {recipe.id} exited with "
                f"{child.returncode}; its errors are above"
            )
        _add(report, orjson.loads(out.splitlines()[-1]))
    report.finished = time.monotonic()
    return report


async def crawl_share(recipe: Recipe, store: Store, share: Share) -> str:
    """One child of `crawl_with_processes`: its share of the site, no progress line; its
    report as one line of JSON (`report_json`)."""
    (report,) = await crawl_sites([recipe], store, share=share)
    return report_json(report)


def report_json(report: CrawlReport) -> str:
    """A crawl report as one line of JSON, for the process that started this one."""
    counts = ("pages", "products", "observations", "not_modified", "unchanged")
    record: dict[str, Any] = {name: getattr(report, name) for name in counts}
    record["failures"] = [dataclasses.astuple(failure) for failure in report.failures]
    return orjson.dumps(record).decode()


def _add(report: CrawlReport, other: dict[str, Any]) -> None:
    report.pages += other["pages"]
    report.products += other["products"]
    report.observations += other["observations"]
    report.not_modified += other["not_modified"]
    report.unchanged += other["unchanged"]
    report.failures.extend(Failure(*failure) for failure in other["failures"])


def summary_table(reports: Sequence[CrawlReport]) -> Table:
    """One row per site: products, history rows, unchanged pages, failures, speed."""
    table = Table(title="crawl summary")
    for column in ("site", "pages", "products", "observations", "unchanged", "failures"):
        table.add_column(column, justify="left" if column == "site" else "right")
    table.add_column("products/s", justify="right")
    for r in reports:
        table.add_row(
            r.site_id,
            str(r.pages),
            str(r.products),
            str(r.observations),
            str(r.not_modified + r.unchanged),
            str(len(r.failures)),
            f"{r.products_per_second:,.0f}",
        )
    return table


def start_demo_shops(port: int, products: int, log: Path) -> subprocess.Popen[bytes]:
    """The demo shops in their own process (so they use the other core), ready to serve."""
    command = [sys.executable, "-m", "pricefleet", "demo-shop", "--port", str(port)]
    command += ["--products", str(products)]
    with log.open("ab") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(f"the demo shops did not start (port {port} taken?); see {log}")
        try:
            with urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except (URLError, OSError):
            time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    raise ConfigError(f"the demo shops did not answer within 30 s; see {log}")


def demo_env(port: int) -> None:
    """Point the demo recipes at the demo shops on `port`."""
    os.environ["PRICEFLEET_DEMO_URL"] = f"http://127.0.0.1:{port}"
