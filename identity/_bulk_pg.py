"""PostgreSQL's side of :mod:`identity._bulk`: ``COPY`` text built column by column, one-parameter
lookups, and the index rebuild around a load at least as large as its table
(docs/decisions/0037-postgresql-bulk-load.md).

* :func:`copy_pieces` turns rows given column by column into ``COPY ... FROM STDIN`` text (tab
  separated, ``\\N`` for NULL, backslash escapes) with a handful of joins per column and per
  chunk, instead of a driver call and a type lookup per row and value; a column of a type not
  handled here returns ``None`` and the caller falls back to the driver's own row writer;
* :func:`array_literal` is a list of codes as one ``text[]`` literal, so a lookup of 100,000
  codes binds one string instead of having the driver dump 100,000 values;
* :func:`drop_indexes` drops a table's plain secondary indexes for a load at least as large as
  the table (never a primary key's, a unique one's or a partial one's), when it can take the
  table's ``ACCESS EXCLUSIVE`` lock at once: inserting a million rows into a B-tree one at a
  time costs the server several times what one sorted build afterwards does. The drop and the
  rebuild are in the caller's transaction: a rollback or a crash before the commit leaves the
  indexes as they were.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: ``COPY`` text's NULL.
NULL = "\\N"
#: Characters ``COPY`` text escapes with a backslash.
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def _escape(value: str) -> str:
    for char, escaped in _ESCAPES:
        if char in value:
            value = value.replace(char, escaped)
    return value


def _text_cells(items: list[Any], has_null: bool) -> list[str] | None:
    """Cells of a column of text (``str`` or ``None``), escaped where needed (``None`` for
    a NUL character, which PostgreSQL's text cannot hold: the driver's own writer says so)."""
    present = [v for v in items if v is not None] if has_null else items
    joined = "".join(present)
    if "\x00" in joined:
        return None
    if any(char in joined for char, _ in _ESCAPES):
        items = [v if v is None else _escape(v) for v in items]
    return [NULL if v is None else v for v in items] if has_null else items


def _scalar(value: Any) -> str | None:
    """One value of a type the text form below covers, or ``None``."""
    if type(value) is bool or isinstance(value, np.bool_):
        return "t" if value else "f"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if type(value) in (dt.datetime, dt.date):  # not a subclass (pandas' nanoseconds)
        return str(value.isoformat())
    return None


def cells(values: Sequence[Any] | np.ndarray) -> list[str] | None:
    """A column's ``COPY`` text cells, or ``None`` when it holds a value of a type not covered
    here (text, integers, floats, booleans, dates and timestamps are)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return list(map(str, values.tolist()))
    if isinstance(values, np.ndarray) and values.dtype.kind == "b":
        return ["t" if v else "f" for v in values.tolist()]
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    types = set(map(type, items))
    has_null = type(None) in types
    if types <= {str, type(None)}:
        return _text_cells(items, has_null)
    if types <= {int, type(None)}:
        return [NULL if v is None else str(v) for v in items]
    out: list[str] = []
    for v in items:
        text = NULL if v is None else _scalar(v)
        if text is None:
            return None  # text mixed with other types, or a type not covered: the driver decides
        out.append(text)
    return out


#: A piece of ``COPY`` text, or the rows of a piece holding a value the text form does not cover
#: (for the driver's own row writer, constants included, in column order).
Piece = bytes | list[tuple[Any, ...]]


def copy_pieces(
    values: Sequence[Sequence[Any] | np.ndarray], constants: Mapping[str, Any], chunk: int, *, lazy: bool = False
) -> Iterator[Piece] | None:
    """``COPY`` text of the rows given column by column, with the ``constants``' values after
    each row's, ``chunk`` rows to a piece, each piece joined as it is read; ``None`` (at once)
    when a value's type is not covered. With ``lazy`` each piece's cells are made as it is read
    too: a piece holding a value not covered, and every piece after it, comes as its rows, for
    the driver's row writer (``None`` only for a constant not covered)."""
    n = len(values[0]) if len(values) else 0
    fixed = [cells([v]) for v in constants.values()]
    if any(c is None for c in fixed):
        return None
    suffix = "".join("\t" + c[0] for c in fixed if c is not None)
    if lazy:
        return _lazy_pieces(values, tuple(constants.values()), chunk, suffix + "\n")
    columns = [cells(v) for v in values]
    if any(c is None for c in columns):
        return None

    def pieces() -> Iterator[bytes]:
        for start in range(0, n, chunk):
            part = [c[start : start + chunk] for c in columns if c is not None]
            yield _joined(part, suffix + "\n")

    return pieces()


def _lazy_pieces(
    values: Sequence[Sequence[Any] | np.ndarray], tail: tuple[Any, ...], chunk: int, end: str
) -> Iterator[Piece]:
    """:func:`copy_pieces`' pieces, cells made a piece at a time (see there). From the first
    piece the text does not cover on, every piece comes as rows: the driver's writer holds rows
    back until its buffer fills, so text written after them would land before them."""
    n = len(values[0]) if len(values) else 0
    as_text = True
    for start in range(0, n, chunk):
        part = [v[start : start + chunk] for v in values]
        texts = [cells(c) for c in part] if as_text else []
        if as_text and all(t is not None for t in texts):
            yield _joined([t for t in texts if t is not None], end)
            continue
        as_text = False
        cols = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in part]
        yield [(*row, *tail) for row in zip(*cols, strict=True)]


def _joined(part: list[list[str]], end: str) -> bytes:
    """Rows of cells given column by column as ``COPY`` text: cells tab-separated, each row
    followed by ``end``. Arrow joins the cells in C++, and the character buffer of its result
    is the text itself, one row after the other; Python's joins when Arrow refuses a value
    (text that is not valid Unicode: then the encoding below says what is wrong)."""
    try:
        arrays = [pa.array(column, type=pa.large_string()) for column in part]
    except (pa.ArrowException, UnicodeError):
        arrays = []
    if arrays:
        cells = pc.binary_join_element_wise(*arrays, pa.scalar("\t", pa.large_string()))
        rows = pc.binary_join_element_wise(cells, pa.scalar(end, pa.large_string()), pa.scalar("", pa.large_string()))
        _validity, offsets, data = rows.buffers()
        first, last = np.frombuffer(offsets, dtype=np.int64)[[rows.offset, rows.offset + len(rows)]]
        return data.slice(int(first), int(last - first)).to_pybytes()  # one copy, of the text alone
    return (end.join(map("\t".join, zip(*part, strict=True))) + end).encode()


def array_literal(values: Sequence[Any]) -> str | None:
    """``values`` (text or ``None``) as one ``text[]`` literal, or ``None`` for other types."""
    types = set(map(type, values))
    if not types <= {str, type(None)}:
        return None
    if type(None) not in types:
        plain = "".join(values)
        if "\\" not in plain and '"' not in plain:  # codes: nothing to escape, two joins
            return '{"' + '","'.join(values) + '"}' if len(values) else "{}"
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' if v is not None else "NULL" for v in values)
    return "{" + ",".join(quoted) + "}"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_rows_at_most(raw: Any, table: str, limit: int) -> bool:
    """Does ``table`` hold at most ``limit`` rows? The planner's estimate answers a table
    clearly larger at once; otherwise at most ``limit + 1`` rows are counted."""
    (estimate,) = raw.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()
    if estimate is not None and estimate > 2 * limit:
        return False
    (rows,) = raw.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {_quoted(table)} LIMIT %s) AS s", (limit + 1,)
    ).fetchone()
    return int(rows) <= limit


#: A load of at least this many rows that is at least :data:`ANALYZE_SHARE` of what the planner
#: believes the table holds (or into a table never analysed) is followed by ``ANALYZE``.
ANALYZE_MIN_ROWS = 1_000
ANALYZE_SHARE = 0.2
#: The statistics target of that ``ANALYZE`` (its sample is 300 rows per unit): 3,000 rows give
#: the planner the table's size and its columns' distinct values and nulls, a tenth of the server's
#: default sample, read in a tenth of the time (docs/decisions/0044-postgresql-analyze-after-load.md)
ANALYZE_STATISTICS_TARGET = 10


def analyze_if_grown(raw: Any, table: str, rows: int) -> bool:
    """``ANALYZE`` ``table`` after a load of ``rows`` rows that grew it much (in the load's
    transaction: its own rows count): without statistics the planner takes a table just filled
    for an empty one and scans it, comparing every row with every value of an ``= ANY`` array
    instead of probing the index (docs/decisions/0041-postgresql-lookups-of-many-values.md).
    Autovacuum would analyse it later, after the lookups of the batches that follow. A small
    sample (:data:`ANALYZE_STATISTICS_TARGET`): a million-row load's ``ANALYZE`` read 30,000 rows
    of each table, a second or so on the load's path, for plans a tenth of them decide as well."""
    if rows < ANALYZE_MIN_ROWS:
        return False
    (estimate,) = raw.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()
    if estimate is not None and estimate >= 0 and rows < ANALYZE_SHARE * estimate:
        return False
    # the target for this statement only: the transaction's setting is put back after it (a
    # failed ANALYZE aborts the transaction, whose rollback puts it back)
    (previous,) = raw.execute("SELECT current_setting('default_statistics_target')").fetchone()
    raw.execute("SELECT set_config('default_statistics_target', %s, true)", (str(ANALYZE_STATISTICS_TARGET),))
    raw.execute(f"ANALYZE {_quoted(table)}")
    raw.execute("SELECT set_config('default_statistics_target', %s, true)", (str(previous),))
    return True


def analyze_if_unknown(raw: Any, table: str, values: dict[str, str]) -> bool:
    """``ANALYZE`` ``table`` when its statistics list every value they saw of one of ``values``'
    columns and not the value given (the first rows of a dataset, in the load's transaction).

    The planner takes a value its statistics do not know for about one row: a lookup by source key
    of a dataset's second batch joined the dataset's rows, as the outer side, with the keys, read
    again for each of them: its keys times the dataset's rows so far, batch after batch, until a
    load grows the table by a fifth (:func:`analyze_if_grown`). A column whose statistics list
    only some of its values (many datasets) estimates the others from the rest and is left alone.
    docs/decisions/0046-postgresql-statistics-of-a-new-dataset.md"""
    stats = {
        column: (distinct, common)
        for column, distinct, common in raw.execute(
            "SELECT attname, n_distinct, most_common_vals::text::text[] FROM pg_stats "
            "WHERE schemaname = current_schema() AND tablename = %s AND attname = ANY(%s)",
            (table, list(values)),
        ).fetchall()
    }
    for column, value in values.items():
        if column not in stats:
            continue  # never analysed: analyze_if_grown's business
        distinct, common = stats[column][0], list(stats[column][1] or [])
        if float(distinct) > 0 and len(common) >= float(distinct) and value not in common:
            # those columns only (the rows are sampled all the same; the other columns' statistics
            # stay as they were): the table's size comes with them
            raw.execute(f"ANALYZE {_quoted(table)} ({', '.join(_quoted(c) for c in values)})")
            return True
    return False


def droppable_indexes(raw: Any, table: str) -> list[tuple[str, str]]:
    """(qualified name, ``CREATE INDEX`` statement) of ``table``'s plain secondary indexes:
    not a primary key's, not unique, not partial, not behind a constraint, valid."""
    rows = raw.execute(
        """
        SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_get_indexdef(x.indexrelid)
        FROM pg_index x
        JOIN pg_class c ON c.oid = x.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE x.indrelid = %s::regclass
          AND NOT x.indisprimary AND NOT x.indisunique AND x.indisvalid AND x.indpred IS NULL
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
        ORDER BY c.relname
        """,
        (table,),
    ).fetchall()
    return [(str(name), str(sql)) for name, sql in rows]


def drop_indexes(raw: Any, table: str, rows: int) -> list[str]:
    """Drop ``table``'s plain secondary indexes for a load of ``rows`` rows when the table holds
    at most as many and its ``ACCESS EXCLUSIVE`` lock is free now (``NOWAIT``: never queued
    behind a reader, and readers never queued behind a wait); the ``CREATE INDEX`` statements
    to run after the load, or none when the indexes stay."""
    import psycopg  # noqa: PLC0415 - only on PostgreSQL

    indexes = droppable_indexes(raw, table)
    if not indexes or not table_rows_at_most(raw, table, rows):
        return []
    raw.execute("SAVEPOINT hub_bulk_load")
    try:
        raw.execute(f"LOCK TABLE {_quoted(table)} IN ACCESS EXCLUSIVE MODE NOWAIT")
    except psycopg.errors.LockNotAvailable:
        raw.execute("ROLLBACK TO SAVEPOINT hub_bulk_load")
        raw.execute("RELEASE SAVEPOINT hub_bulk_load")
        return []  # someone reads or writes the table now: keep its indexes
    raw.execute("RELEASE SAVEPOINT hub_bulk_load")
    for name, _sql in indexes:
        raw.execute(f"DROP INDEX {name}")
    return [sql for _name, sql in indexes]


def in_transaction(raw: Any) -> bool:
    """Is the psycopg connection ``raw`` in a transaction that can still run statements?"""
    from psycopg.pq import TransactionStatus  # noqa: PLC0415 - only on PostgreSQL

    return bool(raw.info.transaction_status == TransactionStatus.INTRANS)
