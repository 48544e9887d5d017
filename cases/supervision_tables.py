"""Tables of e-supervision (电子监察), on :class:`hub.db.Base`; the Alembic branch ``supervision`` creates them.

- ``case_clock`` — the clock of each department's stage of an open case, and of the case itself
  (department ``*``), as of its last computation: state, working days used, limits in force,
  due dates, light. Rewritten when a step arrives and when the supervision task brings the
  running clocks up to date; it is a reading, not a record.
- ``case_light_change`` — every change of light with its time (append-only): the case's log of
  lights, what the supervision office is told.
- ``case_escalation`` — 督办: a stage that turned red, the department pressed, the working days
  overdue, and the department's acknowledgement when posted back;
- ``case_conclusion`` — 办结: the outcome, the licences promised and any still missing (flagged);
- ``case_evaluation`` — 好差评: the applicant's grade and comment on a concluded case.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base
from hub.models import BigId, utcnow


class CaseClock(Base):
    __tablename__ = "case_clock"
    __table_args__ = (Index("ix_case_clock_state_light", "state", "light"),)

    case_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("case_record.id", name="fk_case_clock_case"), primary_key=True
    )
    #: a department with a stage in the case, or ``*`` for the case's own clock
    department: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: not_started | running | stopped | ended (:mod:`cases.clock`)
    state: Mapped[str] = mapped_column(String(12))
    started_on: Mapped[dt.date | None] = mapped_column(Date)
    running_since: Mapped[dt.date | None] = mapped_column(Date)
    used_before: Mapped[int] = mapped_column(Integer, default=0)
    used: Mapped[int] = mapped_column(Integer, default=0)
    extension: Mapped[int] = mapped_column(Integer, default=0)
    promised_limit: Mapped[int] = mapped_column(Integer)
    statutory_limit: Mapped[int] = mapped_column(Integer)
    promised_due: Mapped[dt.date | None] = mapped_column(Date)
    statutory_due: Mapped[dt.date | None] = mapped_column(Date)
    #: green | yellow | red | unknown
    light: Mapped[str] = mapped_column(String(8))
    overdue: Mapped[int] = mapped_column(Integer, default=0)
    statutory_overdue: Mapped[int] = mapped_column(Integer, default=0)
    unknown_reason: Mapped[str | None] = mapped_column(Text)
    #: the day the reading is as of
    as_of: Mapped[dt.date] = mapped_column(Date)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CaseLightChange(Base):
    __tablename__ = "case_light_change"
    __table_args__ = (Index("ix_case_light_change_case", "case_id", "changed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id", name="fk_case_light_change_case"))
    department: Mapped[str] = mapped_column(String(40))
    from_light: Mapped[str | None] = mapped_column(String(8))
    to_light: Mapped[str] = mapped_column(String(8))
    used: Mapped[int] = mapped_column(Integer)
    promised_limit: Mapped[int] = mapped_column(Integer)
    overdue: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[dt.date] = mapped_column(Date)
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CaseEscalation(Base):
    __tablename__ = "case_escalation"
    __table_args__ = (
        Index("ix_case_escalation_open", "department", "acknowledged_at"),
        # a stage's escalations: their number and whether one is still open (cases.supervision)
        Index("ix_case_escalation_case", "case_id", "department"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id", name="fk_case_escalation_case"))
    department: Mapped[str] = mapped_column(String(40))
    overdue: Mapped[int] = mapped_column(Integer)
    raised_on: Mapped[dt.date] = mapped_column(Date)
    raised_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)


class CaseLightGauge(Base):
    """Open clocks by department and light, as the supervision task last counted them: what
    ``/metrics`` reads (a scrape never scans the cases). Department ``*``: the cases themselves."""

    __tablename__ = "case_light_gauge"

    department: Mapped[str] = mapped_column(String(40), primary_key=True)
    light: Mapped[str] = mapped_column(String(8), primary_key=True)
    open_clocks: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[dt.date] = mapped_column(Date)
    counted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CaseEvaluation(Base):
    """好差评: the applicant's evaluation of a concluded case — one per case, a grade and a comment."""

    __tablename__ = "case_evaluation"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("case_record.id", name="fk_case_evaluation_case"), unique=True, index=True
    )
    #: :data:`cases.evaluation.GRADES`: very_satisfied 非常满意 … very_dissatisfied 非常不满意
    grade: Mapped[str] = mapped_column(String(20))
    #: the applicant's words, scrubbed when shown
    comment: Mapped[str | None] = mapped_column(Text)
    #: where it was left: window (评价器), portal (网上), app, sms (短信回复)
    channel: Mapped[str] = mapped_column(String(10))
    evaluated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: the consumer that recorded it (the portal or the window acting for the applicant)
    recorded_by: Mapped[str] = mapped_column(String(100))


class CaseConclusion(Base):
    """办结: a case concluded with its outcome, the licences its stages promised, and those still missing.

    Written once, when the case's log first adds up to concluded or rejected; ``missing`` is brought
    up to date by the supervision task until every promised licence is in the store (``complete``),
    and a case still missing one after the grace period is flagged (``flagged_at``) and announced."""

    __tablename__ = "case_conclusion"
    __table_args__ = (Index("ix_case_conclusion_complete", "complete"),)

    case_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("case_record.id", name="fk_case_conclusion_case"), primary_key=True
    )
    #: ``granted`` (every stage approved) or ``rejected`` (不予许可)
    outcome: Mapped[str] = mapped_column(String(10))
    #: when the last stage's result was issued
    concluded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: [{"department", "license_type_code"}]: the licences the approved stages issue (catalogue ``yields``)
    expected: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    #: those of ``expected`` not (yet) in the e-licence store under the case's supervision code
    missing: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    complete: Mapped[bool] = mapped_column(Boolean, default=True)
    checked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    flagged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
