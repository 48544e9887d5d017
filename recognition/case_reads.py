"""A case's rows for the API's timeline read (``GET /v1/cases/{code}``), on a DBAPI connection.

The timeline is the case repository's hot read. Through the ORM it costs a dozen SQLAlchemy
executions (each with its cache key, execution context and identity map) for what is a handful
of indexed lookups. Here every statement is SQLAlchemy's, compiled once per dialect, and run
straight on the cursor (:class:`hub.dbapi.Prepared`: the same SQL, bind and result
processing); the rows come back as detached instances of the mapped classes with their
columns loaded, so :func:`cases.views.render` makes the very answer :func:`cases.views.case_out`
makes. Each lookup uses an index: the case by its unique code; its steps, dispatches, materials
and authorisations by their unique keys that begin with ``case_id``; its results by
``license_index.case_code``; its conclusion and evaluation (only once concluded) by ``case_id``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import configure_mappers
from sqlalchemy.orm.instrumentation import manager_of_class

from cases import evaluation as evaluations
from cases.supervision_tables import CaseConclusion, CaseEvaluation
from cases.tables import CaseAuthorisation, CaseDispatch, CaseMaterial, CaseRecord, CaseStep
from cases.views import CaseRows
from e_license_store.index import LicenseIndexRow
from e_license_store.tables import LicenseIndexEntry
from hub.dbapi import Prepared
from recognition.directory import license_by_id_dbapi

_M = TypeVar("_M")


@dataclass(frozen=True)
class _Mapped:
    """A prepared statement selecting every column of one mapped class, and the attribute each fills."""

    prepared: Prepared
    model: type[Any]
    keys: tuple[str, ...]

    def fetch(self, cur: Any, **values: Any) -> list[Any]:
        cur.execute(self.prepared.sql, self.prepared.params(values))
        new = manager_of_class(self.model).new_instance
        out = []
        for raw in cur.fetchall():
            obj = new()  # a detached instance: its columns loaded, no session, never flushed
            obj.__dict__.update(zip(self.keys, self.prepared.row(raw), strict=True))
            out.append(obj)
        return out


def _mapped(model: type[Any], dialect: Dialect, key: str, *order: str) -> _Mapped:
    table = model.__table__
    by_column = {prop.columns[0].name: prop.key for prop in model.__mapper__.column_attrs}
    columns = list(table.c)
    stmt = select(*columns).where(table.c[key] == bindparam(key))
    if order:
        stmt = stmt.order_by(*(table.c[o] for o in order))
    return _Mapped(Prepared(stmt, dialect), model, tuple(by_column[c.name] for c in columns))


@dataclass(frozen=True)
class _Statements:
    case: _Mapped
    steps: _Mapped
    dispatches: _Mapped
    consents: _Mapped
    materials: _Mapped
    conclusion: _Mapped
    evaluation: _Mapped
    results: Prepared


_LICENCE = LicenseIndexEntry.__table__
_LICENCE_COLUMNS = [_LICENCE.c[name] for name in LicenseIndexRow.__dataclass_fields__]


@functools.lru_cache(maxsize=8)
def _statements(dialect: Dialect) -> _Statements:
    configure_mappers()  # the instrumented attributes read what new_instance() holds
    results = (
        select(*_LICENCE_COLUMNS)
        .where(_LICENCE.c.case_code == bindparam("case_code"))
        .order_by(_LICENCE.c.issue_date, _LICENCE.c.license_id)
    )
    return _Statements(
        case=_mapped(CaseRecord, dialect, "code"),
        steps=_mapped(CaseStep, dialect, "case_id", "id"),
        dispatches=_mapped(CaseDispatch, dialect, "case_id", "id"),
        consents=_mapped(CaseAuthorisation, dialect, "case_id", "id"),
        materials=_mapped(CaseMaterial, dialect, "case_id", "material_code"),
        conclusion=_mapped(CaseConclusion, dialect, "case_id"),
        evaluation=_mapped(CaseEvaluation, dialect, "case_id"),
        results=Prepared(results, dialect),
    )


def _licence(values: list[Any]) -> LicenseIndexRow:
    row = LicenseIndexRow(*values)
    if row.updated_at.tzinfo is None:  # SQLite drops the offset; every stored time is UTC
        return dataclasses.replace(row, updated_at=row.updated_at.replace(tzinfo=dt.UTC))
    return row


def case_rows(dbapi_conn: Any, dialect: Dialect, code: str, *, department: str | None = None) -> CaseRows | None:
    """The rows of the case under the compact supervision ``code``, or ``None`` when there is none —
    or, with ``department``, when that department has no stage in it (as
    :func:`cases.service.find_case` decides)."""
    q = _statements(dialect)
    cur = dbapi_conn.cursor()
    try:
        found = q.case.fetch(cur, code=code)
        if not found:
            return None
        case: CaseRecord = found[0]
        dispatches: list[CaseDispatch] = q.dispatches.fetch(cur, case_id=case.id)
        if department is not None and not any(d.department == department for d in dispatches):
            return None
        materials: list[CaseMaterial] = q.materials.fetch(cur, case_id=case.id)
        licences: dict[str, LicenseIndexRow] = {}
        for m in materials:
            if m.license_id and m.license_id not in licences:
                row = license_by_id_dbapi(dbapi_conn, dialect, m.license_id)
                if row is not None:
                    licences[m.license_id] = row
        cur.execute(q.results.sql, q.results.params({"case_code": case.code}))
        results = [_licence(q.results.row(raw)) for raw in cur.fetchall()]
        concluded = case.status in evaluations.CONCLUDED
        return CaseRows(
            case=case, steps=q.steps.fetch(cur, case_id=case.id), dispatches=dispatches,
            consents=q.consents.fetch(cur, case_id=case.id), materials=materials, licences=licences,
            results=results, conclusion=_first(q.conclusion.fetch(cur, case_id=case.id)) if concluded else None,
            evaluation=_first(q.evaluation.fetch(cur, case_id=case.id)) if concluded else None,
        )  # fmt: skip
    finally:
        cur.close()


def _first(rows: Sequence[_M]) -> _M | None:
    return rows[0] if rows else None
