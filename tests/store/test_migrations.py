"""Migrations build exactly the tables in code, on each single-database backend."""

from __future__ import annotations

from sqlalchemy import text

from pricefleet.store.migrate import head_revision, schema_diff
from pricefleet.store.sql import SqlStore


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
