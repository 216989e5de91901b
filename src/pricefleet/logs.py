"""Logging of every pricefleet process, set up once from the settings.

The code logs through the standard library (`logging.getLogger(__name__)`); structlog renders
the records on stderr: readable lines by default, one JSON object a line with
`PRICEFLEET_LOG_JSON=true` (for Loki, Elasticsearch, Cloud Logging), at
`PRICEFLEET_LOG_LEVEL`. Each line carries the time (UTC, ISO 8601), the level, the logger and
the process id, so the lines of a fleet's processes can be told apart once collected.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

from pricefleet.config import Settings
from pricefleet.errors import ConfigError

__all__ = ["configure_logging"]

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _add_pid(
    _logger: object, _method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    event["pid"] = os.getpid()
    return event


def configure_logging(settings: Settings) -> None:
    """Route the standard library's records through structlog's renderer, on stderr."""
    level = settings.log_level.upper()
    if level not in _LEVELS:
        raise ConfigError(
            f"PRICEFLEET_LOG_LEVEL={settings.log_level!r} is not a level; use one of "
            + ", ".join(_LEVELS)
        )
    shared: list[structlog.typing.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_pid,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that chat at INFO about every connection stay at WARNING.
    for noisy in ("httpx", "asyncio", "aiosqlite", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
