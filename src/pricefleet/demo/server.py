"""Running the demo shops: serve them over HTTP, write their truth, export them as static files."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.types import Message

from pricefleet.demo.app import create_app
from pricefleet.demo.shops.base import DemoShop
from pricefleet.demo.state import DemoConfig

__all__ = ["export_shop", "serve", "shop_names", "write_truth"]


def shop_names() -> tuple[str, ...]:
    """The names of the demo shops, in mount order."""
    from pricefleet.demo.shops import SHOP_TYPES

    return tuple(shop_type.name for shop_type in SHOP_TYPES)


def serve(config: DemoConfig, host: str, port: int) -> None:
    """Serve the demo shops until interrupted."""
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )


def _shop(app: Starlette, name: str) -> DemoShop:
    shop: DemoShop = app.state.shops[name]
    return shop


def write_truth(config: DemoConfig, shop: str, day: int, base_url: str, out: IO[bytes]) -> int:
    """Write every product of `shop` on `day` as JSON lines; returns how many."""
    demo = _shop(create_app(config), shop)
    count = 0
    for record in demo.truth_records(day, base_url):
        out.write(orjson.dumps(record) + b"\n")
        count += 1
    return count


async def _get(app: Starlette, url: str) -> tuple[int, bytes]:
    """One GET through the ASGI app in process, as an HTTP server would make it."""
    parts = urlsplit(url)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": parts.scheme,
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "root_path": "",
        "query_string": parts.query.encode(),
        "headers": [(b"host", parts.netloc.encode())],
        "server": (parts.hostname or "127.0.0.1", parts.port or 80),
        "client": ("127.0.0.1", 0),
    }
    status, body = 0, bytearray()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status, bytes(body)


def static_path(root: Path, path: str, query: str) -> Path:
    """Where an exported page lives: `…/` and extension-less paths become `…/index.html`
    (so `/c/x` and `/c/x/page/2` can both exist), and a query goes to `…/__q/<name>/<query>`.
    """
    relative = path.lstrip("/")
    if query:
        if not relative or relative.endswith("/"):
            relative += "index.html"
        target = root / relative
        return target.parent / "__q" / target.name / query
    if "." not in relative.rsplit("/", 1)[-1]:
        relative = f"{relative.rstrip('/')}/index.html" if relative else "index.html"
    return root / relative


def export_shop(
    config: DemoConfig, shop: str, directory: Path, base_url: str, day: int
) -> Iterator[str]:
    """Write every page of `shop` under `directory`, yielding each path as it is written."""
    app = create_app(dataclasses.replace(config, day=day, faults={}))
    demo = _shop(app, shop)
    base = base_url.rstrip("/")

    async def run(paths: Iterable[str]) -> list[tuple[str, int, bytes]]:
        return [(p, *(await _get(app, base + p))) for p in paths]

    batch: list[str] = []
    for path in demo.export_paths():
        batch.append(path)
        if len(batch) >= 256:
            yield from _write(directory, asyncio.run(run(batch)))
            batch = []
    yield from _write(directory, asyncio.run(run(batch)))
    (directory / "nginx.conf").write_text(_nginx_conf(directory))


def _write(directory: Path, pages: list[tuple[str, int, bytes]]) -> Iterator[str]:
    for path, status, body in pages:
        if status != 200:
            raise RuntimeError(f"export: {path} answered {status}")  # a bug in the demo shop
        parts = urlsplit(path)
        target = static_path(directory, parts.path, parts.query)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(body)
        os.replace(tmp, target)
        yield path


def _nginx_conf(directory: Path) -> str:
    return f"""# Serves an exported demo shop: nginx -p . -c nginx.conf (port 8180).
worker_processes auto;
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type text/html;
    types {{ text/html html; application/xml xml; application/gzip gz; text/plain txt;
             application/json json; }}
    server {{
        listen 127.0.0.1:8180;
        root {directory.resolve()};
        location / {{
            if ($args) {{
                rewrite ^(.*/)$ $1__q/index.html/$args? last;
                rewrite ^(.*/)([^/]+)$ $1__q/$2/$args? last;
            }}
            try_files $uri $uri/index.html =404;
        }}
        location ~ /__q/ {{ internal; try_files $uri =404; }}
    }}
}}
"""
