"""Rows written column by column (hub.bulk.insert_columns): every row as given, constants in each,
more rows than one statement holds and a remainder, a row whose unique key is already in the table
skipped (the rest written and counted) — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.bulk import ROWS_PER_STATEMENT, Columns, insert_columns, sqlite_cache
from hub.db import make_engine
from hub.models import OutboxEvent


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(request.getfixturevalue("hub_db_url" if request.param == "sqlite" else "pg_hub_db_url"))


def test_columns_and_constants_written_and_a_known_key_skipped(url: str) -> None:
    engine = make_engine(url)
    table = OutboxEvent.__table__
    at = dt.datetime(2026, 11, 2, 9, 30, 5, 120, tzinfo=dt.UTC)
    n = 2 * ROWS_PER_STATEMENT + 7
    keys = [f"k:{i}" for i in range(n)]
    with engine.begin() as c:
        write = Columns(c, table)  # type: ignore[arg-type]
        first = insert_columns(c, table, {  # type: ignore[arg-type]
            "subject": ["s'1"], "payload": write.each("payload", [{"n": -1}]), "idempotency_key": [keys[5]],
        }, constants={"event_type": "t", "created_at": write.one("created_at", at)})  # fmt: skip
        assert first == 1
        with sqlite_cache(c, 65_536):
            written = insert_columns(c, table, {  # type: ignore[arg-type]
                "subject": [f"s{i}" for i in range(n)], "payload": write.each("payload", [{"n": i} for i in range(n)]),
                "idempotency_key": keys,
            }, constants={"event_type": "t", "holder_code": None, "created_at": write.one("created_at", at)},
               skip_conflicts_on=("idempotency_key",))  # fmt: skip
    assert written == n - 1
    with engine.connect() as c:
        rows = c.execute(select(table.c.subject, table.c.payload, table.c.idempotency_key, table.c.event_type,
                                table.c.holder_code, table.c.created_at).order_by(table.c.id)).all()  # fmt: skip
        if c.dialect.name == "sqlite":
            assert c.exec_driver_sql("PRAGMA cache_size").scalar() == -2000  # put back
    engine.dispose()
    assert [r.idempotency_key for r in rows] == [keys[5], *(k for k in keys if k != keys[5])]
    assert rows[0].subject == "s'1" and rows[0].payload == {"n": -1}  # the first one kept
    assert [r.payload["n"] for r in rows[1:]] == [i for i in range(n) if i != 5]
    assert {(r.event_type, r.holder_code) for r in rows} == {("t", None)}
    assert {r.created_at.replace(tzinfo=dt.UTC) if r.created_at.tzinfo is None else r.created_at for r in rows} == {at}


def test_columns_of_unequal_length_are_refused(hub_db_url: str) -> None:
    engine = make_engine(hub_db_url)
    with engine.begin() as c, pytest.raises(ValueError, match="unequal"):
        insert_columns(c, OutboxEvent.__table__, {"subject": ["a", "b"], "idempotency_key": ["k"]})  # type: ignore[arg-type]
    engine.dispose()
