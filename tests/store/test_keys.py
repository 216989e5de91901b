"""API keys and the audit log, on every store backend (SQLite, PostgreSQL, shards)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pricefleet.errors import InvalidQuery
from pricefleet.store import AuditEntry, Store, parse_key, verify_key
from pricefleet.store.keys import hash_secret
from pricefleet.store.sharded import ShardedStore
from tests.servers import create_database, drop_database, pg_url


async def test_created_key_is_shown_once_and_stored_hashed(store: Store) -> None:
    """A new key reads `pf_<id>_<secret>`; only a hash of the secret is kept, and it verifies."""
    record, key = await store.create_api_key("ci bot", ["read", "crawl"])
    parsed = parse_key(key)
    assert parsed is not None
    key_id, secret = parsed
    assert key.startswith("pf_")
    assert key_id == record.id
    assert len(secret) >= 40
    stored = await store.api_key(record.id)
    assert stored is not None
    assert (stored.name, stored.scopes, stored.revoked_at) == ("ci bot", ("read", "crawl"), None)
    assert secret not in stored.secret_hash
    assert stored.secret_hash == hash_secret(key_id, secret)
    assert secret not in repr(stored)
    assert verify_key(stored, key)
    assert not verify_key(stored, key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert not verify_key(stored, f"pf_{record.id}_")
    assert await store.api_key("0123456789ab") is None


async def test_keys_are_listed_oldest_first_without_their_secret(store: Store) -> None:
    """`api_keys` lists every key, revoked ones too unless asked otherwise."""
    first, _ = await store.create_api_key("one", ["read"])
    second, _ = await store.create_api_key("two", ["admin"])
    assert [k.id for k in await store.api_keys()] == [first.id, second.id]
    assert await store.revoke_api_key(first.id)
    assert [k.id for k in await store.api_keys(include_revoked=False)] == [second.id]
    listed = {k.id: k for k in await store.api_keys()}
    assert listed[first.id].revoked_at is not None
    assert not listed[first.id].active


async def test_revoke_is_once_and_only_for_known_keys(store: Store) -> None:
    """Revoking answers True once, then False; an unknown id is False."""
    record, key = await store.create_api_key("temp", ["read"])
    assert await store.revoke_api_key(record.id) is True
    assert await store.revoke_api_key(record.id) is False
    assert await store.revoke_api_key("ffffffffffff") is False
    revoked = await store.api_key(record.id)
    assert revoked is not None
    assert revoked.revoked_at is not None
    assert verify_key(revoked, key)  # the secret still matches: callers check `active`


async def test_key_needs_a_name_and_a_scope(store: Store) -> None:
    """A key without a name or without scopes is refused with a clear error."""
    with pytest.raises(InvalidQuery, match="name"):
        await store.create_api_key("  ", ["read"])
    with pytest.raises(InvalidQuery, match="scope"):
        await store.create_api_key("x", [])


async def test_last_used_only_moves_forward(store: Store) -> None:
    """`mark_api_key_used` records the newest use and never goes back."""
    record, _ = await store.create_api_key("used", ["read"])
    later = datetime.now(UTC) + timedelta(minutes=5)
    await store.mark_api_key_used(record.id, later)
    await store.mark_api_key_used(record.id, later - timedelta(minutes=1))
    stored = await store.api_key(record.id)
    assert stored is not None
    assert stored.last_used_at == later


async def test_audit_log_round_trip_newest_first(store: Store) -> None:
    """Entries come back newest first with ids, filters by actor and action, paged by id."""
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    await store.record_audit(
        [
            AuditEntry("cli", "key.create", "k1", {"scopes": ["read"]}, None, at),
            AuditEntry(
                "abc123abc123",
                "POST /v1/crawls",
                "/v1/crawls",
                {"status": 202},
                "10.0.0.1",
                at + timedelta(seconds=1),
            ),
        ]
    )
    await store.record_audit([AuditEntry("cli", "key.revoke", "k1", at=at + timedelta(seconds=2))])
    await store.record_audit([])
    entries = await store.audit_log()
    assert [e.action for e in entries] == ["key.revoke", "POST /v1/crawls", "key.create"]
    assert all(e.id is not None for e in entries)
    assert entries[1] == replace(
        entries[1],
        actor="abc123abc123",
        ip="10.0.0.1",
        detail={"status": 202},
        at=at + timedelta(seconds=1),
    )
    assert [e.action for e in await store.audit_log(actor="cli")] == ["key.revoke", "key.create"]
    assert [e.target for e in await store.audit_log(action="key.create")] == ["k1"]
    page = await store.audit_log(limit=1)
    older = await store.audit_log(limit=5, before_id=page[0].id)
    assert [e.action for e in page + older] == [e.action for e in entries]
    with pytest.raises(InvalidQuery):
        await store.audit_log(limit=0)


async def test_concurrent_audit_writes_all_land(store: Store) -> None:
    """Audit batches written at once from several tasks are all kept, each with its own id."""
    await asyncio.gather(
        *(
            store.record_audit([AuditEntry("cli", f"a{i}"), AuditEntry("cli", f"b{i}")])
            for i in range(5)
        )
    )
    entries = await store.audit_log(limit=100)
    assert len(entries) == 10
    assert len({e.id for e in entries}) == 10


async def test_keys_live_on_the_primary_shard() -> None:
    """On shards, keys and audit entries are kept on the first shard configured only, even
    when its name does not sort first."""
    names = [await create_database() for _ in range(2)]
    store = ShardedStore.from_urls([f"z={pg_url(names[0])}", f"a={pg_url(names[1])}"])
    try:
        await store.upgrade()
        record, _ = await store.create_api_key("sharded", ["read"])
        await store.record_audit([AuditEntry("cli", "key.create", record.id)])
        first, other = store.shards["z"], store.shards["a"]
        assert first is store.primary
        assert await store.api_key(record.id) is not None
        assert await first.api_key(record.id) is not None
        assert len(await first.audit_log()) == 1
        assert await other.api_key(record.id) is None
        assert await other.audit_log() == []
    finally:
        await store.close()
        for name in names:
            await drop_database(name)
