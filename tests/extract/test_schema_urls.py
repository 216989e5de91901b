"""`absolute_url`'s shortcut for root-relative paths gives exactly what urljoin gives."""

from __future__ import annotations

from urllib.parse import urljoin

from hypothesis import given, settings
from hypothesis import strategies as st

from pricefleet.extract.schema import _joined, absolute_url

_BASES = st.sampled_from(
    [
        "http://127.0.0.1:8180/jsonld/p/1/x",
        "https://shop.example/p/1?ref=a#top",
        "https://shop.example",
        "https://shop.example?x",
        "HTTPS://Shop.Example/a/b/",
        "https://user@shop.example/a",
        "https://[::1]:8080/a",
        "http://shop.example:80/a;p?q",
        "https://shop.example/a/../b",
        "https://shöp.example/a",
        "ftp://shop.example/a",
    ]
)
_PIECES = st.sampled_from(
    ["/", "a", "img", "332.jpg", ".", "..", "//", "?", "#", ";p", ";", "=", "%20"]
)
_TEXTS = st.one_of(
    st.lists(_PIECES, max_size=8).map("".join),
    st.text(max_size=20),
    st.text(alphabet="/.?#;=a\\ \t\x00é", max_size=12),
)


@settings(max_examples=3000, deadline=None)
@given(base=_BASES, text=_TEXTS)
def test_shortcut_equals_urljoin(base: str, text: str) -> None:
    """Whenever the shortcut answers, urljoin answers the same."""
    joined = _joined(base, text)
    if joined is not None:
        assert joined == urljoin(base, text)


def test_shortcut_is_taken_for_plain_paths() -> None:
    """A plain image path against a page URL takes the shortcut; dot segments, queries and
    odd hosts do not, and absolute_url still joins them as urljoin does."""
    page = "http://127.0.0.1:8180/jsonld/p/100226/papel"
    assert _joined(page, "/jsonld/img/332.jpg") == "http://127.0.0.1:8180/jsonld/img/332.jpg"
    for base, text in [
        (page, "/a/../b"),
        (page, "/a?"),
        (page, "/;"),
        (page, "/a;"),
        (page, "//cdn.example/x.jpg"),
        ("HTTP://Shop/a", "/x"),
        ("https://[::1]/a", "/x"),
    ]:
        assert _joined(base, text) is None
        assert absolute_url(text, base) == urljoin(base, text)
