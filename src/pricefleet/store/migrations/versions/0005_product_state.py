"""product_state: a narrow row per product for what every sighting moves

Every sighting moves a product's `last_seen`, and a price change its current price state. Both
lived on the wide `products` row (raw JSON inline, GIN indexes on PostgreSQL), so every sighting
rewrote it: on PostgreSQL the product upsert and the state update were more than half of an
ingest batch. They now live in `product_state (site_id, id, first_seen, last_seen, price state,
price_changed_at, meta_hash)`, one narrow row per product, and `products` keeps the metadata
only. Ingest rewrites a `products` row only when the metadata it holds changes: `meta_hash` is
a hash of the metadata as last stored (NULL after this migration: the next sighting of each
product stores its metadata once and sets it).

The price indexes (`price`; `site_id, price, id` for price-sorted lists) move with the price.
PostgreSQL's trending view read the price from `products`: it is rebuilt on `product_state`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

import pricefleet.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: The moved columns, in `product_state` order after the key.
_MOVED = (
    "first_seen",
    "last_seen",
    "price",
    "currency",
    "regular_price",
    "is_discounted",
    "unit_price",
    "unit",
    "availability",
    "shop_unit_price",
    "shop_unit",
    "price_changed_at",
)

#: The moved columns that are NOT NULL (on SQLite they come back with their defaults).
_REQUIRED = ("first_seen", "last_seen", "is_discounted", "availability")

_PRICE_MOVES = """CREATE MATERIALIZED VIEW price_moves AS
    SELECT p.site_id, p.id AS product_id, w.days,
           o.price AS old_price, p.price AS new_price, o.observed_at AS since
    FROM {table} p
    CROSS JOIN (VALUES (1), (7), (30), (90)) AS w(days)
    JOIN LATERAL (
        SELECT price, observed_at FROM price_observations o
        WHERE o.site_id = p.site_id AND o.product_id = p.id
          AND o.observed_at <= now() - make_interval(days => w.days)
        ORDER BY o.observed_at DESC LIMIT 1
    ) o ON true
    WHERE p.price IS NOT NULL AND o.price <> p.price"""
_PRICE_MOVES_INDEXES = (
    "CREATE UNIQUE INDEX ux_price_moves ON price_moves (site_id, product_id, days)",
    """CREATE INDEX ix_price_moves_change
        ON price_moves (days, ((new_price - old_price) / old_price), site_id, product_id)""",
)


def _money() -> pricefleet.store.types.Money:
    return pricefleet.store.types.Money(precision=14, scale=4)


def _utc() -> pricefleet.store.types.UTCDateTime:
    return pricefleet.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "product_state",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=256), nullable=False),
        sa.Column("first_seen", _utc(), nullable=False),
        sa.Column("last_seen", _utc(), nullable=False),
        sa.Column("price", _money(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("regular_price", _money(), nullable=True),
        sa.Column("is_discounted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("unit_price", _money(), nullable=True),
        sa.Column("unit", sa.String(length=8), nullable=True),
        sa.Column(
            "availability",
            sa.String(length=16),
            server_default=sa.text("'unknown'"),
            nullable=False,
        ),
        sa.Column("shop_unit_price", _money(), nullable=True),
        sa.Column("shop_unit", sa.String(length=16), nullable=True),
        sa.Column("price_changed_at", _utc(), nullable=True),
        sa.Column("meta_hash", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id", "id"],
            ["products.site_id", "products.id"],
            name=op.f("fk_product_state_site_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", "id", name=op.f("pk_product_state")),
        postgresql_with={"fillfactor": 70},
    )
    moved = ", ".join(_MOVED)
    op.execute(
        f"INSERT INTO product_state (site_id, id, {moved}) "
        f"SELECT site_id, id, {moved} FROM products"
    )
    op.create_index(op.f("ix_product_state_price"), "product_state", ["price"], unique=False)
    op.create_index(
        op.f("ix_product_state_site_id_price_id"),
        "product_state",
        ["site_id", "price", "id"],
        unique=False,
    )
    if postgres:
        op.execute("DROP MATERIALIZED VIEW price_moves")
        op.execute(_PRICE_MOVES.format(table="product_state"))
        for statement in _PRICE_MOVES_INDEXES:
            op.execute(statement)
        op.execute("ANALYZE product_state")
    op.drop_index(op.f("ix_products_site_id_price_id"), table_name="products")
    op.drop_index(op.f("ix_products_price"), table_name="products")
    for name in _MOVED:
        # SQLite 3.35+ drops a column in place (no table rebuild: FTS5 keys on the rowid).
        op.execute(f"ALTER TABLE products DROP COLUMN {name}")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    never = "'1970-01-01 00:00:00.000000'" if not postgres else "'epoch'"
    with_default = {"first_seen": never, "last_seen": never}
    columns: dict[str, sa.types.TypeEngine[Any]] = {
        "first_seen": _utc(),
        "last_seen": _utc(),
        "price": _money(),
        "currency": sa.String(length=3),
        "regular_price": _money(),
        "is_discounted": sa.Boolean(),
        "unit_price": _money(),
        "unit": sa.String(length=8),
        "availability": sa.String(length=16),
        "shop_unit_price": _money(),
        "shop_unit": sa.String(length=16),
        "price_changed_at": _utc(),
    }
    defaults = {**with_default, "is_discounted": "false", "availability": "'unknown'"}
    for name in _MOVED:
        default = defaults.get(name)
        op.add_column(
            "products",
            sa.Column(
                name,
                columns[name],
                nullable=name not in _REQUIRED,
                server_default=sa.text(default) if default else None,
            ),
        )
    sets = ", ".join(
        f"{n} = (SELECT s.{n} FROM product_state s "
        "WHERE s.site_id = products.site_id AND s.id = products.id)"
        for n in _MOVED
    )
    op.execute(f"UPDATE products SET {sets}")
    if postgres:
        for name in ("first_seen", "last_seen"):  # no default once filled, as in 0004
            op.execute(f"ALTER TABLE products ALTER COLUMN {name} DROP DEFAULT")
        op.execute("DROP MATERIALIZED VIEW price_moves")
        op.execute(_PRICE_MOVES.format(table="products"))
        for statement in _PRICE_MOVES_INDEXES:
            op.execute(statement)
    op.create_index(op.f("ix_products_price"), "products", ["price"], unique=False)
    op.create_index(
        op.f("ix_products_site_id_price_id"), "products", ["site_id", "price", "id"], unique=False
    )
    op.drop_index(op.f("ix_product_state_site_id_price_id"), table_name="product_state")
    op.drop_index(op.f("ix_product_state_price"), table_name="product_state")
    op.drop_table("product_state")
