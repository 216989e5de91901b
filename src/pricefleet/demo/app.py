"""The demo shops' ASGI application: five shops on one port, each under `/<shop>/`.

Beside the shops it serves the test bed's own controls, which no crawler should touch:
`GET|DELETE /_stats` (the meter), `GET|PUT /_clock` (the demo day) and `GET|PUT /_faults`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pricefleet.demo.faults import FaultError, parse_faults
from pricefleet.demo.shops import SHOP_TYPES
from pricefleet.demo.shops.base import DemoShop, NotFoundPage
from pricefleet.demo.state import BadRequest, DemoConfig, DemoState

__all__ = ["TruncatedBody", "create_app"]


class TruncatedBody(Exception):
    """Raised on purpose to drop a connection halfway through a body (the `truncate` fault)."""


class _HideTruncation(logging.Filter):
    """Keep the server's error log for real errors, not for the faults we inject."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, TruncatedBody)


logging.getLogger("uvicorn.error").addFilter(_HideTruncation())


class ShopGate:
    """Wraps one shop: meters every request, injects faults, and turns lookups into 404/400."""

    def __init__(self, app: ASGIApp, shop: DemoShop, state: DemoState) -> None:
        self.app = app
        self.shop = shop
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = self.shop.name
        meter = self.state.meter.shop(name)
        meter.started(self.state.meter.clock())
        query = scope.get("query_string", b"").decode("latin-1")
        raw_path = scope.get("raw_path") or scope["path"].encode()  # as sent, before any Mount
        if self.shop.is_disallowed(raw_path.decode("latin-1"), query):
            meter.disallowed += 1
        forced = Request(scope).query_params.get("fault")
        fault = self.state.faults.draw(name, forced)
        if fault:
            meter.faults[fault] += 1
        status = 0

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            # Let every request that has already arrived register before this one is served:
            # handlers rarely await, so without this requests would never overlap in the meter
            # however many connections a crawler keeps busy.
            await asyncio.sleep(0)
            await self._serve(scope, receive, send_counted, fault)
        finally:
            meter.finished(status)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, fault: str | None) -> None:
        plan = self.state.faults
        if fault == "5xx":
            code = (500, 502, 503)[self.state.meter.shop(self.shop.name).requests % 3]
            await PlainTextResponse("Server error, try again", status_code=code)(
                scope, receive, send
            )
            return
        if fault == "429":
            headers = {"Retry-After": str(plan.retry_after)}
            await PlainTextResponse("Too many requests", status_code=429, headers=headers)(
                scope, receive, send
            )
            return
        if fault == "slow":
            await asyncio.sleep(plan.slow_seconds)
        elif fault == "hang":
            # Answer nothing; give the connection up when the client does, or after hang_seconds.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(plan.hang_seconds):
                    while (await receive())["type"] != "http.disconnect":
                        pass
            raise TruncatedBody("hung connection closed")
        scope.setdefault("state", {})["fault"] = fault
        target = _truncating(send) if fault == "truncate" else send
        try:
            await self.app(scope, receive, target)
        except NotFoundPage as exc:
            await PlainTextResponse(f"Not found: {exc}", status_code=404)(scope, receive, send)
        except BadRequest as exc:
            await PlainTextResponse(f"Bad request: {exc}", status_code=400)(scope, receive, send)


def _truncating(send: Send) -> Send:
    """A `send` that forwards the headers and half the body, then drops the connection."""
    start: Message | None = None

    async def cut(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] == "http.response.body" and start is not None:
            body = message.get("body", b"")
            if start["status"] != 200 or len(body) < 2:
                await send(start)
                await send(message)
                return
            await send(start)
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            raise TruncatedBody("body cut short on purpose")
        await send(message)

    return cut


def create_app(config: DemoConfig | None = None) -> Starlette:
    """The demo shops and their controls, as one ASGI app."""
    state = DemoState(config or DemoConfig())
    shops = [shop_type(state) for shop_type in SHOP_TYPES]
    names = tuple(shop.name for shop in shops)
    for name in names:
        state.meter.shop(name)  # every shop is listed in /_stats from the start

    async def index(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        items = "".join(
            f'<li><a href="{s.prefix}/">{s.title}</a> — {s.catalogue.products} products, '
            f"{base}{s.prefix}/</li>"
            for s in shops
        )
        return HTMLResponse(f"<!doctype html><title>pricefleet demo shops</title><ul>{items}</ul>")

    async def robots(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        # The host's robots.txt holds every shop's rules too, for crawlers that read only it.
        lines = ["User-agent: *", "Disallow: /_"]
        lines += [f"Disallow: {s.prefix}{rule}" for s in shops for rule in s.disallow]
        lines += [f"Crawl-delay: {state.config.crawl_delay:g}", ""]
        lines += [f"Sitemap: {base}{s.prefix}/sitemap.xml" for s in shops]
        return PlainTextResponse("\n".join(lines) + "\n")

    async def stats(request: Request) -> Response:
        if request.method == "DELETE":
            state.meter.reset()
        return JSONResponse(state.meter.as_dict())

    async def clock(request: Request) -> Response:
        if request.method == "PUT":
            body = await _json_body(request)
            day = body.get("day")
            if day is not None and (not isinstance(day, int) or day < 0):
                return PlainTextResponse("day must be a whole number ≥ 0 or null", 400)
            state.fixed_day = day
        return JSONResponse({"day": state.today, "fixed": state.fixed_day is not None})

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            body = await _json_body(request)
            try:
                state.faults.set_rates(parse_faults(str(body.get("spec", "")), names))
            except FaultError as exc:
                return PlainTextResponse(str(exc), 400)
        return JSONResponse({"rates": state.faults.rates})

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes: list[Any] = [
        Route("/", index),
        Route("/robots.txt", robots),
        Route("/healthz", healthz),
        Route("/_stats", stats, methods=["GET", "DELETE"]),
        Route("/_clock", clock, methods=["GET", "PUT"]),
        Route("/_faults", faults, methods=["GET", "PUT"]),
    ]
    for shop in shops:
        routes.append(Mount(shop.prefix, app=ShopGate(Router(shop.routes()), shop, state)))
    app = Starlette(routes=routes, exception_handlers={BadRequest: _bad_request})
    app.state.demo = state
    app.state.shops = {shop.name: shop for shop in shops}
    return app


async def _bad_request(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(f"Bad request: {exc}", status_code=400)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body
