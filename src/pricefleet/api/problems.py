"""Errors as RFC 9457 problem details (`application/problem+json`), for every error the API returns.

Routes raise `Problem` (or let a `PricefleetError` through: `InvalidQuery` becomes 400,
`NotFound` 404, `StoreError`/`QueueError` 503); request validation errors become 422 with the
offending fields listed. Nothing here decides *whether* a request fails, only how it is told.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from pricefleet.errors import InvalidQuery, NotFound, PricefleetError, QueueError, StoreError

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "document_problems",
    "install_problem_handlers",
    "problem_response",
]

PROBLEM_JSON = "application/problem+json"
#: Problem types are documented in the API reference, one anchor per kind.
_TYPE_BASE = "https://pricefleet.dev/problems/"


class Problem(Exception):
    """An HTTP error told as a problem document: `status`, a short `title`, a `detail` saying
    what was wrong and what to do, and optional extra members and response headers."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        kind: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.kind = kind or self.title.lower().replace(" ", "-")
        self.headers = dict(headers or {})
        self.extra = extra


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    """The `application/problem+json` response telling `problem`."""
    body: dict[str, Any] = {
        "type": _TYPE_BASE + problem.kind,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if instance is not None:
        body["instance"] = instance
    body.update(problem.extra)
    headers = {"Cache-Control": "no-store", **problem.headers}
    return Response(
        orjson.dumps(body), status_code=problem.status, media_type=PROBLEM_JSON, headers=headers
    )


def _from_error(error: PricefleetError) -> Problem:
    if isinstance(error, InvalidQuery):
        return Problem(400, str(error), title="Invalid query")
    if isinstance(error, NotFound):
        return Problem(404, str(error))
    if isinstance(error, StoreError | QueueError):
        return Problem(
            503,
            f"{error} — the service is degraded; retry shortly.",
            title="Backend unavailable",
            headers={"Retry-After": "5"},
        )
    return Problem(500, str(error))


def document_problems(app: FastAPI) -> None:
    """Make the OpenAPI document say that errors come as `application/problem+json`: every
    operation's 4xx/5xx answers (FastAPI's 422 included) get the problem schema, and the
    statuses any route may give (bad query, not found, rate limited, unavailable) are listed."""
    from pricefleet.api.schemas import ProblemOut

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["ProblemOut"] = ProblemOut.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemOut"}}}
        for path in document.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                for status in ("400", "401", "403", "404", "422", "429", "500", "503"):
                    responses.setdefault(status, {"description": HTTPStatus(int(status)).phrase})
                for status, response in responses.items():
                    if status[0] in "45":
                        response["content"] = content
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error `app` returns a problem document."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc, request.url.path)

    async def on_pricefleet(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PricefleetError)
        return problem_response(_from_error(exc), request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "field": ".".join(str(part) for part in error["loc"] if part != "body") or "body",
                "message": error["msg"],
            }
            for error in exc.errors()
        ]
        fields = ", ".join(e["field"] for e in errors)
        problem = Problem(422, f"invalid request: {fields}", title="Invalid request", errors=errors)
        return problem_response(problem, request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.url.path}; see /docs for the API"
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem_response(
            Problem(exc.status_code, detail, headers=exc.headers), request.url.path
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Logged by the server; the client gets no internals.
        return problem_response(
            Problem(500, "an unexpected error occurred; it has been logged"), request.url.path
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(PricefleetError, on_pricefleet)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
