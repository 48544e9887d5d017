"""The figures supervisors report (效能统计), per item or per department, for a period of receipt.

For the cases received in ``[since, until]`` (dates in China), grouped by item (the case's own
clock) or by department (each department's stage clock):

- ``received`` — cases (or stages) received;
- ``concluded`` — those whose clock has ended with a decision or result;
- ``on_the_spot`` — concluded the day they started: no working day used (即办件; ``on_the_spot_rate``);
- ``early`` — concluded before the promised limit (提前办结, ``early_rate``; on the spot counts);
- ``overdue`` — over the promised limit, open or concluded;
- ``median_days`` and ``p90_days`` — working days used by those concluded;
- ``corrections_per_case`` — correction requests (补正) per case received.

Read from the stored clocks (:mod:`cases.supervision`) and the step log, never recomputed per
case.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from cases.clock import CASE, ENDED
from cases.steps import Step
from cases.supervision_tables import CaseClock
from cases.tables import CaseRecord, CaseStep

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

    @property
    def on_the_spot_rate(self) -> float | None:
        return round(self.on_the_spot / self.concluded, 4) if self.concluded else None

    @property
    def early_rate(self) -> float | None:
        return round(self.early / self.concluded, 4) if self.concluded else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "on_the_spot_rate": self.on_the_spot_rate, "early_rate": self.early_rate}


def figures(session: Session, *, since: dt.date, until: dt.date, by: By = "item") -> list[Figures]:
    """The figures for cases received from ``since`` to ``until`` (both included), one row per group
    and a last row ``*`` for all of them."""
    if until < since:
        raise ValueError("until is before since")
    in_period = and_(CaseRecord.received_on >= since, CaseRecord.received_on <= until)
    department = CaseClock.department == CASE if by == "item" else CaseClock.department != CASE
    key = CaseRecord.item_code if by == "item" else CaseClock.department
    name = CaseRecord.item_name if by == "item" else CaseClock.department
    clocks = pd.DataFrame(
        session.execute(
            select(
                key.label("key"), name.label("name"), CaseClock.state, CaseClock.used, CaseClock.overdue,
                CaseClock.promised_limit,
            )
            .select_from(CaseRecord)
            .join(CaseClock, CaseClock.case_id == CaseRecord.id)
            .where(in_period, department)
        ).all(),
        columns=["key", "name", "state", "used", "overdue", "promised_limit"],
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
    out = [_row(str(k), str(g["name"].iloc[0]), g, int(per_key.get(k, 0))) for k, g in clocks.groupby("key", sort=True)]
    if len(clocks):
        out.append(_row("*", "all", clocks, int(corrections["n"].sum())))
    return out


def _row(key: str, name: str, g: pd.DataFrame, corrections: int) -> Figures:
    ended = g[g["state"] == ENDED]
    used = ended["used"].to_numpy()
    return Figures(
        key=key,
        name=name,
        received=len(g),
        concluded=len(ended),
        on_the_spot=int((used == 0).sum()),
        early=int((used < ended["promised_limit"].to_numpy()).sum()),
        overdue=int((g["overdue"] > 0).sum()),
        median_days=float(np.median(used)) if len(used) else None,
        p90_days=float(np.percentile(used, 90)) if len(used) else None,
        corrections_per_case=round(corrections / len(g), 4) if len(g) else 0.0,
    )
