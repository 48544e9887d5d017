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
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from cases import clock as ck
from cases.steps import LoggedStep
from cases.supervision_tables import CaseClock, CaseEscalation, CaseLightChange, CaseLightGauge
from cases.tables import CaseDispatch, CaseRecord
from cases.workdays import WorkCalendar
from hub.models import local_today, utcnow
from hub.outbox import emit_many

#: case statuses after which nothing more happens to its clock
FINAL = frozenset({"concluded", "rejected", "withdrawn", "not_accepted"})
#: cases per query when looking up the cases of many changes (bounded IN lists)
CHUNK = 1000


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
    today = today or local_today()
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
    stored = {c.department: c for c in session.scalars(select(CaseClock).where(CaseClock.case_id == case.id))}
    changes = []
    for department, reading in readings.items():
        row = stored.get(department)
        before = row.light if row is not None else None
        if row is None:
            row = CaseClock(case_id=case.id, department=department)
            session.add(row)
        _write(row, reading, today)
        if (before or ck.GREEN) != reading.light:
            changes.append(_Change(case.id, department, before, reading.light, reading.used, reading.promised_limit,
                                   reading.overdue, reading.promised_due))  # fmt: skip
    session.flush()
    return _record_changes(session, changes, today)


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


@dataclass(frozen=True)
class _Change:
    case_id: int
    department: str
    before: str | None
    after: str
    used: int
    promised_limit: int
    overdue: int
    promised_due: dt.date | None = None


def _record_changes(session: Session, changes: Sequence[_Change], today: dt.date) -> list[LightChange]:
    """Log, announce and (for a stage turned red) escalate changes of light, in bulk: one query per
    thousand cases for their codes and their earlier changes, one INSERT per table."""
    if not changes:
        return []
    case_ids = sorted({c.case_id for c in changes})
    cases: dict[int, tuple[str, str, str]] = {}
    numbers: dict[tuple[int, str], int] = {}
    escalated: dict[tuple[int, str], tuple[int, bool]] = {}  # (count so far, one still open)
    for lo in range(0, len(case_ids), CHUNK):
        ids = case_ids[lo : lo + CHUNK]
        q = select(CaseRecord.id, CaseRecord.code, CaseRecord.item_code, CaseRecord.region_code)
        for cid, code, item, region in session.execute(q.where(CaseRecord.id.in_(ids))):
            cases[cid] = (code, item, region)
        q2 = select(CaseLightChange.case_id, CaseLightChange.department, func.count())
        for cid, dept, n in session.execute(q2.where(CaseLightChange.case_id.in_(ids)).group_by(
                CaseLightChange.case_id, CaseLightChange.department)):  # fmt: skip
            numbers[(cid, dept)] = int(n)
        q3 = select(CaseEscalation.case_id, CaseEscalation.department, func.count(),
                    func.count(CaseEscalation.id).filter(CaseEscalation.acknowledged_at.is_(None)))  # fmt: skip
        for cid, dept, n, still_open in session.execute(q3.where(CaseEscalation.case_id.in_(ids)).group_by(
                CaseEscalation.case_id, CaseEscalation.department)):  # fmt: skip
            escalated[(cid, dept)] = (int(n), bool(still_open))
    now = utcnow()
    rows, events, escalations, out = [], [], [], []
    for c in changes:
        code, item, region = cases[c.case_id]
        key = (c.case_id, c.department)
        numbers[key] = numbers.get(key, 0) + 1
        rows.append({"case_id": c.case_id, "department": c.department, "from_light": c.before, "to_light": c.after,
                     "used": c.used, "promised_limit": c.promised_limit, "overdue": c.overdue, "as_of": today,
                     "changed_at": now})  # fmt: skip
        events.append({
            "event_type": "supervision.light_changed", "subject": code, "region_code": region,
            "payload": {"code": code, "item_code": item, "department": _named(c.department),
                        "from": c.before, "to": c.after, "used": c.used, "promised_limit": c.promised_limit,
                        "overdue": c.overdue, "promised_due": c.promised_due.isoformat() if c.promised_due else None,
                        "as_of": today.isoformat()},
            "idempotency_key": f"supervision.light:{code}:{c.department}:{numbers[key]}",
        })  # fmt: skip
        if c.after == ck.RED and c.department != ck.CASE and not escalated.get(key, (0, False))[1]:
            n = escalated.get(key, (0, False))[0] + 1
            escalated[key] = (n, True)
            escalations.append({"case_id": c.case_id, "department": c.department, "overdue": c.overdue,
                                "raised_on": today, "raised_at": now})  # fmt: skip
            events.append({
                "event_type": "supervision.escalated", "subject": code, "region_code": region,
                "payload": {"code": code, "item_code": item, "department": c.department, "overdue": c.overdue,
                            "raised_on": today.isoformat(), "escalation": n},
                "idempotency_key": f"supervision.escalated:{code}:{c.department}:{n}",
            })  # fmt: skip
        out.append(LightChange(code, c.department, c.before, c.after))
    session.execute(insert(CaseLightChange), rows)
    if escalations:
        session.execute(insert(CaseEscalation), escalations)
    emit_many(session, events)
    return out


def _named(department: str) -> str | None:
    return None if department == ck.CASE else department


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
    today = today or local_today()
    rows = session.execute(
        select(
            CaseClock.case_id, CaseClock.department, CaseClock.running_since, CaseClock.used_before,
            CaseClock.promised_limit, CaseClock.used, CaseClock.light,
        ).where(CaseClock.state == ck.RUNNING)
    ).all()  # fmt: skip
    if not rows:
        count_open(session, today)
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
    changed = [
        _Change(rows[i].case_id, rows[i].department, str(old_light[i]), str(lights[i]), int(used[i]), int(limit[i]),
                max(int(used[i] - limit[i]), 0))
        for i in moved.tolist() if lights[i] != old_light[i]
    ]  # fmt: skip
    _record_changes(session, changed, today)
    count_open(session, today)
    return Recomputed(len(rows), len(moved), len(changed))


def open_by_light(session: Session) -> dict[tuple[str, str], int]:
    """Open clocks by (department, light): what the ``/metrics`` gauges show (``*``: cases)."""
    rows = session.execute(
        select(CaseClock.department, CaseClock.light, func.count())
        .where(CaseClock.state != ck.ENDED)
        .group_by(CaseClock.department, CaseClock.light)
    ).all()
    return {(d, light): int(n) for d, light, n in rows}


def count_open(session: Session, today: dt.date) -> None:
    """Store :func:`open_by_light` for ``/metrics`` (every department and light, zeros included)."""
    counted = open_by_light(session)
    session.execute(delete(CaseLightGauge))
    departments = {d for d, _ in counted} | {ck.CASE}
    now = utcnow()
    session.execute(
        insert(CaseLightGauge),
        [
            {"department": d, "light": light, "open_clocks": counted.get((d, light), 0), "as_of": today,
             "counted_at": now}
            for d in sorted(departments) for light in (ck.GREEN, ck.YELLOW, ck.RED, ck.UNKNOWN)
        ],
    )  # fmt: skip
    session.flush()


def gauges(session: Session) -> list[tuple[str, str, int]]:
    """What the supervision task last counted: (department, light, open clocks)."""
    rows = session.execute(select(CaseLightGauge.department, CaseLightGauge.light, CaseLightGauge.open_clocks))
    return [(d, light, int(n)) for d, light, n in rows]


def escalations(session: Session, *, open_only: bool = True) -> list[CaseEscalation]:
    q = select(CaseEscalation).order_by(CaseEscalation.id)
    if open_only:
        q = q.where(CaseEscalation.acknowledged_at.is_(None))
    return list(session.scalars(q))
