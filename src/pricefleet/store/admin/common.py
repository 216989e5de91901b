"""What every operation shares: its results, and the databases the settings name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import make_url

from pricefleet.config import Settings
from pricefleet.errors import StoreError
from pricefleet.store.base import Store
from pricefleet.store.migrate import head_revision
from pricefleet.store.sql import SqlStore


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What `backup` wrote."""

    path: Path
    backend: str  # "sqlite" or "postgresql"
    revision: str | None  # the schema revision inside the backup
    size_bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What `prune` deleted (or, on a dry run, would delete)."""

    cutoff: datetime
    #: History rows deleted, those of dropped partitions included.
    deleted: int
    #: Rows older than the cutoff that stay: per product, the state in force at the cutoff.
    kept: int
    #: Whole monthly partitions dropped (PostgreSQL only).
    partitions_dropped: tuple[str, ...] = ()
    dry_run: bool = False


async def upgrade(settings: Settings) -> str:
    """Migrate the configured database to the head revision; returns the revision."""
    async with Store.from_settings(settings) as store:  # every shard, when there are shards
        await store.upgrade()
    return head_revision()


# --- the configured databases ----------------------------------------------------------------


def _sql(store: Store) -> SqlStore:
    if not isinstance(store, SqlStore):  # pragma: no cover - from_url only makes SqlStores
        raise StoreError(f"{store.url}: not an SQL database")
    return store


def _single_url(settings: Settings, action: str) -> str:
    """The one configured database; shards are backed up and restored one by one."""
    if settings.database_shards:
        raise StoreError(
            f"db {action} works on one database and PRICEFLEET_DATABASE_SHARDS is set: "
            f"{action} each shard on its own, with PRICEFLEET_DATABASE_URL set to it"
        )
    return settings.effective_database_url


@asynccontextmanager
async def _databases(settings: Settings) -> AsyncIterator[list[tuple[str | None, SqlStore]]]:
    """Each configured database with its shard name (None when there are no shards). They
    must exist already: opening a missing SQLite file would make an empty one."""
    if settings.database_shards:
        from pricefleet.store.sharded import ShardedStore

        sharded = ShardedStore.from_urls(settings.database_shards)
        try:
            yield [(name, _sql(sharded.shards[name])) for name in sharded.names]
        finally:
            await sharded.close()
        return
    url = settings.effective_database_url
    if not settings.is_postgres:
        database = _sqlite_file(url)
        if not database.exists():
            raise StoreError(f"no database at {database}: run `pricefleet db upgrade` first")
    async with Store.from_url(url) as store:
        yield [(None, _sql(store))]


def _sqlite_file(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise StoreError(f"{url}: backup, restore and prune need an SQLite database file")
    return Path(database).absolute()
