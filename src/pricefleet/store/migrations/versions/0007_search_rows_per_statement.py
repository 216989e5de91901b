"""PostgreSQL: new products' search rows written once per statement, not once per row

Migration 0003's `products_search_insert` trigger ran its PL/pgSQL function once per inserted
product: one single-row INSERT into `product_search` (with its GIN entry) per new product, most
of a new product's insert (an isolated test: 81-87 µs a product with it, 31 without). The
trigger is now an AFTER INSERT statement trigger over the statement's transition table
(`REFERENCING NEW TABLE`): one `INSERT … SELECT` per batch of new products, the same rows
(`ON CONFLICT DO UPDATE` as before). Renames keep 0003's row trigger: a statement trigger
cannot name the columns it fires on, nor skip rows whose name and brand did not change, so it
would capture every updated product row of every update, where the row trigger's WHEN clause
skips them without running anything. SQLite is unchanged (FTS5 triggers are per row only).

On Citus the statement trigger's INSERT … SELECT into the distributed `product_search` is a
distributed query, which Citus refuses from a query on a shard: `deploy/citus.sql` puts 0003's
row trigger back there (one single-shard INSERT per new product).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: The vector of migration 0003 (name words weigh more than brand words: A over B).
_VECTOR = """setweight(to_tsvector('simple', pf_unaccent(coalesce(n.name, ''))), 'A')
            || setweight(to_tsvector('simple', pf_unaccent(coalesce(n.brand, ''))), 'B')"""

POSTGRES_UP = (
    f"""CREATE FUNCTION pf_product_search_rows() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO product_search (site_id, id, search)
        SELECT n.site_id, n.id, {_VECTOR} FROM new_products n
        ON CONFLICT (site_id, id) DO UPDATE SET search = excluded.search;
        RETURN NULL;
    END $$""",
    "DROP TRIGGER products_search_insert ON products",
    """CREATE TRIGGER products_search_insert AFTER INSERT ON products
        REFERENCING NEW TABLE AS new_products
        FOR EACH STATEMENT EXECUTE FUNCTION pf_product_search_rows()""",
)

POSTGRES_DOWN = (
    "DROP TRIGGER products_search_insert ON products",
    """CREATE TRIGGER products_search_insert AFTER INSERT ON products
        FOR EACH ROW EXECUTE FUNCTION pf_product_search()""",
    "DROP FUNCTION pf_product_search_rows()",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_DOWN:
            op.execute(statement)
