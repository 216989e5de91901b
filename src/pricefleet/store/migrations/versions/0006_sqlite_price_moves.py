"""SQLite: a table of price moves, refreshed like PostgreSQL's trending view

SQLite computed trending per query: every product's price now against the one in force N days
ago, one history lookup per product, then a sort (6-7 s at 1,000,000 products). It now reads
`price_moves`, the same rows PostgreSQL's materialised view holds (the windows of 1, 7, 30 and
90 days, as of the last `refresh_trending`), plus each move's relative `change`, so that
`ix_price_moves_change (days, change, site_id, product_id)` gives a window's biggest drops
first and its biggest rises last. Other windows, and a store never refreshed, still compute
trending per query. Amounts and times are stored as everywhere on SQLite (scaled integers,
naive UTC text). PostgreSQL is unchanged.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SQLITE_UP = (
    """CREATE TABLE price_moves (
        site_id VARCHAR(64) NOT NULL,
        product_id VARCHAR(256) NOT NULL,
        days INTEGER NOT NULL,
        old_price BIGINT NOT NULL,
        new_price BIGINT NOT NULL,
        since DATETIME NOT NULL,
        change FLOAT NOT NULL,
        CONSTRAINT pk_price_moves PRIMARY KEY (site_id, product_id, days)
    )""",
    "CREATE INDEX ix_price_moves_change ON price_moves (days, change, site_id, product_id)",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP INDEX ix_price_moves_change")
        op.execute("DROP TABLE price_moves")
