"""`canonical`: its shortcut for URLs already canonical gives exactly what w3lib gives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from w3lib.url import canonicalize_url

from pricefleet.crawl.urls import _ALREADY_CANONICAL, canonical


def _w3lib(url: str) -> str:
    try:
        return canonicalize_url(url, keep_fragments=False)
    except ValueError as exc:
        return f"ValueError: {exc}"


def _ours(url: str) -> str:
    try:
        return canonical(url)
    except ValueError as exc:
        return f"ValueError: {exc}"


_LABEL = st.text("abcxyzABZ019-_.%~", min_size=0, max_size=8)
_PATH = st.text("abcXYZ09-._~/%;?#=&:@+ é", max_size=30)


@given(
    scheme=st.sampled_from(["http", "https", "HTTP", "ftp"]),
    host=st.lists(_LABEL, min_size=1, max_size=4).map(".".join),
    port=st.one_of(st.none(), st.integers(-1, 70_000).map(str), st.sampled_from(["", "080"])),
    path=_PATH,
)
def test_shortcut_equals_w3lib(scheme: str, host: str, port: str | None, path: str) -> None:
    """For any URL near the shortcut's form, `canonical` answers (or fails) as w3lib does."""
    url = f"{scheme}://{host}{'' if port is None else ':' + port}{path}"
    assert _ours(url) == _w3lib(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:49357/jsonld/p/100198/arroz-vaporizado-extra-granero-bio-500-g/",
        "https://shop.example/p/ABC/d~e_f.html",
        "http://a.com/",
        "http://a.com:65535/x//y",
    ],
)
def test_sitemap_urls_take_the_shortcut(url: str) -> None:
    """Plain shop URLs are recognised as canonical, and w3lib agrees they are."""
    assert _ALREADY_CANONICAL.fullmatch(url) is not None
    assert canonical(url) == canonicalize_url(url, keep_fragments=False) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://A.com/x",
        "http://a.com",
        "http://a.com:65536/x",
        "http://a.com:080/x",
        "http://a.com/a/../b",
        "http://a.com/./b",
        "http://a.com/.x",
        "http://a.com/x?b=1&a=2",
        "http://a.com/x#top",
        "http://a.com/%7ex",
        "http://xn--bcher-kva.example/x",
        "http://a.com/x y",
    ],
)
def test_other_urls_go_to_w3lib(url: str) -> None:
    """Anything else (case, ports, dot segments, queries, escapes, IDNA) is w3lib's."""
    assert _ALREADY_CANONICAL.fullmatch(url) is None
    assert _ours(url) == _w3lib(url)


@given(
    host=st.lists(st.text("az09-", min_size=1, max_size=6), min_size=1, max_size=3).map(".".join),
    port=st.one_of(st.none(), st.integers(1, 65_535)),
    path=st.text("aZ09._~/-", max_size=30),
)
def test_shortcut_form_equals_w3lib(host: str, port: int | None, path: str) -> None:
    """URLs drawn from the shortcut's own alphabet: taken or not, the answer is w3lib's."""
    url = f"http://{host}{'' if port is None else f':{port}'}/{path}"
    assert _ours(url) == _w3lib(url)
