"""Tables of the case repository (办件库), declared on :class:`hub.db.Base`; the Alembic branch ``cases`` creates them.

- ``case_record`` — one application (办件) under its supervision code: the item, the applicant
  and agent, delivery, the intake outcome and the current status (a summary of the step log,
  kept for lists and filters);
- ``case_material`` — each material the item requires and how it was provided: a licence the
  hub holds (which one, which version), paper, an upload, promised for later (容缺), a written
  commitment (告知承诺) or missing;
- ``case_dispatch`` — one row per department with a stage in the case, with the stages it waits for;
- ``case_authorisation`` — the applicant's (or a party's) authorisation to use their licences for
  this case (授权): which materials and licences, for which purpose, until when; revocable;
- ``case_step`` — the step log (办理环节记录): **append-only**. A step is never updated or deleted;
  a correction is a new step. Database triggers refuse UPDATE and DELETE (migration
  ``cases_0001``) and the ORM refuses to flush a change to a loaded step
  (:func:`_refuse_changes`). Idempotent per (case, department, seq).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from hub.db import Base
from hub.models import BigId, utcnow


class CaseRecord(Base):
    """One application (办件) under its supervision code (统一服务监管码)."""

    __tablename__ = "case_record"
    __table_args__ = (
        Index("ix_case_record_applicant", "applicant_code", "received_at"),
        Index("ix_case_record_status", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: the supervision code, compact (:mod:`identifiers.supervision_code`)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    item_code: Mapped[str] = mapped_column(String(12))
    item_name: Mapped[str] = mapped_column(String(200))
    implementation_code: Mapped[str] = mapped_column(String(40))
    lead_department: Mapped[str] = mapped_column(String(40))
    region_code: Mapped[str] = mapped_column(String(6))
    statutory_days: Mapped[int] = mapped_column(Integer)
    promised_days: Mapped[int] = mapped_column(Integer)
    #: ``window`` or the department whose own counter took it in
    received_by: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: the day in the hub's timezone (the supervision code carries it)
    received_on: Mapped[dt.date] = mapped_column(Date)
    #: ``accepted`` 受理, ``accepted_pending`` 容缺受理, ``accepted_on_commitment`` 告知承诺,
    #: ``correction_required`` 一次性告知 (补正), ``not_accepted`` 不予受理
    intake_outcome: Mapped[str] = mapped_column(String(30))
    #: reasons of a refusal, everything missing of a correction request
    outcome_detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: summary of the step log (:func:`cases.steps.case_status`)
    status: Mapped[str] = mapped_column(String(30))
    applicant_kind: Mapped[str] = mapped_column(String(12))
    #: canonical resident id or USCC (the code licences are filed under)
    applicant_code: Mapped[str] = mapped_column(String(40))
    #: ``master_index`` or ``provisional`` (not in the identity index; the item allows it)
    applicant_identity: Mapped[str] = mapped_column(String(20))
    applicant_name: Mapped[str] = mapped_column(String(200))
    applicant_phone: Mapped[str | None] = mapped_column(String(40))
    applicant_address: Mapped[str | None] = mapped_column(String(300))
    #: 代办员: {"code", "name", "phone", "authorisation"} — the applicant's written authorisation's reference
    agent: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: other parties by role: {"transferor": {"kind", "code", "name", "identity"}}
    parties: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: ``pickup`` (at the window) or ``post`` (快递送达)
    delivery_method: Mapped[str] = mapped_column(String(10))
    delivery_address: Mapped[str | None] = mapped_column(String(300))
    #: what the application is about in the applicant's words (e.g. the enterprise name to register)
    subject: Mapped[str | None] = mapped_column(Text)
    #: keyed digest of the intake's idempotency key and its consumer (no key is kept as sent)
    intake_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: SHA-256 of the intake request as received: a repeat with the same key must match it
    intake_fingerprint: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CaseMaterial(Base):
    """A material of a case and how it was provided (申请材料)."""

    __tablename__ = "case_material"
    __table_args__ = (
        UniqueConstraint("case_id", "material_code", name="uq_case_material_case_material"),
        Index("ix_case_material_license", "license_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id", name="fk_case_material_case"))
    material_code: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(200))
    required: Mapped[bool] = mapped_column(Boolean)
    #: ``applicant`` or a party's role
    holder_role: Mapped[str] = mapped_column(String(40))
    license_type_code: Mapped[str | None] = mapped_column(String(8))
    #: ``licence``, ``paper``, ``upload``, ``promised``, ``commitment``, ``missing`` or ``not_provided`` (optional)
    provision: Mapped[str] = mapped_column(String(12))
    #: the licence (and version) that stands for it (免提交)
    license_id: Mapped[str | None] = mapped_column(String(64))
    license_version: Mapped[int | None] = mapped_column(Integer)
    #: ``hub`` (found among the holder's valid licences) or ``applicant`` (named at intake)
    found_by: Mapped[str | None] = mapped_column(String(12))
    #: 容缺: the day the applicant promised to bring it
    promised_by: Mapped[dt.date | None] = mapped_column(Date)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CaseDispatch(Base):
    """A department's stage of a case (分办): created when the case is accepted; delivery is a later step."""

    __tablename__ = "case_dispatch"
    __table_args__ = (UniqueConstraint("case_id", "department", name="uq_case_dispatch_case_department"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id", name="fk_case_dispatch_case"))
    department: Mapped[str] = mapped_column(String(40))
    stage_name: Mapped[str] = mapped_column(String(200))
    #: departments whose stage must conclude first
    after: Mapped[list[str]] = mapped_column(JSON, default=list)
    statutory_days: Mapped[int] = mapped_column(Integer)
    promised_days: Mapped[int] = mapped_column(Integer)
    #: ``pending``: waiting for the stages it comes after; ``dispatched``: announced to the
    #: department (``case.dispatched``, :mod:`cases.dispatch`)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class CaseAuthorisation(Base):
    """A holder's authorisation to use their licences for one case and purpose, until a time (授权).

    Without one, a licence material of that holder is not looked up and is requested as paper;
    a department reads a recognised licence of the case only while it is in force (not revoked,
    not past ``valid_until``), and the audit entry of that read names its ``ref``.
    """

    __tablename__ = "case_authorisation"
    __table_args__ = (
        UniqueConstraint("ref", name="uq_case_authorisation_ref"),
        UniqueConstraint("case_id", "holder_role", name="uq_case_authorisation_case_holder"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: its public reference (no personal data): ``AU`` and 12 hexadecimal digits
    ref: Mapped[str] = mapped_column(String(20))
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id", name="fk_case_authorisation_case"))
    #: who granted it: ``applicant`` or a party's role
    holder_role: Mapped[str] = mapped_column(String(40))
    #: the material codes it covers (licence materials of that holder)
    materials: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: the licences found for them at intake: [{"material", "license_id", "version"}]
    licences: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    purpose: Mapped[str] = mapped_column(String(200))
    #: the reference of the written (or signed electronic) authorisation, if the window has one
    reference: Mapped[str | None] = mapped_column(String(200))
    granted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    granted_by: Mapped[str] = mapped_column(String(100))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(100))
    revocation_reason: Mapped[str | None] = mapped_column(String(500))


class CaseStep(Base):
    """One step of one department in a case (一环节一记录); append-only."""

    __tablename__ = "case_step"
    __table_args__ = (
        UniqueConstraint("case_id", "department", "seq", name="uq_case_step_case_department_seq"),
        Index("ix_case_step_case_time", "case_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id", name="fk_case_step_case"))
    #: ``window`` or a department of the catalogue
    department: Mapped[str] = mapped_column(String(40))
    #: the department's own numbering of its steps in this case (1, 2, …)
    seq: Mapped[int] = mapped_column(Integer)
    #: :class:`cases.steps.Step`
    step: Mapped[str] = mapped_column(String(30))
    #: when it happened, as the department reports it
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: when the hub recorded it
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: the consumer (or ``operator:<user>``, ``hub``) that reported it
    actor: Mapped[str] = mapped_column(String(100))
    #: the department's words (an opinion, a reason); free text, scrubbed when shown
    note: Mapped[str | None] = mapped_column(Text)
    #: structured detail: missing materials of a correction request, reasons, materials supplied
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: it arrived after a step of the same department that happened later
    arrived_out_of_order: Mapped[bool] = mapped_column(Boolean, default=False)
    #: SHA-256 of what was reported (step, time, note, detail): a resend must match it
    fingerprint: Mapped[str] = mapped_column(String(64))


class StepLogAppendOnly(RuntimeError):
    """A change to a recorded step was attempted (the step log is append-only)."""


@event.listens_for(CaseStep, "before_update")
@event.listens_for(CaseStep, "before_delete")
def _refuse_changes(_mapper: Mapper[Any], _connection: Any, target: CaseStep) -> None:
    raise StepLogAppendOnly(f"case_step {target.id} is part of the append-only step log: record a new step instead")
