"""What `pricefleet crawl` and `pricefleet demo` do: crawl with live progress, then a summary.

Kept out of the CLI so that the CLI stays a thin layer of option parsing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pricefleet.crawl.engine import CrawlReport
from pricefleet.crawl.runner import crawl_sites
from pricefleet.errors import ConfigError
from pricefleet.sites.schema import Recipe
from pricefleet.store.base import Store

__all__ = ["crawl_with_progress", "start_demo_shops", "summary_table"]


async def crawl_with_progress(
    recipes: Sequence[Recipe], store: Store, console: Console
) -> list[CrawlReport]:
    """Crawl the sites with one live progress line each."""
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

        reports = await crawl_sites(recipes, store, on_progress=update)
        for report in reports:
            update(report)
            progress.update(tasks[report.site_id], total=1, completed=1)
    return reports


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
