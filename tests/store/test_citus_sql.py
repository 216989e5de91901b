"""deploy/citus.sql stays in step with the schema (Citus itself cannot be installed here)."""

from __future__ import annotations

import re
from pathlib import Path

from pricefleet.store.tables import metadata

SCRIPT = Path(__file__).parents[2] / "deploy" / "citus.sql"


def test_every_table_is_distributed_by_site_or_referenced() -> None:
    """Each table is named once (distributed, reference or coordinator-local), distributed
    tables on site_id, their keys starting with it."""
    text = SCRIPT.read_text()
    distributed = dict(re.findall(r"create_distributed_table\('(\w+)', '(\w+)'", text))
    reference = set(re.findall(r"create_reference_table\('(\w+)'\)", text))
    local = set(re.findall(r"citus_add_local_table_to_metadata\('(\w+)'\)", text))
    # product_search is PostgreSQL's own (built by migration 0003, outside the shared metadata).
    tables = set(metadata.tables) | {"product_search"}
    assert set(distributed) | reference | local == tables
    assert not set(distributed) & reference
    assert not (set(distributed) | reference) & local
    for name, column in distributed.items():
        assert column == "site_id", name
        if name not in metadata.tables:
            continue
        key = [c.name for c in metadata.tables[name].primary_key.columns]
        assert key[0] == "site_id", f"{name} primary key {key} must start with site_id"
    colocated = re.findall(r"create_distributed_table\('(\w+)', 'site_id', colocate_with", text)
    assert set(colocated) == set(distributed) - {"products"}


def test_search_rows_are_written_by_a_row_trigger_on_citus() -> None:
    """Before `products` is distributed, the script turns migration 0007's statement trigger
    (a distributed INSERT … SELECT from a shard, which Citus refuses) back into a row trigger,
    with the setting that lets Citus distribute a table with triggers."""
    text = SCRIPT.read_text()
    distribute = text.index("create_distributed_table('products'")
    row_trigger = text.index(
        "CREATE TRIGGER products_search_insert AFTER INSERT ON products\n"
        "    FOR EACH ROW EXECUTE FUNCTION pf_product_search();"
    )
    assert text.index("DROP TRIGGER products_search_insert ON products;") < row_trigger
    assert text.index("SET citus.enable_unsafe_triggers TO on;") < row_trigger < distribute
