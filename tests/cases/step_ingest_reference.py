"""The step ingestion as it was before its columnar rewrite (decision 0031), row by row — a
pulled frame's rows as :class:`ReportedStep` objects, then each checked and written as a
dictionary: the oracle the bulk path is held equal to (``test_step_ingest_equivalence``). Not
used by the hub."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases import service as svc
from cases import steps as st
from cases.catalogue import Catalogue, load_catalogue
from cases.ingest import NEEDS_DETAIL, Ingested, ReportedStep, _chunks, missing_list
from cases.tables import CaseDispatch, CaseRecord, CaseStep
from hub.bulk import insert_rows
from hub.models import utcnow
from hub.outbox import emit_many
from identifiers import supervision_code


def _text(value: object) -> str | None:
    return None if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)) else str(value)  # type: ignore[call-overload]


def _missing(value: object) -> dict[str, object] | None:
    """A ``missing`` cell as a step's detail; text that is not a JSON list is kept as given (and refused)."""
    text = _text(value)
    if text is None:
        return None
    try:
        return {"missing": json.loads(text)}
    except ValueError:
        return {"missing": text}


def reference_reported(frame: pd.DataFrame) -> list[ReportedStep]:
    """The frame's rows as reported steps (``note`` and ``missing`` optional; times as given, made
    aware as UTC if naive)."""
    blank = pd.Series([None] * len(frame), index=frame.index)
    notes = frame.get("note", blank)
    missing = frame.get("missing", blank)
    times = pd.to_datetime(frame["occurred_at"], utc=True, format="ISO8601")
    out = []
    for code, department, seq, step, at, note, wanting in zip(
        frame["code"], frame["department"], frame["seq"], frame["step"], times, notes, missing, strict=True
    ):
        out.append(ReportedStep(str(code), str(department), int(seq), str(step), at.to_pydatetime(),
                                _text(note), _missing(wanting)))  # fmt: skip
    return out


def reference_ingest_steps(
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
        digest = svc.step_fingerprint(step.value, at, r.note, detail)
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
