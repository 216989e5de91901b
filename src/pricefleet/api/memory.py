"""The API cache's in-process tier: an LRU of cached answers with expiry and an exact tag index.

`api.cache.ApiCache` keeps each process's copy of its answers here, in front of Redis in the
cluster. This module owns only the bookkeeping: what to keep, for how long, and which keys a
product tag covers. It never awaits, so nothing can interleave with a read or a write.

Why not cashews' `mem://` backend, which the rest of the cache uses for Redis:

- **Its expiry task stalls the process.** Once a second it walks every key it holds, with no
  point where the event loop could run anything else: at 20,000 keys that is 18–35 ms on this
  project's 2-core machine, once a second per API process. Every request that arrives meanwhile
  waits, and at 1,000 requests/s that wait was the p99 of the cached product GET. Here expiry is
  lazy (a read of an expired entry drops it, and each write looks at the few least recently
  used ones), and the size bound does the rest.
- **Its tag sets are entries of the same LRU.** A hot product's entries are read (so kept) while
  its tag set is not, so under memory pressure the set could be evicted first, and an
  invalidation by that tag would leave the entries in place for their whole TTL. Here the tag
  index is kept beside the LRU and follows every eviction exactly.
- **The collector need not walk it.** Entries are stored as plain tuples of bytes, strings and
  numbers, which CPython's collector stops tracking, so a full collection of a worker holding
  50,000 answers does not visit them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from itertools import islice

__all__ = ["MemoryTier"]

#: How many of the least recently used entries each write checks for expiry.
_EXPIRE_PER_SET = 4

_Stored = tuple[float, tuple[object, ...], tuple[str, ...]]  # (expires, value, indexed tags)


class MemoryTier:
    """At most `size` values by key, each with an expiry time (epoch seconds) and the tags it is
    indexed under. Values must be plain tuples (see the module docstring)."""

    __slots__ = ("_entries", "_tagged", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a memory tier holds at least one entry, not {size}")
        self.size = size
        self._entries: OrderedDict[str, _Stored] = OrderedDict()
        self._tagged: dict[str, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: str, now: float) -> tuple[object, ...] | None:
        """The value under `key` unless missing or expired (then dropped); a hit makes the key
        the most recently used."""
        stored = self._entries.get(key)
        if stored is None:
            return None
        if stored[0] <= now:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return stored[1]

    def set(
        self, key: str, value: tuple[object, ...], expires: float, now: float, tags: Sequence[str]
    ) -> None:
        """Keep `value` under `key` until `expires`, indexed under `tags` (replacing what the key
        held), then make room: expired entries among the least recently used go first, then the
        least recently used."""
        if key in self._entries:
            self._drop(key)
        indexed = tuple(tags)
        self._entries[key] = (expires, value, indexed)
        for tag in indexed:
            self._tagged[tag] = (*self._tagged.get(tag, ()), key)
        expired = [k for k, s in islice(self._entries.items(), _EXPIRE_PER_SET) if s[0] <= now]
        for old in expired:
            self._drop(old)
        while len(self._entries) > self.size:
            old, stored = self._entries.popitem(last=False)
            self._untag(old, stored[2])

    def keys_tagged(self, tags: Iterable[str]) -> list[str]:
        """The keys indexed under one of `tags`."""
        return [key for tag in tags for key in self._tagged.get(tag, ())]

    def delete_tags(self, tags: Iterable[str]) -> int:
        """Drop every entry indexed under one of `tags`; how many were dropped."""
        dropped = 0
        for tag in tags:
            for key in self._tagged.pop(tag, ()):
                if key in self._entries:
                    self._drop(key)
                    dropped += 1
        return dropped

    def clear(self) -> None:
        """Drop everything."""
        self._entries.clear()
        self._tagged.clear()

    def tags(self) -> list[str]:
        """The tags that index at least one entry."""
        return list(self._tagged)

    def _drop(self, key: str) -> None:
        stored = self._entries.pop(key)
        self._untag(key, stored[2])

    def _untag(self, key: str, tags: tuple[str, ...]) -> None:
        for tag in tags:
            keys = tuple(k for k in self._tagged.get(tag, ()) if k != key)
            if keys:
                self._tagged[tag] = keys
            else:
                self._tagged.pop(tag, None)
