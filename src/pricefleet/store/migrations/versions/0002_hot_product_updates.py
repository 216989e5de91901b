"""products: no index on last_seen; room for in-page updates on PostgreSQL

Every sighting moves a product's `last_seen`. With an index on it, PostgreSQL can never update
a product row in place (a HOT update): each sighting wrote a new entry into all seven indexes
of `products`, two of them GIN (search, trigrams), which was most of the ingest time. Without
it, and with pages left 30 % free (fillfactor 70), an unchanged product's daily sighting touches
no index at all. Monthly history partitions keep 10 % free for the same reason: the current row
of each product has its `last_seen` moved by every sighting.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_products_last_seen", table_name="products")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE products SET (fillfactor = 70)")
        op.execute("ALTER TABLE price_observations_default SET (fillfactor = 90)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE price_observations_default RESET (fillfactor)")
        op.execute("ALTER TABLE products RESET (fillfactor)")
    op.create_index("ix_products_last_seen", "products", ["last_seen"], unique=False)
