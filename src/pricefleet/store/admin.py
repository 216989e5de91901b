"""Operations on a whole database, for the CLI: upgrade, backup, restore, prune, stats.

Backups are consistent snapshots taken while writers go on. On SQLite, the online backup API
copies the file in one step (one read transaction, so one snapshot; WAL lets writers continue)
inside a worker thread; on PostgreSQL, `pg_dump --format=custom` (one snapshot too). Either is
written to a temporary file beside the target and renamed into place, so a backup file is
always whole. A restore refuses files that are not pricefleet backups and backups made by a
newer pricefleet (a schema revision this code does not know), then migrates to the head.

Pruning keeps history true: a history row holds from its `observed_at` until the next row
begins, so a row is only deleted when a later row of the same product also began before the
cutoff. Each product keeps its last row that began before the cutoff (the state in force
there), and `Store.history(since=cutoff)` reads the same after pruning as before.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    URL,
    ColumnElement,
    FromClause,
    case,
    column,
    delete,
    exists,
    func,
    make_url,
    select,
    table,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from pricefleet.config import Settings
from pricefleet.errors import InvalidQuery, StoreError
from pricefleet.store.base import Store
from pricefleet.store.migrate import head_revision
from pricefleet.store.sql import SqlStore
from pricefleet.store.tables import matches, price_observations, products, sites

__all__ = [
    "BackupInfo",
    "PruneResult",
    "backup",
    "parse_age",
    "prune",
    "restore",
    "stats",
    "upgrade",
]

#: How long SQLite connections of these commands wait on a lock (as the store does).
_BUSY_SECONDS = 30.0
#: How long PostgreSQL waits to lock an old partition before pruning it row by row instead.
_PARTITION_LOCK_TIMEOUT = "5s"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_PGDUMP_MAGIC = b"PGDMP"
_MONTHLY = re.compile(r"price_observations_(\d{4})_(\d{2})")
_AGE = re.compile(r"(\d{1,6})([hdw])")
_AGE_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
#: The longest age `parse_age` accepts: a century.
_MAX_AGE = timedelta(days=36_525)


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


# --- backup and restore ----------------------------------------------------------------------


async def backup(settings: Settings, path: Path) -> BackupInfo:
    """Write a consistent snapshot of the configured database to `path` (replaced atomically):
    an SQLite database file, or a PostgreSQL custom-format dump (`pg_restore` reads it)."""
    started = time.monotonic()
    url = _single_url(settings, "backup")
    path = await asyncio.to_thread(_backup_target, path)
    try:
        if settings.is_postgres:
            revision = await _pg_backup(url, path)
            backend = "postgresql"
        else:
            database = _sqlite_file(url)
            revision = await asyncio.to_thread(_sqlite_backup, database, path)
            backend = "sqlite"
        size = (await asyncio.to_thread(path.stat)).st_size
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"backup to {path} failed: {exc}") from exc
    return BackupInfo(path, backend, revision, size, time.monotonic() - started)


async def restore(settings: Settings, path: Path) -> str:
    """Replace the configured database's contents with the backup at `path`, then migrate it to
    the head revision (and, on SQLite, rebuild the search index); returns the revision.

    Refuses a file that is not a pricefleet backup of this backend, and a backup whose schema
    revision is newer than this code knows.
    """
    url = _single_url(settings, "restore")
    path = await asyncio.to_thread(_backup_source, path)
    if settings.is_postgres:
        _check_revisions(await _pg_archive_revisions(path), path)
        await _pg_restore(url, path)
        async with Store.from_url(url) as store:
            await store.upgrade()
            async with _sql(store).writer.begin() as conn:
                await conn.execute(text("ANALYZE"))  # pg_restore leaves the planner blind
        return head_revision()
    database = _sqlite_file(url)
    try:
        await asyncio.to_thread(_sqlite_restore, path, database)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"restore of {path} into {database} failed: {exc}") from exc
    async with Store.from_url(url) as store:
        await store.upgrade()
        async with _sql(store).writer.begin() as conn:  # rowid-based: make it match what came in
            await conn.execute(text("INSERT INTO products_fts(products_fts) VALUES('rebuild')"))
    return head_revision()


def _check_revisions(revisions: list[str], path: Path) -> None:
    """Refuse a backup without a schema revision, or with one newer than this code knows."""
    if not revisions:
        raise StoreError(f"{path} is not a pricefleet backup: it holds no alembic_version")
    known = _known_revisions()
    for revision in revisions:
        if revision not in known:
            raise StoreError(
                f"{path} is at schema revision {revision!r}, which this pricefleet does not "
                f"know (its newest is {head_revision()!r}): the backup was made by a newer "
                "pricefleet; restore it with that version"
            )


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    from pricefleet.store.migrate import _config

    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def _sqlite_file(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise StoreError(f"{url}: backup, restore and prune need an SQLite database file")
    return Path(database).absolute()


def _backup_target(path: Path) -> Path:
    path = Path(path).absolute()
    if not path.parent.is_dir():
        raise StoreError(f"cannot write the backup {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise StoreError(f"cannot write the backup {path}: it is a folder; give a file name")
    return path


def _backup_source(path: Path) -> Path:
    path = Path(path).absolute()
    if not path.is_file():
        raise StoreError(f"no backup file at {path}")
    return path


def _temporary_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def _publish(temporary: Path, path: Path) -> None:
    """Move a finished temporary file onto `path` atomically, durably."""
    _fsync(temporary)
    os.replace(temporary, path)
    _fsync(path.parent)


def _revisions_of(conn: sqlite3.Connection) -> list[str]:
    try:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.OperationalError:  # no such table
        return []


def _sqlite_backup(database: Path, path: Path) -> str | None:
    """Copy `database` to `path` through the online backup API; returns the revision copied."""
    if not database.exists():
        raise StoreError(f"no database at {database}: nothing to back up")
    if database.resolve() == path.resolve():
        raise StoreError(f"the backup {path} would overwrite the database itself")
    temporary = _temporary_beside(path)
    try:
        with (
            closing(sqlite3.connect(database, timeout=_BUSY_SECONDS)) as source,
            closing(sqlite3.connect(temporary)) as copy,
        ):
            # pages=-1: one step under one read transaction, so one consistent snapshot; in WAL
            # mode the writers go on meanwhile.
            source.backup(copy, pages=-1)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal
            revisions = _revisions_of(copy)
        _publish(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        temporary.with_name(temporary.name + "-journal").unlink(missing_ok=True)
        raise
    return revisions[0] if revisions else None


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=_BUSY_SECONDS)


def _sqlite_backup_revisions(path: Path) -> list[str]:
    """The schema revisions inside an SQLite backup; refuses anything else."""
    with path.open("rb") as handle:
        magic = handle.read(len(_SQLITE_MAGIC))
    if magic.startswith(_PGDUMP_MAGIC):
        raise StoreError(
            f"{path} is a PostgreSQL dump, but the configured database is SQLite: set "
            "PRICEFLEET_DATABASE_URL to the PostgreSQL database to restore it there"
        )
    if magic != _SQLITE_MAGIC:
        raise StoreError(f"{path} is not a pricefleet backup: not an SQLite database")
    try:
        with closing(_read_only(path)) as conn:
            check = conn.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise StoreError(f"{path} is a damaged SQLite file: {check}")
            return _revisions_of(conn)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a pricefleet backup: {exc}") from exc


def _sqlite_restore(path: Path, database: Path) -> None:
    """Copy the backup into the database file through the backup API (one write transaction:
    the database is replaced whole or not at all, and open connections see the new content)."""
    if database.exists() and database.resolve() == path.resolve():
        raise StoreError(f"{path} is the configured database itself, not a backup of it")
    _check_revisions(_sqlite_backup_revisions(path), path)
    database.parent.mkdir(parents=True, exist_ok=True)
    with (
        closing(_read_only(path)) as source,
        closing(sqlite3.connect(database, timeout=_BUSY_SECONDS)) as target,
    ):
        source.backup(target, pages=-1)


def _program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise StoreError(
            f"{name} is not installed (not on PATH): install the PostgreSQL client tools of "
            "the server's major version (Debian: postgresql-client-15)"
        )
    return found


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL as libpq takes it (no driver, no password) and an environment with the password:
    a password on a command line is visible to every user of the machine."""
    parsed = make_url(url)
    plain = URL.create(
        "postgresql",
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    )
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    return plain.render_as_string(hide_password=False), env


async def _run(command: list[str], env: dict[str, str]) -> str:
    """Run a client program; its stdout, or a StoreError carrying its stderr."""
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise StoreError(f"cannot run {command[0]}: {exc}") from exc
    try:
        out, err = await process.communicate()
    except BaseException:  # cancelled: do not leave the program running
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        message = _one_line(err)
        raise StoreError(f"{Path(command[0]).name} failed (exit {process.returncode}): {message}")
    return out.decode(errors="replace")


async def _pg_backup(url: str, path: Path) -> str | None:
    dsn, env = _libpq(url)
    pg_dump = _program("pg_dump")
    temporary = _temporary_beside(path)
    try:
        await _run([pg_dump, "--format=custom", f"--file={temporary}", f"--dbname={dsn}"], env)
        revisions = await _pg_archive_revisions(temporary)  # reads back: the dump is whole
        await asyncio.to_thread(_publish, temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return revisions[0] if revisions else None


#: Sent before the restore script, in its transaction. `pg_restore --clean` cannot clean a
#: partitioned table (it drops each partition's inherited primary key, which PostgreSQL
#: refuses), nor does it know partitions made after the backup: drop the history table whole
#: (its partitions and the trending view go with it) and let the script make it again.
_RESTORE_PRELUDE = b"BEGIN;\nDROP TABLE IF EXISTS price_observations CASCADE;\n"


async def _pg_restore(url: str, path: Path) -> None:
    """Replace the database's contents with a dump, in one transaction: `pg_restore --clean
    --if-exists --no-owner` writes the script, psql runs it between our BEGIN and COMMIT.
    COMMIT is only sent once pg_restore has finished well; psql stops at the first error. Either
    way an unfinished transaction is rolled back and the database stays as it was."""
    dsn, env = _libpq(url)
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} -c client_min_messages=warning".strip()
    pg_restore, psql = _program("pg_restore"), _program("psql")
    script = await asyncio.create_subprocess_exec(
        *(pg_restore, "--clean", "--if-exists", "--no-owner", "--file=-", str(path)),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    loader: asyncio.subprocess.Process | None = None
    errors: asyncio.Future[tuple[bytes, bytes]] | None = None
    try:
        loader = await asyncio.create_subprocess_exec(
            *(psql, "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", f"--dbname={dsn}"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        source, sink = script.stdout, loader.stdin
        if source is None or sink is None or script.stderr is None or loader.stderr is None:
            raise StoreError("cannot connect pg_restore to psql")  # pragma: no cover
        errors = asyncio.gather(script.stderr.read(), loader.stderr.read())
        try:
            sink.write(_RESTORE_PRELUDE)
            while chunk := await source.read(1 << 16):
                sink.write(chunk)
                await sink.drain()
            if await script.wait() == 0:
                sink.write(b"\nCOMMIT;\n")
                await sink.drain()
            sink.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # psql stopped at an error; its stderr says which
        if script.returncode is None:
            script.kill()  # nobody reads its script any more
        await asyncio.gather(script.wait(), loader.wait())
        script_errors, loader_errors = await errors
    except BaseException:
        if errors is not None:
            errors.cancel()
        for process in (script, loader):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
        raise
    if loader.returncode != 0:
        message = _one_line(loader_errors)
        raise StoreError(f"restoring {path} failed, the database is unchanged: psql: {message}")
    if script.returncode != 0:
        message = _one_line(script_errors)
        raise StoreError(f"restoring {path} failed, the database is unchanged: {message}")


async def _pg_archive_revisions(path: Path) -> list[str]:
    """The schema revisions inside a custom-format dump; refuses anything else."""
    magic = await asyncio.to_thread(_magic, path)
    if magic.startswith(_SQLITE_MAGIC[:6]):
        raise StoreError(
            f"{path} is an SQLite backup, but the configured database is PostgreSQL: unset "
            "PRICEFLEET_DATABASE_URL (embedded profile) to restore it there"
        )
    if not magic.startswith(_PGDUMP_MAGIC):
        raise StoreError(f"{path} is not a pricefleet backup: not a pg_dump custom-format file")
    command = [_program("pg_restore"), "--data-only", "--table=alembic_version", "--file=-"]
    try:
        script = await _run([*command, str(path)], dict(os.environ))
    except StoreError as exc:
        raise StoreError(f"{path} is not a readable pricefleet backup: {exc}") from exc
    revisions: list[str] = []
    copying = False
    for line in script.splitlines():
        if line.startswith("COPY ") and "alembic_version" in line:
            copying = True
        elif copying and line == "\\.":
            break
        elif copying:
            revisions.append(line.strip())
    return revisions


def _one_line(stderr: bytes) -> str:
    """A program's error output as one line, for a one-line error."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
    return "; ".join(line for line in lines if line) or "no message"


def _magic(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(len(_SQLITE_MAGIC))


# --- prune -----------------------------------------------------------------------------------


def parse_age(value: str) -> timedelta:
    """`400d`, `36h` or `2w` as a timedelta; anything else is an InvalidQuery."""
    match = _AGE.fullmatch(value.strip().lower())
    if match is None:
        raise InvalidQuery(
            f"{value!r} is not an age: give a whole number and a unit, "
            "h (hours), d (days) or w (weeks), e.g. 400d"
        )
    age = timedelta(**{_AGE_UNITS[match[2]]: int(match[1])})
    if not timedelta(0) < age <= _MAX_AGE:
        raise InvalidQuery(f"{value!r}: the age must be more than zero and at most a century")
    return age


async def prune(
    settings: Settings,
    older_than: timedelta,
    now: datetime | None = None,
    *,
    dry_run: bool = False,
) -> PruneResult:
    """Delete history rows that ended before `now - older_than`, keeping for each product the
    last row that began before that cutoff (the state in force there).

    Precisely, a row goes when a later row of the same product also began before the cutoff.
    (A row beginning exactly at the cutoff does not make the one before it go: that one is
    still what `history(since=cutoff)` shows first, so it stays and the history reads the same.)
    The deletes run per site and calendar month, one short transaction each, so writers go on
    between them; on PostgreSQL, a monthly partition that ends by the cutoff and holds no row
    to keep is dropped whole first. With shards, each shard is pruned in turn (dropped
    partitions are named `shard:partition`). With `dry_run`, nothing changes: the result says
    what would.
    """
    if not timedelta(0) < older_than <= _MAX_AGE:
        raise InvalidQuery(f"older_than={older_than}: must be more than zero, at most a century")
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None:
        raise InvalidQuery(f"now={now!r} is naive: give an aware time")
    cutoff = (now - older_than).astimezone(UTC)
    deleted = kept = 0
    dropped: list[str] = []
    async with _databases(settings) as databases:
        for label, store in databases:
            one = await _prune_one(store, cutoff, dry_run)
            deleted += one.deleted
            kept += one.kept
            dropped += [f"{label}:{n}" if label else n for n in one.partitions_dropped]
    return PruneResult(cutoff, deleted, kept, tuple(dropped), dry_run)


async def _prune_one(store: SqlStore, cutoff: datetime, dry_run: bool) -> PruneResult:
    postgres = store.dialect == "postgresql"
    if dry_run:
        dropping = []
        if postgres:
            async with store.writer.connect() as conn:
                for name, _end in await _old_partitions(conn, cutoff):
                    if not await _holds_a_kept_row(conn, name, cutoff):
                        dropping.append(name)
        deleted, kept = await _preview(store, cutoff)
        return PruneResult(cutoff, deleted, kept, tuple(dropping), True)
    dropped = await _drop_old_partitions(store, cutoff) if postgres else []
    deleted = sum(rows for _, rows in dropped) + await _delete_superseded(store, cutoff)
    async with store.writer.connect() as conn:
        remaining = await conn.scalar(
            select(func.count()).where(price_observations.c.observed_at < cutoff)
        )
    return PruneResult(cutoff, deleted, int(remaining or 0), tuple(name for name, _ in dropped))


def _superseded(row: FromClause, cutoff: datetime) -> ColumnElement[bool]:
    """Whether a later row of the same product began before the cutoff: then `row` ended
    before it, and the state in force at the cutoff is known without it."""
    later = price_observations.alias("later")
    return exists().where(
        later.c.site_id == row.c.site_id,
        later.c.product_id == row.c.product_id,
        later.c.observed_at > row.c.observed_at,
        later.c.observed_at < cutoff,
    )


async def _preview(store: SqlStore, cutoff: datetime) -> tuple[int, int]:
    """(rows that would be deleted, rows older than the cutoff that would stay)."""
    obs = price_observations
    query = select(func.count(), func.sum(case((_superseded(obs, cutoff), 1), else_=0))).where(
        obs.c.observed_at < cutoff
    )
    async with store.writer.connect() as conn:
        total, deleted = (await conn.execute(query)).one()
    return int(deleted or 0), int(total or 0) - int(deleted or 0)


async def _delete_superseded(store: SqlStore, cutoff: datetime) -> int:
    """The row deletes, one transaction per site and calendar month before the cutoff."""
    obs = price_observations
    async with store.writer.connect() as conn:
        oldest = await conn.scalar(select(func.min(obs.c.observed_at)))
        site_ids = list(await conn.scalars(_SITES_WITH_HISTORY))
    if oldest is None or oldest >= cutoff:
        return 0
    deleted = 0
    start = oldest
    while start < cutoff:
        end = min(_next_month(start), cutoff)
        for site_id in site_ids:
            statement = delete(obs).where(
                obs.c.site_id == site_id,
                obs.c.observed_at >= start,
                obs.c.observed_at < end,
                _superseded(obs, cutoff),
            )
            async with store.writer.begin() as conn:
                deleted += (await conn.execute(statement)).rowcount
        start = end
    return deleted


#: Every site_id in the history, by a skip scan of the primary key (one probe per site).
_SITES_WITH_HISTORY = text(
    "WITH RECURSIVE s(id) AS ("
    " SELECT min(site_id) FROM price_observations"
    " UNION ALL"
    " SELECT (SELECT min(site_id) FROM price_observations WHERE site_id > s.id)"
    " FROM s WHERE s.id IS NOT NULL"
    ") SELECT id FROM s WHERE id IS NOT NULL"
)


def _next_month(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    index = moment.year * 12 + moment.month  # the next month, zero-based
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


async def _old_partitions(conn: AsyncConnection, cutoff: datetime) -> list[tuple[str, datetime]]:
    """The monthly partitions that end by the cutoff, oldest first, with their end."""
    names = await conn.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'price_observations'::regclass ORDER BY c.relname"
        )
    )
    found = []
    for name in names:
        match = _MONTHLY.fullmatch(name)
        if match is None:
            continue  # the default partition: rows of any time
        end = _next_month(datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC))
        if end <= cutoff:
            found.append((name, end))
    return found


async def _holds_a_kept_row(conn: AsyncConnection, name: str, cutoff: datetime) -> bool:
    """Whether a partition (ending by the cutoff) holds some product's last row before it."""
    partition = table(name, column("site_id"), column("product_id"), column("observed_at"))
    query = select(exists().where(~_superseded(partition, cutoff)).select_from(partition))
    return bool(await conn.scalar(query))


async def _drop_old_partitions(store: SqlStore, cutoff: datetime) -> list[tuple[str, int]]:
    """Drop the monthly partitions ending by the cutoff that hold no row to keep; returns their
    names and row counts. A partition that stays locked by others is left to the row deletes."""
    async with store.writer.connect() as conn:
        candidates = await _old_partitions(conn, cutoff)
    dropped = []
    for name, _end in candidates:
        try:
            async with store.writer.begin() as conn:
                await conn.execute(text(f"SET LOCAL lock_timeout = '{_PARTITION_LOCK_TIMEOUT}'"))
                # SHARE: no new rows while we look; readers go on until the DROP itself.
                await conn.execute(text(f"LOCK TABLE {name} IN SHARE MODE"))
                if await _holds_a_kept_row(conn, name, cutoff):
                    continue
                rows = await conn.scalar(text(f"SELECT count(*) FROM {name}"))
                await conn.execute(text(f"DROP TABLE {name}"))
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) in {"55P03", "40P01"}:  # lock timeout
                continue
            raise StoreError(f"cannot drop partition {name}: {exc.orig}") from exc
        dropped.append((name, int(rows or 0)))
    return dropped


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


# --- stats -----------------------------------------------------------------------------------


async def stats(settings: Settings) -> dict[str, Any]:
    """Counts and sizes of the configured database.

    Keys: backend, database (password hidden), revision, sites, products, observations,
    matches, oldest_observation and newest_observation (when the oldest and newest price
    states began), last_seen (the newest sighting), size_bytes (on disk; SQLite: the file and
    its WAL). On PostgreSQL also `partitions`: per partition of the history, its exact `rows`
    (one grouped count, the scan that counts `observations` anyway), `rows_estimate` (the
    planner's pg_class.reltuples, None before the first ANALYZE) and `size_bytes`. With shards,
    the counts and sizes are totals and `shards` holds each shard's own stats by name.
    """
    async with _databases(settings) as databases:
        each = {label: await _stats_one(store) for label, store in databases}
    if not settings.database_shards:
        return each[None]
    parts = list(each.values())
    total: dict[str, Any] = {
        "backend": "postgresql",
        "database": f"{len(parts)} shards",
        "revision": max((p["revision"] or "" for p in parts), default="") or None,
    }
    for key in ("sites", "products", "observations", "matches"):
        total[key] = sum(p[key] for p in parts)
    for key, pick in (("oldest_observation", min), ("newest_observation", max)):
        total[key] = pick((p[key] for p in parts if p[key] is not None), default=None)
    total["last_seen"] = max((p["last_seen"] for p in parts if p["last_seen"]), default=None)
    total["size_bytes"] = sum(p["size_bytes"] for p in parts)
    total["shards"] = each
    return total


async def _stats_one(store: SqlStore) -> dict[str, Any]:
    obs = price_observations.c
    shown = make_url(store.url).render_as_string(hide_password=True)
    result: dict[str, Any] = {"backend": store.dialect, "database": shown}
    try:
        async with store.writer.connect() as conn:
            result["revision"] = await conn.scalar(
                text("SELECT max(version_num) FROM alembic_version")
            )
            for name, counted in (
                ("sites", sites),
                ("products", products),
                ("observations", price_observations),
                ("matches", matches),
            ):
                if name == "observations" and store.dialect == "postgresql":
                    result[name] = 0  # counted with the partitions, in the same scan
                    continue
                result[name] = await conn.scalar(select(func.count()).select_from(counted))
            span = select(func.min(obs.observed_at), func.max(obs.observed_at))
            oldest, newest = (await conn.execute(span)).one()
            result["oldest_observation"] = oldest
            result["newest_observation"] = newest
            result["last_seen"] = await conn.scalar(select(func.max(products.c.last_seen)))
            if store.dialect == "postgresql":
                result["size_bytes"] = await conn.scalar(
                    text("SELECT pg_database_size(current_database())")
                )
                result["partitions"] = await _partitions(conn)
                result["observations"] = sum(p["rows"] for p in result["partitions"])
            else:
                result["size_bytes"] = await asyncio.to_thread(_sqlite_size, store.url)
    except DBAPIError as exc:
        raise StoreError(
            f"cannot read {shown}: {exc.orig} "
            "(is it a pricefleet database? `pricefleet db upgrade` makes one)"
        ) from exc
    return result


async def _partitions(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text(
            "SELECT c.relname, coalesce(n.rows, 0), c.reltuples, pg_total_relation_size(c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "LEFT JOIN (SELECT tableoid, count(*) AS rows FROM price_observations "
            "GROUP BY tableoid) n ON n.tableoid = c.oid "
            "WHERE i.inhparent = 'price_observations'::regclass ORDER BY c.relname"
        )
    )
    return [
        {
            "name": name,
            "rows": int(counted),
            "rows_estimate": int(estimate) if estimate >= 0 else None,
            "size_bytes": int(size),
        }
        for name, counted, estimate, size in rows
    ]


def _sqlite_size(url: str) -> int:
    database = _sqlite_file(url)
    files = (database, database.with_name(database.name + "-wal"))
    return sum(f.stat().st_size for f in files if f.exists())
