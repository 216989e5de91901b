"""Real servers for tests: the demo shops in their own process, on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NoReturn
from urllib.error import URLError
from urllib.request import urlopen

import asyncpg
import pytest

__all__ = [
    "SHARED_OPTIONS",
    "DemoServer",
    "create_database",
    "drop_database",
    "free_port",
    "pg_url",
    "require_program",
    "require_server",
    "start_demo",
]

#: The demo server most tests share: small, fixed day, fixed seed.
SHARED_OPTIONS = ("--products", "400", "--seed", "7", "--day", "10")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing(message: str) -> NoReturn:
    """Skip a test whose server or tool is missing - but fail under CI=true, where it must be."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must have it running")
    pytest.skip(message)


def require_server(host: str, port: int, what: str) -> None:
    """A server a test needs must answer at host:port."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        _missing(f"{what} is not reachable at {host}:{port} ({exc})")


def require_program(path: Path, package: str) -> None:
    """A program a test needs must be installed at `path` (from Debian's `package`)."""
    if not path.exists():
        _missing(f"{path} is not installed (Debian package `{package}`, see `make system`)")


@dataclass
class DemoServer:
    """A `pricefleet demo-shop` process serving on `port`."""

    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    options: tuple[str, ...] = field(default_factory=tuple)

    @property
    def url(self) -> str:
        """Base URL, without trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the server and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def log_text(self) -> str:
        """What the server wrote to stderr so far."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def start_demo(*options: str) -> DemoServer:
    """Start the demo shops in their own process, as `make demo` does, and wait until ready."""
    port = free_port()
    command = [sys.executable, "-m", "pricefleet", "demo-shop", "--port", str(port), *options]
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by DemoServer.stop()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    server = DemoServer(port, process, log, options)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"demo-shop exited with {process.returncode}: {server.log_text()}")
        try:
            with urlopen(f"{server.url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return server
        except (URLError, OSError):
            time.sleep(0.1)
    server.stop()
    raise AssertionError("demo-shop did not answer within 30 s")


# --- PostgreSQL: a database of its own per test ------------------------------------------

PG_HOST = os.environ.get("PRICEFLEET_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PRICEFLEET_TEST_PG_PORT", "5432"))
PG_ADMIN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"


async def create_database() -> str:
    """A new, empty PostgreSQL database of its own; returns its name."""
    require_server(PG_HOST, PG_PORT, "PostgreSQL")
    name = f"pf_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def drop_database(name: str) -> None:
    """Drop a test database, closing whatever still holds it."""
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def pg_url(name: str) -> str:
    """The URL of test database `name`."""
    return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
