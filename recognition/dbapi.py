"""Hot statements run straight on the DBAPI cursor, compiled once by SQLAlchemy for the dialect.

The API's licences-by-holder lookup and the audit group commit run thousands of times a
second; SQLAlchemy's per-execution work (cache key, execution context, result wrapping)
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
        if self.positional:
            return tuple(bind[n](values[n]) if n in bind else values[n] for n in self.names)
        return {n: (bind[n](values[n]) if n in bind else values[n]) for n in self.names}

    def many(self, rows: Iterable[Mapping[str, Any]]) -> list[Any]:
        return [self.params(r) for r in rows]

    def row(self, raw: Sequence[Any]) -> list[Any]:
        """A fetched row with each column's result processor applied."""
        values = list(raw)
        for i, proc in self.result:
            if values[i] is not None:
                values[i] = proc(values[i])
        return values
