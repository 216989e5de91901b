"""The `pricefleet` command line. Thin: each command parses options and calls one function."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pricefleet.config import Settings
from pricefleet.errors import PricefleetError

__all__ = ["app", "main"]

app = typer.Typer(
    name="pricefleet",
    help="Scrape shop catalogues, keep every price with its history, serve it through an API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema and maintenance.", no_args_is_help=True)
demo_app = typer.Typer(
    help="The demo shops: five fake shops on one port, the test bed of pricefleet.",
    invoke_without_command=True,
)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo-shop")
jobs_app = typer.Typer(
    help="The job queue: figures, dead letters, pause and resume.", no_args_is_help=True
)
app.add_typer(jobs_app, name="jobs")
keys_app = typer.Typer(
    help="API keys: create (shown once), list, revoke. Every change is audited.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

console = Console(stderr=True)


@app.command()
def config(
    markdown: Annotated[
        bool, typer.Option(help="Print every setting as a Markdown table (docs), and exit.")
    ] = False,
) -> None:
    """Show the effective settings and the profile they select (embedded or cluster)."""
    if markdown:
        from pricefleet.config import settings_reference

        typer.echo(settings_reference())
        return
    settings = Settings()
    console.print(f"profile: [bold]{settings.profile}[/]")
    for key, value in settings.model_dump().items():
        typer.echo(f"{key} = {value}")
    typer.echo(f"database = {settings.effective_database_url}")


def _sites(value: str | None) -> tuple[str, ...] | None:
    return tuple(part.strip() for part in value.split(",") if part.strip()) if value else None


def _rule(min_workers: int, max_workers: int, up_depth: int, down_depth: int, idle: float) -> Any:
    from pricefleet.workers.autoscale import ScalingRule

    return ScalingRule(
        min_workers=min_workers,
        max_workers=max_workers,
        scale_up_depth=up_depth,
        scale_down_depth=min(down_depth, up_depth),
        idle_seconds=idle,
    )


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    min_workers: Annotated[int, typer.Option(min=0)] = 1,
    max_workers: Annotated[int, typer.Option(min=1)] = 2,
    tick: Annotated[float, typer.Option(min=1, help="Scheduler tick, seconds.")] = 30.0,
    api: Annotated[bool, typer.Option(help="Serve the API too (PRICEFLEET_API_PORT).")] = True,
    cluster: Annotated[
        bool,
        typer.Option(
            help="The cluster profile as processes: API servers, scheduler, autoscaler and "
            "workers on PostgreSQL and Redis (configured, or this machine's)."
        ),
    ] = False,
    api_replicas: Annotated[
        int, typer.Option(min=1, max=64, help="--cluster: API servers, on consecutive ports.")
    ] = 2,
    metrics_port: Annotated[
        int,
        typer.Option(
            min=1, max=65534, help="--cluster: scheduler metrics here, autoscaler's on the next."
        ),
    ] = 9100,
    print_commands: Annotated[
        bool, typer.Option(help="--cluster: print the fleet's commands (to spread), and exit.")
    ] = False,
) -> None:
    """Embedded profile: migrate, then the API, the scheduler and autoscaled workers,
    supervised, until Ctrl-C. With --cluster, the same as separate processes on PostgreSQL and
    Redis. Extra options go to each worker (e.g. --concurrency 16)."""
    rule = _rule(min_workers, max_workers, 1_000, 100, 300.0)
    if cluster:
        from pricefleet.workers.cluster import plan_cluster, run_cluster

        plan = plan_cluster(
            Settings(),
            rule,
            ctx.args,
            api_replicas=api_replicas if api else 0,
            tick=tick,
            metrics_port=metrics_port,
        )
        if print_commands:
            typer.echo(plan.script())
            return
        for url in plan.api_urls:
            console.print(f"API: {url}/  (docs {url}/docs)")
        console.print(f"metrics: {' '.join(plan.metrics_urls)}")
        asyncio.run(run_cluster(plan))
        return
    from pricefleet.workers.main import run_embedded

    asyncio.run(run_embedded(Settings(), rule, ctx.args, tick=tick, api=api))


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Address to bind (default: settings).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535)] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes.")] = 1,
    dev: Annotated[bool, typer.Option(help="uvicorn with reload, for development.")] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the HTTP API with granian (cluster profile: run as many as you like behind a
    balancer; they share nothing but the database, Redis and the queue)."""
    from pricefleet.api.server import serve

    settings = Settings()
    serve(
        settings,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        dev=dev,
        access_log=access_log,
    )


@app.command()
def loadtest(
    url: Annotated[str, typer.Argument(help="Server URL: the base of --path, or the one URL.")],
    rate: Annotated[float, typer.Option(help="Arrivals per second (spike: the baseline).")],
    duration: Annotated[float, typer.Option(help="Seconds of load in all.")] = 30.0,
    scenario: Annotated[str, typer.Option(help="constant or spike.")] = "constant",
    peak: Annotated[
        float | None, typer.Option(help="Spike: arrivals/s at the peak (default 5 x rate).")
    ] = None,
    path: Annotated[
        list[str] | None, typer.Option(help="A path to request, '/v1/…' or 'WEIGHT /v1/…'.")
    ] = None,
    paths_file: Annotated[
        Path | None, typer.Option(help="Paths, one a line (as --path).", dir_okay=False)
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option(help="'Name: value', e.g. 'Authorization: Bearer pf_…'.")
    ] = None,
    connections: Annotated[
        int | None, typer.Option(help="Connection pool size (default: sized for the rate).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before a request fails.")] = 10.0,
    p99_ms: Annotated[
        float | None, typer.Option("--p99-ms", help="Fail (exit 1) when p99 is over this.")
    ] = None,
    max_error_rate: Annotated[
        float | None, typer.Option(help="Fail (exit 1) when the error share is over this.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, not a table.")] = False,
) -> None:
    """Load an HTTP server at a constant arrival rate, or with a spike, and report latency
    percentiles (from each request's scheduled instant) and errors by status."""
    import orjson

    from pricefleet.loadtest import load_test, read_paths

    paths = [*(path or []), *(read_paths(paths_file) if paths_file else [])]
    report = load_test(
        url,
        rate=rate,
        duration=duration,
        scenario=scenario,
        peak=peak,
        paths=paths,
        headers=header or [],
        timeout=timeout,
        connections=connections,
        p99_ms=p99_ms,
        max_error_rate=max_error_rate,
    )
    if as_json:
        typer.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:  # wide enough for the table when piped to a file
        Console(width=None if sys.stdout.isatty() else 140).print(report.table())
    for line in [*report.warnings, *report.violations]:
        console.print(f"[yellow]{line}[/]")
    if not report.passed:
        raise typer.Exit(1)


@app.command()
def worker(
    sites: Annotated[str | None, typer.Option(help="Only these sites (comma-separated).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=4096, help="Jobs at once.")] = 32,
    batch: Annotated[int, typer.Option(min=1, max=1000, help="Jobs per lease.")] = 32,
    visibility: Annotated[float, typer.Option(min=1, help="Lease seconds.")] = 60.0,
    grace: Annotated[float, typer.Option(min=0, help="Drain seconds on SIGTERM.")] = 120.0,
    burst: Annotated[bool, typer.Option(help="Drain the queue, then exit.")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Serve Prometheus metrics on this port."),
    ] = None,
) -> None:
    """Run a crawl worker: lease jobs, fetch, extract, store; SIGTERM drains it."""
    from pricefleet.workers.main import run_worker
    from pricefleet.workers.worker import WorkerOptions

    options = WorkerOptions(
        concurrency=concurrency,
        batch=min(batch, concurrency),
        visibility=visibility,
        grace=grace,
        sites=_sites(sites),
        burst=burst,
    )
    from pricefleet.crawl.loop import run as run_loop

    report = run_loop(run_worker(Settings(), options, metrics_port=metrics_port))
    console.print(
        f"worker: leased {report.leased}, acked {report.acked}, failed {report.failed}, "
        f"released {report.released}"
    )


@app.command()
def scheduler(
    tick: Annotated[float, typer.Option(min=1, help="Seconds between ticks.")] = 30.0,
    once: Annotated[bool, typer.Option(help="One tick, then exit.")] = False,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve queue metrics for Prometheus on this port.")
    ] = None,
) -> None:
    """Enqueue crawls as sites fall due, refresh stale products, export queue metrics."""
    from pricefleet.workers.main import run_scheduler

    asyncio.run(run_scheduler(Settings(), tick=tick, once=once, metrics_port=metrics_port))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def autoscale(
    ctx: typer.Context,
    min_workers: Annotated[int, typer.Option(min=0)] = 1,
    max_workers: Annotated[int, typer.Option(min=1)] = 4,
    up_depth: Annotated[
        int, typer.Option(min=1, help="Scale up past this many ready jobs.")
    ] = 1000,
    down_depth: Annotated[int, typer.Option(min=0, help="Idle below this many.")] = 100,
    idle: Annotated[float, typer.Option(min=0, help="Idle seconds before scaling down.")] = 300.0,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between decisions.")] = 5.0,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus metrics port.")] = None,
) -> None:
    """Grow and shrink local worker processes from queue depth. Extra options go to each
    worker (e.g. --sites demo-jsonld --concurrency 16)."""
    from pricefleet.workers.main import run_autoscale

    rule = _rule(min_workers, max_workers, up_depth, down_depth, idle)
    settings = Settings()
    asyncio.run(
        run_autoscale(settings, rule, ctx.args, interval=interval, metrics_port=metrics_port)
    )


@app.command()
def crawl(
    site: Annotated[str | None, typer.Argument(help="Recipe id in the recipes folder.")] = None,
    recipe: Annotated[Path | None, typer.Option(help="A recipe file instead of an id.")] = None,
    database: Annotated[
        str | None, typer.Option(help="Database URL (default: the configured one).")
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Processes crawling the site at once, each taking a share of its product "
            "pages and of its politeness limits (one per core).",
        ),
    ] = 1,
    share: Annotated[
        str | None,
        typer.Option(
            hidden=True,
            help="I/N: crawl share I of N (a child of --processes; it starts once a line "
            "comes on its standard input).",
        ),
    ] = None,
) -> None:
    """Crawl one site now, in the foreground, with a progress bar."""
    from pricefleet.workers.children import kill_gated, start_gated

    # The other processes of --processes start first: their imports, the heavy part of their
    # start-up, overlap this process's (below) and its migration of the store.
    child = [site] if site is not None else []
    child += ["--recipe", str(recipe)] if recipe is not None else []
    child += ["--database", database] if database else []
    command = [sys.executable, "-m", "pricefleet", "crawl", *child, "--share"]
    children = start_gated(
        [
            [*command, f"{index}/{processes}"]
            for index in range(1, processes if share is None else 1)
        ]
    )
    try:
        _crawl(site, recipe, database, processes, share, children)
    finally:
        kill_gated(children)


def _crawl(
    site: str | None,
    recipe: Path | None,
    database: str | None,
    processes: int,
    share: str | None,
    children: list[subprocess.Popen[bytes]],
) -> None:
    from pricefleet.crawl.engine import Share
    from pricefleet.crawl.session import (
        crawl_share,
        crawl_with_processes,
        crawl_with_progress,
        summary_table,
    )
    from pricefleet.sites import load_recipe, load_recipes
    from pricefleet.store import Store

    settings = Settings()
    if recipe is not None:
        chosen = load_recipe(recipe)
    elif site is not None:
        recipes = load_recipes(settings.recipes_dir)
        if site not in recipes:
            known = ", ".join(sorted(recipes)) or "none"
            raise typer.BadParameter(
                f"no recipe {site!r} in {settings.recipes_dir}; known: {known}"
            )
        chosen = recipes[site]
    else:
        raise typer.BadParameter("name a SITE or give --recipe FILE")
    store = Store.from_url(database) if database else Store.from_settings(settings)

    async def run() -> None:
        async with store:
            if share is not None:
                index, _, of = share.partition("/")
                print(await crawl_share(chosen, store, Share(int(index), int(of))))
                return
            if processes > 1:
                reports = [await crawl_with_processes(chosen, store, console, children)]
            else:
                reports = await crawl_with_progress([chosen], store, console)
        console.print(summary_table(reports))
        for failure in reports[0].failures[:10]:
            console.print(f"[red]{failure.code}[/] {failure.url}: {failure.message}")

    from pricefleet.crawl.loop import run as run_loop
    from pricefleet.workers.children import wait_for_gate

    if share is not None and not wait_for_gate():
        raise typer.Exit(1)  # the process that started this one failed before the store was ready
    run_loop(run())


@app.command()
def demo(
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8100,
    products: Annotated[int, typer.Option(min=1, max=1_000_000, help="Products per shop.")] = 2000,
    exit_after_crawl: Annotated[
        bool, typer.Option(help="Stop the shops once the crawl is done (for scripts).")
    ] = False,
) -> None:
    """Start the demo shops and the embedded fleet (scheduler, worker processes): crawl all
    five shops into the embedded store, show a summary, keep serving until Ctrl-C."""
    from pricefleet.crawl.session import demo_env, start_demo_shops
    from pricefleet.sites import load_recipes
    from pricefleet.workers.demo import run_demo_fleet

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    shops = start_demo_shops(port, products, settings.data_dir / "demo-shops.log")
    try:
        demo_env(port)
        recipes = [
            r for k, r in load_recipes(settings.recipes_dir).items() if k.startswith("demo-")
        ]
        console.print(f"demo shops at http://127.0.0.1:{port}/")
        asyncio.run(
            run_demo_fleet(
                settings,
                recipes,
                console,
                workers=max(1, settings.workers),
                exit_after_crawl=exit_after_crawl,
            )
        )
    finally:
        if shops.poll() is None:
            shops.send_signal(signal.SIGINT)
            shops.wait(timeout=10)


@app.command()
def sites() -> None:
    """List the site recipes and validate them."""
    from rich.table import Table

    from pricefleet.sites import load_recipes

    settings = Settings()
    table = Table(title=f"recipes in {settings.recipes_dir}")
    for column in ("id", "name", "fetch", "extraction", "discovery", "rate", "every"):
        table.add_column(column)
    for recipe in load_recipes(settings.recipes_dir).values():
        found = recipe.discovery
        ways = [w for w in ("sitemap", "links", "api") if getattr(found, w) is not None]
        table.add_row(
            recipe.id,
            recipe.name,
            recipe.fetch.mode,
            recipe.extraction.mode,
            "+".join(ways),
            f"{recipe.politeness.requests_per_second:g}/s x{recipe.politeness.max_concurrency}",
            recipe.schedule.every,
        )
    console.print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema (safe to run again)."""
    from sqlalchemy.engine import make_url

    from pricefleet.store.admin import upgrade

    settings = Settings()
    revision = asyncio.run(upgrade(settings))
    if settings.database_shards:
        where = f"{len(settings.database_shards)} shards"
    else:
        where = make_url(settings.effective_database_url).render_as_string(hide_password=True)
    console.print(f"database {where} is at revision {revision}")


@db_app.command("backup")
def db_backup(
    file: Annotated[Path, typer.Argument(help="The backup file to write (replaced if it exists).")],
) -> None:
    """Back the database up to a file: a consistent snapshot, taken while writers go on
    (SQLite: online backup; PostgreSQL: pg_dump custom format)."""
    from pricefleet.store.admin import backup

    info = asyncio.run(backup(Settings(), file))
    console.print(
        f"backed up the {info.backend} database (revision {info.revision}) to {info.path}: "
        f"{info.size_bytes:,} bytes in {info.seconds:.1f} s"
    )


@db_app.command("restore")
def db_restore(
    file: Annotated[Path, typer.Argument(help="A file `pricefleet db backup` wrote.")],
) -> None:
    """Restore the database from a backup file: its contents replace the database's."""
    from pricefleet.store.admin import restore

    revision = asyncio.run(restore(Settings(), file))
    console.print(f"restored {file}; the database is at revision {revision}")


@db_app.command("prune")
def db_prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="Prune history that ended longer ago than this: Nd, Nh or Nw."
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be deleted.")
    ] = False,
) -> None:
    """Delete price history older than a cut-off, keeping the state at the cut-off."""
    from pricefleet.errors import InvalidQuery
    from pricefleet.store.admin import parse_age, prune

    try:
        age = parse_age(older_than)
    except InvalidQuery as exc:
        raise typer.BadParameter(str(exc), param_hint="'--older-than'") from None
    result = asyncio.run(prune(Settings(), age, dry_run=dry_run))
    cutoff = result.cutoff.isoformat(timespec="seconds")
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"{verb} {result.deleted:,} history rows that ended before {cutoff}; "
        f"{result.kept:,} older rows stay: each product's state at the cut-off"
    )
    if result.partitions_dropped:
        drop = "would drop" if dry_run else "dropped"
        typer.echo(f"{drop} whole partitions: {', '.join(result.partitions_dropped)}")


@db_app.command("stats")
def db_stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, not a table.")] = False,
) -> None:
    """Show what the database holds: sites, products, history rows, matches, sizes."""
    from datetime import datetime

    import orjson
    from rich.table import Table

    from pricefleet.store.admin import stats

    result = asyncio.run(stats(Settings()))
    if as_json:
        typer.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return

    def shown(key: str, value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, datetime):
            return value.isoformat(timespec="seconds")
        if isinstance(value, int) and key.endswith("size_bytes"):
            amount = float(value)
            for unit in ("B", "KiB", "MiB", "GiB"):
                if amount < 1024:
                    return f"{amount:,.0f} {unit}" if unit == "B" else f"{amount:,.1f} {unit}"
                amount /= 1024
            return f"{amount:,.1f} TiB"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    out = Console()
    summary = Table(title="pricefleet database", show_header=False)
    summary.add_column("what", style="bold")
    summary.add_column("value", justify="right")
    for key, value in result.items():
        if key not in ("partitions", "shards"):
            summary.add_row(key.removesuffix("_bytes").replace("_", " "), shown(key, value))
    out.print(summary)
    if result.get("partitions"):
        partitions = Table(
            title="history partitions",
            caption="estimate: pg_class.reltuples, as of the last ANALYZE",
        )
        for name in ("partition", "rows", "rows (estimate)", "size"):
            partitions.add_column(name, justify="left" if name == "partition" else "right")
        for part in result["partitions"]:
            partitions.add_row(
                part["name"],
                shown("rows", part["rows"]),
                shown("rows", part["rows_estimate"]),
                shown("size_bytes", part["size_bytes"]),
            )
        out.print(partitions)
    if result.get("shards"):
        shards = Table(title="shards")
        for name in ("shard", "sites", "products", "observations", "size"):
            shards.add_column(name, justify="left" if name == "shard" else "right")
        for name, part in result["shards"].items():
            shards.add_row(
                name,
                *(shown(k, part[k]) for k in ("sites", "products", "observations")),
                shown("size_bytes", part["size_bytes"]),
            )
        out.print(shards)


Products = Annotated[int, typer.Option(min=1, max=10_000_000, help="Products per shop.")]
Seed = Annotated[int, typer.Option(help="Seed of the product universe.")]


@demo_app.callback()
def demo_shop(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8100,
    products: Products = 2000,
    seed: Seed = 1,
    day: Annotated[
        int | None, typer.Option(min=0, help="Fix the demo day (default: follow the clock).")
    ] = None,
    faults: Annotated[
        str, typer.Option(help='Fault rates, e.g. "jsonld:5xx=0.05,429=0.02;*:slow=0.01".')
    ] = "",
    crawl_delay: Annotated[float, typer.Option(min=0, help="robots.txt Crawl-delay.")] = 0.01,
    slow_seconds: Annotated[float, typer.Option(min=0)] = 2.0,
    hang_seconds: Annotated[float, typer.Option(min=0)] = 120.0,
    page_size: Annotated[
        int, typer.Option(min=1, max=1000, help="Products per listing page.")
    ] = 24,
    sitemap_chunk: Annotated[
        int, typer.Option(min=1, max=50_000, help="URLs per sitemap before it splits.")
    ] = 1000,
) -> None:
    """Serve the demo shops (with no sub-command), or write their truth or a static copy."""
    if ctx.invoked_subcommand is not None:
        return
    from pricefleet.demo.faults import FaultError, parse_faults
    from pricefleet.demo.server import serve, shop_names
    from pricefleet.demo.state import DemoConfig

    try:
        rates = parse_faults(faults, shop_names())
    except FaultError as exc:
        raise typer.BadParameter(str(exc), param_hint="--faults") from None
    config = DemoConfig(
        products=products,
        seed=seed,
        day=day,
        faults=rates,
        crawl_delay=crawl_delay,
        slow_seconds=slow_seconds,
        hang_seconds=hang_seconds,
        page_size=page_size,
        sitemap_chunk=sitemap_chunk,
    )
    shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
    console.print(f"[bold]pricefleet demo shops[/] (seed {seed}, {products} products per shop)")
    for name in shop_names():
        typer.echo(f"  {name:<10} http://{shown}:{port}/{name}/")
    typer.echo(f"  {'stats':<10} http://{shown}:{port}/_stats")
    sys.stdout.flush()
    serve(config, host, port)


def _check_shop(shop: str) -> str:
    from pricefleet.demo.server import shop_names

    if shop not in shop_names():
        raise typer.BadParameter(f"unknown shop {shop!r}; shops: {', '.join(shop_names())}")
    return shop


Shop = Annotated[str, typer.Option(callback=_check_shop, help="Which demo shop.")]
BaseUrl = Annotated[str, typer.Option(help="Where the shops are served, for absolute URLs.")]


@demo_app.command("truth")
def demo_truth(
    shop: Shop,
    day: Annotated[int, typer.Option(min=0)] = 0,
    products: Products = 2000,
    seed: Seed = 1,
    base_url: BaseUrl = "http://127.0.0.1:8100",
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
) -> None:
    """Write every product of a shop, as it stands on a day, as JSON lines."""
    from pricefleet.demo.server import write_truth
    from pricefleet.demo.state import DemoConfig

    config = DemoConfig(products=products, seed=seed)
    if out is None:
        count = write_truth(config, shop, day, base_url, sys.stdout.buffer)
    else:
        with out.open("wb") as handle:
            count = write_truth(config, shop, day, base_url, handle)
    console.print(f"{count} products of {shop} on day {day}")


@demo_app.command("export")
def demo_export(
    directory: Annotated[Path, typer.Argument(file_okay=False, help="Directory to write.")],
    shop: Shop,
    day: Annotated[int, typer.Option(min=0)] = 0,
    products: Products = 2000,
    seed: Seed = 1,
    base_url: BaseUrl = "http://127.0.0.1:8180",
) -> None:
    """Write a shop as static files (and an nginx.conf serving them) for benchmarks."""
    from rich.progress import Progress

    from pricefleet.demo.server import export_shop
    from pricefleet.demo.state import DemoConfig

    config = DemoConfig(products=products, seed=seed)
    directory.mkdir(parents=True, exist_ok=True)
    with Progress(console=console) as progress:
        task = progress.add_task(f"exporting {shop}", total=None)
        for _ in export_shop(config, shop, directory, base_url, day):
            progress.advance(task)
    console.print(
        f"{shop} written to {directory}; serve it with: nginx -p {directory} -c nginx.conf"
    )


def _with_queue(work: Any) -> Any:
    from pricefleet.queue import JobQueue

    settings = Settings()

    async def run() -> Any:
        queue = JobQueue.from_url(settings.effective_queue_url, prefix=settings.queue_prefix)
        try:
            return await work(queue)
        finally:
            await queue.close()

    return asyncio.run(run())


@jobs_app.command("stats")
def jobs_stats() -> None:
    """Per-site queue figures."""
    from rich.table import Table

    stats = _with_queue(lambda queue: queue.stats())
    table = Table("site", "ready", "delayed", "leased", "dead", "done", "oldest s", "paused")
    for site, s in stats.items():
        table.add_row(
            site,
            str(s.queued),
            str(s.delayed),
            str(s.leased),
            str(s.dead),
            str(s.done),
            f"{s.oldest_age:.0f}",
            "yes" if s.paused else "",
        )
    Console().print(table)


@jobs_app.command("dead")
def jobs_dead(
    site: Annotated[str, typer.Argument(help="Site id.")],
    limit: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """The site's dead jobs with their last error."""
    for lease, error in _with_queue(lambda queue: queue.dead(site, limit)):
        typer.echo(f"{lease.kind.value}\t{lease.url}\t{lease.attempts} attempts\t{error}")


@jobs_app.command("replay")
def jobs_replay(
    site: Annotated[str, typer.Argument(help="Site id.")],
    key: Annotated[list[str] | None, typer.Option(help="Only these job keys.")] = None,
) -> None:
    """Queue the site's dead jobs again with fresh attempts."""
    count = _with_queue(lambda queue: queue.replay(site, key or None))
    console.print(f"{count} dead jobs of {site} queued again")


@jobs_app.command("pause")
def jobs_pause(site: Annotated[str, typer.Argument(help="Site id.")]) -> None:
    """Stop leasing the site's jobs."""
    _with_queue(lambda queue: queue.pause(site))
    console.print(f"{site} paused")


@jobs_app.command("resume")
def jobs_resume(site: Annotated[str, typer.Argument(help="Site id.")]) -> None:
    """Lease the site's jobs again."""
    _with_queue(lambda queue: queue.resume(site))
    console.print(f"{site} resumed")


def _with_store(work: Any) -> Any:
    """Run `work(store)` on the configured store; a database never migrated says so."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from pricefleet.errors import MigrationError
    from pricefleet.store import Store

    async def run() -> Any:
        async with Store.from_settings(Settings()) as store:
            try:
                return await work(store)
            except (OperationalError, ProgrammingError) as exc:
                if "api_keys" in str(exc) or "audit_log" in str(exc):
                    raise MigrationError(
                        "the database has no API key tables yet: run `pricefleet db upgrade`"
                    ) from None
                raise

    return asyncio.run(run())


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who or what the key is for.")],
    scope: Annotated[
        list[str],
        typer.Option(help="read, crawl or admin (admin includes crawl, crawl includes read)."),
    ],
) -> None:
    """Create an API key and print it, once: only a hash of it is kept."""
    from pricefleet.api.auth import Scope
    from pricefleet.api.keys import create_key

    try:
        scopes = [Scope(s.strip().lower()) for s in scope]
    except ValueError:
        raise typer.BadParameter(
            f"{', '.join(scope)}: scopes are read, crawl and admin", param_hint="'--scope'"
        ) from None
    record, key = _with_store(lambda store: create_key(store, name, scopes, actor="cli"))
    console.print(
        f"created key [bold]{record.id}[/] ({record.name}) with scopes "
        f"{', '.join(record.scopes)}.\n[yellow]Store it now: it is not shown again.[/]"
    )
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    active: Annotated[bool, typer.Option("--active", help="Hide revoked keys.")] = False,
) -> None:
    """The API keys: id, name, scopes, when created and revoked (never the secret)."""
    from rich.table import Table

    keys = _with_store(lambda store: store.api_keys(include_revoked=not active))

    def when(moment: Any) -> str:
        return "" if moment is None else moment.isoformat(timespec="seconds")

    table = Table("id", "name", "scopes", "created", "revoked", "last used", title="API keys")
    for key in keys:
        table.add_row(
            key.id,
            key.name,
            ", ".join(key.scopes),
            when(key.created_at),
            when(key.revoked_at),
            when(key.last_used_at),
        )
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see keys list).")],
) -> None:
    """Revoke an API key for good. API processes stop accepting it within their key cache
    lifetime (PRICEFLEET_API_KEY_CACHE_SECONDS, 30 s by default)."""
    from pricefleet.api.keys import revoke_key

    if _with_store(lambda store: revoke_key(store, key_id, actor="cli")):
        console.print(f"key {key_id} revoked")
        return
    console.print(f"[red]no active key {key_id}[/] (unknown, or revoked already)")
    raise typer.Exit(1)


def _configure_logging() -> None:
    """Logging from the settings; settings that do not parse are reported by the command."""
    from pydantic import ValidationError

    from pricefleet.logs import configure_logging

    try:
        settings = Settings()
    except (ValidationError, PricefleetError):
        return
    configure_logging(settings)


def main() -> None:
    """Entry point: run the CLI, turning pricefleet errors into one clear line and exit code 2."""
    try:
        _configure_logging()
        app()
    except PricefleetError as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(2)
