"""Many rows into one table at the driver's speed: the DB-API's ``executemany`` with SQLAlchemy's own
conversions of each value (so what is stored is what an ORM write would store).

SQLAlchemy's ``insert(table)`` with a list of rows builds and processes a parameter dictionary per
row; for batches of tens of thousands of rows that bookkeeping costs more than the database's own
work. :func:`insert_rows` compiles the statement once, takes each column's bind processor once,
turns every row into a tuple and hands the lot to the driver. :func:`insert_columns` takes rows
column by column, already converted (:class:`Columns`), for callers that build them without a
dictionary per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain
from typing import Any

from sqlalchemy import Connection, Table


def _insert_sql(connection: Connection, table: Table, names: Sequence[str], skip: Sequence[str] = ()) -> str:
    dialect = connection.dialect
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    preparer = dialect.identifier_preparer
    columns = ", ".join(preparer.format_column(table.c[name]) for name in names)
    sql = f"INSERT INTO {preparer.format_table(table)} ({columns}) VALUES ({', '.join([mark] * len(names))})"
    if skip:
        sql += f" ON CONFLICT ({', '.join(preparer.format_column(table.c[name]) for name in skip)}) DO NOTHING"
    return sql


#: (dialect, table, columns) → the INSERT's text and each column's conversion: small statements run
#: per request (a new case's rows) would otherwise spend more on building them than SQLite on its work
_plans: dict[tuple[Any, Table, tuple[str, ...]], tuple[str, list[tuple[str, Any]]]] = {}


def _plan(connection: Connection, table: Table, names: tuple[str, ...]) -> tuple[str, list[tuple[str, Any]]]:
    dialect = connection.dialect
    key = (dialect, table, names)
    found = _plans.get(key)
    if found is None:
        processors = [table.c[name].type._cached_bind_processor(dialect) for name in names]
        found = (_insert_sql(connection, table, names), list(zip(names, processors, strict=True)))
        if len(_plans) > 1024:  # many engines (tests): kept bounded
            _plans.clear()
        _plans[key] = found
    return found


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """INSERT ``rows`` (every row with the same keys: the columns written) into ``table``; returns the count."""
    if not rows:
        return 0
    sql, plan = _plan(connection, table, tuple(rows[0]))
    values = [tuple(p(row[n]) if p is not None else row[n] for n, p in plan) for row in rows]
    connection.exec_driver_sql(sql, values)  # type: ignore[arg-type]
    return len(values)


class Columns:
    """Values for a table's columns as the driver takes them, a column at a time: SQLAlchemy's
    conversion of each column (its bind processor) taken once, and applied to each value only
    where the column has one (a value the same in every row is converted once)."""

    def __init__(self, connection: Connection, table: Table) -> None:
        self._dialect = connection.dialect
        self._table = table

    def processor(self, name: str) -> Any:
        """Column ``name``'s conversion (``None``: values go as they are)."""
        return self._table.c[name].type._cached_bind_processor(self._dialect)

    def each(self, name: str, values: Sequence[Any]) -> Sequence[Any]:
        """``values`` of column ``name``, converted."""
        process = self.processor(name)
        return values if process is None else [process(v) for v in values]

    def one(self, name: str, value: Any) -> Any:
        """``value`` of column ``name``, converted (a constant of every row: once)."""
        process = self.processor(name)
        return value if process is None else process(value)

    def rows(
        self, names: Sequence[str], rows: list[tuple[Any, ...]], *, done: Sequence[str] = ()
    ) -> list[tuple[Any, ...]]:
        """``rows`` (tuples of the columns ``names``) converted, but for the columns ``done``
        (already in the driver's form); the rows as they are where no other column has a conversion."""
        todo = [(j, p) for j, name in enumerate(names) if name not in done and (p := self.processor(name)) is not None]
        if not todo:
            return rows
        columns = [list(c) for c in zip(*rows, strict=True)]
        for j, process in todo:
            columns[j] = [process(v) for v in columns[j]]
        return list(zip(*columns, strict=True))


#: SQLite: rows per ``INSERT`` statement of :func:`insert_columns` (each statement is a step
#: through SQLite's VM whatever its rows) and the values one statement may bind (before 3.32).
ROWS_PER_STATEMENT = 50
MAX_BOUND = 999


def _literal(value: Any) -> str | None:
    """SQL text of a constant SQLite takes as written (text, whole numbers, NULL), else ``None``."""
    if value is None:
        return "NULL"
    if type(value) is int:
        return str(value)
    if type(value) is str and "\x00" not in value:
        return "'" + value.replace("'", "''") + "'"
    return None


def insert_columns(
    connection: Connection,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    *,
    constants: Mapping[str, Any] | None = None,
    skip_conflicts_on: Sequence[str] = (),
) -> int:
    """INSERT rows given column by column (every column as long as the others); otherwise as
    :func:`insert_tuples`."""
    cols = list(columns.values())
    n = len(cols[0]) if cols else 0
    if any(len(c) != n for c in cols):
        raise ValueError("columns of unequal length")
    rows = list(zip(*cols, strict=True))
    return insert_tuples(
        connection, table, list(columns), rows, constants=constants, skip_conflicts_on=skip_conflicts_on
    )


def insert_tuples(
    connection: Connection,
    table: Table,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    constants: Mapping[str, Any] | None = None,
    skip_conflicts_on: Sequence[str] = (),
) -> int:
    """INSERT ``rows`` (each a tuple of the columns ``names``) and ``constants`` (column → one value
    for every row), each value as the driver takes it (see :class:`Columns`), into ``table``;
    returns how many were written. With ``skip_conflicts_on`` (the columns of a unique
    constraint), a row whose values there are already in the table is skipped
    (``ON CONFLICT … DO NOTHING``; SQLite and PostgreSQL).

    On SQLite the constants are written into the statement where they can be and the rows go
    :data:`ROWS_PER_STATEMENT` to a statement; elsewhere one ``executemany`` of a row each."""
    fixed = dict(constants or {})
    n = len(rows)
    if n == 0:
        return 0
    if connection.dialect.name != "sqlite":
        sql = _insert_sql(connection, table, [*names, *fixed], skip_conflicts_on)
        same = tuple(fixed.values())
        values = [(*row, *same) for row in rows] if same else list(rows)
        result = connection.exec_driver_sql(sql, values)  # type: ignore[arg-type]
        return result.rowcount if skip_conflicts_on and result.rowcount >= 0 else n
    literals = {c: lit for c, v in fixed.items() if (lit := _literal(v)) is not None}
    bound = [c for c in fixed if c not in literals]
    if bound:
        extra = tuple(fixed[c] for c in bound)
        rows = [(*row, *extra) for row in rows]
    width = len(names) + len(bound)
    preparer = connection.dialect.identifier_preparer
    listed = ", ".join(preparer.format_column(table.c[c]) for c in (*names, *bound, *literals))
    one = "(" + ", ".join(("?",) * width + tuple(literals.values())) + ")"
    tail = ""
    if skip_conflicts_on:
        tail = f" ON CONFLICT ({', '.join(preparer.format_column(table.c[c]) for c in skip_conflicts_on)}) DO NOTHING"
    per = max(1, min(ROWS_PER_STATEMENT, MAX_BOUND // max(width, 1)))
    head = f"INSERT INTO {preparer.format_table(table)} ({listed}) VALUES "
    flat = list(chain.from_iterable(rows))
    if len(flat) != n * width:
        raise ValueError(f"rows of other than {width} values")
    step = per * width
    whole = (n // per) * step
    written = 0
    raw: Any = connection.connection.driver_connection
    several = head + ", ".join((one,) * per) + tail
    if whole:
        written += raw.executemany(several, [flat[i : i + step] for i in range(0, whole, step)]).rowcount
    if whole < len(flat):
        written += raw.executemany(
            head + one + tail, [flat[i : i + width] for i in range(whole, len(flat), width)]
        ).rowcount
    return written


@contextmanager
def sqlite_cache(connection: Connection, kib: int) -> Iterator[None]:
    """SQLite's page cache on ``connection`` raised to ``kib`` KiB for a bulk write (and put back
    after), so the index pages the write touches stay in memory instead of being written out and
    read again; elsewhere nothing changes. The cache grows only as pages are read."""
    if connection.dialect.name != "sqlite":
        yield
        return
    (before,) = connection.exec_driver_sql("PRAGMA cache_size").one()
    if int(before) < 0 and -int(before) >= kib:
        yield
        return
    connection.exec_driver_sql(f"PRAGMA cache_size=-{int(kib)}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size={int(before)}")
