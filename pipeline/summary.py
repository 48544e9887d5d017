"""The main job's summary per department (作业汇总): what the demo and operators are shown.

``pulled`` is what was read from the source, ``carried_over`` what a run carried through for an
earlier run that failed after extract (rows read once, processed by the later run). Ledger rows a
carrying run superseded (``map``/``validate`` of the failed run) are left out, so rows are
accepted or quarantined once however many runs it took.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, fields

from sqlalchemy import select
from sqlalchemy.engine import Engine

from e_license_store.catalogue import load_catalogue
from hub.db import get_engine, session_scope
from hub.models import OutboxEvent
from pipeline.tables import PipelineStep
from recognition.tables import Delivery


@dataclass
class DepartmentSummary:
    department: str
    pulled: int = 0
    carried_over: int = 0
    accepted: int = 0
    quarantined: int = 0
    identities_created: int = 0
    identities_linked: int = 0
    linked_by_code: int = 0
    linked_by_match: int = 0
    sent_to_review: int = 0
    provisional: int = 0
    licenses_issued: int = 0
    licenses_changed: int = 0
    notices_pushed: int = 0

    @property
    def reconciled(self) -> bool:
        """pulled (+ carried over) = accepted + quarantined (deleted records aside, which are neither).

        Rows carried over were pulled by an earlier run: over runs that include it they are in
        ``pulled`` already; over the carrying run alone, only in ``carried_over``.
        """
        return self.pulled + self.carried_over >= self.accepted + self.quarantined

    def as_row(self) -> list[str]:
        return [self.department, *(str(getattr(self, f.name)) for f in fields(self)[1:])]


COLUMNS = [f.name for f in fields(DepartmentSummary)]


def _license_departments() -> dict[str, str]:
    try:
        return {t.type_code: t.issuer_department for t in load_catalogue().values()}
    except Exception:  # the catalogue is optional for a summary
        return {}


def summarize(
    run_ids: Iterable[str] | None = None, *, since: dt.datetime | None = None, engine: Engine | None = None
) -> list[DepartmentSummary]:
    """Sum the run ledger per department for the given runs (or everything since ``since``)."""
    engine = engine or get_engine()
    by_dept: dict[str, DepartmentSummary] = {}
    with session_scope(engine) as session:
        stmt = select(PipelineStep).where(PipelineStep.department != "_push", PipelineStep.superseded_by.is_(None))
        ids = list(run_ids) if run_ids is not None else None
        if ids is not None:
            stmt = stmt.where(PipelineStep.run_id.in_(ids))
        if since is not None:
            stmt = stmt.where(PipelineStep.finished_at >= since)
        for s in session.scalars(stmt):
            d = by_dept.setdefault(s.department, DepartmentSummary(s.department))
            if s.step == "extract":
                d.pulled += s.pulled
                d.carried_over += s.carried_over
                d.quarantined += s.quarantined
            elif s.step == "validate":
                d.accepted += s.accepted
                d.quarantined += s.quarantined
            elif s.step == "resolve":
                d.identities_created += s.identities_created
                d.identities_linked += s.identities_linked
                d.linked_by_code += s.linked_by_code or 0
                d.linked_by_match += s.linked_by_match or 0
                d.sent_to_review += s.sent_to_review or 0
                d.provisional += s.provisional or 0
            elif s.step == "publish":
                d.licenses_issued += s.licenses_issued
                d.licenses_changed += s.licenses_changed
        owners = _license_departments()
        pushed = (
            select(OutboxEvent.license_type_code)
            .join(Delivery, Delivery.event_id == OutboxEvent.id)
            .where(Delivery.status == "delivered")
        )
        if since is not None:
            pushed = pushed.where(OutboxEvent.created_at >= since)
        for (type_code,) in session.execute(pushed):
            dept = owners.get(type_code or "", "other")
            by_dept.setdefault(dept, DepartmentSummary(dept)).notices_pushed += 1
    return [by_dept[k] for k in sorted(by_dept)]
