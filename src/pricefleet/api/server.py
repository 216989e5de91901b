"""Serving the API: granian in production (`pricefleet api --workers N`), uvicorn for
development (`--dev`, one process, reload).

Each worker process builds its own app from the environment (`factory`), so settings reach
them as `PRICEFLEET_*` variables. Several workers share Prometheus metrics through files in
`PROMETHEUS_MULTIPROC_DIR`, created fresh here when the caller did not set one.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path

from fastapi import FastAPI

from pricefleet.config import Settings

__all__ = ["factory", "serve"]


def factory() -> FastAPI:
    """The app, from the environment's settings (what each server worker imports). The
    server's worker processes are forked by granian without a parent-death signal: set here,
    a worker exits with its server instead of keeping the port when the server is SIGKILLed.

    The objects that exist once the app is built (the modules, the app, its routes: ~150,000
    of them) live as long as the process: they are moved out of the garbage collector's view
    (`gc.freeze`), so a full collection no longer walks them again. Measured in a worker
    serving a 1M-product benchmark on this busy 2-core machine: full collections every
    ~20 s took 220-370 ms each before, 80-200 ms after (BENCHMARKS.md, API)."""
    from pricefleet.api.app import create_app
    from pricefleet.workers.children import die_with_parent

    die_with_parent()
    app = create_app(Settings())
    gc.collect()  # nothing collectable is frozen with them
    gc.freeze()
    return app


def _metrics_dir() -> Path:
    """A fresh multiprocess metrics folder: stale files of an earlier run would add up."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        path = Path(configured)
        shutil.rmtree(path, ignore_errors=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="pricefleet-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    dev: bool = False,
    access_log: bool = False,
) -> None:
    """Serve the API until SIGTERM/SIGINT (blocks)."""
    if dev:
        import uvicorn

        uvicorn.run(
            "pricefleet.api.server:factory",
            factory=True,
            host=host,
            port=port,
            reload=True,
            log_level=settings.log_level.lower(),
        )
        return
    from granian import Granian
    from granian.constants import Interfaces

    if workers > 1:
        _metrics_dir()
    Granian(
        "pricefleet.api.server:factory",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        backlog=2048,
        respawn_failed_workers=True,
        log_access=access_log,
        log_level=settings.log_level.lower(),  # type: ignore[arg-type]
    ).serve()
