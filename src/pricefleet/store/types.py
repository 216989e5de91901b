"""Column types that behave the same on SQLite and PostgreSQL: exact money, UTC times, JSON.

SQLite has no decimal type (SQLAlchemy would go through float) and no time zones, so money is
stored there as an integer of 1/10,000ths and times as naive UTC; PostgreSQL gets NUMERIC,
TIMESTAMPTZ and JSONB. Callers always see `Decimal` and aware UTC `datetime`s.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["JSONType", "Money", "UTCDateTime"]

_SCALE = 4
_FACTOR = Decimal(10) ** _SCALE


class Money(TypeDecorator[Decimal]):
    """An exact amount with four decimals: NUMERIC(14, 4), or scaled BIGINT on SQLite."""

    impl = Numeric(14, _SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(14, _SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return int((Decimal(value) * _FACTOR).to_integral_value())
        return Decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / _FACTOR).quantize(Decimal(1).scaleb(-_SCALE))
        return Decimal(value)


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, always returned timezone-aware in UTC; naive input is refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pricefleet stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL on SQLite returns the stored text
            value = datetime.fromisoformat(value)
        result: datetime = value
        return result.replace(tzinfo=UTC) if result.tzinfo is None else result.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
