"""Many rows into one table at the driver's speed: the DB-API's ``executemany`` with SQLAlchemy's own
conversions of each value (so what is stored is what an ORM write would store).

SQLAlchemy's ``insert(table)`` with a list of rows builds and processes a parameter dictionary per
row; for batches of tens of thousands of rows that bookkeeping costs more than the database's own
work. :func:`insert_rows` compiles the statement once, takes each column's bind processor once,
turns every row into a tuple and hands the lot to the driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """INSERT ``rows`` (every row with the same keys: the columns written) into ``table``; returns the count."""
    if not rows:
        return 0
    dialect = connection.dialect
    names = list(rows[0])
    columns = [table.c[name] for name in names]
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    preparer = dialect.identifier_preparer
    sql = (
        f"INSERT INTO {preparer.format_table(table)} ({', '.join(preparer.format_column(c) for c in columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    processors = [c.type._cached_bind_processor(dialect) for c in columns]
    plan = list(zip(names, processors, strict=True))
    values = [tuple(p(row[n]) if p is not None else row[n] for n, p in plan) for row in rows]
    connection.exec_driver_sql(sql, values)  # type: ignore[arg-type]
    return len(values)
