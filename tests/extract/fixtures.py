"""Saved real pages for the extractor tests (`../shared/fixtures/`, see its SOURCES.md)."""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

__all__ = ["EXTRUCT", "FIXTURES", "PRICE_PARSER", "ZYTE", "zyte_pages", "zyte_truth"]

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
ZYTE = FIXTURES / "zyte-product-extraction-benchmark"
EXTRUCT = FIXTURES / "extruct"
PRICE_PARSER = FIXTURES / "price-parser" / "price_parsing_examples.json"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"fixture {path} is missing: the shared fixtures must be checked out")
    return path


@cache
def zyte_truth() -> dict[str, dict[str, Any]]:
    """The benchmark's ground truth, keyed by page sha256."""
    truth: dict[str, dict[str, Any]] = orjson.loads(
        _require(ZYTE / "ground-truth.json").read_bytes()
    )
    return truth


@cache
def zyte_pages() -> dict[str, bytes]:
    """The saved benchmark pages (decompressed), keyed by sha256."""
    folder = _require(ZYTE / "html")
    return {
        path.name.split(".")[0]: gzip.decompress(path.read_bytes())
        for path in sorted(folder.glob("*.html.gz"))
    }
