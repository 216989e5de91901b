"""Alembic, driven from inside pricefleet: upgrade to head, report the revision, compare schemas.

The migration scripts live in `pricefleet/store/migrations`; there is one head. Everything runs
on a connection the caller opened (sync Alembic inside `run_sync`), so the same code serves the
CLI, the embedded start-up and the tests.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from pricefleet.store.tables import metadata

__all__ = ["DIALECT_OBJECTS", "head_revision", "schema_diff", "upgrade"]

#: Search and trending structures each backend builds by hand; not part of the shared metadata.
DIALECT_OBJECTS = frozenset(
    {
        "products_fts",
        "products_fts_data",
        "products_fts_idx",
        "products_fts_docsize",
        "products_fts_config",
        "products_fts_content",
        "price_moves",
        "search",
        "ix_products_search",
        "ix_products_name_trgm",
        "product_search",
        "pk_product_search",
        "fk_product_search_products",
        "ix_product_search_search",
        "ix_product_search_site_search",
        "ix_price_moves_change",
    }
)


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    location = resources.files("pricefleet.store") / "migrations"
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def _upgrade(connection: Connection) -> None:
    command.upgrade(_config(connection), "head")


async def upgrade(conn: AsyncConnection) -> None:
    """Migrate the database behind `conn` to the head revision."""
    await conn.run_sync(_upgrade)


#: Partitions, named after their table: the history's months, the search rows' hash buckets.
_PARTITION_PREFIXES = ("price_observations_", "product_search_p")


def _include(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
    if name in DIALECT_OBJECTS:
        return False
    return not (kind == "table" and name is not None and name.startswith(_PARTITION_PREFIXES))


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"include_object": _include, "compare_type": True}
    )
    return list(compare_metadata(context, metadata))


async def schema_diff(conn: AsyncConnection) -> list[Any]:
    """Differences between the migrated database and the tables in code (empty when equal)."""
    return await conn.run_sync(_diff)
