"""Column types that behave the same on SQLite and PostgreSQL: exact money, UTC times, JSON.

SQLite has no decimal type (SQLAlchemy would go through float) and no time zones, so money is
stored there as an integer of 1/10,000ths and times as naive UTC; PostgreSQL gets NUMERIC,
TIMESTAMPTZ and JSONB. Callers always see `Decimal` and aware UTC `datetime`s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["JSONType", "Money", "UTCDateTime", "json_text"]

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
            return Decimal(int(value)).scaleb(-_SCALE)  # exact, with four decimals
        return Decimal(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        # Shortcuts for Decimals (what ingest sends): the same values process_bind_param gives.
        bind = self.process_bind_param
        if dialect.name == "sqlite":

            def scaled(value: Decimal | None) -> Any:
                if type(value) is Decimal:
                    return int((value * _FACTOR).to_integral_value())
                return None if value is None else bind(value, dialect)

            return scaled

        def as_is(value: Decimal | None) -> Any:
            return value if value is None or type(value) is Decimal else bind(value, dialect)

        return as_is


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, always returned timezone-aware in UTC; naive input is refused.

    SQLite keeps naive UTC text in SQLAlchemy's own DATETIME format
    (`YYYY-MM-DD HH:MM:SS.ffffff`, which sorts as it compares). The processors below are the
    whole conversion, done with `isoformat`/`fromisoformat` instead of SQLAlchemy's generic
    DATETIME processors: this type is converted several times per ingested sighting.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pricefleet stores aware UTC times only")
        value = value if value.tzinfo is UTC else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL on SQLite returns the stored text
            value = datetime.fromisoformat(value)
        result: datetime = value
        if result.tzinfo is None:
            return result.replace(tzinfo=UTC)
        return result if result.tzinfo is UTC else result.astimezone(UTC)

    # The processors below take a shortcut for aware UTC times (all ingest sends) and stored
    # naive text; they give exactly what process_bind_param / process_result_value give.

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        bind = self.process_bind_param
        if dialect.name != "sqlite":

            def as_is(value: datetime | None) -> Any:
                if value is not None and value.tzinfo is UTC:
                    return value
                return bind(value, dialect)

            return as_is

        def to_text(value: datetime | None) -> str | None:
            if value is not None and value.tzinfo is UTC:
                return value.isoformat(" ", "microseconds")[:-6]  # without "+00:00"
            naive = bind(value, dialect)
            return None if naive is None else naive.isoformat(" ", "microseconds")

        return to_text

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any]:
        load = self.process_result_value

        def from_value(value: Any) -> datetime | None:
            if type(value) is str and len(value) == _STORED_LENGTH:  # naive UTC text
                return datetime.fromisoformat(value + "+00:00")
            return load(value, dialect)

        return from_value


#: The length of a time as this type stores it on SQLite: `YYYY-MM-DD HH:MM:SS.ffffff`.
_STORED_LENGTH = 26


JSONType = JSON().with_variant(JSONB(), "postgresql")


def json_text(value: Any) -> str:
    """The JSON columns' serialiser (the engines' `json_serializer`): orjson, where SQLAlchemy
    defaults to the standard library's, ~1 % of a crawl's CPU (a new product's raw payload).
    What orjson refuses (an integer beyond 64 bits) goes through `json.dumps`. NaN and the
    infinities, which JSON cannot hold, are written as null (`json.dumps` would write `NaN`,
    which PostgreSQL's JSONB refuses)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)
