"""`PageError`: a machine-readable reason, the URL, a message that says what to do."""

from __future__ import annotations

import pickle

from pricefleet.errors import ExtractError
from pricefleet.extract import PageError


def test_page_error_carries_reason_and_url() -> None:
    """The reason code and URL are attributes; the message names both and a remedy."""
    error = PageError("no-price", url="https://shop.example/p/1", detail="product from jsonld")
    assert isinstance(error, ExtractError)
    assert (error.reason, error.url, error.detail) == (
        "no-price",
        "https://shop.example/p/1",
        "product from jsonld",
    )
    assert "no-price" in str(error)
    assert "https://shop.example/p/1" in str(error)
    assert "recipe" in str(error)


def test_page_error_survives_pickling() -> None:
    """Worker pools pickle exceptions: reason, URL and detail come back intact."""
    error = pickle.loads(pickle.dumps(PageError("empty", url="https://x/", detail="0 bytes")))
    assert (error.reason, error.url, error.detail) == ("empty", "https://x/", "0 bytes")
