"""SQL the SQL connector sends, built with SQLAlchemy Core and compiled per dialect (SQL方言).

Nothing is ever formatted into SQL text by hand except identifiers, which the dialect's
own preparer quotes; every value is a bind parameter. The same statement compiles for
PostgreSQL, MySQL/MariaDB, SQLite, Oracle and SQL Server; ``tests/connectors/snapshots``
pins the Oracle and SQL Server text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite
from sqlalchemy.engine import Dialect

DIALECTS = ("postgresql", "mysql", "mariadb", "sqlite", "oracle", "mssql")


def get_dialect(name: str, *, driver: str = "odbc") -> Dialect:
    """The SQLAlchemy dialect for ``name``, with the paramstyle of the DB-API driver used.

    pyodbc takes ``?`` (qmark); python-oracledb takes ``:name`` (named).
    """
    qmark = driver == "odbc"
    if name == "postgresql":
        return postgresql.dialect(paramstyle="qmark" if qmark else "pyformat")  # type: ignore[no-any-return]
    if name in ("mysql", "mariadb"):
        return mysql.dialect(paramstyle="qmark" if qmark else "pyformat")  # type: ignore[no-any-return]
    if name == "sqlite":
        return sqlite.dialect(paramstyle="qmark")  # type: ignore[no-any-return]
    if name == "oracle":
        return oracle.dialect(paramstyle="qmark" if qmark else "named")  # type: ignore[no-any-return]
    if name == "mssql":
        return mssql.dialect(paramstyle="qmark")  # type: ignore[no-any-return]
    raise ValueError(f"unsupported SQL dialect {name!r}; one of {', '.join(DIALECTS)}")


@dataclass(frozen=True)
class CompiledSql:
    """SQL text plus its parameters in the form the DB-API driver expects."""

    sql: str
    params: Sequence[Any] | dict[str, Any]
    #: For executemany: the record fields in bind order (positional) or by name.
    bind_names: tuple[str, ...] = ()


def compile_sql(stmt: sa.ClauseElement, dialect: Dialect) -> CompiledSql:
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    if dialect.positional:
        names = tuple(getattr(compiled, "positiontup", None) or ())
        return CompiledSql(str(compiled), [compiled.params[n] for n in names], names)
    return CompiledSql(str(compiled), dict(compiled.params), tuple(compiled.params))


@dataclass(frozen=True)
class TableRef:
    """A source table: name, optional schema, key column, watermark column, columns."""

    name: str
    key: str
    watermark: str
    columns: tuple[str, ...]
    schema: str | None = None

    def table(self) -> sa.TableClause:
        cols = dict.fromkeys((*self.columns, self.key, self.watermark))
        return sa.table(self.name, *[sa.column(c) for c in cols], schema=self.schema)


def probe_select(ref: TableRef) -> sa.Select[Any]:
    """Zero rows, every column: what ``discover`` and ``check`` run (cursor.description)."""
    t = ref.table()
    cols = [t.c[c] for c in ref.columns] if ref.columns else [sa.literal_column("*")]
    return sa.select(*cols).select_from(t).where(sa.false())


def incremental_select(
    ref: TableRef,
    *,
    lower: dt.datetime | None,
    hwm: dt.datetime | None,
    hwm_key: Any,
    lookback: bool,
    limit: int | None = None,
) -> sa.Select[Any]:
    """Rows changed since the mark, in (watermark, key) order.

    With a look-back window: ``watermark >= lower`` (the cursor drops pairs already seen).
    Without: strictly after the mark, ``(watermark, key) > (hwm, hwm_key)`` spelled out
    portably (row-value comparison is missing on SQL Server and Oracle).
    """
    t = ref.table()
    wm, key = t.c[ref.watermark], t.c[ref.key]
    stmt = sa.select(*[t.c[c] for c in ref.columns]).select_from(t)
    if lookback and lower is not None:
        stmt = stmt.where(wm >= sa.bindparam("lower", lower, type_=sa.DateTime()))
    elif hwm is not None:
        hwm_p = sa.bindparam("hwm", hwm, type_=sa.DateTime())
        if hwm_key is None:
            stmt = stmt.where(wm > hwm_p)
        else:
            stmt = stmt.where(sa.or_(wm > hwm_p, sa.and_(wm == hwm_p, key > sa.bindparam("hwm_key", hwm_key))))
    else:
        stmt = stmt.where(wm.is_not(None))
    stmt = stmt.order_by(wm, key)
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt


def keys_select(ref: TableRef) -> sa.Select[Any]:
    """Every key the source holds (delete detection by key reconciliation)."""
    t = ref.table()
    return sa.select(t.c[ref.key]).select_from(t).order_by(t.c[ref.key])


def missing_watermark_select(ref: TableRef) -> sa.Select[Any]:
    """Rows an incremental read can never reach: their watermark is NULL."""
    t = ref.table()
    return sa.select(*[t.c[c] for c in ref.columns]).select_from(t).where(t.c[ref.watermark].is_(None))


def _bind_values(columns: Sequence[str]) -> dict[str, Any]:
    return {c: sa.bindparam(c) for c in columns}


def insert_statement(ref: TableRef, columns: Sequence[str]) -> sa.Insert:
    return sa.insert(ref.table()).values(_bind_values(columns))


def upsert_sql(ref: TableRef, columns: Sequence[str], dialect_name: str, dialect: Dialect) -> CompiledSql:
    """Bulk upsert by key: ON CONFLICT (PostgreSQL, SQLite), ON DUPLICATE KEY (MySQL), MERGE (Oracle, MSSQL)."""
    t = ref.table()
    values = _bind_values(columns)
    others = [c for c in columns if c != ref.key]
    stmt: sa.ClauseElement
    if dialect_name == "postgresql":
        pg = postgresql.insert(t).values(values)
        stmt = pg.on_conflict_do_update(index_elements=[ref.key], set_={c: pg.excluded[c] for c in others})
    elif dialect_name == "sqlite":
        lite = sqlite.insert(t).values(values)
        stmt = lite.on_conflict_do_update(index_elements=[ref.key], set_={c: lite.excluded[c] for c in others})
    elif dialect_name in ("mysql", "mariadb"):
        my = mysql.insert(t).values(values)
        stmt = my.on_duplicate_key_update({c: my.inserted[c] for c in others})
    elif dialect_name in ("oracle", "mssql"):
        return _merge_sql(ref, columns, dialect_name, dialect)
    else:
        raise ValueError(f"no upsert for dialect {dialect_name!r}")
    compiled = stmt.compile(dialect=dialect)
    names = tuple(getattr(compiled, "positiontup", None) or ()) if dialect.positional else tuple(columns)
    return CompiledSql(str(compiled), [], names)


def _merge_sql(ref: TableRef, columns: Sequence[str], dialect_name: str, dialect: Dialect) -> CompiledSql:
    """MERGE for Oracle and SQL Server (SQLAlchemy Core has no MERGE construct).

    Identifiers go through the dialect's quoting; values stay bind parameters.
    """
    q = dialect.identifier_preparer
    target = (q.quote_schema(ref.schema) + "." if ref.schema else "") + q.quote(ref.name)
    marker = "?" if dialect.positional else None
    src_cols = ", ".join(f"{marker or ':' + c} AS {q.quote(c)}" for c in columns)
    others = [c for c in columns if c != ref.key]
    sets = ", ".join(f"t.{q.quote(c)} = s.{q.quote(c)}" for c in others)
    ins_cols = ", ".join(q.quote(c) for c in columns)
    ins_vals = ", ".join(f"s.{q.quote(c)}" for c in columns)
    on = f"t.{q.quote(ref.key)} = s.{q.quote(ref.key)}"
    if dialect_name == "oracle":
        using = f"(SELECT {src_cols} FROM dual) s"
        sql = (
            f"MERGE INTO {target} t USING {using} ON ({on}) WHEN MATCHED THEN UPDATE SET {sets} "
            f"WHEN NOT MATCHED THEN INSERT ({ins_cols}) VALUES ({ins_vals})"
        )
    else:
        using = f"(SELECT {src_cols}) AS s"
        sql = (
            f"MERGE INTO {target} AS t USING {using} ON {on} WHEN MATCHED THEN UPDATE SET {sets} "
            f"WHEN NOT MATCHED THEN INSERT ({ins_cols}) VALUES ({ins_vals});"
        )
    return CompiledSql(sql, [], tuple(columns))
