"""The enterprise registry (法人库, 市场监管) reached over ODBC: MariaDB or SQLite.

Readers reach ``enterprise_registry`` through pyodbc with the same
connection string a connector uses, through the driver a department
would run. Loading uses multi-row bulk inserts through the database's own client.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa

from hub.odbcenv import ensure_odbc_env

COLUMNS = (
    "ent_id",
    "uscc",
    "reg_no",
    "org_code",
    "ent_name",
    "legal_rep_id",
    "legal_rep_name",
    "ent_type",
    "reg_capital",
    "established_date",
    "business_scope",
    "address",
    "region_code",
    "status",
    "reg_authority",
    "license_issue_date",
    "updated_at",
)

# uscc and legal_rep_id are wider than 18 because source values carry spaces and dashes.
_meta = sa.MetaData()
TABLE = sa.Table(
    "enterprise_registry",
    _meta,
    sa.Column("ent_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("uscc", sa.String(24)),
    sa.Column("reg_no", sa.String(20)),
    sa.Column("org_code", sa.String(12)),
    sa.Column("ent_name", sa.String(200), nullable=False),
    sa.Column("legal_rep_id", sa.String(24)),
    sa.Column("legal_rep_name", sa.String(50)),
    sa.Column("ent_type", sa.String(100)),
    sa.Column("reg_capital", sa.Numeric(18, 2)),
    sa.Column("established_date", sa.Date),
    sa.Column("business_scope", sa.String(500)),
    sa.Column("address", sa.String(300)),
    sa.Column("region_code", sa.CHAR(6)),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("reg_authority", sa.String(100)),
    sa.Column("license_issue_date", sa.Date),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("enterprise_registry_changed", "updated_at", "ent_id"),
)


def mariadb_unicode(conn: Any) -> None:
    """Make pyodbc read and write UTF-8 with MariaDB Connector/ODBC.

    With the defaults (UTF-16 for wide columns) the driver sizes buffers in characters and
    pyodbc drops the last character of Chinese text (赵进嘉 -> 赵进).
    """
    import pyodbc  # noqa: PLC0415 - loads the unixODBC driver manager; only the ODBC path needs it, not SQLite

    conn.setdecoding(pyodbc.SQL_CHAR, encoding="utf-8")
    conn.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8")
    conn.setencoding(encoding="utf-8")


def _odbc_fields(connection_string: str) -> dict[str, str]:
    fields = {}
    for part in connection_string.split(";"):
        if "=" in part:
            key, _, value = part.partition("=")
            fields[key.strip().upper()] = value.strip()
    return fields


def sqlalchemy_url_for(connection_string: str, dialect: str) -> str:
    """The SQLAlchemy URL of the database an ODBC connection string points at (MariaDB or SQLite).

    >>> sqlalchemy_url_for("DRIVER={SQLite3};Database=/tmp/c.db;", "sqlite")
    'sqlite:////tmp/c.db'
    >>> sqlalchemy_url_for("DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=3306;DATABASE=d;UID=root;PWD=;", "mariadb")
    'mysql+pymysql://root@127.0.0.1:3306/d?charset=utf8mb4'
    """
    f = _odbc_fields(connection_string)
    if dialect == "sqlite":
        return f"sqlite:///{f['DATABASE']}"
    url = sa.engine.URL.create(
        "mysql+pymysql",
        username=f.get("UID") or None,
        password=f.get("PWD") or None,
        host=f.get("SERVER", "127.0.0.1"),
        port=int(f.get("PORT", "3306")),
        database=f.get("DATABASE"),
        query={"charset": "utf8mb4"},
    )
    return url.render_as_string(hide_password=False)


def sqlite_connection_string(path: str) -> str:
    return f"DRIVER={{SQLite3}};Database={path};"


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _record_params(record: dict[str, Any]) -> tuple[Any, ...]:
    out = [_clean(record.get(c)) for c in COLUMNS]
    for i, col in enumerate(COLUMNS):
        v = out[i]
        if v is None:
            continue
        if col in {"established_date", "license_issue_date"}:
            out[i] = pd.Timestamp(v).date()
        elif col == "updated_at":
            out[i] = pd.Timestamp(v).to_pydatetime().replace(microsecond=0)
        elif col == "reg_capital":
            out[i] = Decimal(str(round(float(v), 2)))
        elif col == "ent_id":
            out[i] = int(v)
        else:
            out[i] = str(v)
    return tuple(out)


class CommerceRegistry:
    """``enterprise_registry``: written through SQLAlchemy, read through ODBC.

    The department side (loading, mutations) uses the database's own client for bulk
    multi-row inserts; everything that stands for the hub's view (counts, fetches, checks)
    goes through ODBC with :attr:`connection_string`, the way a connector reaches it.
    MariaDB Connector/ODBC 3.1 does not bulk-insert reliably here (multi-row statements
    fail with "Memory allocation error"; ``fast_executemany`` pads values with NULs).
    """

    def __init__(self, connection_string: str, dialect: str, sqlalchemy_url: str | None = None) -> None:
        self.connection_string = connection_string
        self.dialect = dialect
        self.sqlalchemy_url = sqlalchemy_url or sqlalchemy_url_for(connection_string, dialect)

    @contextmanager
    def _engine(self) -> Iterator[sa.Engine]:
        engine = sa.create_engine(self.sqlalchemy_url, poolclass=sa.pool.NullPool)
        try:
            yield engine
        finally:
            engine.dispose()

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A pyodbc connection (the hub's protocol)."""
        ensure_odbc_env()
        import pyodbc  # noqa: PLC0415 - unixODBC only for ODBC connections, loaded after ensure_odbc_env()

        conn = pyodbc.connect(self.connection_string, autocommit=False, timeout=10)
        if self.dialect == "mariadb":
            mariadb_unicode(conn)
        try:
            yield conn
            conn.commit()
        finally:
            conn.close()

    def load(self, frame: pd.DataFrame, batch: int = 2000) -> int:
        """(Re)create the table and bulk-insert ``frame``."""
        rows = [_record_params(r) for r in frame.to_dict("records")]
        with self._engine() as engine:
            TABLE.drop(engine, checkfirst=True)
            TABLE.create(engine)
        self.insert(rows, batch)
        return len(rows)

    def insert(self, rows: Sequence[tuple[Any, ...]], batch: int = 2000) -> None:
        with self._engine() as engine, engine.begin() as conn:
            for start in range(0, len(rows), batch):
                chunk = [dict(zip(COLUMNS, r, strict=True)) for r in rows[start : start + batch]]
                conn.execute(TABLE.insert(), chunk)

    def add(self, record: dict[str, Any]) -> None:
        self.insert([_record_params(record)])

    def update_status(self, ent_id: int, status: str, when: dt.datetime) -> bool:
        with self._engine() as engine, engine.begin() as conn:
            result = conn.execute(
                TABLE.update()
                .where(TABLE.c.ent_id == int(ent_id))
                .values(status=status, updated_at=when.replace(microsecond=0, tzinfo=None))
            )
            return bool(result.rowcount > 0)

    def count(self) -> int:
        with self.connect() as conn:
            return int(conn.cursor().execute("SELECT COUNT(*) FROM enterprise_registry").fetchone()[0])

    def fetch(self, where: str = "1=1", *params: Any) -> list[dict[str, Any]]:
        """Rows through ODBC (``where`` uses ``?`` placeholders)."""
        with self.connect() as conn:
            cur = conn.cursor()
            cur.execute(f"SELECT {', '.join(COLUMNS)} FROM enterprise_registry WHERE {where} ORDER BY ent_id", *params)
            return [dict(zip(COLUMNS, row, strict=True)) for row in cur.fetchall()]
