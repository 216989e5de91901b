"""`SeenUrls`: the URLs an in-process crawl has already queued, in ~16 bytes per URL.

A `set[str]` of canonical URLs costs ~200 bytes per URL (an 85-character URL is a 134-byte
string, plus its slot in the set), 40 MB for a 200,000-product shop, and it lives for the
whole crawl. Here each URL is kept as its 64-bit `hash()`: the older ones in a sorted
`array('q')` (8 bytes each), the newer ones in a small set that is merged into the array once
it holds an eighth as many (so each merge's cost is paid back by the adds before it).

Two different URLs may share a hash (with 64 bits, about one chance in 10⁹ for 200,000 URLs
within one crawl; `hash()` is salted per process, so a site cannot aim for it); the later one
is then taken for seen and not crawled this time. This module owns only the membership test; it
must not canonicalise URLs (the caller does, once).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

__all__ = ["SeenUrls"]

#: The newest keys stay in a plain set until there are this many, or an eighth of the rest.
_MERGE_AT = 4096


class SeenUrls:
    """A set of URLs that remembers only a 64-bit hash of each."""

    __slots__ = ("_recent", "_sorted")

    def __init__(self) -> None:
        self._sorted = array("q")
        self._recent: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def __contains__(self, url: object) -> bool:
        if not isinstance(url, str):
            return False
        return self._has(hash(url))

    def add(self, url: str) -> bool:
        """Remember `url`; True if it was not seen before."""
        key = hash(url)
        if self._has(key):
            return False
        self._recent.add(key)
        if len(self._recent) >= max(_MERGE_AT, len(self._sorted) >> 3):
            self._merge()
        return True

    def _has(self, key: int) -> bool:
        if key in self._recent:
            return True
        keys = self._sorted
        at = bisect_left(keys, key)
        return at < len(keys) and keys[at] == key

    def _merge(self) -> None:
        # The old keys are copied in runs between the new ones (memcpy speed), never as a list
        # of Python ints: a merge costs its few new keys' binary searches plus one copy.
        old, merged, start = self._sorted, array("q"), 0
        for key in sorted(self._recent):
            end = bisect_left(old, key, start)
            merged.extend(old[start:end])
            merged.append(key)
            start = end
        merged.extend(old[start:])
        self._sorted, self._recent = merged, set()
