"""The store conformance fixtures: every test runs on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from pricefleet.store.base import Store
from pricefleet.store.postgres import PostgresStore
from pricefleet.store.sharded import ShardedStore
from pricefleet.store.sql import SqlStore
from pricefleet.store.sqlite import SqliteStore
from tests.servers import create_database, drop_database, pg_url


@asynccontextmanager
async def migrated(kind: str, tmp_path: Path) -> AsyncIterator[SqlStore]:
    """A migrated, empty single-database store: a new SQLite file under `tmp_path`, or a new
    PostgreSQL database, dropped after."""
    name = None
    store: SqlStore
    if kind == "sqlite":
        store = SqliteStore.create(f"sqlite:///{tmp_path / 'pf.db'}")
    else:
        assert kind == "postgresql", kind
        name = await create_database()
        store = PostgresStore.create(pg_url(name))
    try:
        await store.upgrade()
        yield store
    finally:
        await store.close()
        if name is not None:
            await drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql", "sharded"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated, empty store on each backend: SQLite, PostgreSQL, and three PostgreSQL
    databases as shards."""
    if request.param != "sharded":
        async with migrated(request.param, tmp_path) as single:
            yield single
        return
    names = [await create_database() for _ in range(3)]
    sharded = ShardedStore.from_urls([f"s{n}={pg_url(name)}" for n, name in enumerate(names)])
    try:
        await sharded.upgrade()
        yield sharded
    finally:
        await sharded.close()
        for name in names:
            await drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
async def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    """A migrated single-database store."""
    async with migrated(request.param, tmp_path) as single:
        yield single
