"""Hot statements run straight on the DBAPI cursor, compiled once by SQLAlchemy for the dialect.

The API's licences-by-holder lookup, the audit group commit and intake's reads run thousands of
times a second; SQLAlchemy's per-execution work (cache key, execution context, result wrapping)
costs several times the query itself there. A :class:`Prepared` statement keeps what
SQLAlchemy would do — the dialect's SQL text (bind casts included), its parameter order
and the column types' bind and result processors — and applies it with plain Python, so
the values written and read are the ones SQLAlchemy would write and read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

Processor = Callable[[Any], Any]


class Prepared:
    """One Core statement compiled for ``dialect``: SQL text plus parameter and column processing."""

    def __init__(self, stmt: ClauseElement, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql: str = compiled.string
        self.positional: bool = bool(compiled.positional)
        #: parameter names in the order the SQL text takes them (a name may repeat when positional)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ()) if self.positional else tuple(compiled.binds)
        #: values the statement carries itself (literals SQLAlchemy binds: ``limit(1)``, ``== "valid"``)
        self._fixed: dict[str, Any] = {
            name: bind.value for name, bind in compiled.binds.items() if not bind.required and bind.callable is None
        }
        self._bind: dict[str, Processor] = {}
        for name in set(self.names):
            proc = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                self._bind[name] = proc
        result = [
            col.type.dialect_impl(dialect).result_processor(dialect, None)
            for col in getattr(stmt, "selected_columns", ())
        ]
        #: (column index, processor) for the columns that have one
        self.result: tuple[tuple[int, Processor], ...] = tuple((i, p) for i, p in enumerate(result) if p is not None)

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """The DBAPI parameters for ``values`` (processed as SQLAlchemy would bind them)."""
        bind = self._bind
        if self._fixed:
            values = {**self._fixed, **values}
        if self.positional:
            return tuple(bind[n](values[n]) if n in bind else values[n] for n in self.names)
        return {n: (bind[n](values[n]) if n in bind else values[n]) for n in self.names}

    def first(self, dbapi_connection: Any, values: Mapping[str, Any]) -> list[Any] | None:
        """The statement's first row for ``values`` on ``dbapi_connection``, processed (``None``: no row)."""
        found = self._fetch(dbapi_connection, values, lambda cursor: cursor.fetchone())
        return None if found is None else self.row(found)

    def all(self, dbapi_connection: Any, values: Mapping[str, Any]) -> list[list[Any]]:
        """Every row of the statement for ``values`` on ``dbapi_connection``, processed."""
        return [self.row(r) for r in self._fetch(dbapi_connection, values, lambda cursor: cursor.fetchall())]

    def _fetch(self, dbapi_connection: Any, values: Mapping[str, Any], fetch: Callable[[Any], Any]) -> Any:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(self.sql, self.params(values))
            return fetch(cursor)
        finally:
            cursor.close()

    def many(self, rows: Iterable[Mapping[str, Any]]) -> list[Any]:
        return [self.params(r) for r in rows]

    def row(self, raw: Sequence[Any]) -> list[Any]:
        """A fetched row with each column's result processor applied."""
        values = list(raw)
        for i, proc in self.result:
            if values[i] is not None:
                values[i] = proc(values[i])
        return values


#: (statement's id, dialect) → (the statement, prepared): statements built once, prepared once per dialect
_prepared: dict[tuple[int, Dialect], tuple[ClauseElement, Prepared]] = {}


def prepared(stmt: ClauseElement, dialect: Dialect) -> Prepared:
    """``stmt`` (a statement built once, at import) prepared for ``dialect``, once."""
    key = (id(stmt), dialect)
    hit = _prepared.get(key)
    if hit is None or hit[0] is not stmt:
        if len(_prepared) > 1024:  # many engines (tests): kept bounded
            _prepared.clear()
        hit = _prepared[key] = (stmt, Prepared(stmt, dialect))
    return hit[1]


def session_dbapi(session: Any) -> tuple[Any, Dialect]:
    """The DBAPI connection of ``session``'s transaction (begun if it was not) and its dialect: for a
    hot read that needs none of SQLAlchemy's execution (nothing pending, no entity loaded)."""
    connection = session.connection()
    return connection.connection.driver_connection, connection.dialect
