"""`json_text`, the JSON columns' serialiser: what it writes reads back as the value it was
given, for any JSON value (orjson, or the standard library for what orjson refuses)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pricefleet.store.types import json_text

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: orjson refuses those
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_what_is_written_reads_back_equal(value: Any) -> None:
    assert json.loads(json_text(value)) == value


def test_values_orjson_refuses_are_written_by_the_standard_library() -> None:
    assert json_text({"ean": 2**70}) == '{"ean": 1180591620717411303424}'


def test_numbers_json_cannot_hold_are_written_as_null() -> None:
    # The standard library would write NaN and Infinity, which are not JSON (PostgreSQL's
    # JSONB refuses them).
    assert json_text([math.nan, math.inf, -math.inf]) == "[null,null,null]"
    assert json_text({"name": "Café"}) == '{"name":"Café"}'  # orjson: UTF-8, compact
