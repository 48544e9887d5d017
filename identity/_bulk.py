"""Bulk reads and writes of the master index, per database dialect.

Batches of a million records make the ordinary SQLAlchemy paths the cost: an expanding
``IN`` list compiles one bound parameter per value, and a Core ``executemany`` runs every
value through its type processors (``json.dumps`` per JSON cell). Here:

* :func:`in_values` matches a column against many values with *one* parameter — a JSON
  array read by ``json_each`` on SQLite, a ``text[]`` the server joins with ``unnest`` on
  PostgreSQL — so a lookup of 100,000 codes is one short statement;
* :func:`rows_for_keys` reads the rows of many keys; on SQLite it scans a table that is not
  much larger than the batch (a row read in order beats a random index probe) and otherwise
  probes the index in key order, one JSON array of keys joined per statement; an empty
  table answers without a lookup on either;
* :func:`insert_columns` (:func:`prepare`, then :func:`insert`) writes rows given column by
  column, already in database form (JSON as text, timestamps as the dialect stores them),
  through the driver: ``executemany`` of many-row statements on SQLite, ``COPY`` on
  PostgreSQL (its text built column by column, :mod:`identity._bulk_pg`, a piece while the
  driver's worker thread sends the one before); both inside the session's transaction, so
  they commit with everything else;
* :func:`collector_paused` keeps the garbage collector from rescanning the heap while a
  large batch builds its rows;
* :func:`bulk_load`, when a batch is at least as large as the table, drops the table's
  secondary indexes and builds them again afterwards (one sort instead of a random B-tree
  insert per row) — inside the same transaction, so a failure rolls the drop back too; on
  SQLite it also widens the page cache for the load, and a large load's commit leaves the WAL
  checkpoint to a worker thread (:mod:`hub.sqlite_wal`); on PostgreSQL only when the table's
  lock is free at once (docs/decisions/0037-postgresql-bulk-load.md); on PostgreSQL
  :meth:`BulkLoad.insert_in_background` also leaves a table's ``COPY`` to a worker thread
  (docs/decisions/0040-postgresql-load-overlap.md); the statistics after a load are kept up to
  date for the lookups that follow (:func:`analyze_if_unknown`,
  docs/decisions/0046-postgresql-statistics-of-a-new-dataset.md).

One job, one module: the index's reads and writes of many rows at once, each dialect's way,
behind one interface its callers use the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from hub import sqlite_wal
from identity import _bulk_pg

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
    """``column IN values`` with one bound parameter whatever the number of values (on
    PostgreSQL a ``text[]`` literal the server parses, when the values are text).

    On PostgreSQL the values are a semi join with ``unnest``, never ``= ANY``: the server
    compares a row with an ``= ANY`` array's values one by one (it hashes only a constant array,
    and a cast parameter is none), so a scan of a table against thousands of values cost rows ×
    values comparisons — what it chose for a table just filled, or for more values than rows;
    a join it hashes, or probes the index with
    (docs/decisions/0041-postgresql-lookups-of-many-values.md)."""
    name = dialect_name(session)
    if name == "sqlite":
        each = sa.func.json_each(sa.literal(json.dumps(list(values)), type_=sa.Text())).table_valued("value")
        return column.in_(sa.select(each.c.value))  # type: ignore[no-any-return]
    if name == "postgresql":
        literal = _bulk_pg.array_literal(values)
        array: sa.ColumnElement[Any] = (
            # one string the server parses, not a value per element to dump
            sa.cast(sa.literal(literal, type_=sa.Text()), postgresql.ARRAY(sa.Text()))
            if literal is not None
            else sa.literal(list(values), type_=postgresql.ARRAY(sa.Text()))
        )
        return column.in_(sa.select(sa.func.unnest(array)))  # type: ignore[no-any-return]
    return column.in_(list(values))  # type: ignore[no-any-return]


#: SQLite: scan a table rather than probe it when it holds at most this many rows per key
#: looked up (a row read in order costs about a third of a random index probe).
SCAN_RATIO = 2


def _clustered(raw: Any, name: str) -> bool:
    """Is SQLite table ``name`` a ``WITHOUT ROWID`` table (rows kept in primary-key order)?"""
    row = raw.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return bool(row and row[0] and re.search(r"\bWITHOUT\s+ROWID\s*$", row[0], re.IGNORECASE))


def _row_bound(raw: Any, name: str) -> int:
    """An upper bound of the rows of SQLite table ``name``: the end of a rowid table's
    B-tree; a ``WITHOUT ROWID`` table has no such end, and counts as unbounded unless empty."""
    if _clustered(raw, name):
        return 0 if raw.execute(f"SELECT 1 FROM {name} LIMIT 1").fetchone() is None else 2**62
    (last,) = raw.execute(f"SELECT max(rowid) FROM {name}").fetchone()
    return int(last or 0)


def table_size(session: Session, table: sa.Table) -> int:
    """An upper bound of the rows of a SQLite table (see :func:`_row_bound`)."""
    return _row_bound(_dbapi(session), table.name)


def rows_for_keys(
    session: Session,
    table: sa.Table,
    key: sa.ColumnElement[Any],
    values: Sequence[str],
    columns: Sequence[sa.ColumnElement[Any]] = (),
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> Iterator[Any]:
    """Rows ``(key, *columns)`` of ``table`` whose ``key`` is one of ``values`` (which may
    repeat) and that satisfy ``where``; Core rows, in no particular order."""
    if not len(values):
        return
    conn = session.connection()
    if dialect_name(session) != "sqlite":
        # an empty table (a first load) answers at once, as on SQLite: one probe instead of a
        # statement per 100,000 keys, each parsing and planning its list of keys
        if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is None:
            return
        for chunk in chunks(list(dict.fromkeys(values))):
            yield from conn.execute(sa.select(key, *columns).where(in_values(session, key, chunk), *where))
        return
    size = table_size(session, table)
    if size == 0:
        return
    if size <= SCAN_RATIO * len(values):
        wanted = set(values)
        for row in conn.execute(sa.select(key, *columns).where(*where)):
            if row[0] in wanted:
                yield row
        return
    # probes in key order: neighbouring keys share index pages (about twice as fast as random).
    # ``key IN (SELECT value FROM json_each(?))``, not a join with json_each: for a join the
    # planner may take the table as the outer loop — reading every row the other equality
    # terms (department, dataset) select and scanning the key list for each, quadratic in
    # the batch — while an IN list is probed through the whole index, one lookup per key.
    ordered = sorted(set(values))
    for chunk in chunks(ordered):
        yield from conn.execute(sa.select(key, *columns).where(in_values(session, key, chunk), *where))


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


#: SQLite: rows per ``INSERT`` statement. Each statement costs a step through the VM whatever
#: its rows; several rows per statement write a million rows in about two thirds of the time.
ROWS_PER_STATEMENT = 50
#: SQLite: values one statement may bind (the limit of builds before 3.32).
MAX_BOUND = 999


@dataclass
class Prepared:
    """Rows ready to insert, in the form the session's driver takes them (:func:`prepare`)."""

    table: sa.Table
    columns: tuple[str, ...]  # of the values, then of the constants
    #: SQLite: ``(statement, parameter rows)`` pairs to run in order
    statements: list[tuple[str, list[Any]]] = field(default_factory=list)
    #: other databases: the rows, constants included, in ``columns`` order
    rows: Iterable[Sequence[Any]] = ()
    #: PostgreSQL: the rows as ``COPY`` text, in pieces (``None``: the driver writes ``rows``);
    #: built as they are read for ``lazy`` text (:func:`_bulk_pg.copy_pieces`: maybe rows then)
    copy: Iterable[_bulk_pg.Piece] | None = None


def prepare(
    session: Session,
    table: sa.Table,
    columns: Sequence[str],
    values: Sequence[Sequence[Any] | np.ndarray],
    constants: Mapping[str, Any] | None = None,
    *,
    lazy: bool = False,
) -> Prepared:
    """Rows given column by column (``values``, one sequence per column of ``columns``, in
    database form: JSON as its text, timestamps as :func:`timestamp` gives; Python or NumPy
    scalars), each with the same ``constants`` (column → value), made ready for
    :func:`insert` — pure work, which a caller can do while the database is busy.

    On SQLite the constants are written into the statement where they can be, and the rows go
    :data:`ROWS_PER_STATEMENT` to a statement, as flat parameter lists built by NumPy. On
    PostgreSQL ``lazy`` leaves each piece's ``COPY`` text to be built as :func:`insert` sends
    the pieces, and the values' types to be checked a piece at a time: a piece holding a value
    the text does not cover goes to the driver's row writer."""
    fixed = dict(constants or {})
    n = len(values[0]) if len(values) else 0
    if any(len(v) != n for v in values):
        raise ValueError("columns of unequal length")
    if dialect_name(session) == "postgresql":
        pieces = _bulk_pg.copy_pieces(values, fixed, WRITE_CHUNK, lazy=lazy)
        if pieces is not None:
            text: Iterable[_bulk_pg.Piece] = pieces if lazy else list(pieces)
            return Prepared(table, (*columns, *fixed), copy=text)
    if dialect_name(session) != "sqlite":
        tail = tuple(fixed.values())
        cols = [v.tolist() if isinstance(v, np.ndarray) else v for v in values]
        return Prepared(table, (*columns, *fixed), rows=((*row, *tail) for row in zip(*cols, strict=True)))
    literals = {c: lit for c, v in fixed.items() if (lit := _literal(v)) is not None}
    bound = [c for c in fixed if c not in literals]
    width = len(columns) + len(bound)
    names = ", ".join((*columns, *bound, *literals))
    one = "(" + ", ".join(("?",) * width + tuple(literals.values())) + ")"
    per = max(1, min(ROWS_PER_STATEMENT, MAX_BOUND // max(width, 1)))
    prepared = Prepared(table, (*columns, *bound, *literals))
    several = f"INSERT INTO {table.name} ({names}) VALUES " + ", ".join((one,) * per)
    single = f"INSERT INTO {table.name} ({names}) VALUES {one}"
    for start in range(0, n, WRITE_CHUNK):
        stop = min(start + WRITE_CHUNK, n)
        block = np.empty((stop - start, width), dtype=object)
        for j, column in enumerate(values):
            part = column[start:stop]
            # Python scalars for the driver (an int64 array's items would not bind)
            block[:, j] = part.tolist() if isinstance(part, np.ndarray) else part
        for j, c in enumerate(bound, start=len(columns)):
            block[:, j] = [fixed[c]] * len(block)
        whole = len(block) - len(block) % per
        if whole:
            prepared.statements.append((several, block[:whole].reshape(-1, per * width).tolist()))
        if whole < len(block):
            prepared.statements.append((single, block[whole:].tolist()))
    return prepared


def insert(session: Session, prepared: Prepared) -> None:
    """Insert :func:`prepare`'s rows in the session's transaction: the driver's
    ``executemany`` on SQLite, ``COPY`` on PostgreSQL, Core's insert elsewhere."""
    name = dialect_name(session)
    table = prepared.table
    if name == "sqlite":
        raw = _dbapi(session)
        for sql, params in prepared.statements:
            raw.executemany(sql, params)
        return
    if name == "postgresql":
        _copy(_dbapi(session), prepared)
        return
    # any other database: the portable Core path (JSON text parsed back for the JSON type)
    json_cols = {c for c in prepared.columns if isinstance(table.c[c].type, sa.JSON)}
    dicts = [
        {
            c: (json.loads(v) if c in json_cols and v is not None else v)
            for c, v in zip(prepared.columns, row, strict=True)
        }
        for row in prepared.rows
    ]
    if dicts:
        session.execute(sa.insert(table), dicts)


def _copy(raw: Any, prepared: Prepared) -> None:
    """PostgreSQL: ``COPY`` the rows on the psycopg connection ``raw``. A worker thread of the
    driver's sends what is written while this thread builds the next piece of text (or
    formats the next row): the server parses and stores a piece while the next one is built."""
    from psycopg.copy import QueuedLibpqWriter  # noqa: PLC0415 - only on PostgreSQL

    with (
        raw.cursor() as cur,
        cur.copy(
            f"COPY {prepared.table.name} ({', '.join(prepared.columns)}) FROM STDIN", writer=QueuedLibpqWriter(cur)
        ) as copy,
    ):
        if prepared.copy is not None:
            for piece in prepared.copy:
                if isinstance(piece, bytes):
                    copy.write(piece)
                for values in piece if isinstance(piece, list) else ():  # rows the text does not cover
                    copy.write_row(values)
        else:
            for row in prepared.rows:
                copy.write_row(row)


def insert_columns(
    session: Session,
    table: sa.Table,
    columns: Sequence[str],
    values: Sequence[Sequence[Any] | np.ndarray],
    constants: Mapping[str, Any] | None = None,
) -> None:
    """:func:`prepare` and :func:`insert` at once (on PostgreSQL the ``COPY`` text of a piece is
    built while the server stores the piece before it)."""
    insert(session, prepare(session, table, columns, values, constants, lazy=True))


def _sqlite_begin(session: Session) -> Any:
    """The raw SQLite connection with a transaction open (DDL would otherwise autocommit)."""
    raw = _dbapi(session)
    if not raw.in_transaction:
        raw.execute("BEGIN")
    return raw


class BulkLoad:
    """A bulk load in progress: the indexes it dropped, to build again, and a build running
    in the background (:meth:`rebuild_in_background`)."""

    def __init__(self, raw: Any = None, *, postgresql: bool = False) -> None:
        self._raw = raw
        self._postgresql = postgresql
        self._dropped: dict[str, list[str]] = {}
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None

    def rebuild_in_background(self, table: sa.Table) -> None:
        """Build ``table``'s dropped indexes again on a worker thread. ``CREATE INDEX`` runs
        inside SQLite (or waits on PostgreSQL's server) without the GIL, so the caller's Python
        work goes on meanwhile — work that must not use the database until :meth:`wait` returns."""
        statements = self._dropped.pop(table.name, [])
        if statements:
            self._in_background(lambda raw: [raw.execute(sql) for sql in statements])

    def insert_in_background(self, session: Session, prepared: Prepared) -> None:
        """Insert ``prepared``'s rows, then build their table's dropped indexes again. On
        PostgreSQL both run on a worker thread (it waits on the server's ``COPY`` and
        ``CREATE INDEX`` without the GIL), so the caller's Python work goes on while the server
        stores the rows — work that must not use the database until :meth:`wait` returns;
        elsewhere the rows are inserted now and only the build is left to the worker."""
        if not self._postgresql:
            insert(session, prepared)
            self.rebuild_in_background(prepared.table)
            return
        statements = self._dropped.pop(prepared.table.name, [])

        def load(raw: Any) -> None:
            _copy(raw, prepared)
            for sql in statements:
                raw.execute(sql)

        self._in_background(load)

    def _in_background(self, work: Callable[[Any], Any]) -> None:
        self.wait()
        raw = self._raw

        def run() -> None:
            try:
                work(raw)
            except BaseException as exc:  # re-raised in the caller's thread by wait()
                self._error = exc

        self._worker = threading.Thread(target=run, name="identity-bulk-load", daemon=True)
        self._worker.start()

    def wait(self) -> None:
        """Wait for a background build; its error, if any, is raised here."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.join()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _finish(self) -> None:
        try:
            self.wait()
        finally:
            # also after a failure: the caller may roll back (restoring them anyway) or not
            if self._raw is not None and self._open():
                for statements in self._dropped.values():
                    for sql in statements:
                        self._raw.execute(sql)
            self._dropped.clear()

    def _open(self) -> bool:
        """Can the transaction still run statements (an aborted PostgreSQL one cannot: its
        rollback restores the indexes)?"""
        return _bulk_pg.in_transaction(self._raw) if self._postgresql else bool(self._raw.in_transaction)


@contextmanager
def bulk_load(session: Session, new_rows: Mapping[sa.Table, int]) -> Iterator[BulkLoad]:
    """Prepare tables for inserting the given numbers of rows (SQLite and PostgreSQL; a no-op
    elsewhere).

    Partial indexes stay: they hold only the rows their condition admits (merged identities),
    so inserting rows they leave out costs nothing, while building them again would scan the
    whole table. On PostgreSQL only a table whose ``ACCESS EXCLUSIVE`` lock is free at once has
    its indexes dropped; readers wait for the load's commit then (:mod:`identity._bulk_pg`)."""
    name = dialect_name(session)
    if name == "postgresql" and sum(new_rows.values()) > 0:
        with _postgresql_load(session, new_rows) as load:
            yield load
        return
    if name != "sqlite" or sum(new_rows.values()) <= 0:
        yield BulkLoad()
        return
    raw = _sqlite_begin(session)
    if sum(new_rows.values()) >= REBUILD_MIN_ROWS:
        # the commit of a large load returns once the log is written; a worker copies it
        sqlite_wal.defer_checkpoint(session)
    (old_cache,) = raw.execute("PRAGMA cache_size").fetchone()
    raw.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
    load = BulkLoad(raw)
    try:
        for table, count in new_rows.items():
            if count < REBUILD_MIN_ROWS:
                continue
            # a primary key's own index (no SQL) stays; so do partial ones
            droppable = [
                (name, sql)
                for name, sql in raw.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                    (table.name,),
                ).fetchall()
                if not _partial(sql)
            ]
            if not droppable or count < _row_bound(raw, table.name):
                continue  # a large table: inserting into its indexes beats rebuilding them
            for name, sql in droppable:
                raw.execute(f'DROP INDEX "{name}"')
                load._dropped.setdefault(table.name, []).append(sql)
        try:
            yield load
        finally:
            load._finish()
    finally:
        raw.execute(f"PRAGMA cache_size={int(old_cache)}")


@contextmanager
def _postgresql_load(session: Session, new_rows: Mapping[sa.Table, int]) -> Iterator[BulkLoad]:
    """:func:`bulk_load` on PostgreSQL: a table at most as large as its load (from
    :data:`REBUILD_MIN_ROWS` rows on) loses its plain secondary indexes until the load ends."""
    raw = _dbapi(session)
    session.connection()  # the session's transaction, which the drop and the rebuild are in
    load = BulkLoad(raw, postgresql=True)
    for table, count in new_rows.items():
        if count >= REBUILD_MIN_ROWS and (statements := _bulk_pg.drop_indexes(raw, table.name, count)):
            load._dropped[table.name] = statements
    try:
        yield load
    finally:
        load._finish()
    # the planner's statistics of the tables the load grew much: the next lookups probe the indexes
    for table, count in new_rows.items():
        _bulk_pg.analyze_if_grown(raw, table.name, count)


def analyze_if_unknown(session: Session, table: sa.Table, values: dict[str, str], rows: int = 0) -> bool:
    """PostgreSQL: ``ANALYZE`` ``table`` after ``rows`` rows written outside :func:`bulk_load` grew it
    much, or when its statistics do not know one of ``values`` (:mod:`identity._bulk_pg`)."""
    if dialect_name(session) != "postgresql":
        return False
    raw = _dbapi(session)
    return _bulk_pg.analyze_if_grown(raw, table.name, rows) or _bulk_pg.analyze_if_unknown(raw, table.name, values)


def _partial(sql: str) -> bool:
    """An index definition with a ``WHERE`` clause (outside quoted names)."""
    return " WHERE " in re.sub(r'"[^"]*"|\'[^\']*\'', "", sql).upper()
