"""Liveness, readiness and Prometheus metrics: what load balancers and scrapers poll."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

from fastapi import APIRouter, Depends
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from starlette.responses import JSONResponse, Response

from pricefleet.api.context import ApiContext, context
from pricefleet.api.schemas import ReadyOut

__all__ = ["router"]

router = APIRouter(tags=["operations"])

Ctx = Annotated[ApiContext, Depends(context)]
#: A dependency slower than this is not ready.
_CHECK_TIMEOUT = 2.0


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process answers. Checks nothing else, so a database outage does not get every API
    process restarted."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="Readiness",
    responses={503: {"model": ReadyOut, "description": "A dependency does not answer."}},
)
async def readyz(ctx: Ctx) -> Response:
    """The database, the queue (and Redis behind it in the cluster) answer: 200, else 503
    naming the failing check, so a load balancer sends traffic elsewhere."""
    checks: dict[str, str] = {}

    async def check(name: str, probe: object) -> None:
        try:
            await asyncio.wait_for(probe, _CHECK_TIMEOUT)  # type: ignore[arg-type]
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; say which
            checks[name] = f"error: {type(exc).__name__}: {exc}"[:300]

    await asyncio.gather(
        check("database", ctx.store.ping()),
        check("queue", ctx.queue.sites()),
    )
    ok = all(v == "ok" for v in checks.values())
    body = ReadyOut(status="ok" if ok else "degraded", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    """Every metric of this API, summed over its worker processes when there are several
    (prometheus_client multiprocess mode, `PROMETHEUS_MULTIPROC_DIR`)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
