"""API keys and the audit log in SQL: the key format, its hash, and the queries `SqlStore` runs.

A key reads `pf_<id>_<secret>`: the id (12 hex digits) finds the row, the secret
(`secrets.token_urlsafe(32)`, 256 random bits) proves possession. Only a hash of the secret is
stored and the key is shown once, when created. This module must not decide what a scope
allows: that is the API's (`pricefleet.api.auth`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from pricefleet.errors import InvalidQuery
from pricefleet.store.records import ApiKey, AuditEntry
from pricefleet.store.tables import api_keys, audit_log

__all__ = [
    "KEY_PREFIX",
    "audit_rows",
    "create_key",
    "get_key",
    "hash_secret",
    "list_keys",
    "mark_used",
    "parse_key",
    "record_audit",
    "revoke_key",
    "verify_key",
]

KEY_PREFIX = "pf_"
_ID_HEX = 12


def hash_secret(key_id: str, secret: str) -> str:
    """The stored form of a key's secret: sha256 over the id and the secret, in hex.

    A fast hash is right here, unlike for passwords: the secret is 256 bits from a CSPRNG, so
    no dictionary or brute-force search can invert it, and a slow KDF (bcrypt, argon2) would
    only add ~100 ms of CPU to every verification. The id is hashed in so that a hash copied
    to another row does not verify there."""
    return hashlib.sha256(f"{key_id}:{secret}".encode()).hexdigest()


def parse_key(key: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed `pf_<id>_<secret>`, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key.removeprefix(KEY_PREFIX).partition("_")
    if not sep or len(key_id) != _ID_HEX or not secret or len(secret) > 128:
        return None
    if any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


def verify_key(record: ApiKey, key: str) -> bool:
    """Whether `key` is the key of `record` (constant-time in the secret); revocation aside."""
    parsed = parse_key(key)
    if parsed is None or parsed[0] != record.id:
        return False
    return hmac.compare_digest(hash_secret(*parsed), record.secret_hash)


def _record(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        scopes=tuple(row.scopes),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        secret_hash=row.hash,
    )


async def create_key(conn: AsyncConnection, name: str, scopes: Sequence[str]) -> tuple[ApiKey, str]:
    """Insert a new key; returns its record and the plaintext key (shown once)."""
    name = name.strip()
    wanted = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    if not name:
        raise InvalidQuery("an API key needs a name (who or what it is for)")
    if not wanted:
        raise InvalidQuery("an API key needs at least one scope")
    key_id = secrets.token_hex(_ID_HEX // 2)
    secret = secrets.token_urlsafe(32)
    record = ApiKey(
        id=key_id,
        name=name,
        scopes=wanted,
        created_at=datetime.now(UTC),
        secret_hash=hash_secret(key_id, secret),
    )
    await conn.execute(
        insert(api_keys).values(
            id=record.id,
            name=record.name,
            hash=record.secret_hash,
            scopes=list(record.scopes),
            created_at=record.created_at,
        )
    )
    return record, f"{KEY_PREFIX}{key_id}_{secret}"


async def list_keys(conn: AsyncConnection, include_revoked: bool) -> list[ApiKey]:
    """Every key, oldest first."""
    query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    return [_record(row) for row in await conn.execute(query)]


async def get_key(conn: AsyncConnection, key_id: str) -> ApiKey | None:
    """One key by id, or None."""
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    return None if row is None else _record(row)


async def revoke_key(conn: AsyncConnection, key_id: str) -> bool:
    """Revoke a key; False when there is no such key or it was revoked already."""
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return bool(result.rowcount)


async def mark_used(conn: AsyncConnection, key_id: str, at: datetime) -> None:
    """Move a key's `last_used_at` forward to `at`."""
    column = api_keys.c.last_used_at
    await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, column.is_(None) | (column < at))
        .values(last_used_at=at)
    )


async def record_audit(conn: AsyncConnection, entries: Sequence[AuditEntry]) -> None:
    """Append entries to the audit log, in one statement."""
    if not entries:
        return
    await conn.execute(
        insert(audit_log),
        [
            {
                "at": e.at,
                "actor": e.actor[:64],
                "action": e.action[:128],
                "target": e.target,
                "detail": e.detail,
                "ip": e.ip,
            }
            for e in entries
        ],
    )


async def audit_rows(
    conn: AsyncConnection,
    limit: int,
    actor: str | None,
    action: str | None,
    before_id: int | None,
) -> list[AuditEntry]:
    """The newest entries first, filtered; `before_id` pages back through older ones."""
    if not 1 <= limit <= 10_000:
        raise InvalidQuery(f"limit={limit}: must be between 1 and 10000")
    c = audit_log.c
    query = select(audit_log).order_by(c.id.desc()).limit(limit)
    if actor is not None:
        query = query.where(c.actor == actor)
    if action is not None:
        query = query.where(c.action == action)
    if before_id is not None:
        query = query.where(c.id < before_id)
    return [
        AuditEntry(
            actor=r.actor,
            action=r.action,
            target=r.target,
            detail=r.detail,
            ip=r.ip,
            at=r.at,
            id=int(r.id),
        )
        for r in await conn.execute(query)
    ]
