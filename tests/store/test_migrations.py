"""Migrations build exactly the tables in code, on each single-database backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from pricefleet.store.migrate import head_revision, schema_diff
from pricefleet.store.sql import SqlStore
from pricefleet.store.sqlite import SqliteStore
from tests.servers import create_database, drop_database, pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
async def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    """A migrated single-database store."""
    if request.param == "sqlite":
        store: SqlStore = SqliteStore.create(f"sqlite:///{tmp_path / 'pf.db'}")
        await store.upgrade()
        yield store
        await store.close()
        return
    from pricefleet.store.postgres import PostgresStore

    name = await create_database()
    store = PostgresStore.create(pg_url(name))
    try:
        await store.upgrade()
        yield store
    finally:
        await store.close()
        await drop_database(name)


async def test_migrations_build_exactly_the_tables_in_code(sql_store: SqlStore) -> None:
    """After `upgrade` the database matches the SQLAlchemy tables, at the one head revision."""
    async with sql_store.writer.connect() as conn:
        assert await schema_diff(conn) == []
        version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    assert version == head_revision()
    await sql_store.upgrade()  # idempotent
    async with sql_store.writer.connect() as conn:
        assert await schema_diff(conn) == []


async def test_one_head_revision() -> None:
    """The migrations form one line: a single head."""
    from alembic.script import ScriptDirectory

    from pricefleet.store.migrate import _config

    assert len(ScriptDirectory.from_config(_config()).get_heads()) == 1
