"""Bulk reads and writes of the master index, per database dialect.

Batches of a million records make the ordinary SQLAlchemy paths the cost: an expanding
``IN`` list compiles one bound parameter per value, and a Core ``executemany`` runs every
value through its type processors (``json.dumps`` per JSON cell). Here:

* :func:`in_values` matches a column against many values with *one* parameter — a JSON
  array read by ``json_each`` on SQLite, a ``text[]`` compared with ``= ANY`` on
  PostgreSQL — so a lookup of 100,000 codes is one short statement;
* :func:`insert_rows` writes rows already in database form (JSON as text, timestamps as the
  dialect stores them) through the driver: ``executemany`` on SQLite, ``COPY`` on
  PostgreSQL; both inside the session's transaction, so they commit with everything else;
* :func:`collector_paused` keeps the garbage collector from rescanning the heap while a
  large batch builds its rows;
* :func:`bulk_load` widens SQLite's page cache for the load and, when a batch is at least as
  large as the table, drops the table's secondary indexes and builds them again afterwards
  (one sort instead of a random B-tree insert per row) — inside the same transaction, so a
  failure rolls the drop back too.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

#: Values per lookup statement (bounded so one statement never carries a huge parameter).
LOOKUP_CHUNK = 100_000
#: Rows per write statement (bounds the memory of rows built for it).
WRITE_CHUNK = 100_000
#: Batches smaller than this never rebuild indexes: the random inserts are cheap enough.
REBUILD_MIN_ROWS = 50_000
#: SQLite page cache during a bulk load (KiB): large enough that index pages stay in memory
#: instead of spilling to the WAL and being written again.
BULK_CACHE_KIB = 1_048_576


#: Batches from this size on run with the cyclic garbage collector paused.
PAUSE_GC_ROWS = 10_000


@contextmanager
def collector_paused(rows: int) -> Iterator[None]:
    """Pause the cyclic garbage collector for a batch of ``rows`` rows (from
    :data:`PAUSE_GC_ROWS` on). Building a million row tuples triggers collections that scan
    the whole heap again and again (a tenth of a large batch's time), while rows of strings
    and numbers hold no reference cycles to collect; the previous state returns afterwards."""
    if rows < PAUSE_GC_ROWS or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def dialect_name(session: Session) -> str:
    return session.get_bind().dialect.name


def chunks(values: Sequence[Any], size: int = LOOKUP_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def in_values(session: Session, column: Any, values: Sequence[str]) -> sa.ColumnElement[bool]:
    """``column IN values`` with one bound parameter whatever the number of values."""
    name = dialect_name(session)
    if name == "sqlite":
        each = sa.func.json_each(sa.literal(json.dumps(list(values)), type_=sa.Text())).table_valued("value")
        return column.in_(sa.select(each.c.value))  # type: ignore[no-any-return]
    if name == "postgresql":
        return column == sa.any_(sa.literal(list(values), type_=postgresql.ARRAY(sa.Text())))  # type: ignore[no-any-return]
    return column.in_(list(values))  # type: ignore[no-any-return]


def timestamp(session: Session, value: dt.datetime) -> Any:
    """``value`` as the driver takes it for a ``DateTime(timezone=True)`` column."""
    dialect = session.get_bind().dialect
    process = sa.DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    return process(value) if process is not None else value


def _dbapi(session: Session) -> Any:
    return session.connection().connection.driver_connection


def _literal(value: Any) -> str | None:
    """``value`` as an SQLite literal, or ``None`` when it is better bound."""
    if value is None:
        return "NULL"
    if type(value) is str and "\x00" not in value:
        return "'" + value.replace("'", "''") + "'"
    return None


def insert_rows(
    session: Session,
    table: sa.Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    constants: Mapping[str, Any] | None = None,
) -> None:
    """Insert rows (tuples in ``columns`` order, values in database form) in the session's
    transaction, each with the same ``constants`` (column → value). JSON columns take their
    JSON text; timestamps as :func:`timestamp` gives."""
    name = dialect_name(session)
    fixed = dict(constants or {})
    if name == "sqlite":
        # constants written into the statement: nothing to bind a million times
        literals = {c: lit for c, v in fixed.items() if (lit := _literal(v)) is not None}
        bound = [c for c in fixed if c not in literals]
        tail = tuple(fixed[c] for c in bound)
        batch = [(*row, *tail) for row in rows] if tail else (rows if isinstance(rows, list) else list(rows))
        if batch:
            names = ", ".join((*columns, *bound, *literals))
            values = ", ".join(("?",) * (len(columns) + len(bound)) + tuple(literals.values()))
            session.connection().exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({values})", batch)
        return
    tail = tuple(fixed.values())
    targets = (*columns, *fixed)
    if name == "postgresql":
        with _dbapi(session).cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(targets)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((*row, *tail))
        return
    # any other database: the portable Core path (JSON text parsed back for the JSON type)
    json_cols = {c for c in targets if isinstance(table.c[c].type, sa.JSON)}
    dicts = [
        {c: (json.loads(v) if c in json_cols and v is not None else v)
         for c, v in zip(targets, (*row, *tail), strict=True)}
        for row in rows
    ]
    if dicts:
        session.execute(sa.insert(table), dicts)


def _sqlite_begin(session: Session) -> Any:
    """The raw SQLite connection with a transaction open (DDL would otherwise autocommit)."""
    raw = _dbapi(session)
    if not raw.in_transaction:
        raw.execute("BEGIN")
    return raw


@contextmanager
def bulk_load(session: Session, new_rows: Mapping[sa.Table, int]) -> Iterator[None]:
    """Prepare tables for inserting the given numbers of rows (SQLite only; a no-op elsewhere:
    PostgreSQL's ``COPY`` keeps indexes cheaply and dropping one would lock out readers)."""
    if dialect_name(session) != "sqlite" or sum(new_rows.values()) <= 0:
        yield
        return
    raw = _sqlite_begin(session)
    (old_cache,) = raw.execute("PRAGMA cache_size").fetchone()
    raw.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
    rebuild: list[str] = []
    try:
        for table, count in new_rows.items():
            if count >= REBUILD_MIN_ROWS:
                (last,) = raw.execute(f"SELECT max(rowid) FROM {table.name}").fetchone()
                if count < (last or 0):
                    continue  # a large table: inserting into its indexes beats rebuilding them
                for name, sql in raw.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                    (table.name,),
                ).fetchall():
                    raw.execute(f'DROP INDEX "{name}"')
                    rebuild.append(sql)
        try:
            yield
        finally:
            # also after a failure: the caller may roll back (restoring them anyway) or not
            if raw.in_transaction:
                for sql in rebuild:
                    raw.execute(sql)
    finally:
        raw.execute(f"PRAGMA cache_size={int(old_cache)}")
