"""The schema, in SQLAlchemy Core: the one description Alembic migrations and queries share.

Every per-site table's primary key starts with `site_id`, so the tables can be distributed by
site (Citus, shards); the global tables (`api_keys`, `audit_log`) live on the primary only.
A product's metadata (`products`, wide: raw JSON, search indexes) and its current price state
with `first_seen`/`last_seen` (`product_state`, narrow) are separate rows: every sighting moves
`last_seen`, and on a narrow row that never rewrites the wide one (migration 0005). The state
sits beside the change-only history in `price_observations`, so lists and filters never have
to find "the latest row".
Tables stay inside `pricefleet.store`; other packages see `pricefleet.models` records.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)

from pricefleet.store.types import JSONType, Money, UTCDateTime

__all__ = [
    "STATE_COLUMNS",
    "api_keys",
    "audit_log",
    "categories",
    "fetch_state",
    "matches",
    "metadata",
    "price_observations",
    "product_state",
    "products",
    "sites",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

sites = Table(
    "sites",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("base_url", Text, nullable=False),
    Column("region", String(32)),
    Column("recipe", JSONType, nullable=False, server_default=text("'{}'")),
    Column("created_at", UTCDateTime, nullable=False, server_default=text("CURRENT_TIMESTAMP")),
    Column("updated_at", UTCDateTime, nullable=False, server_default=text("CURRENT_TIMESTAMP")),
)

categories = Table(
    "categories",
    metadata,
    Column("site_id", String(64), nullable=False),
    Column("id", String(128), nullable=False),
    Column("name", Text, nullable=False),
    Column("parent_id", String(128)),
    PrimaryKeyConstraint("site_id", "id"),
    ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
)

#: What a product's price state is made of; a change in any of these makes a history row.
STATE_COLUMNS = (
    "price",
    "currency",
    "regular_price",
    "is_discounted",
    "unit_price",
    "unit",
    "availability",
    "shop_unit_price",
    "shop_unit",
)


def _state_columns(nullable_price: bool = False) -> list[Column[object]]:
    """The price state columns (names in STATE_COLUMNS), fresh objects for each table."""
    return [
        Column("price", Money, nullable=nullable_price),
        Column("currency", String(3), nullable=nullable_price),
        Column("regular_price", Money),
        Column("is_discounted", Boolean, nullable=False, server_default=text("false")),
        Column("unit_price", Money),
        Column("unit", String(8)),
        Column("availability", String(16), nullable=False, server_default=text("'unknown'")),
        Column("shop_unit_price", Money),
        Column("shop_unit", String(16)),
    ]


products = Table(
    "products",
    metadata,
    Column("site_id", String(64), nullable=False),
    Column("id", String(256), nullable=False),
    Column("url", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("brand", Text),
    Column("gtin", String(14)),
    Column("sku", String(128)),
    Column("category_id", String(128)),
    Column("size_value", Numeric(14, 4, asdecimal=True).with_variant(Float(), "sqlite")),
    Column("size_unit", String(8)),
    Column("image_url", Text),
    Column("raw", JSONType),
    PrimaryKeyConstraint("site_id", "id"),
    ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
    Index(None, "gtin"),
    Index(None, "site_id", "category_id"),
    postgresql_with={"fillfactor": 70},
)

#: What a sighting moves: one narrow row per product (migration 0005). Ingest rewrites it on
#: every sighting (`last_seen`) and on every price change; the wide `products` row only when
#: the product's metadata changes (`meta_hash`, a hash of the metadata as last stored). Its
#: `last_seen` is also that of the product's current history row, whose stored `last_seen`
#: is brought up to date only when the row stops being current (see `store/ingest.py`).
product_state = Table(
    "product_state",
    metadata,
    Column("site_id", String(64), nullable=False),
    Column("id", String(256), nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    # The current price state (the latest history row), kept here for lists and filters.
    *_state_columns(nullable_price=True),
    Column("price_changed_at", UTCDateTime),
    Column("meta_hash", BigInteger),
    PrimaryKeyConstraint("site_id", "id"),
    ForeignKeyConstraint(
        ["site_id", "id"], ["products.site_id", "products.id"], ondelete="CASCADE"
    ),
    Index(None, "price"),
    # A site's products in price order: price-sorted lists read their page from it (0003).
    Index(None, "site_id", "price", "id"),
    # No index on last_seen: every sighting moves it, and an index on it would rule out
    # in-place (HOT) updates on PostgreSQL, where pages keep 30 % free for them.
    postgresql_with={"fillfactor": 70},
)

price_observations = Table(
    "price_observations",
    metadata,
    Column("site_id", String(64), nullable=False),
    Column("product_id", String(256), nullable=False),
    Column("observed_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    *_state_columns(),
    PrimaryKeyConstraint("site_id", "product_id", "observed_at"),
    Index(None, "observed_at"),
    postgresql_partition_by="RANGE (observed_at)",
)

matches = Table(
    "matches",
    metadata,
    Column("site_id", String(64), nullable=False),
    Column("product_id", String(256), nullable=False),
    Column("group_id", String(64), nullable=False),
    Column("method", String(16), nullable=False),
    Column("score", Float, nullable=False, server_default=text("1.0")),
    Column("updated_at", UTCDateTime, nullable=False, server_default=text("CURRENT_TIMESTAMP")),
    PrimaryKeyConstraint("site_id", "product_id"),
    Index(None, "group_id"),
)

fetch_state = Table(
    "fetch_state",
    metadata,
    Column("site_id", String(64), nullable=False),
    Column("url_hash", String(32), nullable=False),
    Column("url", Text, nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("content_hash", String(64)),
    Column("fetched_at", UTCDateTime),
    Column("status", Integer),
    Column("product_id", String(256)),
    PrimaryKeyConstraint("site_id", "url_hash"),
)

#: API keys: the id is the public part of the key (`pf_<id>_<secret>`), the secret is kept only
#: as a hash. `scopes` is a JSON list of scope names.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("scopes", JSONType, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
)

#: Every crawl or admin action and key change: append-only, newest has the highest id.
audit_log = Table(
    "audit_log",
    metadata,
    # BIGINT on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(128), nullable=False),
    Column("target", Text),
    Column("detail", JSONType),
    Column("ip", String(45)),  # the longest textual IPv6 address
    Index(None, "at"),
)
