"""PostgreSQL: the search rows in 16 hash partitions, their GIN index on (site_id, search)

A search ranks at most `SEARCH_CANDIDATES` (5,000) of its matches, taken as the GIN index
yields them, and reading stops there. But a GIN index gives its matches as a bitmap, built whole
before the first row is read: a common word's bitmap costs as much as its matches. At 1,000,000
products, `leche:*` (58,000 matches) spent 19 of its 33 ms building a bitmap of which 5,000 rows
were read; `de:*` (330,000 matches) took 75 ms.

`product_search` is now partitioned by HASH (site_id, id) into 16 partitions, each with its own
GIN index. The matches' scan is an Append over the partitions, run one after the other under
the candidates' LIMIT: a common word's candidates all come from the first one or two
partitions, and the bitmaps of the others are never built. A rare word reads every partition,
as it read the whole index before. The hash spreads every shop over every partition, so the
candidates still come from all shops. Which 5,000 of a common word's matches are ranked
changes (the first in partition order instead of table order; an arbitrary sample either way);
searches with fewer matches rank all of them, as before.

One shop's search (`site_id = …`) filtered the bitmap's rows on the heap: for a common word it
read up to ten times the rows it kept (at 1M products, `leche:*` in one of 10 shops: 58,000
matches read to find that shop's 5,800). The GIN index is now on (site_id, search) (`btree_gin`
makes `site_id` a GIN key): the shop is intersected in the index, and only its rows are read.
A search across shops uses the same index through its second column.

The rows are copied into the new table and the GIN index is built once after the copy (29 s
in all at 1,000,000 products on our 2-core test machine; the table is locked meanwhile). The
triggers of 0003 and 0007 name the table and need no change.
SQLite is unchanged (FTS5).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: Partitions of `product_search`. More makes a common word's first bitmap smaller and costs a
#: rare word one more (cheap) index probe each; 16 measured well at 1,000,000 products.
PARTITIONS = 16

_TABLE = """CREATE TABLE product_search (
        site_id varchar(64) NOT NULL,
        id varchar(256) NOT NULL,
        search tsvector NOT NULL,
        CONSTRAINT pk_product_search PRIMARY KEY (site_id, id),
        CONSTRAINT fk_product_search_products FOREIGN KEY (site_id, id)
            REFERENCES products (site_id, id) ON DELETE CASCADE
    )"""


def _swap(partitioned: bool) -> list[str]:
    """Statements that rebuild `product_search` (partitioned, with the index on (site_id,
    search); or as 0003 made it) from its current rows."""
    index = (
        "CREATE INDEX ix_product_search_site_search ON product_search USING gin (site_id, search)"
        if partitioned
        else "CREATE INDEX ix_product_search_search ON product_search USING gin (search)"
    )
    statements = [
        "CREATE EXTENSION IF NOT EXISTS btree_gin",
        "ALTER TABLE product_search RENAME TO product_search_before",
        "ALTER INDEX pk_product_search RENAME TO pk_product_search_before",
        # The index the table has now, whichever way: its name is taken by the new one.
        "DROP INDEX IF EXISTS ix_product_search_search",
        "DROP INDEX IF EXISTS ix_product_search_site_search",
        _TABLE + (" PARTITION BY HASH (site_id, id)" if partitioned else ""),
    ]
    if partitioned:
        statements += [
            f"CREATE TABLE product_search_p{i} PARTITION OF product_search "
            f"FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {i})"
            for i in range(PARTITIONS)
        ]
    return [
        *statements,
        "INSERT INTO product_search (site_id, id, search) "
        "SELECT site_id, id, search FROM product_search_before",
        "DROP TABLE product_search_before",
        index,
        # Statistics now: the planner would otherwise take the new table for a small one.
        "ANALYZE product_search",
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _swap(partitioned=True):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _swap(partitioned=False):
            op.execute(statement)
