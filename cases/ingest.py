"""Department steps in bulk (环节数据批量汇聚): what a department's approval system reports, pulled in
batches, written to the step log set-based.

:func:`cases.service.record_step` takes one step the way the API receives it. A department's feed
brings thousands at a time, so :func:`ingest_steps` does the same work per batch, not per row: one
query per thousand codes resolves the cases, one reads their dispatches and the steps already
logged, every row is checked against them in memory, and the new steps and their ``case.step``
events go in as multi-row INSERTs in the caller's transaction. The rules are record_step's:

* a step of a case the department was not dispatched, of an unknown case or department, or that
  a department may not report, is refused (counted by code) and the rest go on;
* a resend (same case, department and ``seq``, same content) changes nothing; the same number
  with other content is refused (``step_conflict``); corrections are new steps;
* a step that happened before one of its department already logged (or earlier in the batch)
  is flagged ``arrived_out_of_order``; where it belongs on the timeline is worked out on reading.

A correction request comes in a batch with its list of what is missing (``detail``'s
``missing``: every item with a name, as the API's ``MissingIn`` asks); without one it is refused
with ``detail_required``. Steps that carry more structure — a suspension's period, an extension's
days and approver — come through the API (``StepIn`` checks them) and are refused here likewise.

Then :func:`settle` brings each touched case up to date the way record_step does after its step:
its status, its clocks, and the release of the stages its steps unblock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases import dispatch
from cases import service as svc
from cases import steps as st
from cases.catalogue import Catalogue, load_catalogue
from cases.tables import CaseDispatch, CaseRecord, CaseStep
from hub.bulk import insert_rows
from hub.models import utcnow
from hub.outbox import emit_many
from identifiers import supervision_code

#: codes resolved per query (SQLite limits bound parameters)
CHUNK = 1000
#: steps whose structure only the API's checks take
NEEDS_DETAIL = frozenset({st.Step.CORRECTION_REQUESTED, st.Step.SUSPENDED, st.Step.EXTENDED})


@dataclass(frozen=True)
class ReportedStep:
    """One step as a department's system reports it."""

    code: str
    department: str
    seq: int
    step: str
    occurred_at: dt.datetime
    note: str | None = None
    #: correction_requested: ``{"missing": [{"code", "name"}, ...]}``
    detail: Mapping[str, Any] | None = None


def missing_list(detail: Mapping[str, Any] | None) -> list[dict[str, str]] | None:
    """A correction request's list of what is missing, if ``detail`` states one (each item named).

    >>> missing_list({"missing": [{"code": "M05", "name": "授权委托书"}]})
    [{'code': 'M05', 'name': '授权委托书'}]
    >>> missing_list({"missing": []}), missing_list({"missing": [{"code": "M05"}]}), missing_list(None)
    (None, None, None)
    """
    items = (detail or {}).get("missing")
    if not isinstance(items, list) or not items or len(items) > 50:
        return None
    out: list[dict[str, str]] = []
    for m in items:
        if not isinstance(m, Mapping) or not str(m.get("name") or "").strip():
            return None
        out.append({k: str(v) for k, v in m.items() if k in ("code", "name", "reason") and v})
    return out


@dataclass
class Ingested:
    """What a batch did: steps appended, resends that changed nothing, refusals by code, cases touched."""

    appended: int = 0
    resent: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    case_ids: set[int] = field(default_factory=set)


def step_digest(step: str, occurred_at: dt.datetime, note: str | None) -> str:
    """:func:`cases.service.step_fingerprint` of a step without detail, without building its JSON
    through the encoder (the batch's hot loop): the same text, so the same digest.

    >>> at = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)
    >>> step_digest("approved", at, "同意") == svc.step_fingerprint("approved", at, "同意", {})
    True
    >>> step_digest("in_review", at, None) == svc.step_fingerprint("in_review", at, None, {})
    True
    """
    shown = "null" if note is None else json.dumps(note, ensure_ascii=False)
    text = f'{{"detail":{{}},"note":{shown},"occurred_at":"{svc.utc(occurred_at).isoformat()}","step":"{step}"}}'
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _chunks(values: Sequence[object], size: int = CHUNK) -> Iterable[Sequence[object]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def ingest_steps(
    session: Session,
    reported: Sequence[ReportedStep],
    *,
    actor: str,
    now: dt.datetime | None = None,
    catalogue: Catalogue | None = None,
) -> Ingested:
    """Append ``reported`` to the step log and announce each new step; the caller commits.

    Set-based: a few queries per thousand cases, one INSERT of the new steps and one of their
    events, whatever the batch's size. The cases' status and clocks are :func:`settle`'s.
    """
    now = now or utcnow()
    catalogue = catalogue or load_catalogue()
    out = Ingested()
    codes: dict[str, str] = {}  # as reported → compact
    for r in reported:
        if r.code not in codes:
            codes[r.code] = supervision_code.compact(r.code) if supervision_code.is_valid(r.code) else ""
    wanted = sorted({c for c in codes.values() if c})
    cases: dict[str, tuple[int, str, str]] = {}  # code → (id, item code, region)
    for chunk in _chunks(wanted):
        for row in session.execute(
            select(CaseRecord.id, CaseRecord.code, CaseRecord.item_code, CaseRecord.region_code).where(
                CaseRecord.code.in_(chunk)
            )
        ):
            cases[row.code] = (row.id, row.item_code, row.region_code)
    ids = sorted({v[0] for v in cases.values()})
    dispatched: set[tuple[int, str]] = set()
    logged: dict[tuple[int, str, int], str] = {}
    latest: dict[tuple[int, str], dt.datetime] = {}
    for chunk in _chunks(ids):
        dispatched.update(
            (r.case_id, r.department)
            for r in session.execute(
                select(CaseDispatch.case_id, CaseDispatch.department).where(CaseDispatch.case_id.in_(chunk))
            )
        )
        for found in session.execute(
            select(CaseStep.case_id, CaseStep.department, CaseStep.seq, CaseStep.fingerprint, CaseStep.occurred_at)
            .where(CaseStep.case_id.in_(chunk))
        ):  # fmt: skip
            logged[(found.case_id, found.department, found.seq)] = found.fingerprint
            when = svc.utc(found.occurred_at)
            pair = (found.case_id, found.department)
            if pair not in latest or when > latest[pair]:
                latest[pair] = when
    rows: list[dict[str, object]] = []
    events: list[dict[str, object]] = []
    skew = now + svc.CLOCK_SKEW
    for r in reported:
        code = codes[r.code]
        if not code:
            out.refused["invalid_supervision_code"] += 1
            continue
        case = cases.get(code)
        if case is None:
            out.refused["not_found"] += 1
            continue
        case_id, item_code, region = case
        if r.department not in catalogue.departments:
            out.refused["unknown_department"] += 1
            continue
        if (case_id, r.department) not in dispatched:
            out.refused["not_dispatched"] += 1
            continue
        try:
            step = st.Step(r.step)
        except ValueError:
            out.refused["step_not_allowed"] += 1
            continue
        if step not in st.DEPARTMENT_STEPS:
            out.refused["step_not_allowed"] += 1
            continue
        detail: dict[str, Any] = {}
        if step in NEEDS_DETAIL:
            missing = missing_list(r.detail) if step is st.Step.CORRECTION_REQUESTED else None
            if missing is None:
                out.refused["detail_required"] += 1
                continue
            detail["missing"] = missing
        at = svc.utc(r.occurred_at)
        if at > skew:
            out.refused["time_in_future"] += 1
            continue
        digest = svc.step_fingerprint(step.value, at, r.note, detail) if detail else step_digest(step.value, at, r.note)
        key = (case_id, r.department, r.seq)
        known = logged.get(key)
        if known is not None:
            if known == digest:
                out.resent += 1
            else:
                out.refused["step_conflict"] += 1
            continue
        logged[key] = digest
        stage = (case_id, r.department)
        before = latest.get(stage)
        latest[stage] = at if before is None or at > before else before
        rows.append({
            "case_id": case_id, "department": r.department, "seq": r.seq, "step": step.value, "occurred_at": at,
            "recorded_at": now, "actor": actor, "note": r.note, "detail": detail, "fingerprint": digest,
            "arrived_out_of_order": before is not None and at < before,
        })  # fmt: skip
        events.append({
            "event_type": "case.step", "subject": code,
            "payload": {"code": code, "item_code": item_code, "department": r.department, "seq": r.seq,
                        "step": step.value, "occurred_at": at.isoformat(),
                        "arrived_out_of_order": before is not None and at < before},
            "idempotency_key": f"case.step:{code}:{r.department}:{r.seq}", "region_code": region,
        })  # fmt: skip
        out.case_ids.add(case_id)
    if rows:
        # the driver's executemany with SQLAlchemy's value conversions: no per-row unit of work
        insert_rows(session.connection(), CaseStep.__table__, rows)  # type: ignore[arg-type]
        emit_many(session, events)
    out.appended = len(rows)
    return out


def settle(session: Session, case_ids: Iterable[int], *, now: dt.datetime | None = None) -> int:
    """Each case's status and clocks from its log, and the stages its new steps release (as
    :func:`cases.service.record_step` does after one step); returns how many cases were settled."""
    now = now or utcnow()
    ids = sorted(set(case_ids))
    n = 0
    for chunk in _chunks(ids):
        for case in session.scalars(select(CaseRecord).where(CaseRecord.id.in_(chunk))):
            reading = svc.refresh(session, case, now)
            dispatch.release(session, case, reading.stages, now)
            n += 1
    return n
