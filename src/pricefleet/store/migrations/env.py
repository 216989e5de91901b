"""Alembic environment: migrates the connection pricefleet hands over, or the configured URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from pricefleet.store.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _from_url() -> None:
    """`alembic` on the command line: PRICEFLEET_DATABASE_URL decides where."""
    from pricefleet.config import Settings
    from pricefleet.store.postgres import async_url
    from pricefleet.store.sqlite import _async_url

    url = Settings().effective_database_url
    engine = create_async_engine(async_url(url) if url.startswith("postgres") else _async_url(url))

    async def run() -> None:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
        await engine.dispose()

    asyncio.run(run())


connection = context.config.attributes.get("connection")
if connection is None:
    _from_url()
else:
    _run(connection)
