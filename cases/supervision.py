"""E-supervision (电子监察): each open case's clocks and lights kept, changes of light logged and
announced, red stages escalated (督办).

Two ways a clock is brought up to date, with the same rules (:mod:`cases.clock`):

- :func:`store_clocks` — when a step arrives (called by :func:`cases.service.refresh`, in the
  step's transaction): the case's stages and the case itself are read from the whole step log;
- :func:`recompute_lights` — the supervision task, on a schedule: only the *running* clocks
  change from one day to the next, so it reads their stored ``running_since`` and
  ``used_before`` and recomputes every one at once (:func:`cases.clock.lights_many`), writing
  only the rows whose days or light changed.

A change of light is a row of ``case_light_change`` (append-only) and a
``supervision.light_changed`` event in the outbox, in the same transaction; a department's stage
turning red raises one escalation (``supervision.escalated``) until the department acknowledges
it. Event keys carry the supervision code, the department and the change's number in that
clock's history — nothing personal — so a change is announced once however often the task runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cases import clock as ck
from cases.steps import LoggedStep
from cases.supervision_tables import CaseClock, CaseEscalation, CaseLightChange
from cases.tables import CaseDispatch, CaseRecord
from cases.workdays import WorkCalendar
from hub.models import utcnow
from hub.outbox import emit

#: case statuses after which nothing more happens to its clock
FINAL = frozenset({"concluded", "rejected", "withdrawn", "not_accepted"})


@dataclass(frozen=True)
class LightChange:
    code: str
    department: str
    from_light: str | None
    to_light: str


def store_clocks(
    session: Session,
    case: CaseRecord,
    timeline: Sequence[LoggedStep],
    status: str,
    *,
    today: dt.date | None = None,
    calendar: WorkCalendar | None = None,
    rule: ck.LightRule | None = None,
) -> list[LightChange]:
    """Read every clock of ``case`` from its placed ``timeline`` and store them; returns the changes of light."""
    calendar = calendar or WorkCalendar.default()
    today = today or ck.china_day(utcnow())
    dispatches = list(session.scalars(select(CaseDispatch).where(CaseDispatch.case_id == case.id)))
    readings: dict[str, ck.ClockReading] = {}
    for d in dispatches:
        steps = [s for s in timeline if s.department == d.department]
        readings[d.department] = ck.read_clock(
            steps, ck.Limits(d.statutory_days, d.promised_days), calendar, today=today, rule=rule
        )
    extension = max((r.extension for r in readings.values()), default=0)
    ended_at = _ended_at(timeline) if status in FINAL else None
    case_steps = ck.case_steps(timeline, ended_at=ended_at, extension=extension)
    readings[ck.CASE] = ck.read_clock(
        case_steps, ck.Limits(case.statutory_days, case.promised_days), calendar, today=today, rule=rule
    )
    stored = {
        c.department: c for c in session.scalars(select(CaseClock).where(CaseClock.case_id == case.id))
    }
    changes = []
    for department, reading in readings.items():
        row = stored.get(department)
        before = row.light if row is not None else None
        if row is None:
            row = CaseClock(case_id=case.id, department=department)
            session.add(row)
        _write(row, reading, today)
        if (before or ck.GREEN) != reading.light:
            changes.append(_changed(session, case, department, before, reading, today))
    session.flush()
    return changes


def _ended_at(timeline: Sequence[LoggedStep]) -> dt.datetime | None:
    times = [s.occurred_at for s in timeline if s.impossible is None]
    return max(times) if times else None


def _write(row: CaseClock, r: ck.ClockReading, today: dt.date) -> None:
    for name in (
        "state", "started_on", "running_since", "used_before", "used", "extension", "promised_limit",
        "statutory_limit", "promised_due", "statutory_due", "light", "overdue", "statutory_overdue", "unknown_reason",
    ):  # fmt: skip
        setattr(row, name, getattr(r, name))
    row.as_of, row.updated_at = today, utcnow()


def _changed(
    session: Session, case: CaseRecord, department: str, before: str | None, r: ck.ClockReading, today: dt.date
) -> LightChange:
    number = 1 + (
        session.scalar(
            select(func.count())
            .select_from(CaseLightChange)
            .where(CaseLightChange.case_id == case.id, CaseLightChange.department == department)
        )
        or 0
    )
    session.add(
        CaseLightChange(
            case_id=case.id, department=department, from_light=before, to_light=r.light, used=r.used,
            promised_limit=r.promised_limit, overdue=r.overdue, as_of=today,
        )
    )  # fmt: skip
    emit(
        session, "supervision.light_changed", case.code,
        {"code": case.code, "item_code": case.item_code, "department": None if department == ck.CASE else department,
         "from": before, "to": r.light, "used": r.used, "promised_limit": r.promised_limit, "overdue": r.overdue,
         "promised_due": r.promised_due.isoformat() if r.promised_due else None, "as_of": today.isoformat()},
        f"supervision.light:{case.code}:{department}:{number}", region_code=case.region_code,
    )  # fmt: skip
    if r.light == ck.RED and department != ck.CASE:
        _escalate(session, case, department, r.overdue, today)
    return LightChange(case.code, department, before, r.light)


def _escalate(session: Session, case: CaseRecord, department: str, overdue: int, today: dt.date) -> None:
    open_one = session.scalar(
        select(CaseEscalation.id).where(
            CaseEscalation.case_id == case.id,
            CaseEscalation.department == department,
            CaseEscalation.acknowledged_at.is_(None),
        )
    )
    if open_one is not None:
        return
    row = CaseEscalation(case_id=case.id, department=department, overdue=overdue, raised_on=today)
    session.add(row)
    session.flush()
    emit(
        session, "supervision.escalated", case.code,
        {"code": case.code, "item_code": case.item_code, "department": department, "overdue": overdue,
         "raised_on": today.isoformat(), "escalation": row.id},
        f"supervision.escalated:{case.code}:{department}:{row.id}", region_code=case.region_code,
    )  # fmt: skip


def acknowledge(session: Session, escalation_id: int, department: str, *, by: str, note: str | None) -> CaseEscalation:
    """The department's acknowledgement of an escalation (its own only)."""
    row = session.get(CaseEscalation, escalation_id)
    if row is None or row.department != department:
        raise LookupError(f"no escalation {escalation_id} of {department}")
    if row.acknowledged_at is None:
        row.acknowledged_at, row.acknowledged_by, row.note = utcnow(), by, note
        session.flush()
    return row


@dataclass(frozen=True)
class Recomputed:
    running: int
    updated: int
    changes: int


def recompute_lights(
    session: Session,
    *,
    today: dt.date | None = None,
    calendar: WorkCalendar | None = None,
    rule: ck.LightRule | None = None,
) -> Recomputed:
    """Bring every running clock up to ``today`` at once; log and announce the changes of light."""
    calendar = calendar or WorkCalendar.default()
    today = today or ck.china_day(utcnow())
    rows = session.execute(
        select(
            CaseClock.case_id, CaseClock.department, CaseClock.running_since, CaseClock.used_before,
            CaseClock.promised_limit, CaseClock.used, CaseClock.light,
        ).where(CaseClock.state == ck.RUNNING)
    ).all()  # fmt: skip
    if not rows:
        return Recomputed(0, 0, 0)
    since = np.array([r.running_since for r in rows], dtype="datetime64[D]")
    before = np.array([r.used_before for r in rows], dtype=np.int64)
    limit = np.array([r.promised_limit for r in rows], dtype=np.int64)
    used, lights = ck.lights_many(calendar, running_since=since, used_before=before, promised=limit, today=today,
                                  rule=rule)  # fmt: skip
    old_used = np.array([r.used for r in rows], dtype=np.int64)
    old_light = np.array([r.light for r in rows], dtype=object)
    moved = np.nonzero((used != old_used) | (lights != old_light))[0]
    now = utcnow()
    if len(moved):
        session.execute(
            update(CaseClock),
            [
                {"case_id": rows[i].case_id, "department": rows[i].department, "used": int(used[i]),
                 "overdue": max(int(used[i] - limit[i]), 0), "light": str(lights[i]), "as_of": today,
                 "updated_at": now}
                for i in moved.tolist()
            ],
        )  # fmt: skip
    changed = [i for i in moved.tolist() if lights[i] != old_light[i]]
    if changed:
        cases = {
            c.id: c
            for c in session.scalars(select(CaseRecord).where(CaseRecord.id.in_({rows[i].case_id for i in changed})))
        }
        for i in changed:
            reading = ck.ClockReading(
                ck.RUNNING, None, int(used[i]), 0, int(limit[i]), 0, str(lights[i]), max(int(used[i] - limit[i]), 0), 0
            )
            _changed(session, cases[rows[i].case_id], rows[i].department, str(old_light[i]), reading, today)
    session.flush()
    return Recomputed(len(rows), len(moved), len(changed))


def open_by_light(session: Session) -> dict[tuple[str, str], int]:
    """Open clocks by (department, light): what the ``/metrics`` gauges show (``*``: cases)."""
    rows = session.execute(
        select(CaseClock.department, CaseClock.light, func.count())
        .where(CaseClock.state != ck.ENDED)
        .group_by(CaseClock.department, CaseClock.light)
    ).all()
    return {(d, light): int(n) for d, light, n in rows}


def escalations(session: Session, *, open_only: bool = True) -> list[CaseEscalation]:
    q = select(CaseEscalation).order_by(CaseEscalation.id)
    if open_only:
        q = q.where(CaseEscalation.acknowledged_at.is_(None))
    return list(session.scalars(q))

