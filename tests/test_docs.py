"""The operations page's settings table is the Settings model's, and every setting is explained."""

from __future__ import annotations

import re
from pathlib import Path

from pricefleet.config import Settings, settings_reference

DOCS = Path(__file__).parents[1] / "docs"
_BLOCK = re.compile(r"<!-- settings:begin -->\n(.*?)\n?<!-- settings:end -->", re.S)


def test_operations_page_has_the_generated_settings_table() -> None:
    block = _BLOCK.search((DOCS / "operations.md").read_text())
    assert block is not None, "docs/operations.md lost its settings markers"
    assert block[1].strip() == settings_reference(), (
        "docs/operations.md is out of date: put `pricefleet config --markdown` between the markers"
    )


def test_every_setting_is_explained() -> None:
    rows = settings_reference().splitlines()[2:]
    assert len(rows) == len(Settings.model_fields)
    for row in rows:
        assert row.split("|")[3].strip(), row
