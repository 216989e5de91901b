"""`SeenUrls`: a set of URLs kept as 64-bit hashes, its answers and its size per URL."""

from __future__ import annotations

import tracemalloc

from pricefleet.crawl.seen import SeenUrls


def _url(n: int) -> str:
    return f"https://shop.example/jsonld/p/{n}/a-product-name-of-some-length-{n % 97}-uds"


def test_answers_like_a_set_across_merges() -> None:
    """Added URLs are in, others are not, a second add says so; merges lose nothing."""
    seen = SeenUrls()
    for n in range(30_000):  # several merges into the sorted array
        assert seen.add(_url(n))
    assert len(seen) == 30_000
    assert all(_url(n) in seen for n in range(0, 30_000, 7))
    assert not any(_url(n) in seen for n in range(30_000, 31_000))
    assert not seen.add(_url(12_345))
    assert not seen.add(_url(29_999))  # still in the unmerged set
    assert len(seen) == 30_000
    assert 42 not in seen


def test_memory_per_url_is_bounded() -> None:
    """50,000 URLs take under 24 bytes each (~13 measured; a set of the strings takes ~160)."""
    urls = [_url(n) for n in range(50_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        seen = SeenUrls()
        for url in urls:
            seen.add(url)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(seen) == len(urls)
    assert used / len(urls) < 24, f"{used / len(urls):.1f} bytes per URL"
