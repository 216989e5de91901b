"""HTTP metrics with the seeds' names: `http_requests_total{method,endpoint,status}` and
`http_request_duration_seconds{method,endpoint}`.

A plain ASGI middleware (no per-request objects beyond a closure), labelled by the matched
route's template (`/v1/products/{site_id}/{product_id}`), never the raw path, so the label set
stays bounded whatever clients send; unmatched paths count as `<unmatched>`. In multiprocess
mode (`PROMETHEUS_MULTIPROC_DIR`, set by `pricefleet api --workers N`) every worker writes its
own file and `/metrics` sums them.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HTTP_DURATION", "HTTP_REQUESTS", "MetricsMiddleware"]

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered.", ["method", "endpoint", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0),
)


#: Label children by (method, endpoint, status): `labels()` costs a lock and a few µs. Bounded,
#: as clients choose the method.
_CHILDREN: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_CHILDREN_MAX = 1_000


def _children(method: str, endpoint: str, status: str) -> tuple[Any, Any]:
    found = _CHILDREN.get((method, endpoint, status))
    if found is None:
        found = (
            HTTP_REQUESTS.labels(method, endpoint, status),
            HTTP_DURATION.labels(method, endpoint),
        )
        if len(_CHILDREN) < _CHILDREN_MAX:
            _CHILDREN[(method, endpoint, status)] = found
    return found


class MetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "<unmatched>"
            requests, duration = _children(scope["method"], endpoint, str(status))
            requests.inc()
            duration.observe(time.perf_counter() - started)
