"""Columnar bulk fetch over ODBC (列式批量读取): result sets straight into Arrow batches.

pyodbc fetches a row at a time (``SQLGetData`` per cell) and builds a Python tuple per row,
which caps a wide department table at roughly 100,000 rows/s on this class of machine.
`arrow-odbc <https://github.com/pacman82/arrow-odbc-py>`_ binds column-wise buffers to the
same ODBC driver (block cursors, ``SQL_ATTR_ROW_ARRAY_SIZE``) and fills Arrow arrays from
them without a Python object per value, and fetches the next block on a second thread
while the caller works on the current one. Same Debian drivers, same DSNs and the same
Airflow Connection (the connection string comes from ``OdbcHook``); only the read of an
incremental result set goes this way — probing, key reconciliation and push stay on
pyodbc. See docs/decisions/0006-odbc-bulk-fetch.md.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

#: dialects whose drivers are exercised here (Debian's psqlODBC and MariaDB Connector/ODBC);
#: others read row-wise unless the source block asks for ``fetch: bulk``
BULK_DIALECTS = frozenset({"postgresql", "mariadb", "mysql"})

#: the longest text value fetched from an unbounded column (TEXT, VARCHAR(MAX)); longer ones fail
#: the batch instead of being cut, so nothing is silently truncated
DEFAULT_MAX_TEXT = 65_536


def text_parameter(value: Any) -> str | None:
    """A bind value as the text arrow-odbc sends (every parameter travels as VARCHAR).

    >>> text_parameter(dt.datetime(2026, 1, 1, 8, 0, 0, 1500))
    '2026-01-01 08:00:00.001500'
    >>> text_parameter(None), text_parameter(42), text_parameter(True)
    (None, '42', '1')
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | int | float | str):
        return str(value)
    raise TypeError(f"cannot bind a {type(value).__name__} as a text parameter")


def is_bulk_error(exc: BaseException) -> bool:
    return (type(exc).__module__ or "").startswith("arrow_odbc")


def _widen(table: pa.Table) -> pa.Table:
    """Integers as int64 and decimals kept: the same column types the row-wise path produces."""
    fields = []
    changed = False
    for f in table.schema:
        if pa.types.is_integer(f.type) and f.type != pa.int64():
            fields.append(pa.field(f.name, pa.int64(), nullable=True))
            changed = True
        else:
            fields.append(pa.field(f.name, f.type, nullable=True))
            changed = changed or not f.nullable
    return table.cast(pa.schema(fields)) if changed else table


class BulkReader:
    """One ODBC connection of arrow-odbc's; ``read`` yields Arrow tables of up to ``batch_size`` rows."""

    def __init__(
        self,
        connection_string: str,
        *,
        timeout_seconds: int,
        session_statements: Sequence[str] = (),
        max_text_size: int = DEFAULT_MAX_TEXT,
    ) -> None:
        import arrow_odbc  # noqa: PLC0415 - optional driver, ~0.3 s; only a bulk read needs it

        self.timeout = int(timeout_seconds)
        self.max_text_size = int(max_text_size)
        self._conn = arrow_odbc.connect(connection_string, login_timeout_sec=self.timeout)
        for statement in session_statements:
            self._conn.execute(statement)

    def read(self, sql: str, params: Sequence[Any], batch_size: int) -> Iterator[pa.Table]:
        reader = self._conn.read_arrow_batches(
            sql,
            batch_size=batch_size,
            parameters=[text_parameter(p) for p in params],
            max_text_size=self.max_text_size,
            fetch_concurrently=True,
            query_timeout_sec=self.timeout,
        )
        for batch in reader:
            yield _widen(pa.Table.from_batches([batch]))

    def close(self) -> None:
        # the connection closes when the object is collected; drop our reference now
        self._conn = None
