"""read paths at catalogue scale: lists by site and price, narrow search rows, trending by move

- `ix_products_site_id_price_id` (site_id, price, id): a site's products in price order, so a
  price-sorted list (with or without a price range) reads its page from the index instead of
  sorting every product of the site. A price change already rewrites the product's index
  entries (`ix_products_price`), so the extra index costs one more entry per change only.
- PostgreSQL: the search vector moves out of the wide product row (raw JSON inline) into a
  narrow `product_search (site_id, id, search)` table kept by a trigger on name and brand
  changes. Ranking a common word's matches reads that table instead of the products' heap
  (48,000 pages for 58,000 matches at 1M products), and ingest no longer recomputes the
  generated column on every product upsert.
- PostgreSQL: `ix_price_moves_change` on the trending view, by window and relative move, so a
  window's biggest moves are the first entries of an index instead of a sort of every move.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: The vector both 0001's generated column and the trigger below build: name words weigh more
#: than brand words (A over B), as FTS5's bm25 weights do on SQLite.
_VECTOR = """setweight(to_tsvector('simple', pf_unaccent(coalesce({row}name, ''))), 'A')
        || setweight(to_tsvector('simple', pf_unaccent(coalesce({row}brand, ''))), 'B')"""

POSTGRES_UP = (
    """CREATE TABLE product_search (
        site_id varchar(64) NOT NULL,
        id varchar(256) NOT NULL,
        search tsvector NOT NULL,
        CONSTRAINT pk_product_search PRIMARY KEY (site_id, id),
        CONSTRAINT fk_product_search_products FOREIGN KEY (site_id, id)
            REFERENCES products (site_id, id) ON DELETE CASCADE
    )""",
    "INSERT INTO product_search (site_id, id, search) SELECT site_id, id, search FROM products",
    "CREATE INDEX ix_product_search_search ON product_search USING gin (search)",
    # Statistics now: the planner would otherwise take the new table for a small one.
    "ANALYZE product_search",
    f"""CREATE FUNCTION pf_product_search() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO product_search (site_id, id, search)
        VALUES (new.site_id, new.id, {_VECTOR.format(row="new.")})
        ON CONFLICT (site_id, id) DO UPDATE SET search = excluded.search;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER products_search_insert AFTER INSERT ON products
        FOR EACH ROW EXECUTE FUNCTION pf_product_search()""",
    # Upserts rewrite every product row; only a real change of name or brand reaches the
    # function (the WHEN clause is checked without calling it).
    """CREATE TRIGGER products_search_update AFTER UPDATE OF name, brand ON products
        FOR EACH ROW
        WHEN (old.name IS DISTINCT FROM new.name OR old.brand IS DISTINCT FROM new.brand)
        EXECUTE FUNCTION pf_product_search()""",
    "DROP INDEX ix_products_search",
    "ALTER TABLE products DROP COLUMN search",
    """CREATE INDEX ix_price_moves_change
        ON price_moves (days, ((new_price - old_price) / old_price), site_id, product_id)""",
)

POSTGRES_DOWN = (
    "DROP INDEX ix_price_moves_change",
    f"""ALTER TABLE products ADD COLUMN search tsvector GENERATED ALWAYS AS (
        {_VECTOR.format(row="")}
    ) STORED""",
    "CREATE INDEX ix_products_search ON products USING gin (search)",
    "DROP TRIGGER products_search_update ON products",
    "DROP TRIGGER products_search_insert ON products",
    "DROP FUNCTION pf_product_search()",
    "DROP TABLE product_search",
)


def upgrade() -> None:
    op.create_index(
        op.f("ix_products_site_id_price_id"), "products", ["site_id", "price", "id"], unique=False
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_DOWN:
            op.execute(statement)
    op.drop_index(op.f("ix_products_site_id_price_id"), table_name="products")
