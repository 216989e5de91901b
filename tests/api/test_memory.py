"""The API cache's in-process tier: LRU with expiry, an exact tag index, untracked entries."""

from __future__ import annotations

import gc

import pytest

from pricefleet.api.cache import Entry, make_entry
from pricefleet.api.memory import MemoryTier

NOW = 1_000_000.0


def _value(n: int) -> tuple[object, ...]:
    return tuple(make_entry(f'{{"n": {n}}}'.encode(), [f"product:s:{n}", "site:s"], built_at=NOW))


def test_an_entry_is_kept_until_it_expires_then_dropped_on_read() -> None:
    """A read before the expiry finds the value; a read at or after it drops it."""
    tier, value = MemoryTier(10), _value(1)
    tier.set("k", value, NOW + 60, NOW, ["product:s:1"])
    assert tier.get("k", NOW + 59) is value
    assert tier.get("k", NOW + 60) is None
    assert "k" not in tier
    assert tier.tags() == []  # the index follows the drop


def test_the_least_recently_used_entry_is_evicted_with_its_tags() -> None:
    """Past `size`, the least recently read or written entry goes, and so does its place in
    the tag index, while a recently read one stays."""
    tier = MemoryTier(3)
    for n in range(3):
        tier.set(f"k{n}", _value(n), NOW + 60, NOW, [f"product:s:{n}"])
    assert tier.get("k0", NOW) is not None  # k0 is now the most recently used
    tier.set("k3", _value(3), NOW + 60, NOW, ["product:s:3"])
    assert "k1" not in tier
    assert "k0" in tier
    assert sorted(tier.tags()) == ["product:s:0", "product:s:2", "product:s:3"]


def test_a_hot_entry_stays_invalidatable_under_memory_pressure() -> None:
    """An entry kept by its reads stays reachable by its tag however many others come and go
    (cashews' memory backend kept tag sets in the same LRU, where they could be evicted
    before the entries they cover)."""
    tier = MemoryTier(50)
    tier.set("hot:a", _value(0), NOW + 3_600, NOW, ["product:s:hot"])
    tier.set("hot:b", _value(0), NOW + 3_600, NOW, ["product:s:hot"])
    for n in range(1_000):
        tier.set(f"cold{n}", _value(n), NOW + 3_600, NOW, [f"product:s:{n}"])
        assert tier.get("hot:a", NOW) is not None
        assert tier.get("hot:b", NOW) is not None
    assert len(tier) == 50
    assert len(tier.tags()) == 49  # the hot tag and the 48 cold entries still held
    assert tier.delete_tags(["product:s:hot"]) == 2
    assert "hot:a" not in tier
    assert "hot:b" not in tier


def test_delete_tags_drops_only_the_tagged_entries() -> None:
    """Invalidation by a tag drops every entry under it and nothing else; unknown tags are
    no-ops."""
    tier = MemoryTier(10)
    tier.set("p1", _value(1), NOW + 60, NOW, ["product:s:1"])
    tier.set("h1", _value(1), NOW + 60, NOW, ["product:s:1"])
    tier.set("p2", _value(2), NOW + 60, NOW, ["product:s:2"])
    tier.set("list", _value(3), NOW + 60, NOW, [])
    assert tier.delete_tags(["product:s:1", "product:s:404"]) == 2
    assert sorted(k for k in ("p1", "h1", "p2", "list") if k in tier) == ["list", "p2"]
    assert tier.tags() == ["product:s:2"]


def test_rewriting_a_key_moves_it_between_tags() -> None:
    """A key written again under other tags is indexed under the new ones only."""
    tier = MemoryTier(10)
    tier.set("k", _value(1), NOW + 60, NOW, ["product:s:1"])
    tier.set("k", _value(2), NOW + 60, NOW, ["product:s:2"])
    assert tier.delete_tags(["product:s:1"]) == 0
    assert tier.delete_tags(["product:s:2"]) == 1


def test_writes_drop_expired_entries_among_the_least_recently_used() -> None:
    """Expired entries do not wait for the size bound: each write clears a few of the oldest."""
    tier = MemoryTier(100)
    for n in range(4):
        tier.set(f"old{n}", _value(n), NOW + 1, NOW, [f"product:s:{n}"])
    tier.set("new", _value(9), NOW + 600, NOW + 2, ["product:s:9"])
    assert len(tier) == 1
    assert tier.tags() == ["product:s:9"]


def test_held_entries_are_not_tracked_by_the_collector() -> None:
    """What the cache holds is plain tuples of atomic values, which a full collection does
    not walk (their number once set the length of a worker's pauses)."""
    tier = MemoryTier(100)
    for n in range(50):
        tier.set(f"k{n}", _value(n), NOW + 60, NOW, [f"product:s:{n}"])
    for _ in range(3):  # a tuple is untracked once its items are: one level per collection
        gc.collect()
    held = list(tier._entries.values())
    assert held
    assert not any(gc.is_tracked(stored) for stored in held)
    entry = Entry._make(held[0][1])
    assert entry.etag.startswith('"')
    assert entry.body.startswith(b'{"n"')


def test_size_must_be_positive() -> None:
    """A tier of no entries is a configuration error, said plainly."""
    with pytest.raises(ValueError, match="at least one"):
        MemoryTier(0)
