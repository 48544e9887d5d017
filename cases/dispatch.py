"""Dispatch (分办): an accepted case goes to each department with a stage in it, in the stages' order.

A department whose stage waits for no other is dispatched when the case is accepted; one that
waits (``after``) is dispatched once every stage it waits for has concluded — parallel stages
(并联审批) go together. Dispatching a stage marks its ``case_dispatch`` row ``dispatched`` (with the
time) and announces ``case.dispatched`` through the outbox, in the same transaction as the change
that released it. The delivery worker (:mod:`recognition.delivery`) pushes it, at least once,
through the connectors' ``write`` (a webhook, or the SOAP notice operation) to the department's
subscription only, in order per case: a dead letter holds back later events of that case alone.
When the window withdraws the case, every department it was dispatched to gets ``case.recalled``.

The event carries no personal data: the case by its supervision code, the applicant as an
opaque reference, the materials by code with the licence (and the authorisation) that stands for
each — the department reads a licence through ``GET /v1/cases/{code}/materials/{m}/licence``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases import authorisation
from cases.steps import CONCLUDED, StageView
from cases.tables import CaseAuthorisation, CaseDispatch, CaseMaterial, CaseRecord
from hub.outbox import emit
from hub.pseudonyms import opaque_ref
from identifiers import supervision_code

PENDING, DISPATCHED = "pending", "dispatched"
EVENT = "case.dispatched"
#: the window withdrew the case: every department it was dispatched to stops (撤回)
RECALLED = "case.recalled"


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


#: how a dispatch's time is stamped (naive times are UTC)
utc_stamp = _utc


def release(session: Session, case: CaseRecord, stages: Sequence[StageView], at: dt.datetime) -> list[CaseDispatch]:
    """Dispatch every pending stage of ``case`` whose predecessors have concluded; returns them."""
    if not case.intake_outcome.startswith("accepted") or case.status in ("withdrawn", "rejected"):
        return []
    state = {v.department: v.state for v in stages}
    rows = list(session.scalars(select(CaseDispatch).where(CaseDispatch.case_id == case.id).order_by(CaseDispatch.id)))
    released = [d for d in rows if releasable(d, state)]
    if not released:
        return []
    materials = _materials(session, case)
    for d in released:
        d.status, d.dispatched_at = DISPATCHED, _utc(at)
        e = dispatched_event(case, d, at, materials)
        emit(session, EVENT, case.code, e["payload"], e["idempotency_key"], region_code=case.region_code)
    session.flush()
    return released


def releasable(d: CaseDispatch, state: Mapping[str, str]) -> bool:
    """A pending dispatch whose predecessors have all concluded (``state``: stage states by department)."""
    return d.status == PENDING and all(state.get(a) == CONCLUDED for a in (d.after or ()))


def dispatched_event(
    case: CaseRecord, d: CaseDispatch, at: dt.datetime, materials: list[dict[str, object]]
) -> dict[str, Any]:
    """``case.dispatched`` announcing ``d`` to its department, in :func:`hub.outbox.emit_many`'s form;
    ``materials``: the case's materials as :func:`material_refs` gives them."""
    return {
        "event_type": EVENT, "subject": case.code, "region_code": case.region_code,
        "payload": {"code": case.code, "printed_code": supervision_code.format(case.code), "item_code": case.item_code,
                    "item_name": case.item_name, "department": d.department, "stage": d.stage_name,
                    "after": list(d.after or ()), "statutory_days": d.statutory_days,
                    "promised_days": d.promised_days, "received_at": _utc(case.received_at).isoformat(),
                    "dispatched_at": _utc(at).isoformat(), "applicant_ref": opaque_ref(case.applicant_code),
                    "materials": materials, "region_code": case.region_code},
        "idempotency_key": f"{EVENT}:{case.code}:{d.department}",
    }  # fmt: skip


def recall(session: Session, case: CaseRecord, at: dt.datetime) -> list[CaseDispatch]:
    """Tell every department the case was dispatched to that it is withdrawn (``case.recalled``)."""
    rows = list(
        session.scalars(
            select(CaseDispatch)
            .where(CaseDispatch.case_id == case.id, CaseDispatch.status == DISPATCHED)
            .order_by(CaseDispatch.id)
        )
    )
    for d in rows:
        emit(
            session, RECALLED, case.code,
            {"code": case.code, "department": d.department, "withdrawn_at": _utc(at).isoformat(),
             "region_code": case.region_code},
            f"{RECALLED}:{case.code}:{d.department}", region_code=case.region_code,
        )  # fmt: skip
    return rows


def _materials(session: Session, case: CaseRecord) -> list[dict[str, object]]:
    consents = authorisation.of_case(session, case)
    rows = session.scalars(select(CaseMaterial).where(CaseMaterial.case_id == case.id))
    return material_refs(rows, consents)


def material_refs(materials: Iterable[CaseMaterial], consents: Sequence[CaseAuthorisation]) -> list[dict[str, object]]:
    """The materials as a dispatch names them, by code: how each is provided, the licence that stands
    for it and the authorisation it is read under."""
    out: list[dict[str, object]] = []
    for m in sorted(materials, key=lambda m: m.material_code):
        under = authorisation.covering(consents, m.holder_role, m.material_code) if m.license_id else None
        out.append(
            {"code": m.material_code, "provision": m.provision, "license_id": m.license_id,
             "license_version": m.license_version, "authorisation": under.ref if under else None}
        )  # fmt: skip
    return out
