"""The applicant's evaluation of a concluded case (好差评): a grade and a comment, one per case.

The national evaluation system (政务服务"好差评") grades a service in five steps, from 非常满意 to
非常不满意; the two lowest are poor ratings (差评) a supervisor follows up. An evaluation is
left once the case is concluded (办结, whatever its outcome: ``concluded`` or ``rejected``); the
same evaluation sent again is the one recorded (``replayed``), another one is refused
(``already_evaluated``). The figures count them per item or department (:mod:`cases.stats`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.errors import CaseRefused, Refusal
from cases.schemas import EvaluationOut
from cases.supervision_tables import CaseEvaluation
from cases.tables import CaseRecord
from hub.masking import scrub_text
from hub.models import utcnow

#: The five grades, best first, with their words on the evaluation device (评价器).
GRADES = {
    "very_satisfied": "非常满意",
    "satisfied": "满意",
    "basically_satisfied": "基本满意",
    "dissatisfied": "不满意",
    "very_dissatisfied": "非常不满意",
}
#: The poor ratings (差评).
POOR = frozenset({"dissatisfied", "very_dissatisfied"})
CHANNELS = ("window", "portal", "app", "sms")
#: The case statuses after which a case may be evaluated (办结).
CONCLUDED = frozenset({"concluded", "rejected"})


@dataclass(frozen=True)
class Evaluated:
    row: CaseEvaluation
    replayed: bool


def of_case(session: Session, case: CaseRecord) -> CaseEvaluation | None:
    return session.scalar(select(CaseEvaluation).where(CaseEvaluation.case_id == case.id))


def evaluate(
    session: Session,
    case: CaseRecord,
    grade: str,
    comment: str | None,
    *,
    channel: str,
    by: str,
    now: dt.datetime | None = None,
) -> Evaluated:
    """Record the applicant's evaluation of ``case``; the caller commits."""
    if grade not in GRADES:
        raise CaseRefused("invalid_grade", f"grade is one of {', '.join(GRADES)}")
    comment = (comment or "").strip() or None
    existing = of_case(session, case)
    if existing is not None:
        if (existing.grade, existing.comment, existing.channel) != (grade, comment, channel):
            raise CaseRefused("already_evaluated", "the case was evaluated already, otherwise", Refusal.CONFLICT)
        return Evaluated(existing, True)
    if case.status not in CONCLUDED:
        raise CaseRefused(
            "case_not_concluded", f"a case is evaluated once concluded (it is {case.status})", Refusal.CONFLICT
        )
    row = CaseEvaluation(case_id=case.id, grade=grade, comment=comment, channel=channel,
                         evaluated_at=now or utcnow(), recorded_by=by)  # fmt: skip
    session.add(row)
    session.flush()
    return Evaluated(row, False)


def out(row: CaseEvaluation, code: str, *, personal: bool, replayed: bool = False) -> EvaluationOut:
    """The evaluation as it leaves the hub: the comment scrubbed of ids and phones unless ``personal``."""
    comment = row.comment if personal or row.comment is None else scrub_text(row.comment)
    evaluated_at = row.evaluated_at if row.evaluated_at.tzinfo else row.evaluated_at.replace(tzinfo=dt.UTC)
    return EvaluationOut(
        code=code, grade=row.grade, grade_name=GRADES[row.grade], poor=row.grade in POOR, comment=comment,
        channel=row.channel, evaluated_at=evaluated_at, replayed=replayed,
    )  # fmt: skip
