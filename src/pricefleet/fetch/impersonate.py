"""The `impersonate` transport: a real browser's TLS and HTTP/2 fingerprint, via curl_cffi.

For shops whose bot protection rejects Python's TLS handshake. curl resolves names itself, so
the SSRF guard resolves first and pins curl to the checked addresses (`CURLOPT_RESOLVE`): curl
never connects anywhere the guard has not seen. One curl session per pinned (host, addresses),
a few kept alive. curl_cffi is optional: without it a site in this mode fails with a clear
`FetchError`. This module must not retry or pace: the pipeline does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from collections import OrderedDict
from typing import Any

from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict, CIMultiDictProxy

from pricefleet.errors import FetchError
from pricefleet.fetch.pipeline import Answer, Request, TransientFailure, body_too_large
from pricefleet.fetch.ssrf import GuardedResolver, ip_literal

__all__ = ["Impersonation", "impersonation_available"]

_KEEP_SESSIONS = 32


def impersonation_available() -> bool:
    """Whether curl_cffi is installed."""
    return importlib.util.find_spec("curl_cffi") is not None


class Impersonation:
    """Sends one GET through curl_cffi as the browser the policy names (`impersonate`)."""

    def __init__(self, guard: GuardedResolver, resolver: AbstractResolver | None) -> None:
        self._guard = guard
        self._resolver = resolver
        self._sessions: OrderedDict[tuple[str, int, tuple[str, ...]], Any] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    async def _pin(self, request: Request, host: str, port: int) -> tuple[str, ...]:
        if request.proxy is not None or ip_literal(host) is not None:
            return ()
        resolver = self._resolver if request.allow_private and self._resolver else self._guard
        try:
            results = await resolver.resolve(host, port, socket.AF_UNSPEC)
        except OSError as exc:
            raise TransientFailure(f"cannot resolve {host}: {exc}") from exc
        return tuple(sorted({r["host"] for r in results}))

    def _session(self, host: str, port: int, pin: tuple[str, ...]) -> Any:
        from curl_cffi.const import CurlOpt
        from curl_cffi.requests import AsyncSession

        key = (host, port, pin)
        session = self._sessions.get(key)
        if session is not None:
            self._sessions.move_to_end(key)
            return session
        options: dict[CurlOpt, Any] = {CurlOpt.PROTOCOLS_STR: "http,https"}
        if pin:
            addresses = ",".join(f"[{a}]" if ":" in a else a for a in pin)
            options[CurlOpt.RESOLVE] = [f"{host}:{port}:{addresses}"]
        session = AsyncSession(curl_options=options, trust_env=False)
        self._sessions[key] = session
        while len(self._sessions) > _KEEP_SESSIONS:
            _, old = self._sessions.popitem(last=False)
            task = asyncio.get_running_loop().create_task(old.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return session

    async def send(self, request: Request) -> Answer:
        """One GET without following redirects, as the browser `request.impersonate` would."""
        if not impersonation_available():
            raise FetchError(
                "impersonation needs curl_cffi: `pip install curl_cffi` "
                f"(site {request.site_id!r} sets impersonate)",
                url=str(request.url),
            )
        from curl_cffi.requests.exceptions import ProxyError, RequestException

        host = request.url.raw_host or ""
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        pin = await self._pin(request, host, port)
        session = self._session(host, port, pin)
        try:
            async with asyncio.timeout(request.timeout):
                answer = await session.request(
                    "GET",
                    str(request.url),
                    headers=dict(request.headers),
                    proxy=request.proxy,
                    allow_redirects=False,
                    timeout=(request.connect_timeout, request.timeout),
                    impersonate=request.impersonate or "chrome",
                    stream=True,
                )
                try:
                    body = bytearray()
                    async for chunk in answer.aiter_content():
                        body += chunk
                        if len(body) > request.max_body_bytes:
                            raise body_too_large(request)
                finally:
                    await answer.aclose()
        except TimeoutError as exc:
            raise TransientFailure(
                f"no complete answer within {request.timeout:g} s",
                proxy_fault=request.proxy is not None,
            ) from exc
        except ProxyError as exc:
            raise TransientFailure(
                f"proxy {request.proxy} failed: {exc}", proxy_fault=True
            ) from exc
        except RequestException as exc:
            raise TransientFailure(
                f"{type(exc).__name__}: {exc}", proxy_fault=request.proxy is not None
            ) from exc
        headers: CIMultiDict[str] = CIMultiDict(
            (name, value) for name, value in answer.headers.multi_items() if value is not None
        )
        return Answer(int(answer.status_code), CIMultiDictProxy(headers), bytes(body))

    async def close(self) -> None:
        """Close every curl session."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            await session.close()
        for task in list(self._closing):
            await task
