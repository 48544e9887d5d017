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
