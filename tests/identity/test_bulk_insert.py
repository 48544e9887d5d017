"""Rows written column by column (``identity._bulk.prepare``/``insert``): many rows per
statement on SQLite, with the rows that do not fill a statement, chunk by chunk; ``COPY`` on
PostgreSQL — the same rows read back either way."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from identity import _bulk


def _table(session: Session, width: int = 0) -> sa.Table:
    md = sa.MetaData()
    extra = [sa.Column(f"x{i}", sa.Text()) for i in range(width)]
    table = sa.Table(
        "bulk_probe",
        md,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text()),
        sa.Column("n", sa.BigInteger()),
        sa.Column("doc", sa.JSON()),
        sa.Column("dept", sa.Text()),
        sa.Column("note", sa.Text()),
        *extra,
    )
    md.create_all(session.connection())
    return table


def _columns(n: int) -> tuple[list[Any], np.ndarray, np.ndarray]:
    names = [None if i % 7 == 0 else f"名{i}'\"" for i in range(n)]
    numbers = np.arange(n, dtype=np.int64) * (2**40) - 5  # int64: the driver takes Python ints
    docs = np.array([json.dumps({"i": i, "v": "张三"}, ensure_ascii=False) for i in range(n)], dtype=object)
    return names, numbers, docs


def _read(session: Session, table: sa.Table) -> list[tuple[Any, ...]]:
    rows = session.execute(
        sa.select(table.c.name, table.c.n, table.c.doc, table.c.dept, table.c.note).order_by(table.c.id)
    ).all()
    return [tuple(r) for r in rows]


def _scenario_rows_read_back(session: Session, n: int, note: str) -> None:
    table = _table(session)
    names, numbers, docs = _columns(n)
    _bulk.insert_columns(
        session, table, ("name", "n", "doc"), [names, numbers, docs], {"dept": "public_security", "note": note}
    )
    got = _read(session, table)
    want = [(names[i], int(numbers[i]), {"i": i, "v": "张三"}, "public_security", note) for i in range(n)]
    assert got == want


@pytest.mark.parametrize("n", [1, 49, 50, 51, 123, 0])
def test_rows_read_back_on_sqlite(session: Session, n: int) -> None:
    # a constant SQLite cannot take as a literal (NUL) is bound instead
    _scenario_rows_read_back(session, n, "with\x00nul")


@pytest.mark.postgres
def test_rows_read_back_on_postgres(pg_session: Session) -> None:
    _scenario_rows_read_back(pg_session, 123, "PostgreSQL text holds no NUL")


def test_statements_hold_many_rows_and_chunks_end_with_the_rest(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_bulk, "WRITE_CHUNK", 120)
    table = _table(session)
    names, numbers, docs = _columns(250)
    prepared = _bulk.prepare(
        session, table, ("name", "n", "doc"), [names, numbers, docs], {"dept": "d", "note": "with\x00nul"}
    )  # the NUL constant is bound, not written in
    per = _bulk.ROWS_PER_STATEMENT
    shapes = [(sql.count("("), len(params), {len(p) for p in params}) for sql, params in prepared.statements]
    # chunks of 120, 120, 10 rows: 2 full statements and 20 single rows, twice; then 10 single rows
    assert shapes == [(per + 1, 2, {4 * per}), (2, 20, {4}), (per + 1, 2, {4 * per}), (2, 20, {4}), (2, 10, {4})]
    _bulk.insert(session, prepared)
    assert [r[1] for r in _read(session, table)] == [int(x) for x in numbers]


def test_a_wide_table_binds_within_the_limit(session: Session) -> None:
    table = _table(session, width=40)
    cols = ("name", *(f"x{i}" for i in range(40)))
    values = [[f"v{r}" for r in range(60)] for _ in cols]
    prepared = _bulk.prepare(session, table, cols, values)
    assert all(len(p) <= _bulk.MAX_BOUND for _sql, params in prepared.statements for p in params)
    _bulk.insert(session, prepared)
    assert session.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 60
    assert session.execute(sa.select(table.c.x39).order_by(table.c.id.desc()).limit(1)).scalar() == "v59"


def test_columns_of_unequal_length_are_refused(session: Session) -> None:
    table = _table(session)
    with pytest.raises(ValueError, match="unequal"):
        _bulk.prepare(session, table, ("name", "n"), [["a", "b"], [1]])


def _typed_table(session: Session) -> sa.Table:
    md = sa.MetaData()
    table = sa.Table(
        "bulk_typed",
        md,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("s", sa.Text()),
        sa.Column("n", sa.BigInteger()),
        sa.Column("f", sa.Float()),
        sa.Column("b", sa.Boolean()),
        sa.Column("doc", sa.JSON()),
        sa.Column("at", sa.DateTime(timezone=True)),
        sa.Column("day", sa.Date()),
        sa.Column("kind", sa.Text()),
    )
    md.create_all(session.connection())
    return table


#: text COPY must escape (backslash, tab, newline, carriage return; a value spelling NULL's ``\N``)
AWKWARD = ["a\\b", "tab\there", "new\nline", "cr\rhere", "\\N", "", " ", "张三", "😀", 'q"uote', None, "end\\"]


def _typed_values(n: int) -> list[Any]:
    import datetime as dt

    texts = [AWKWARD[i % len(AWKWARD)] for i in range(n)]
    numbers = np.array([(-1) ** i * (2**62 - i) for i in range(n)], dtype=np.int64)
    floats = [None if i % 5 == 0 else i / 3 for i in range(n)]
    flags = [None if i % 4 == 0 else bool(i % 2) for i in range(n)]
    docs = [json.dumps({"v": AWKWARD[i % len(AWKWARD)], "i": i}, ensure_ascii=False) for i in range(n)]
    zone = dt.timezone(dt.timedelta(hours=8))
    stamps = [None if i % 6 == 0 else dt.datetime(2026, 1, 1, 8, 0, i % 60, 123456, tzinfo=zone) for i in range(n)]
    days = [dt.date(2026, 1, 1 + i % 28) for i in range(n)]
    return [texts, numbers, floats, flags, docs, stamps, days]


@pytest.mark.postgres
def test_copy_text_holds_what_the_driver_would_write_on_postgres(pg_session: Session) -> None:
    import datetime as dt

    session = pg_session
    table = _typed_table(session)
    cols = ("s", "n", "f", "b", "doc", "at", "day")
    values = _typed_values(60)
    fast = _bulk.prepare(session, table, cols, values, {"kind": "copy\ttext"})
    assert fast.copy is not None  # every column's type is one the text form covers
    _bulk.insert(session, fast)
    # the same rows through the driver's own row writer
    slow = _bulk.Prepared(table, (*cols, "kind"), rows=[(*row, "driver") for row in zip(*values, strict=True)])
    _bulk.insert(session, slow)
    rows = session.execute(sa.select(*(table.c[c] for c in (*cols, "kind"))).order_by(table.c.id)).all()
    by_copy, by_driver = rows[:60], rows[60:]
    assert [r[:-1] for r in by_copy] == [r[:-1] for r in by_driver]
    assert {r[-1] for r in by_copy} == {"copy\ttext"} and {r[-1] for r in by_driver} == {"driver"}
    assert [r[0] for r in by_copy] == values[0]
    assert [r[1] for r in by_copy] == [int(x) for x in values[1]]
    assert [r[4] for r in by_copy] == [json.loads(d) for d in values[4]]
    assert [r[5] for r in by_copy] == values[5] and by_copy[1][5] == dt.datetime(2026, 1, 1, 0, 0, 1, 123456, dt.UTC)


@pytest.mark.postgres
def test_types_the_copy_text_does_not_cover_go_through_the_driver_on_postgres(pg_session: Session) -> None:
    from decimal import Decimal

    session = pg_session
    table = _typed_table(session)
    # a Decimal, and text mixed with a number: the driver's own writer takes them
    for column, values in (("f", [Decimal("1.5"), None]), ("s", ["a", 1])):
        prepared = _bulk.prepare(session, table, (column,), [values])
        assert prepared.copy is None
        _bulk.insert(session, prepared)
    rows = session.execute(sa.select(table.c.f, table.c.s).order_by(table.c.id)).all()
    assert [tuple(r) for r in rows] == [(1.5, None), (None, None), (None, "a"), (None, "1")]
    # text holding NUL: the driver refuses it with its own error, as before the text form
    prepared = _bulk.prepare(session, table, ("s",), [["a\x00b"]])
    assert prepared.copy is None
    with pytest.raises(Exception, match=r"(?i)nul|0x00"):
        _bulk.insert(session, prepared)


def test_copy_text_joined_by_arrow_equals_pythons_joins() -> None:
    from identity import _bulk_pg

    # awkward text (escaped tab, backslash, newline), NULLs, CJK, empty text; with constants and without
    values: list[Any] = [
        ["a", None, "x\ty", "b\\c", "中文", "", "\n\r"],
        np.arange(7, dtype=np.int64) - 3,
        [1.5, None, 2.0, 0.1, 3.0, -1.0, 1e300],
        [True, False, None, True, True, False, True],
    ]
    for constants in ({"k": "v\tw", "n": 7}, {}):
        fixed = [_bulk_pg.cells([v]) for v in constants.values()]
        cells = [_bulk_pg.cells(v) for v in values]
        assert None not in fixed and None not in cells
        suffix = "".join("\t" + c[0] for c in fixed if c is not None)
        lines = map("\t".join, zip(*(c for c in cells if c is not None), strict=True))
        python = ((suffix + "\n").join(lines) + suffix + "\n").encode()
        for chunk in (1, 3, 7):
            lazy = _bulk_pg.copy_pieces(values, constants, chunk)
            assert lazy is not None
            pieces = list(lazy)
            assert len(pieces) == -(-7 // chunk)
            assert b"".join(pieces) == python
    # text Arrow refuses (a lone surrogate): Python's joins, whose encoding refuses it too
    with pytest.raises(UnicodeEncodeError):
        list(_bulk_pg.copy_pieces([["ok", "\ud800"]], {}, 10) or [])


@pytest.mark.postgres
def test_lazy_copy_text_writes_what_the_eager_text_does_on_postgres(pg_session: Session) -> None:
    session = pg_session
    table = _typed_table(session)
    cols = ("s", "n", "f", "b", "doc", "at", "day")
    values = _typed_values(60)
    lazy = _bulk.prepare(session, table, cols, values, {"kind": "lazy"}, lazy=True)
    assert lazy.copy is not None and not isinstance(lazy.copy, list)  # built as the driver sends it
    _bulk.insert(session, lazy)
    _bulk.insert_columns(session, table, cols, values, {"kind": "eager"})
    rows = session.execute(sa.select(*(table.c[c] for c in (*cols, "kind"))).order_by(table.c.id)).all()
    assert [r[:-1] for r in rows[:60]] == [r[:-1] for r in rows[60:]]
    assert {r[-1] for r in rows[:60]} == {"lazy"} and {r[-1] for r in rows[60:]} == {"eager"}


@pytest.mark.postgres
def test_lazy_copy_text_leaves_a_piece_it_does_not_cover_to_the_driver_on_postgres(
    pg_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from decimal import Decimal

    from identity import _bulk_pg

    session = pg_session
    table = _typed_table(session)
    monkeypatch.setattr(_bulk, "WRITE_CHUNK", 4)
    texts = ["a\tb", "中文", None, "\\N", "e", "f", "g", "h", "i", "j"]
    floats: list[Any] = [0.5, None, 1.5, 2.0, 3.0, Decimal("2.5"), None, 4.0, 5.0, 6.0]  # a Decimal in piece 2
    lazy = _bulk.prepare(session, table, ("s", "f"), [texts, floats], {"kind": "lazy"}, lazy=True)
    assert lazy.copy is not None  # the types are checked as the pieces are made, not now
    # the pieces the writer gets: text, then rows from the piece holding the Decimal on (the driver's
    # writer holds rows back: text after them would land first)
    pieces = list(_bulk_pg.copy_pieces([texts, floats], {"kind": "lazy"}, 4, lazy=True) or [])
    assert [type(p) for p in pieces] == [bytes, list, list]
    assert pieces[1] == [(t, f, "lazy") for t, f in zip(texts[4:8], floats[4:8], strict=True)]
    _bulk.insert(session, lazy)
    rows = session.execute(sa.select(table.c.s, table.c.f, table.c.kind).order_by(table.c.id)).all()
    assert [tuple(r) for r in rows] == [
        (t, None if f is None else float(f), "lazy") for t, f in zip(texts, floats, strict=True)
    ]
    # eager text refuses the whole column at once, as before
    assert _bulk.prepare(session, table, ("s", "f"), [texts, floats], {"kind": "eager"}).copy is None
    # NUL in a lazy piece: the driver's writer refuses it with its own error
    bad = _bulk.prepare(session, table, ("s",), [["ok", "a\x00b"]], lazy=True)
    with pytest.raises(Exception, match=r"(?i)nul|0x00"):
        _bulk.insert(session, bad)
