"""Backups and restores: consistent snapshots while writers go on, refused when not ours."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import time
import uuid
from contextlib import closing
from pathlib import Path

from sqlalchemy import (
    URL,
    make_url,
    text,
)

from pricefleet.config import Settings
from pricefleet.errors import StoreError
from pricefleet.store.admin.common import BackupInfo, _single_url, _sql, _sqlite_file
from pricefleet.store.base import Store
from pricefleet.store.migrate import head_revision

#: How long SQLite connections of these commands wait on a lock (as the store does).
_BUSY_SECONDS = 30.0
_SQLITE_MAGIC = b"SQLite format 3\x00"
_PGDUMP_MAGIC = b"PGDMP"

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
#: refuses), nor does it know partitions made after the backup: drop the partitioned tables
#: whole (the history, with its partitions and the trending view; the search rows, with
#: theirs) and let the script make them again.
_RESTORE_PRELUDE = (
    b"BEGIN;\nDROP TABLE IF EXISTS price_observations CASCADE;\n"
    b"DROP TABLE IF EXISTS product_search CASCADE;\n"
)


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
