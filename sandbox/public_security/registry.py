"""The population registry (人口库, 公安): ``population.person_registry`` in PostgreSQL or SQLite.

PostgreSQL for tests and CI (schema ``population``), a SQLite file for the embedded demo
(no schema). ``sandbox/public_security/oracle.sql`` is the same table for a real Oracle.
``updated_at`` is naive local (Asia/Shanghai) time, as department systems store it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa

COLUMNS = (
    "person_no",
    "resident_id",
    "name",
    "sex",
    "birth_date",
    "ethnicity",
    "address",
    "region_code",
    "status",
    "phone",
    "updated_at",
)


def person_table(schema: str | None) -> sa.Table:
    return sa.Table(
        "person_registry",
        sa.MetaData(schema=schema),
        sa.Column("person_no", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("resident_id", sa.String(24)),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("sex", sa.CHAR(1)),
        sa.Column("birth_date", sa.Date),
        sa.Column("ethnicity", sa.String(20)),
        sa.Column("address", sa.String(300)),
        sa.Column("region_code", sa.CHAR(6)),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("phone", sa.String(20)),
        sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
        sa.Index("person_registry_changed", "updated_at", "person_no"),
    )


def _params(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in COLUMNS:
        v = record.get(col)
        if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT:
            out[col] = None
        elif col == "birth_date":
            out[col] = pd.Timestamp(v).date()
        elif col == "updated_at":
            out[col] = pd.Timestamp(v).to_pydatetime().replace(tzinfo=None)
        elif col == "person_no":
            out[col] = int(v)
        else:
            out[col] = str(v)
    return out


class PersonRegistry:
    """``person_registry`` on PostgreSQL (schema ``population``) or SQLite."""

    def __init__(self, sqlalchemy_url: str, odbc_connection_string: str) -> None:
        self.sqlalchemy_url = sqlalchemy_url
        self.odbc_connection_string = odbc_connection_string
        self.dialect = sa.engine.make_url(sqlalchemy_url).get_backend_name()
        self.schema = "population" if self.dialect == "postgresql" else None
        self.table = person_table(self.schema)
        self.engine = sa.create_engine(sqlalchemy_url, poolclass=sa.pool.NullPool)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.person_registry" if self.schema else "person_registry"

    def load(self, frame: pd.DataFrame, batch: int = 5000) -> int:
        """(Re)create the table and bulk-insert ``frame``."""
        with self.engine.begin() as conn:
            if self.schema:
                conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {self.schema}"))
        self.table.drop(self.engine, checkfirst=True)
        self.table.create(self.engine)
        rows = [_params(r) for r in frame.to_dict("records")]
        with self.engine.begin() as conn:
            for start in range(0, len(rows), batch):
                conn.execute(self.table.insert(), rows[start : start + batch])
        return len(rows)

    def insert(self, record: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), [_params(record)])

    @contextmanager
    def held_insert(self, record: dict[str, Any]) -> Iterator[None]:
        """Insert ``record`` in a transaction that stays open until the block ends (a late commit)."""
        with self.engine.connect() as conn:
            tx = conn.begin()
            conn.execute(self.table.insert(), [_params(record)])
            try:
                yield
            except BaseException:
                tx.rollback()
                raise
            tx.commit()

    def delete(self, person_no: int) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(self.table.delete().where(self.table.c.person_no == int(person_no)))
            return bool(result.rowcount > 0)

    def max_person_no(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(self.table.c.person_no))).scalar() or 0)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar() or 0)

    def fetch(self, person_no: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.table).where(self.table.c.person_no == int(person_no))).mappings().first()
        return dict(row) if row else None

    def terminate_readers(self) -> int:
        """Drop every other connection to this database (PostgreSQL ``pg_terminate_backend``)."""
        if self.dialect != "postgresql":
            return 0
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).fetchall()
        return sum(1 for (ok,) in rows if ok)

    def dispose(self) -> None:
        self.engine.dispose()


def now_local() -> dt.datetime:
    """Naive Asia/Shanghai wall-clock time, as the registry writes ``updated_at``."""
    return dt.datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None, microsecond=0)
