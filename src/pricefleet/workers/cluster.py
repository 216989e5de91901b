"""`pricefleet run --cluster`: the cluster profile on one machine, as processes.

For people without Kubernetes: against PostgreSQL and Redis (the configured ones, or the local
servers' defaults), it migrates, then starts and supervises

- N API servers (`pricefleet api`, one port each: put a balancer in front, as
  `deploy/nginx` does, or call any of them),
- the scheduler (`pricefleet scheduler`, queue gauges on `metrics_port`),
- the autoscaler (`pricefleet autoscale`, which grows and shrinks the worker processes; its
  figures and its workers' metrics on `metrics_port + 1`),

each restarted when it dies, all stopped on SIGTERM/SIGINT. They share nothing but the database,
Redis and the queue, so the same commands (`ClusterPlan.script`) spread over several machines
make the same fleet.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from sqlalchemy.engine import make_url

from pricefleet.config import Profile, Settings
from pricefleet.errors import ConfigError, QueueError, StoreError
from pricefleet.queue import JobQueue
from pricefleet.store import Store
from pricefleet.workers.autoscale import ScalingRule
from pricefleet.workers.children import Child, keep_running
from pricefleet.workers.main import on_signals

__all__ = ["LOCAL_DATABASE_URL", "LOCAL_REDIS_URL", "ClusterPlan", "plan_cluster", "run_cluster"]

#: What `run --cluster` uses when no cluster is configured: this machine's servers.
LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/pricefleet"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"

#: Variables each process of the fleet needs to find the others (the rest of the
#: `PRICEFLEET_*` settings are passed through as they are).
_SHARED = ("PRICEFLEET_DATABASE_URL", "PRICEFLEET_REDIS_URL")


@dataclass(frozen=True)
class ClusterPlan:
    """The processes of a local cluster and the settings they share."""

    settings: Settings
    children: tuple[Child, ...]
    api_urls: tuple[str, ...]
    metrics_urls: tuple[str, ...]

    def script(self) -> str:
        """The fleet as shell commands, one per process: run them on one machine or spread
        them over several (each machine needs the same `PRICEFLEET_*` settings)."""
        lines = [
            f"export {name}={shlex.quote(value)}"
            for name, value in _cluster_env(self.settings).items()
        ]
        lines.append("pricefleet db upgrade")
        for child in self.children:
            command = ["pricefleet", *child.argv[3:]]  # drop `python -m pricefleet`
            lines.append(f"{shlex.join(command)} &  # {child.name}")
        return "\n".join(lines)


def cluster_settings(settings: Settings) -> Settings:
    """`settings` if they configure a cluster, else the same pointed at the local servers."""
    if settings.profile is Profile.CLUSTER:
        if settings.redis_url is None:  # PostgreSQL shards without Redis: refused by Settings
            raise ConfigError("the cluster profile needs PRICEFLEET_REDIS_URL as well")
        return settings
    if settings.database_url is not None or settings.redis_url is not None:
        raise ConfigError(
            "run --cluster needs PostgreSQL and Redis: set PRICEFLEET_DATABASE_URL=postgresql://… "
            "and PRICEFLEET_REDIS_URL=redis://…, or neither to use this machine's servers "
            f"({LOCAL_DATABASE_URL}, {LOCAL_REDIS_URL})"
        )
    return Settings(database_url=LOCAL_DATABASE_URL, redis_url=LOCAL_REDIS_URL)


def plan_cluster(
    settings: Settings,
    rule: ScalingRule,
    worker_args: Sequence[str],
    *,
    api_replicas: int = 2,
    tick: float = 30.0,
    metrics_port: int = 9100,
) -> ClusterPlan:
    """The processes `run --cluster` starts: API servers on `api_port`, `api_port + 1`, …,
    the scheduler and the autoscaler (exporting metrics on `metrics_port` and the next)."""
    settings = cluster_settings(settings)
    ports = [settings.api_port + i for i in range(api_replicas)]
    if ports and ports[-1] > 65535:
        raise ConfigError(f"API ports {ports[0]}–{ports[-1]} do not fit: lower PRICEFLEET_API_PORT")
    if metrics_port in ports or metrics_port + 1 in ports:
        raise ConfigError(f"--metrics-port {metrics_port} (and the next) clash with the API ports")
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(_cluster_env(settings))
    python = [sys.executable, "-m", "pricefleet"]
    children = [
        Child(
            f"api-{i + 1}",
            [*python, "api", "--host", settings.api_host, "--port", str(port)],
            env,
        )
        for i, port in enumerate(ports)
    ]
    children.append(
        Child(
            "scheduler",
            [*python, "scheduler", "--tick", f"{tick:g}", "--metrics-port", str(metrics_port)],
            env,
        )
    )
    scaling = [
        f"--min-workers={rule.min_workers}",
        f"--max-workers={rule.max_workers}",
        f"--up-depth={rule.scale_up_depth}",
        f"--down-depth={rule.scale_down_depth}",
        f"--idle={rule.idle_seconds:g}",
        f"--metrics-port={metrics_port + 1}",
    ]
    children.append(Child("autoscaler", [*python, "autoscale", *scaling, *worker_args], env))
    host = settings.api_host
    return ClusterPlan(
        settings=settings,
        children=tuple(children),
        api_urls=tuple(f"http://{host}:{port}" for port in ports),
        metrics_urls=tuple(f"http://{host}:{port}/metrics" for port in ports)
        + tuple(f"http://127.0.0.1:{port}/metrics" for port in (metrics_port, metrics_port + 1)),
    )


async def run_cluster(plan: ClusterPlan) -> None:
    """Check the servers, create the database if it is missing, migrate, then run the plan's
    processes until SIGTERM/SIGINT."""
    settings = plan.settings
    if settings.database_url is not None and not settings.database_shards:
        await _ensure_database(settings.database_url)
    store = Store.from_settings(settings)
    try:
        await store.upgrade()
    finally:
        await store.close()
    queue = JobQueue.from_url(settings.effective_queue_url, prefix=settings.queue_prefix)
    try:
        await queue.stats()
    except Exception as exc:
        raise QueueError(
            f"Redis at {settings.redis_url} is not reachable ({exc}); start it, or set "
            "PRICEFLEET_REDIS_URL"
        ) from exc
    finally:
        await queue.close()
    stopping = asyncio.Event()
    on_signals(stopping.set)
    await asyncio.gather(*(keep_running(child, stopping) for child in plan.children))


def _cluster_env(settings: Settings) -> dict[str, str]:
    values = {
        "PRICEFLEET_DATABASE_URL": settings.database_url,
        "PRICEFLEET_REDIS_URL": settings.redis_url,
    }
    return {name: value for name in _SHARED if (value := values[name]) is not None}


async def _ensure_database(url: str) -> None:
    """Create the database of `url` when the server is up but the database is not there."""
    target = make_url(url).set(drivername="postgresql")
    dsn = target.render_as_string(hide_password=False)
    try:
        connection = await asyncpg.connect(dsn, timeout=10)
    except asyncpg.InvalidCatalogNameError:
        maintenance = target.set(database="postgres").render_as_string(hide_password=False)
        connection = await asyncpg.connect(maintenance, timeout=10)
        try:
            name = (target.database or "").replace('"', '""')
            await connection.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            pass  # created meanwhile by another `run --cluster`
        finally:
            await connection.close()
        return
    except (OSError, asyncpg.PostgresError) as exc:
        raise StoreError(
            f"PostgreSQL at {target.render_as_string()} is not reachable ({exc}); start it, "
            "or set PRICEFLEET_DATABASE_URL"
        ) from exc
    await connection.close()
