"""The `pricefleet` command line, run as a user runs it: a real process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import orjson

from pricefleet.store.migrate import head_revision
from tests.demo.helpers import shops_like, truth_of
from tests.servers import (
    DemoServer,
    create_database,
    drop_database,
    free_port,
    pg_url,
    require_program,
)

RECIPES = Path(__file__).parents[1] / "recipes"

COMMANDS = (
    "demo",
    "config",
    "run",
    "api",
    "worker",
    "scheduler",
    "autoscale",
    "crawl",
    "sites",
    "db",
    "demo-shop",
    "jobs",
    "keys",
)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PRICEFLEET_")}
    return subprocess.run(
        [sys.executable, "-m", "pricefleet", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {}), "COLUMNS": "200"},
        check=False,
    )


def test_help_lists_every_command() -> None:
    """`pricefleet --help` names every command of the product."""
    result = _run("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert f" {command} " in result.stdout, command
    db = _run("db", "--help").stdout
    assert all(f" {sub} " in db for sub in ("upgrade", "backup", "restore", "prune"))
    demo = _run("demo-shop", "--help").stdout
    assert all(word in demo for word in ("truth", "export", "--faults", "--products", "--port"))


def test_db_upgrade_migrates_the_embedded_database(tmp_path: Path) -> None:
    """`pricefleet db upgrade` creates the SQLite file at the head revision, and can run again."""
    env = {"PRICEFLEET_DATA_DIR": str(tmp_path)}
    for _ in range(2):
        result = _run("db", "upgrade", env=env)
        assert result.returncode == 0, result.stderr
        assert f"at revision {head_revision()}" in result.stderr
    with sqlite3.connect(tmp_path / "pricefleet.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == (
            head_revision(),
        )
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_db_upgrade_migrates_postgresql() -> None:
    """With the cluster settings, `db upgrade` migrates the PostgreSQL database."""
    name = await create_database()
    try:
        env = {
            "PRICEFLEET_DATABASE_URL": pg_url(name),
            "PRICEFLEET_REDIS_URL": "redis://127.0.0.1:6379/0",
        }
        result = await asyncio.to_thread(_run, "db", "upgrade", env=env)
        assert result.returncode == 0, result.stderr
        connection = await asyncpg.connect(pg_url(name))
        try:
            assert (
                await connection.fetchval("SELECT version_num FROM alembic_version")
                == head_revision()
            )
        finally:
            await connection.close()
    finally:
        await drop_database(name)


def test_demo_crawls_all_five_shops_and_exits(tmp_path: Path) -> None:
    """`pricefleet demo --exit-after-crawl` serves the shops, crawls them all, summarises, exits."""
    require_program(Path("/usr/bin/chromium"), "chromium")
    env = {"PRICEFLEET_DATA_DIR": str(tmp_path)}
    port = str(free_port())
    result = _run("demo", "--exit-after-crawl", "--products", "60", "--port", port, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    for site in ("demo-jsonld", "demo-microdata", "demo-api", "demo-spa", "demo-plain"):
        assert site in result.stdout + result.stderr
    with sqlite3.connect(tmp_path / "pricefleet.db") as db:
        counts = dict(db.execute("SELECT site_id, count(*) FROM products GROUP BY site_id"))
    assert counts == {
        "demo-jsonld": 60,
        "demo-microdata": 48,
        "demo-api": 36,
        "demo-spa": 18,
        "demo-plain": 30,
    }


def test_crawl_one_site_from_a_recipe_file(tmp_path: Path, demo: DemoServer) -> None:
    """`pricefleet crawl --recipe FILE --database URL` crawls that one site into that database."""
    recipe = (
        (RECIPES / "demo-plain.yaml")
        .read_text()
        .replace("${PRICEFLEET_DEMO_URL:-http://127.0.0.1:8100}", demo.url)
    )
    (tmp_path / "plain.yaml").write_text(recipe)
    database = f"sqlite:///{tmp_path / 'one.db'}"
    result = _run("crawl", "--recipe", str(tmp_path / "plain.yaml"), "--database", database)
    assert result.returncode == 0, result.stderr[-2000:]
    with sqlite3.connect(tmp_path / "one.db") as db:
        assert db.execute("SELECT count(*) FROM products").fetchone() == (200,)
    unknown = _run("crawl", "no-such-site", env={"PRICEFLEET_RECIPES_DIR": str(RECIPES)})
    assert unknown.returncode == 2
    assert "no recipe 'no-such-site'" in unknown.stderr


def test_keys_create_list_revoke_with_audit(tmp_path: Path) -> None:
    """`keys create` prints the key once (stdout) with a warning; `keys list` shows it without
    its secret; `keys revoke` revokes it once; each change is in the audit log as `cli`."""
    env = {"PRICEFLEET_DATA_DIR": str(tmp_path)}
    not_migrated = _run("keys", "list", env=env)
    assert not_migrated.returncode == 2
    assert "pricefleet db upgrade" in not_migrated.stderr
    assert _run("db", "upgrade", env=env).returncode == 0
    created = _run("keys", "create", "ci bot", "--scope", "read", "--scope", "crawl", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("pf_")
    assert "not shown again" in created.stderr
    key_id, secret = key.removeprefix("pf_").split("_", 1)
    listed = _run("keys", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if key_id in line)
    assert "ci bot" in row
    assert "read, crawl" in row
    assert secret not in listed.stdout
    bad_scope = _run("keys", "create", "x", "--scope", "root", env=env)
    assert bad_scope.returncode == 2
    assert "read, crawl and admin" in bad_scope.stderr
    assert _run("keys", "revoke", key_id, env=env).returncode == 0
    again = _run("keys", "revoke", key_id, env=env)
    assert again.returncode == 1
    assert "no active key" in again.stderr
    active = _run("keys", "list", "--active", env=env)
    assert key_id not in active.stdout
    with sqlite3.connect(tmp_path / "pricefleet.db") as db:
        audit = db.execute("SELECT actor, action, target FROM audit_log ORDER BY id").fetchall()
        hashes = [row[0] for row in db.execute("SELECT hash FROM api_keys")]
    assert audit == [("cli", "key.create", key_id), ("cli", "key.revoke", key_id)]
    assert secret not in hashes[0]


def test_api_refuses_a_bad_port_clearly() -> None:
    """`pricefleet api` checks its options before serving (the serving itself is tested in
    tests/api against real server processes)."""
    result = _run("api", "--port", "70000")
    assert result.returncode == 2
    assert "--port" in result.stderr


def test_truth_writes_every_product_as_json_lines() -> None:
    """`demo-shop truth` writes one JSON object per product, equal to the shop's truth."""
    result = _run(
        "demo-shop", "truth", "--shop", "plain", "--products", "60", "--seed", "4", "--day", "2"
    )
    assert result.returncode == 0, result.stderr
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 30  # plain carries half of --products
    expected = truth_of(shops_like(60, 4)["plain"], 2, "http://127.0.0.1:8100")
    assert records == expected
    fields = {"shop", "id", "url", "name", "brand", "gtin", "price", "currency", "unit_price"}
    fields |= {"size_value", "size_unit", "availability", "universe_id"}
    assert fields <= records[0].keys()


def test_bad_options_fail_with_a_clear_message() -> None:
    """An unknown shop or a malformed fault spec is refused with exit 2 and a reason."""
    result = _run("demo-shop", "truth", "--shop", "nope")
    assert result.returncode == 2
    assert "unknown shop 'nope'" in result.stderr
    result = _run("demo-shop", "--faults", "jsonld:5xx=2")
    assert result.returncode == 2
    assert "between 0 and 1" in result.stderr


def test_config_shows_profile_and_rejects_half_a_cluster() -> None:
    """`pricefleet config` shows the embedded profile by default and refuses PostgreSQL alone."""
    result = _run("config")
    assert result.returncode == 0, result.stderr
    assert "embedded" in result.stderr
    assert "database = sqlite:///" in result.stdout
    result = _run("config", env={"PRICEFLEET_DATABASE_URL": "postgresql://localhost/pf"})
    assert result.returncode == 2
    assert "PRICEFLEET_REDIS_URL" in result.stderr


def test_run_crawls_on_schedule_and_stops_on_sigterm(tmp_path: Path, demo: DemoServer) -> None:
    """`pricefleet run` migrates, schedules the recipes' crawls, runs workers that store them,
    serves the API (whose /metrics counts the workers' products), and stops cleanly (workers
    drained) on SIGTERM; `jobs stats` shows the queue after."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    recipe = (RECIPES / "demo-plain.yaml").read_text()
    (recipes / "demo-plain.yaml").write_text(
        recipe.replace("${PRICEFLEET_DEMO_URL:-http://127.0.0.1:8100}", demo.url)
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("PRICEFLEET_")}
    env = {
        **base,
        "PRICEFLEET_DATA_DIR": str(tmp_path / "data"),
        "PRICEFLEET_RECIPES_DIR": str(recipes),
        "PRICEFLEET_API_PORT": str(api_port := free_port()),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "pricefleet", "run", "--max-workers", "1", "--tick", "1"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        database = tmp_path / "data" / "pricefleet.db"
        stored = 0
        for _ in range(1200):
            if database.exists():
                with (
                    contextlib.closing(sqlite3.connect(database)) as db,
                    contextlib.suppress(sqlite3.OperationalError),
                ):
                    stored = db.execute("SELECT count(*) FROM products").fetchone()[0]
            if stored >= 10:
                break
            time.sleep(0.1)
        assert stored >= 10
        api = f"http://127.0.0.1:{api_port}"
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                listed = httpx.get(f"{api}/v1/products?site=demo-plain&limit=5")
                metrics = httpx.get(f"{api}/metrics").text
                if (
                    listed.status_code == 200
                    and 'products_scraped_total{site="demo-plain"}' in metrics
                ):
                    break
            time.sleep(0.1)
        assert len(listed.json()["items"]) == 5
        assert "active_workers 1.0" in metrics
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output.decode()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    stats = _run("jobs", "stats", env={"PRICEFLEET_DATA_DIR": str(tmp_path / "data")})
    assert stats.returncode == 0, stats.stderr
    assert "demo-plain" in stats.stdout


def test_run_killed_leaves_no_orphans(tmp_path: Path) -> None:
    """`pricefleet run` SIGKILLed: its API server and worker children exit too (the kernel
    sends them SIGTERM), so no orphan keeps the port or the queue."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PRICEFLEET_")}
    port = free_port()
    env = {**base, "PRICEFLEET_DATA_DIR": str(tmp_path / "data"), "PRICEFLEET_API_PORT": str(port)}
    env["PRICEFLEET_RECIPES_DIR"] = str(tmp_path)  # no recipes: nothing to crawl
    command = [sys.executable, "-m", "pricefleet", "run", "--min-workers", "1", "--tick", "1"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        children: set[int] = set()
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                ready = httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
                children = _children(process.pid)
                if ready and len(children) >= 2:  # the API server and a worker
                    break
            time.sleep(0.1)
        assert len(children) >= 2
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in children if _alive(pid)] == []


def _children(pid: int) -> set[int]:
    """The direct children of a process (from /proc)."""
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
            if fields.get("PPid", "").strip() == str(pid):
                found.add(int(status.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"
