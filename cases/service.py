"""Steps, dispatches and reads of the case repository; every change announced in the same transaction.

The order of writes inside one transaction (the caller commits once; nothing is written when
anything is refused, because every check runs before the first write):

1. the step row (append-only, unique per case, department and ``seq``);
2. what the step changes: materials supplied after a correction, the dispatches of a case the
   window now accepts;
3. the case's status (a summary of the log, worked out again from the whole log);
4. the outbox events announcing them (:func:`hub.outbox.emit`): ``case.received``, ``case.step``.
   Their subject is the supervision code and their idempotency keys are built from it, the
   department and the step's number — no personal data; the applicant appears only as an opaque
   reference (:func:`hub.pseudonyms.opaque_ref`).

A step resent with the same department and number changes nothing (``replayed``); resent with
other content it is refused (``step_conflict``). Two processes racing to write the same step meet
at the unique key: the loser's transaction fails and, retried, finds the winner's step.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases import authorisation, conclusion, dispatch, notices, parties, supervision
from cases import materials as mat
from cases import steps as st
from cases.catalogue import WINDOW, Catalogue, Item, load_catalogue
from cases.errors import CaseRefused, Refusal
from cases.schemas import MaterialIn, StepIn
from cases.tables import CaseDispatch, CaseMaterial, CaseRecord, CaseStep
from hub.clock import local_day
from hub.models import utcnow
from hub.outbox import emit
from hub.pseudonyms import opaque_ref
from identifiers import supervision_code

#: How far ahead of the hub's clock a reported time may be (clocks of department systems drift).
CLOCK_SKEW = dt.timedelta(minutes=5)
HUB = "hub"


def utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC: every time is stored in UTC (SQLite keeps no offset and hands back naive UTC)."""
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def fingerprint(value: Any) -> str:
    """SHA-256 of a JSON value in canonical form."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_code(code: str) -> str:
    """The compact supervision code, or ``invalid_supervision_code`` with the reason."""
    try:
        return supervision_code.validate(code)
    except Exception as exc:  # stdnum's ValidationError family; its message is the stable reason
        reason = str(exc) or type(exc).__name__
        raise CaseRefused("invalid_supervision_code", f"not a supervision code: {reason}") from None


def find_case(session: Session, code: str, *, department: str | None = None) -> CaseRecord:
    """The case under ``code``; ``department``: as that department sees it (only cases it has a stage in)."""
    case = session.scalar(select(CaseRecord).where(CaseRecord.code == parse_code(code)))
    if case is None or (department is not None and not _has_stage(session, case, department)):
        raise not_found()
    return case


def not_found() -> CaseRefused:
    """No case under the code (or none the department may see: the same answer)."""
    return CaseRefused("not_found", "no case with this supervision code", Refusal.NOT_FOUND, title="Not found")


def _has_stage(session: Session, case: CaseRecord, department: str) -> bool:
    return (
        session.scalar(
            select(CaseDispatch.id).where(CaseDispatch.case_id == case.id, CaseDispatch.department == department)
        )
        is not None
    )


def dispatches(session: Session, case: CaseRecord) -> list[CaseDispatch]:
    return list(session.scalars(select(CaseDispatch).where(CaseDispatch.case_id == case.id).order_by(CaseDispatch.id)))


def log(session: Session, case: CaseRecord) -> list[CaseStep]:
    return list(session.scalars(select(CaseStep).where(CaseStep.case_id == case.id).order_by(CaseStep.id)))


@dataclass(frozen=True)
class Reading:
    """The case's log read as a timeline: placed steps, stages, status and who holds it."""

    timeline: list[st.LoggedStep]
    stages: list[st.StageView]
    status: str
    held_by: list[str]
    #: the case's dispatches as read for its stages (the clocks are kept per dispatch)
    dispatches: tuple[CaseDispatch, ...] = ()


def read(
    session: Session,
    case: CaseRecord,
    rows: Sequence[CaseStep] | None = None,
    dispatch_rows: Sequence[CaseDispatch] | None = None,
) -> Reading:
    """The case read from its log (``rows``) and dispatches (``dispatch_rows``), each queried when not given."""
    rows = log(session, case) if rows is None else rows
    dispatch_rows = dispatches(session, case) if dispatch_rows is None else dispatch_rows
    return reading(case, rows, dispatch_rows)


def reading(case: CaseRecord, rows: Sequence[CaseStep], dispatch_rows: Sequence[CaseDispatch]) -> Reading:
    """The case read from its log and dispatches as given (no database access)."""
    logged = [
        st.LoggedStep(
            r.department, r.seq, st.Step(r.step), utc(r.occurred_at), r.id, r.arrived_out_of_order, detail=r.detail
        )
        for r in rows
    ]
    timeline = st.place(logged, received_at=utc(case.received_at))
    sent = tuple(dispatch_rows)
    dispatch = {d.department: (tuple(d.after or ()), _yields(case, d.department)) for d in sent}
    views = st.stages(timeline, dispatch)
    status = st.case_status(case.intake_outcome, timeline, views)
    delivered = any(s.department == WINDOW and s.step is st.Step.DELIVERED for s in timeline)
    return Reading(timeline, views, status, st.held_by(status, views, delivered=delivered), sent)


def _yields(case: CaseRecord, department: str) -> bool:
    try:
        stage = load_catalogue().item(case.item_code).stage(department)
    except KeyError:
        return False
    return bool(stage and stage.yields)


def step_event(
    case: CaseRecord, department: str, seq: int, step: str, occurred_at: dt.datetime, out_of_order: bool, status: str
) -> dict[str, Any]:
    """``case.step`` announcing one step, in :func:`hub.outbox.emit_many`'s form."""
    return {
        "event_type": "case.step", "subject": case.code, "region_code": case.region_code,
        "payload": {"code": case.code, "item_code": case.item_code, "department": department, "seq": seq,
                    "step": step, "occurred_at": utc(occurred_at).isoformat(), "status": status,
                    "arrived_out_of_order": out_of_order},
        "idempotency_key": f"case.step:{case.code}:{department}:{seq}",
    }  # fmt: skip


def received_event(case: CaseRecord) -> dict[str, Any]:
    """``case.received`` announcing a new case, in :func:`hub.outbox.emit_many`'s form."""
    return {
        "event_type": "case.received", "subject": case.code, "region_code": case.region_code,
        "payload": {"code": case.code, "item_code": case.item_code, "outcome": case.intake_outcome,
                    "status": case.status, "received_at": utc(case.received_at).isoformat(),
                    "applicant_ref": opaque_ref(case.applicant_code), "region_code": case.region_code},
        "idempotency_key": f"case.received:{case.code}",
    }  # fmt: skip


def _emit(session: Session, event: dict[str, Any]) -> None:
    emit(session, event["event_type"], event["subject"], event["payload"], event["idempotency_key"],
         region_code=event["region_code"])  # fmt: skip


def announce_step(session: Session, case: CaseRecord, row: CaseStep, status: str) -> None:
    _emit(session, step_event(case, row.department, row.seq, row.step, row.occurred_at, row.arrived_out_of_order,
                              status))  # fmt: skip


def announce_received(session: Session, case: CaseRecord) -> None:
    _emit(session, received_event(case))


def step_fingerprint(step: str, occurred_at: dt.datetime, note: str | None, detail: Mapping[str, Any]) -> str:
    return fingerprint({"step": step, "occurred_at": utc(occurred_at).isoformat(), "note": note, "detail": detail})


def append(
    session: Session,
    case: CaseRecord,
    department: str,
    seq: int,
    step: st.Step,
    occurred_at: dt.datetime,
    *,
    actor: str,
    note: str | None = None,
    detail: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> tuple[CaseStep, bool]:
    """Append one step to the log (or find it there: ``(row, True)`` for a resend); not yet announced."""
    detail = dict(detail or {})
    digest = step_fingerprint(step.value, occurred_at, note, detail)
    existing = session.scalar(
        select(CaseStep).where(CaseStep.case_id == case.id, CaseStep.department == department, CaseStep.seq == seq)
    )
    if existing is not None:
        if existing.fingerprint != digest:
            raise _conflict(department, seq)
        return existing, True
    latest = session.scalar(
        select(func.max(CaseStep.occurred_at)).where(CaseStep.case_id == case.id, CaseStep.department == department)
    )
    row = CaseStep(
        case_id=case.id, department=department, seq=seq, step=step.value, occurred_at=utc(occurred_at),
        recorded_at=utc(now) if now else utcnow(), actor=actor, note=note, detail=detail, fingerprint=digest,
        arrived_out_of_order=latest is not None and utc(occurred_at) < utc(latest),
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row, False


def _conflict(department: str, seq: int) -> CaseRefused:
    return CaseRefused(
        "step_conflict",
        f"{department} step {seq} of this case was recorded with other content; a correction is a new step",
        Refusal.CONFLICT,
    )


def next_seq(session: Session, case: CaseRecord, department: str) -> int:
    top = session.scalar(
        select(func.max(CaseStep.seq)).where(CaseStep.case_id == case.id, CaseStep.department == department)
    )
    return int(top or 0) + 1


def open_stages(session: Session, case: CaseRecord, item: Item, at: dt.datetime) -> None:
    """One dispatch per department with a stage in the item, ``pending`` until
    :func:`cases.dispatch.release` announces it to the department in the stages' order."""
    for stage in item.stages:
        session.add(
            CaseDispatch(
                case_id=case.id, department=stage.department, stage_name=stage.name, after=list(stage.after),
                statutory_days=stage.statutory_days, promised_days=stage.promised_days, status="pending",
                created_at=at,
            )
        )  # fmt: skip
    session.flush()


def refresh(session: Session, case: CaseRecord, now: dt.datetime | None = None) -> Reading:
    """Re-read the case after a change: its status, its clocks and lights (:mod:`cases.supervision`), its
    conclusion (:mod:`cases.conclusion`) and the applicant's notices it calls for (:mod:`cases.notices`)."""
    reading = read(session, case)
    case.status = reading.status
    case.updated_at = utc(now) if now else utcnow()
    session.flush()
    supervision.store_clocks(
        session, case, reading.timeline, reading.status, today=local_day(case.updated_at), dispatches=reading.dispatches
    )
    conclusion.record(session, case, reading.timeline, reading.status)  # 办结: outcome, licences promised
    notices.notify(session, case, reading.timeline, reading.status)  # the applicant told (短信告知)
    return reading


@dataclass(frozen=True)
class Recorded:
    case: CaseRecord
    row: CaseStep
    replayed: bool
    reading: Reading


def record_step(
    session: Session,
    code: str,
    department: str,
    body: StepIn,
    *,
    actor: str,
    now: dt.datetime | None = None,
    catalogue: Catalogue | None = None,
) -> Recorded:
    """A step reported by ``department`` (or the window); the caller has checked who may act for it.

    Refusals: ``invalid_supervision_code``, ``not_found``, ``unknown_department``,
    ``not_dispatched``, ``step_not_allowed``, ``time_in_future``, ``missing_list_required``,
    ``step_conflict``, and for the window's ``resumed`` the material refusals.
    """
    now = now or utcnow()
    catalogue = catalogue or load_catalogue()
    if department != WINDOW and department not in catalogue.departments:
        raise CaseRefused("unknown_department", f"department {department!r} is not in the catalogue")
    case = find_case(session, code)
    if department != WINDOW and not _has_stage(session, case, department):
        raise CaseRefused("not_dispatched", f"{department} has no stage in this case", Refusal.FORBIDDEN)
    allowed = st.WINDOW_STEPS if department == WINDOW else st.DEPARTMENT_STEPS
    if body.step not in allowed:
        raise CaseRefused(
            "step_not_allowed",
            f"{'the window' if department == WINDOW else department} cannot report {body.step.value} "
            f"(it reports {', '.join(sorted(s.value for s in allowed))})",
        )  # fmt: skip
    if body.occurred_at > now + CLOCK_SKEW:
        raise CaseRefused("time_in_future", "occurred_at lies in the future")
    detail: dict[str, Any] = {}
    if body.step is st.Step.CORRECTION_REQUESTED:
        if not body.missing:
            raise CaseRefused(
                "missing_list_required", "a correction request lists everything missing, at once (一次性告知)"
            )
        detail["missing"] = [m.model_dump(mode="json", exclude_none=True) for m in body.missing]
    detail.update(_clock_detail(body))
    detail.update(_delivery_detail(body))
    supplied = body.supplied or []
    if supplied:
        if not (department == WINDOW and body.step is st.Step.RESUMED):
            raise CaseRefused("step_not_allowed", "materials are supplied with the window's resumed step")
        detail["supplied"] = [m.model_dump(mode="json", exclude_none=True) for m in supplied]
    digest = step_fingerprint(body.step.value, body.occurred_at, body.note, detail)
    existing = session.scalar(
        select(CaseStep).where(CaseStep.case_id == case.id, CaseStep.department == department, CaseStep.seq == body.seq)
    )
    if existing is not None:  # a resend: the same step changes nothing, another one is refused
        if existing.fingerprint != digest:
            raise _conflict(department, body.seq)
        return Recorded(case, existing, True, read(session, case))
    decisions: list[mat.Decision] = []
    if department == WINDOW and body.step is st.Step.RESUMED:
        decisions = _supplied(session, case, catalogue.item(case.item_code), supplied, body.occurred_at)
    row, replayed = append(session, case, department, body.seq, body.step, body.occurred_at, actor=actor,
                           note=body.note, detail=detail, now=now)  # fmt: skip
    rows = [row]
    if decisions:
        rows += _after_correction(session, case, catalogue.item(case.item_code), decisions, body.occurred_at, now)
    reading = refresh(session, case, now)
    for r in rows:
        announce_step(session, case, r, reading.status)
    if department == WINDOW and body.step is st.Step.WITHDRAWN:
        dispatch.recall(session, case, body.occurred_at)
    else:
        dispatch.release(session, case, reading.stages, body.occurred_at)
    return Recorded(case, row, replayed, reading)


def _clock_detail(body: StepIn) -> dict[str, Any]:
    """What a step that moves the clock must say: the excluded period, or the extension's days,
    approver and reason; nothing of the kind on any other step."""
    if body.step is st.Step.SUSPENDED:
        if body.period is None:
            raise CaseRefused("period_required", "a suspension names the period the law excludes (art. 45)")
    elif body.period is not None:
        raise CaseRefused("step_not_allowed", "only a suspended step names an excluded period")
    if body.step is st.Step.EXTENDED:
        if body.days is None or not body.approved_by or not (body.note or "").strip():
            raise CaseRefused(
                "extension_incomplete", "an extension gives its working days, who approved it, and the reason (note)"
            )
    elif body.days is not None or body.approved_by is not None:
        raise CaseRefused("step_not_allowed", "only an extended step grants days")
    detail: dict[str, Any] = {}
    if body.period is not None:
        detail["period"] = body.period.value
    if body.days is not None:
        detail["days"], detail["approved_by"] = body.days, body.approved_by
    return detail


def _delivery_detail(body: StepIn) -> dict[str, Any]:
    """The window's delivered step (送达): picked up at the window, or posted with its carrier and
    tracking number (both, or neither)."""
    posted = (body.carrier, body.tracking_number)
    if body.step is not st.Step.DELIVERED:
        if posted != (None, None):
            raise CaseRefused("step_not_allowed", "only the window's delivered step names a carrier")
        return {}
    if (body.carrier is None) != (body.tracking_number is None):
        raise CaseRefused("delivery_incomplete", "a posted result names its carrier and its tracking number")
    if body.carrier is None:
        return {"method": "pickup"}
    return {"method": "post", "carrier": body.carrier, "tracking_number": body.tracking_number}


def _supplied(
    session: Session, case: CaseRecord, item: Item, supplied: Sequence[MaterialIn], at: dt.datetime
) -> list[mat.Decision]:
    """The materials an applicant brought after a correction request, decided like at intake."""
    if case.intake_outcome != "correction_required" or case.status != "awaiting_correction":
        raise CaseRefused(
            "case_not_awaiting_correction", "the case is not waiting for materials from the applicant", Refusal.CONFLICT
        )
    given = mat.by_code(item, supplied)
    codes = parties.codes_by_holder(session, applicant_of(case), parties_of(case))
    consents = authorisation.in_force_by_holder(authorisation.of_case(session, case), at)
    return mat.decide(session, item, given, codes, local_day(at), authorised=consents, only=list(given))


def applicant_of(case: CaseRecord) -> parties.Identified:
    return parties.Identified(case.applicant_kind, case.applicant_code, case.applicant_identity)


def parties_of(case: CaseRecord) -> dict[str, parties.Identified]:
    return {role: parties.Identified(p["kind"], p["code"], p["identity"]) for role, p in (case.parties or {}).items()}


def _after_correction(
    session: Session, case: CaseRecord, item: Item, decisions: Sequence[mat.Decision], at: dt.datetime,
    now: dt.datetime,
) -> list[CaseStep]:  # fmt: skip
    """Record what was supplied; the window accepts the case once nothing is missing, else asks again."""
    by_code = {d.material.code: d for d in decisions}
    rows = list(
        session.scalars(
            select(CaseMaterial).where(CaseMaterial.case_id == case.id).order_by(CaseMaterial.material_code)
        )
    )
    authorisation.note_found(
        authorisation.of_case(session, case),
        [(d.material.holder, d.material.code, d.license_id, d.license_version) for d in decisions
         if d.license_id is not None and d.license_version is not None],
    )  # fmt: skip
    for material in rows:
        d = by_code.get(material.material_code)
        if d is not None:
            material.provision, material.license_id = d.provision, d.license_id
            material.license_version, material.found_by = d.license_version, d.found_by
            material.promised_by, material.updated_at = d.promised_by, now
    session.flush()
    missing = [{"code": m.material_code, "name": m.name} for m in rows if m.provision == mat.MISSING]
    seq = next_seq(session, case, WINDOW)
    if missing:
        row, _ = append(session, case, WINDOW, seq, st.Step.CORRECTION_REQUESTED, at, actor=HUB,
                        detail={"missing": missing}, now=now)  # fmt: skip
        case.outcome_detail = {**(case.outcome_detail or {}), "missing": missing}
        return [row]
    provisions = {m.provision for m in rows}
    outcome = (
        "accepted_pending" if mat.PROMISED in provisions
        else "accepted_on_commitment" if mat.COMMITMENT in provisions else "accepted"
    )  # fmt: skip
    case.intake_outcome = outcome
    case.outcome_detail = {**(case.outcome_detail or {}), "missing": []}
    row, _ = append(session, case, WINDOW, seq, st.Step.ACCEPTED, at, actor=HUB, detail={"outcome": outcome}, now=now)
    open_stages(session, case, item, utc(at))
    return [row]


def cases_of(
    session: Session, holder_codes: Sequence[str], *, department: str | None = None, limit: int = 50, offset: int = 0
) -> list[CaseRecord]:
    """An applicant's cases, newest first; ``department``: only those it has a stage in."""
    if not holder_codes:
        return []
    stmt = select(CaseRecord).where(CaseRecord.applicant_code.in_(list(holder_codes)))
    if department is not None:
        stmt = stmt.where(
            select(CaseDispatch.id)
            .where(CaseDispatch.case_id == CaseRecord.id, CaseDispatch.department == department)
            .exists()
        )
    stmt = stmt.order_by(CaseRecord.received_at.desc(), CaseRecord.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(stmt))
