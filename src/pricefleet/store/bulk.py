"""The ingest hot path's statements, sent straight to the driver, a whole batch at a time.

Compiling Core statements and binding a thousand parameter sets through SQLAlchemy cost more
than the database's own work (see BENCHMARKS.md), so the few statements `ingest` runs on every
batch are written here once per dialect and run on the caller's connection and transaction:
PostgreSQL gets each column as one array and a single `unnest` statement per step; SQLite gets
`executemany` over plain tuples. Every value still goes through its column's SQLAlchemy bind
processor (and every read value through its result processor), so rows are stored exactly as
the Core queries elsewhere store and read them; `types.py` gives our own types processors that
skip work a value does not need (an aware UTC time on PostgreSQL is sent as it is). Column
lists come from `tables`, never typed twice.

The steps are narrow where the batch is: a sighting that confirms a product's state moves only
the state row's `last_seen` (`extend_states`: three values a row), a history row's end is set
by `extend_history` (four), and only products whose metadata changed have their wide
`products` row written (`update_products`).
"""

from __future__ import annotations

import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from itertools import repeat
from operator import getitem, itemgetter, methodcaller
from typing import Any, ClassVar, TypeVar

import orjson
from asyncpg.exceptions import IntegrityConstraintViolationError
from sqlalchemy import Boolean, Column, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeDecorator

from pricefleet.errors import UnknownSite
from pricefleet.models import PriceObservation
from pricefleet.store.tables import (
    STATE_COLUMNS,
    matches,
    price_observations,
    product_state,
    products,
)
from pricefleet.store.types import Money, UTCDateTime

__all__ = [
    "HISTORY_COLUMNS",
    "META_COLUMNS",
    "PRODUCT_COLUMNS",
    "STATE_ROW",
    "WRITE_STEPS",
    "Bulk",
]

#: Product columns a newer sighting overwrites.
META_COLUMNS: tuple[str, ...] = (
    "url",
    "name",
    "brand",
    "gtin",
    "sku",
    "category_id",
    "size_value",
    "size_unit",
    "image_url",
    "raw",
)
#: The columns of a product row, in the order the product steps take them.
PRODUCT_COLUMNS: tuple[str, ...] = ("site_id", "id", *META_COLUMNS)
#: A whole `product_state` row, in the order the state steps take and return it.
STATE_ROW: tuple[str, ...] = (
    "site_id",
    "id",
    "first_seen",
    "last_seen",
    "price_changed_at",
    *STATE_COLUMNS,
    "meta_hash",
)
#: What a sighting that changes nothing else moves on a state row.
_SEEN_ROW: tuple[str, ...] = ("site_id", "id", "last_seen")
#: The columns of a history row, in the order the history steps take and return them.
HISTORY_COLUMNS: tuple[str, ...] = (
    "site_id",
    "product_id",
    "observed_at",
    "last_seen",
    *STATE_COLUMNS,
)
_HISTORY_SEEN: tuple[str, ...] = ("site_id", "product_id", "observed_at", "last_seen")
_MATCH_COLUMNS: tuple[str, ...] = ("site_id", "product_id", "group_id", "method", "score")
#: A batch's history and state steps, in the order `Bulk.write` runs them. They touch
#: distinct rows (see `timeline.Changes`; one product's state row is written by one step).
WRITE_STEPS: tuple[str, ...] = (
    "delete_history",
    "insert_history",
    "update_history",
    "extend_history",
    "insert_states",
    "update_states",
    "extend_states",
)

Processor = Callable[[Any], Any]
_SITE, _ID = itemgetter(0), itemgetter(1)
_T = TypeVar("_T")
Key = tuple[str, str]


def _processors(
    table: Table, names: Sequence[str], dialect: Dialect, *, result: bool = False
) -> list[tuple[int, Processor]]:
    """(position, processor) for the columns of `names` whose values need converting.

    Binding uses each column type's own bind processor. Reading uses our types' own
    `process_result_value` (money, UTC times: they accept the driver's raw values on both
    dialects) and `bool` for booleans (SQLite hands back integers); the other columns read
    here are strings or integers."""
    found: list[tuple[int, Processor]] = []
    for position, name in enumerate(names):
        column: Column[Any] = table.c[name]
        kind = column.type
        processor: Processor | None
        if not result:
            processor = kind.dialect_impl(dialect).bind_processor(dialect)
        elif isinstance(kind, UTCDateTime):
            processor = kind.result_processor(dialect, None)
        elif isinstance(kind, TypeDecorator):
            processor = partial(kind.process_result_value, dialect=dialect)
        elif isinstance(kind, Boolean):
            processor = _boolean
        else:
            processor = None
        if processor is not None:
            found.append((position, processor))
    return found


def _boolean(value: Any) -> bool | None:
    return None if value is None else bool(value)


#: Where each price state column's value comes from on a `PriceObservation` `o` (enums as
#: their values: `_value_` skips the `value` property's descriptor call).
_OBSERVATION_SOURCE: dict[str, str] = {
    "price": "o.price",
    "currency": "o.currency",
    "regular_price": "o.regular_price",
    "is_discounted": "o.is_discounted",
    "unit_price": "o.unit_price",
    "unit": "o.unit._value_ if o.unit else None",
    "availability": "o.availability._value_",
    "shop_unit_price": "o.shop_unit_price",
    "shop_unit": "o.shop_unit",
}
_MONEY_FACTOR = Decimal(10) ** 4  # `types.Money` on SQLite: an integer of 1/10,000ths


def _inline_bind(kind: Any, dialect: Dialect, value: str, processor: str) -> str:
    """Python source giving what the column's bind `processor` gives for `value` (names in
    generated code): the values ingest sends most (a Decimal or None for money, a bool for a
    flag) are converted in line, as the processor would (`types.Money`, SQLAlchemy's
    `Boolean`); anything else goes through the processor itself."""
    v, p = value, processor
    if isinstance(kind, Money):
        if dialect.name == "sqlite":
            return (
                f"(None if {v} is None else _int(({v} * _F).to_integral_value()) "
                f"if type({v}) is _D else {p}({v}))"
            )
        return f"({v} if {v} is None or type({v}) is _D else {p}({v}))"
    if isinstance(kind, Boolean):
        if dialect.name == "sqlite":
            return f"(1 if {v} is True else 0 if {v} is False else {p}({v}))"
        return f"({v} if {v} is True or {v} is False else {p}({v}))"
    return f"{p}({v})"


class Bulk(ABC):
    """The batch statements of `ingest` for one dialect, on one connection."""

    _cache: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.dialect = conn.dialect
        time = product_state.c.last_seen.type.bind_processor(self.dialect)
        assert time is not None  # UTCDateTime always has one
        self._time: Processor = time
        self._state = self._converter(product_state, STATE_COLUMNS, result=False) or tuple
        self._loader = self._converter(product_state, STATE_ROW, result=True) or tuple
        self._state_row = self._converter(product_state, STATE_ROW, result=False) or tuple
        self._history_row = (
            self._converter(price_observations, HISTORY_COLUMNS, result=False) or tuple
        )

    @staticmethod
    def of(conn: AsyncConnection) -> Bulk:
        """The implementation for the connection's dialect."""
        if conn.dialect.name == "postgresql":
            return PostgresBulk(conn)
        if conn.dialect.name == "sqlite":
            return SqliteBulk(conn)
        raise NotImplementedError(f"no bulk statements for {conn.dialect.name}")

    async def start(self) -> None:  # noqa: B027 - most dialects need nothing
        """Prepare the transaction for the batch statements (once, before the first)."""

    def _bind(self, table: Table, names: Sequence[str], rows: list[tuple[Any, ...]]) -> list[Any]:
        """`rows` with every value converted by its column's bind processor."""
        convert = self._converter(table, names, result=False)
        return rows if convert is None else list(map(convert, rows))

    def _load(self, table: Table, names: Sequence[str], rows: Sequence[Any]) -> list[Any]:
        """Driver rows with every value converted by its column's result processor."""
        convert = self._converter(table, names, result=True)
        return [tuple(row) for row in rows] if convert is None else list(map(convert, rows))

    def _converter(
        self, table: Table, names: Sequence[str], *, result: bool
    ) -> Callable[[Sequence[Any]], tuple[Any, ...]] | None:
        """A function from a row to its converted tuple, or None when no value needs it.

        Generated once per column list (`lambda r: (r[0], p1(r[1]), …)`): the per-value
        loop it replaces cost more than the conversions themselves at ingest rates."""
        cache = self._cache.setdefault(self.dialect.name, {})
        key = f"{table.name}:{','.join(names)}:{result}"
        if key not in cache:
            steps = dict(_processors(table, names, self.dialect, result=result))
            if not steps:
                cache[key] = None
            else:
                parts = [f"p{i}(r[{i}])" if i in steps else f"r[{i}]" for i in range(len(names))]
                scope = {f"p{i}": processor for i, processor in steps.items()}
                cache[key] = eval(f"lambda r: ({', '.join(parts)},)", scope)
        converter: Callable[[Sequence[Any]], tuple[Any, ...]] | None = cache[key]
        return converter

    # --- stored form: values as the driver sends and returns them -----------------------------

    def stored_time(self, at: datetime) -> Any:
        """An aware UTC time as stored (naive text on SQLite, the datetime on PostgreSQL):
        stored times compare as the times do."""
        return self._time(at)

    def stored_state(self, state: tuple[Any, ...]) -> tuple[Any, ...]:
        """A price state (`STATE_COLUMNS` order) as stored: equal states store equal."""
        return self._state(state)

    def stored_times(self, times: Sequence[datetime]) -> list[Any]:
        """`stored_time` of each of `times`, which must all be aware UTC times."""
        return list(map(self._time, times))

    def stored_states(self, observations: Sequence[PriceObservation]) -> list[tuple[Any, ...]]:
        """Each observation's price state (`STATE_COLUMNS` order) in stored form: the same
        tuples as `stored_state` of its values, read and converted by one generated function
        (the per-sighting work of the hot path)."""
        return list(map(self._observation_reader(), observations))

    def _observation_reader(self) -> Callable[[PriceObservation], tuple[Any, ...]]:
        cache = self._cache.setdefault(self.dialect.name, {})
        if "observation" not in cache:
            processors = dict(_processors(product_state, STATE_COLUMNS, self.dialect))
            scope: dict[str, Any] = {"_D": Decimal, "_F": _MONEY_FACTOR, "_int": int}
            lines, values = [], []
            for position, name in enumerate(STATE_COLUMNS):
                lines.append(f"    v{position} = {_OBSERVATION_SOURCE[name]}")
                if position in processors:
                    scope[f"p{position}"] = processors[position]
                    kind = product_state.c[name].type
                    values.append(_inline_bind(kind, self.dialect, f"v{position}", f"p{position}"))
                else:
                    values.append(f"v{position}")
            source = "def read(o):\n" + "\n".join(lines) + f"\n    return ({', '.join(values)},)\n"
            exec(source, scope)
            cache["observation"] = scope["read"]
        reader: Callable[[PriceObservation], tuple[Any, ...]] = cache["observation"]
        return reader

    def load_state(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """A stored state row (`STATE_ROW`, as `lock_states` returns it) in Python values."""
        return self._loader(row)

    def bind_state(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """A `STATE_ROW` of Python values in stored form."""
        return self._state_row(row)

    def bind_history(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """A `HISTORY_COLUMNS` row of Python values in stored form."""
        return self._history_row(row)

    def bind_span(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """(site_id, product_id, observed_at, last_seen) of Python values in stored form."""
        return (row[0], row[1], self._time(row[2]), self._time(row[3]))

    def bind_seen(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """(site_id, id, last_seen) of Python values in stored form."""
        return (row[0], row[1], self._time(row[2]))

    # --- product state: the lock every write of a product's rows goes through -----------------

    async def lock_states(self, keys: list[Key]) -> list[Sequence[Any]]:
        """The stored state rows (`STATE_ROW`, in stored form: see `load_state`) of those
        `keys` that have one, each locked until the transaction ends (PostgreSQL; an SQLite
        writer holds the database). Writers lock before they write anything of a product, in
        one order, so two batches never wait on each other in a cycle."""
        if not keys:
            return []
        return list(await self._lock_states(keys))

    async def insert_products(self, rows: list[tuple[Any, ...]]) -> set[Key]:
        """Insert new products (`PRODUCT_COLUMNS` rows, sorted by key); returns the keys this
        call inserted. A key another writer inserted first is skipped (PostgreSQL waits for
        that writer to finish first): its state row is then there to lock."""
        if not rows:
            return set()
        try:
            return await self._insert_products(self._bind(products, PRODUCT_COLUMNS, rows))
        except (IntegrityError, IntegrityConstraintViolationError, sqlite3.IntegrityError) as exc:
            sites = sorted({row[0] for row in rows})
            raise UnknownSite(
                f"cannot store products of sites {sites}: register them first (upsert_sites)"
            ) from exc

    async def update_products(self, rows: list[tuple[Any, ...]]) -> None:
        """Overwrite stored products' metadata (`PRODUCT_COLUMNS` rows, sorted by key)."""
        if rows:
            await self._update_products(self._bind(products, PRODUCT_COLUMNS, rows))

    # --- the history and state steps: rows in stored form, all of a batch at once ------------

    async def write(self, steps: dict[str, list[tuple[Any, ...]]]) -> None:
        """Run a batch's history and state steps (`WRITE_STEPS`, in that order): rows in
        stored form (`stored_*`, `bind_*`: most of their values come straight from
        `lock_states`), but `delete_history`'s (site_id, product_id, observed_at) in Python
        values. Empty steps are skipped; the rest go to the driver together (one statement
        on PostgreSQL, one trip to the writer thread on SQLite)."""
        work = [(name, steps[name]) for name in WRITE_STEPS if steps.get(name)]
        if not work:
            return
        if work[0][0] == "delete_history":
            names = ("site_id", "product_id", "observed_at")
            work[0] = ("delete_history", self._bind(price_observations, names, work[0][1]))
        await self._write(work)

    async def upsert_matches(self, rows: list[tuple[Any, ...]]) -> None:
        """GTIN match rows (site_id, product_id, group_id, method, score); a row of another
        method (a human's or a later matcher's decision) is left alone."""
        if rows:
            await self._upsert_matches(self._bind(matches, _MATCH_COLUMNS, rows))

    @abstractmethod
    async def _lock_states(self, keys: list[Key]) -> Sequence[Any]: ...

    @abstractmethod
    async def _insert_products(self, rows: list[Any]) -> set[Key]: ...

    @abstractmethod
    async def _update_products(self, rows: list[Any]) -> None: ...

    @abstractmethod
    async def _write(self, steps: list[tuple[str, list[Any]]]) -> None: ...

    @abstractmethod
    async def _upsert_matches(self, rows: list[Any]) -> None: ...


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_rows(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as a JSON array of arrays (times in RFC 3339, amounts as exact strings)."""
    return orjson.dumps(rows, default=_json_default).decode()


def _shift(offset: int, match: re.Match[str]) -> str:
    """A `$n` placeholder moved `offset` places on."""
    return f"${int(match.group(1)) + offset}"


def _names(names: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{name}" for name in names)


class PostgresBulk(Bulk):
    """One statement per step, its rows one JSON parameter, sent to asyncpg directly (on the
    connection and in the transaction SQLAlchemy began: `start`); a batch's history and state
    steps are one statement."""

    _sql: ClassVar[dict[str, str]] = {}

    def stored_times(self, times: Sequence[datetime]) -> list[Any]:
        """Aware UTC times are stored as they are (`types.UTCDateTime`)."""
        return list(times)

    def _unnest(self, table: Table, names: Sequence[str], alias: str = "u") -> tuple[str, str]:
        """The rows of one parameter ($1: a JSON array of arrays, `_json_rows`) as a table
        `alias(names)` of the columns' types, and the select list of its columns. (Arrays of
        each column, unnested, cost more: asyncpg checks and encodes every element of an
        array parameter one by one, ~13 `isinstance` calls on ABCs per sighting.) JSON
        columns travel as their text and are cast back."""
        columns = ", ".join(
            f"(e->>{i})::{table.c[name].type.compile(dialect=self.dialect)} AS {name}"
            for i, name in enumerate(names)
        )
        source = f"(SELECT {columns} FROM jsonb_array_elements($1::jsonb) AS e) AS {alias}"
        return source, ", ".join(f"{alias}.{name}" for name in names)

    def _statement(self, name: str, build: Callable[[], str]) -> str:
        if name not in self._sql:
            self._sql[name] = build()
        return self._sql[name]

    async def _run(self, sql: str, rows: list[Any]) -> Any:
        driver = await self._driver()
        return await driver.fetch(sql, _json_rows(rows))

    async def _driver(self) -> Any:
        """The asyncpg connection under the SQLAlchemy one (in its transaction)."""
        raw = await self.conn.get_raw_connection()
        return raw.driver_connection

    def _set_by_key(self, table: Table, names: Sequence[str], key: tuple[str, str]) -> str:
        """`UPDATE table AS t SET … FROM (rows) u WHERE t.key = u.key` for rows of `names`
        (the key first)."""
        source, select = self._unnest(table, names)
        values = dict(zip(names, select.split(", "), strict=True))
        sets = ", ".join(f"{n} = {values[n]}" for n in names[2:])
        return (
            f"UPDATE {table.name} AS t SET {sets} FROM {source} "
            f"WHERE t.{key[0]} = u.{names[0]} AND t.{key[1]} = u.{names[1]}"
        )

    async def start(self) -> None:
        """Every batch statement joins its arrays to a table by primary key: one index probe
        per row is the right plan whatever the table's size. The planner, left alone, hashes
        the whole table (at 50,000 products: 105 ms instead of 22 for the state update, 271 ms
        instead of 10 for the lock, growing with the table) or, with stale statistics of a
        history partition, scans a day of it once per row (4.9 s instead of 0.04 for 174
        rows). So for this transaction only nested loops over index scans are left; a history
        row's partition is found by run-time pruning on its `observed_at`. (This statement
        also begins the transaction the driver-level statements run in.)"""
        await self.conn.exec_driver_sql(
            "SELECT set_config('enable_hashjoin', 'off', true), "
            "set_config('enable_mergejoin', 'off', true), "
            "set_config('enable_material', 'off', true), "
            "set_config('enable_seqscan', 'off', true)"
        )

    async def _lock_states(self, keys: list[Key]) -> Sequence[Any]:
        def build() -> str:
            source, _ = self._unnest(product_state, ("site_id", "id"), alias="k")
            return (
                f"SELECT {_names(STATE_ROW, 's.')} FROM {source} "
                "JOIN product_state s ON s.site_id = k.site_id AND s.id = k.id "
                "ORDER BY s.site_id, s.id FOR UPDATE OF s"
            )

        rows: Sequence[Any] = await self._run(self._statement("lock_states", build), keys)
        return rows

    async def _insert_products(self, rows: list[Any]) -> set[Key]:
        def build() -> str:
            source, select = self._unnest(products, PRODUCT_COLUMNS)
            return (
                f"INSERT INTO products ({_names(PRODUCT_COLUMNS)}) SELECT {select} FROM {source} "
                "ON CONFLICT (site_id, id) DO NOTHING RETURNING site_id, id"
            )

        result = await self._run(self._statement("insert_products", build), rows)
        return {(site_id, product_id) for site_id, product_id in result}

    async def _update_products(self, rows: list[Any]) -> None:
        sql = self._statement(
            "update_products",
            lambda: self._set_by_key(products, PRODUCT_COLUMNS, ("site_id", "id")),
        )
        await self._run(sql, rows)

    def _step(self, name: str) -> str:
        """The statement of one write step, its rows a JSON array in $1."""
        if name == "insert_states":
            source, select = self._unnest(product_state, STATE_ROW)
            return f"INSERT INTO product_state ({_names(STATE_ROW)}) SELECT {select} FROM {source}"
        if name == "update_states":
            return self._set_by_key(product_state, STATE_ROW, ("site_id", "id"))
        if name == "extend_states":
            return self._set_by_key(product_state, _SEEN_ROW, ("site_id", "id"))
        if name == "insert_history":
            source, select = self._unnest(price_observations, HISTORY_COLUMNS)
            return (
                f"INSERT INTO price_observations ({_names(HISTORY_COLUMNS)}) "
                f"SELECT {select} FROM {source}"
            )
        if name in ("update_history", "extend_history"):
            names = HISTORY_COLUMNS if name == "update_history" else _HISTORY_SEEN
            source, _ = self._unnest(price_observations, names)
            sets = ", ".join(f"{n} = u.{n}" for n in names[3:])
            return (
                f"UPDATE price_observations AS o SET {sets} FROM {source} "
                "WHERE o.site_id = u.site_id AND o.product_id = u.product_id "
                "AND o.observed_at = u.observed_at"
            )
        assert name == "delete_history", name
        source, _ = self._unnest(price_observations, ("site_id", "product_id", "observed_at"))
        return (
            f"DELETE FROM price_observations AS o USING {source} "
            "WHERE o.site_id = u.site_id AND o.product_id = u.product_id "
            "AND o.observed_at = u.observed_at"
        )

    async def _write(self, steps: list[tuple[str, list[Any]]]) -> None:
        """One statement: each step a data-modifying CTE (they see one snapshot, which is
        right as the steps touch distinct rows), its rows in the next parameter."""
        names = [name for name, _ in steps]

        def build() -> str:
            parts: list[str] = []
            offset = 0
            for name in names:
                sql = self._step(name)
                count = len(set(re.findall(r"\$\d+", sql)))
                sql = re.sub(r"\$(\d+)", partial(_shift, offset), sql)
                parts.append(f"s{len(parts)} AS ({sql})")
                offset += count
            return f"WITH {', '.join(parts)} SELECT 1"

        sql = self._statement("write:" + ",".join(names), build)
        driver = await self._driver()
        await driver.execute(sql, *(_json_rows(rows) for _, rows in steps))

    async def _upsert_matches(self, rows: list[Any]) -> None:
        def build() -> str:
            source, select = self._unnest(matches, _MATCH_COLUMNS)
            return (
                f"INSERT INTO matches ({_names(_MATCH_COLUMNS)}) SELECT {select} FROM {source} "
                "ON CONFLICT (site_id, product_id) DO UPDATE SET group_id = excluded.group_id, "
                "method = excluded.method, score = excluded.score "
                "WHERE matches.method = 'gtin' AND (matches.group_id, matches.score) "
                "IS DISTINCT FROM (excluded.group_id, excluded.score)"
            )

        await self._run(self._statement("upsert_matches", build), rows)


_iso_microseconds = methodcaller("isoformat", " ", "microseconds")
_WITHOUT_OFFSET = slice(None, -6)


class SqliteBulk(Bulk):
    """`executemany` over plain tuples: SQLite runs each prepared statement once per row. Every
    statement runs on the `sqlite3` connection in aiosqlite's own thread, a batch's history
    and state steps in one trip there (SQLAlchemy's path costs a thread hop and parameter
    adaptation per statement)."""

    _sql: ClassVar[dict[str, str]] = {}

    def stored_times(self, times: Sequence[datetime]) -> list[Any]:
        """Naive UTC text (`types.UTCDateTime`): each aware UTC time's ISO form without its
        "+00:00", C calls only."""
        return list(map(getitem, map(_iso_microseconds, times), repeat(_WITHOUT_OFFSET)))

    @classmethod
    def _statement(cls, name: str, build: Callable[[], str]) -> str:
        if name not in cls._sql:
            cls._sql[name] = build()
        return cls._sql[name]

    async def _many(self, sql: str, rows: list[Any]) -> None:
        await self._in_thread(lambda db: db.executemany(sql, rows))

    async def _in_thread(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `work` on the raw `sqlite3` connection, in aiosqlite's thread (the one that
        owns it), inside the transaction SQLAlchemy began."""
        raw = await self.conn.get_raw_connection()
        driver = raw.driver_connection
        # aiosqlite queues functions for its thread with `_execute` (what its own cursor
        # methods use); `_conn` is the sqlite3 connection. Private API (0.22 here, same since
        # 0.17): every SQLite ingest test goes through it.
        connection = driver._conn  # type: ignore[union-attr]
        result: _T = await driver._execute(work, connection)  # type: ignore[union-attr]
        return result

    @classmethod
    def _set_by_key(cls, name: str, table: str, names: Sequence[str], key: Sequence[str]) -> str:
        """`UPDATE table SET c = ?3, … WHERE key = ?1 AND …` over rows of `names`, the key
        first (numbered parameters: the rows go to the driver as they are)."""

        def build() -> str:
            sets = ", ".join(f"{n} = ?{i}" for i, n in enumerate(names, 1) if i > len(key))
            where = " AND ".join(f"{k} = ?{i}" for i, k in enumerate(key, 1))
            return f"UPDATE {table} SET {sets} WHERE {where}"

        return cls._statement(name, build)

    async def _lock_states(self, keys: list[Key]) -> Sequence[Any]:
        def build() -> str:
            # CROSS JOIN keeps the key list as the outer loop: one primary-key probe per key.
            return (
                f"SELECT {_names(STATE_ROW, 's.')} FROM json_each(?) AS k "
                "CROSS JOIN product_state s ON s.site_id = json_extract(k.value, '$[0]') "
                "AND s.id = json_extract(k.value, '$[1]')"
            )

        def build_one_site() -> str:
            # Without two `json_extract` calls per key: 2.7 ms instead of 3.6 for 1,000 keys.
            return (
                f"SELECT {_names(STATE_ROW, 's.')} FROM json_each(?1) AS k "
                "CROSS JOIN product_state s ON s.site_id = ?2 AND s.id = k.value"
            )

        sites = set(map(_SITE, keys))
        if len(sites) == 1:  # the usual batch, one shop's: its ids as plain JSON strings
            payload = orjson.dumps(list(map(_ID, keys))).decode()
            one = self._statement("lock_states:one_site", build_one_site)
            site = sites.pop()
            return await self._in_thread(lambda db: db.execute(one, (payload, site)).fetchall())
        sql = self._statement("lock_states", build)
        payload = orjson.dumps(keys).decode()
        return await self._in_thread(lambda db: db.execute(sql, (payload,)).fetchall())

    async def _insert_products(self, rows: list[Any]) -> set[Key]:
        # The one writer holds the database since `lock_states`: every missing key is new.
        def build() -> str:
            marks = ", ".join("?" for _ in PRODUCT_COLUMNS)
            return f"INSERT INTO products ({_names(PRODUCT_COLUMNS)}) VALUES ({marks})"

        await self._many(self._statement("insert_products", build), rows)
        return {(row[0], row[1]) for row in rows}

    async def _update_products(self, rows: list[Any]) -> None:
        sql = self._set_by_key("update_products", "products", PRODUCT_COLUMNS, ("site_id", "id"))
        await self._many(sql, rows)

    def _step(self, name: str) -> str:
        history_key = ("site_id", "product_id", "observed_at")
        if name in ("insert_states", "insert_history"):
            table, names = (
                ("product_state", STATE_ROW)
                if name == "insert_states"
                else ("price_observations", HISTORY_COLUMNS)
            )
            marks = ", ".join("?" for _ in names)
            return self._statement(
                name, lambda: f"INSERT INTO {table} ({_names(names)}) VALUES ({marks})"
            )
        if name == "update_states":
            return self._set_by_key(name, "product_state", STATE_ROW, ("site_id", "id"))
        if name == "extend_states":
            return self._set_by_key(name, "product_state", _SEEN_ROW, ("site_id", "id"))
        if name == "update_history":
            return self._set_by_key(name, "price_observations", HISTORY_COLUMNS, history_key)
        if name == "extend_history":
            return self._set_by_key(name, "price_observations", _HISTORY_SEEN, history_key)
        assert name == "delete_history", name
        return (
            "DELETE FROM price_observations WHERE site_id = ? AND product_id = ? "
            "AND observed_at = ?"
        )

    async def _write(self, steps: list[tuple[str, list[Any]]]) -> None:
        work = [(self._step(name), rows) for name, rows in steps]

        def run(db: sqlite3.Connection) -> None:
            for sql, rows in work:
                db.executemany(sql, rows)

        await self._in_thread(run)

    async def _upsert_matches(self, rows: list[Any]) -> None:
        def build() -> str:
            marks = ", ".join("?" for _ in _MATCH_COLUMNS)
            return (
                f"INSERT INTO matches ({_names(_MATCH_COLUMNS)}) VALUES ({marks}) "
                "ON CONFLICT (site_id, product_id) DO UPDATE SET group_id = excluded.group_id, "
                "method = excluded.method, score = excluded.score "
                "WHERE matches.method = 'gtin' AND (matches.group_id IS NOT excluded.group_id "
                "OR matches.score IS NOT excluded.score)"
            )

        await self._many(self._statement("upsert_matches", build), rows)
