"""The figures supervisors report (效能统计), per item or per department, for a period of receipt.

For the cases received in ``[since, until]`` (dates in China), grouped by item (the case's own
clock) or by department (each department's stage clock):

- ``received`` — cases (or stages) received;
- ``concluded`` — those whose clock has ended with a decision or result;
- ``on_the_spot`` — concluded the day they started: no working day used (即办件; ``on_the_spot_rate``);
- ``early`` — concluded before the promised limit (提前办结, ``early_rate``; on the spot counts);
- ``overdue`` — over the promised limit, open or concluded;
- ``median_days`` and ``p90_days`` — working days used by those concluded;
- ``corrections_per_case`` — correction requests (补正) per case received;
- ``evaluated`` and ``poor`` — the applicants' evaluations (好差评) of those cases, and how many of
  them were poor (差评: 不满意, 非常不满意; ``poor_rate``); by department, a case's evaluation counts
  for every department with a stage in it.

Read from the stored clocks (:mod:`cases.supervision`) and the step log, never recomputed per
case.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, and_, case, func, literal_column, select
from sqlalchemy.orm import Session

from cases.clock import CASE, ENDED
from cases.evaluation import POOR
from cases.steps import Step
from cases.supervision_tables import CaseClock, CaseEvaluation
from cases.tables import CaseDispatch, CaseRecord, CaseStep

By = Literal["item", "department"]


@dataclass(frozen=True)
class Figures:
    key: str
    name: str
    received: int
    concluded: int
    on_the_spot: int
    early: int
    overdue: int
    median_days: float | None
    p90_days: float | None
    corrections_per_case: float
    evaluated: int = 0
    poor: int = 0

    @property
    def poor_rate(self) -> float | None:
        return round(self.poor / self.evaluated, 4) if self.evaluated else None

    @property
    def on_the_spot_rate(self) -> float | None:
        return round(self.on_the_spot / self.concluded, 4) if self.concluded else None

    @property
    def early_rate(self) -> float | None:
        return round(self.early / self.concluded, 4) if self.concluded else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "on_the_spot_rate": self.on_the_spot_rate, "early_rate": self.early_rate,
                "poor_rate": self.poor_rate}  # fmt: skip


def figures(session: Session, *, since: dt.date, until: dt.date, by: By = "item") -> list[Figures]:
    """The figures for cases received from ``since`` to ``until`` (both included), one row per group
    and a last row ``*`` for all of them.

    The database aggregates: one query counts the clocks by group, ended or not, working days
    used, early and overdue (a few hundred rows for a year of a million cases), another the
    correction requests by group; the median and 90th percentile come from the counts of days
    used (what ``numpy.median`` and ``numpy.percentile`` give over the clocks themselves).
    """
    if until < since:
        raise ValueError("until is before since")
    in_period = and_(CaseRecord.received_on >= since, CaseRecord.received_on <= until)
    department = CaseClock.department == CASE if by == "item" else CaseClock.department != CASE
    key = CaseRecord.item_code if by == "item" else CaseClock.department
    name = CaseRecord.item_name if by == "item" else CaseClock.department
    ended = case((CaseClock.state == ENDED, 1), else_=0)
    early = case((CaseClock.used < CaseClock.promised_limit, 1), else_=0)
    late = case((CaseClock.overdue > 0, 1), else_=0)
    counted = pd.DataFrame(
        session.execute(
            select(
                key.label("g_key"), func.min(name), ended.label("g_ended"), CaseClock.used.label("g_used"),
                early.label("g_early"), late.label("g_late"), func.count(),
            )
            .select_from(CaseRecord)
            .join(CaseClock, CaseClock.case_id == CaseRecord.id)
            .where(in_period, department)
            .group_by(literal_column("g_key"), literal_column("g_ended"), literal_column("g_used"),
                      literal_column("g_early"), literal_column("g_late"))
        ).all(),
        columns=["key", "name", "ended", "used", "early", "late", "n"],
    )  # fmt: skip
    corrections = pd.DataFrame(
        session.execute(
            select(
                (CaseRecord.item_code if by == "item" else CaseStep.department).label("key"),
                func.count().label("n"),
            )
            .select_from(CaseRecord)
            .join(CaseStep, CaseStep.case_id == CaseRecord.id)
            .where(in_period, CaseStep.step == Step.CORRECTION_REQUESTED.value)
            .group_by("key")
        ).all(),
        columns=["key", "n"],
    )
    per_key = dict(zip(corrections["key"], corrections["n"], strict=True))
    graded = _evaluations(session, in_period, by)
    out = [
        _row(str(k), str(g["name"].min()), g, int(per_key.get(k, 0)), graded.get(str(k), (0, 0)))
        for k, g in counted.groupby("key", sort=True)
    ]
    if len(counted):
        out.append(_row("*", "all", counted, int(corrections["n"].sum()), graded.get("*", (0, 0))))
    return out


def _evaluations(session: Session, in_period: ColumnElement[bool], by: By) -> dict[str, tuple[int, int]]:
    """(evaluated, poor) per group, and for all (``*``: each case once)."""
    poor = func.count(CaseEvaluation.id).filter(CaseEvaluation.grade.in_(sorted(POOR)))
    q = select(func.count(CaseEvaluation.id), poor).select_from(CaseRecord)
    q = q.join(CaseEvaluation, CaseEvaluation.case_id == CaseRecord.id).where(in_period)
    total = session.execute(q).one()
    out = {"*": (int(total[0]), int(total[1]))}
    if by == "item":
        rows = session.execute(q.add_columns(CaseRecord.item_code).group_by(CaseRecord.item_code)).all()
    else:
        rows = session.execute(
            q.join(CaseDispatch, CaseDispatch.case_id == CaseRecord.id)
            .add_columns(CaseDispatch.department)
            .group_by(CaseDispatch.department)
        ).all()
    out.update({str(key): (int(n), int(p)) for n, p, key in rows})
    return out


def _row(key: str, name: str, g: pd.DataFrame, corrections: int, graded: tuple[int, int] = (0, 0)) -> Figures:
    """One group's figures from its counts (``n`` clocks per ended, used, early, late)."""
    n = g["n"].to_numpy(dtype=np.int64)
    ended = g["ended"].to_numpy() == 1
    used = g["used"].to_numpy(dtype=np.int64)
    days = np.repeat(used[ended], n[ended])  # working days used by each concluded clock
    received = int(n.sum())
    return Figures(
        key=key,
        name=name,
        received=received,
        concluded=len(days),
        on_the_spot=int(n[ended & (used == 0)].sum()),
        early=int(n[ended & (g["early"].to_numpy() == 1)].sum()),
        overdue=int(n[g["late"].to_numpy() == 1].sum()),
        median_days=float(np.median(days)) if len(days) else None,
        p90_days=float(np.percentile(days, 90)) if len(days) else None,
        corrections_per_case=round(corrections / received, 4) if received else 0.0,
        evaluated=graded[0],
        poor=graded[1],
    )
