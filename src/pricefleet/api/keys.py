"""Key management with its audit trail: create and revoke keys, each change logged with who
made it (`cli`, or an admin key's id). The CLI and admin routes call these, not the store."""

from __future__ import annotations

from collections.abc import Sequence

from pricefleet.api.auth import Scope
from pricefleet.store import ApiKey, AuditEntry, Store

__all__ = ["create_key", "revoke_key"]


async def create_key(
    store: Store, name: str, scopes: Sequence[Scope], *, actor: str, ip: str | None = None
) -> tuple[ApiKey, str]:
    """A new key (its record, and the plaintext shown once), logged as `key.create`."""
    record, key = await store.create_api_key(name, [Scope(s).value for s in scopes])
    detail = {"name": record.name, "scopes": list(record.scopes)}
    await store.record_audit([AuditEntry(actor, "key.create", record.id, detail, ip)])
    return record, key


async def revoke_key(store: Store, key_id: str, *, actor: str, ip: str | None = None) -> bool:
    """Revoke a key, logged as `key.revoke`; False (and nothing logged) when there is no such
    active key. API processes stop accepting it within their key cache lifetime."""
    revoked = await store.revoke_api_key(key_id)
    if revoked:
        await store.record_audit([AuditEntry(actor, "key.revoke", key_id, None, ip)])
    return revoked
