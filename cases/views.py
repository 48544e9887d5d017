"""A case as it leaves the hub (API answers, CLI output), with personal data masked by kind.

The personal-data kinds of a case's values are declared here, where its shape is
(:data:`APPLICANT_KINDS`, :data:`AGENT_KINDS`, :data:`PARTY_KINDS`, :data:`DELIVERY_KINDS`), and
masked by the one policy (:func:`hub.masking.mask`) unless the reader may see personal data:
an applicant's or a party's code and name are masked when they are a person's (or a sole
proprietor's name), kept when an enterprise's; an agent is a person; phones and addresses
always. The subject is the applicant's matter in the window's words (an enterprise to register, a
property's location, the buyer's name): it is masked as text naming persons. Every other text —
departments' notes, reasons, the names of missing materials — is scrubbed (resident ids and phones
found by their shape), as free text is everywhere in the hub.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases import authorisation
from cases import conclusion as concl
from cases import evaluation as evaluations
from cases import service as svc
from cases.schemas import (
    CaseOut,
    CaseSummary,
    ConclusionOut,
    DeliveryOut,
    ItemOut,
    MaterialOut,
    MissingOut,
    PartyOut,
    PromisedOut,
    ResultOut,
    StageOut,
    StepOut,
)
from cases.supervision_tables import CaseConclusion, CaseEvaluation
from cases.tables import CaseAuthorisation, CaseDispatch, CaseMaterial, CaseRecord, CaseStep
from e_license_store.index import LicenseIndexRow, license_row, licenses_of_case
from hub.masking import Party, Personal, mask, mask_fields, scrub_text
from hub.models import utcnow
from identifiers import supervision_code

APPLICANT_KINDS: dict[str, Personal | None] = {
    "code": Personal.CODE, "name": Personal.PARTY_NAME, "phone": Personal.PHONE, "address": Personal.ADDRESS,
}  # fmt: skip
PARTY_KINDS: dict[str, Personal | None] = {"code": Personal.CODE, "name": Personal.PARTY_NAME}
#: 代办员: always a natural person
AGENT_KINDS: dict[str, Personal | None] = {
    "code": Personal.RESIDENT_ID, "name": Personal.NAME, "phone": Personal.PHONE, "authorisation": None,
}  # fmt: skip
DELIVERY_KINDS: dict[str, Personal | None] = {"address": Personal.ADDRESS}
#: the case's subject (事由) as the window wrote it
SUBJECT_KIND = Personal.PERSON_TEXT
#: Fields of a party view that are the hub's own words, never personal
_PLAIN = ("role", "kind", "identity")


def _masked(values: Mapping[str, Any], kinds: Mapping[str, Personal | None], party: Party | None) -> dict[str, Any]:
    plain = {k: values[k] for k in _PLAIN if k in values}
    return {**mask_fields({k: v for k, v in values.items() if k not in _PLAIN}, kinds, party=party), **plain}


def _text(value: str | None, personal: bool) -> str | None:
    return value if personal or value is None else scrub_text(value)


def party_out(role: str, values: Mapping[str, Any], kinds: Mapping[str, Personal | None], personal: bool) -> PartyOut:
    data = {"role": role, **{k: v for k, v in values.items() if k in PartyOut.model_fields}}
    if not personal:
        data = _masked(data, kinds, Party(values.get("kind"), values.get("code")))
    return PartyOut.model_validate(data)


def applicant_out(case: CaseRecord, personal: bool) -> PartyOut:
    values = {
        "kind": case.applicant_kind, "code": case.applicant_code, "name": case.applicant_name,
        "phone": case.applicant_phone, "address": case.applicant_address, "identity": case.applicant_identity,
    }  # fmt: skip
    return party_out("applicant", values, APPLICANT_KINDS, personal)


def _missing(entries: Any, personal: bool) -> list[MissingOut]:
    out = []
    for e in entries or ():
        out.append(MissingOut(code=e.get("code"), name=_text(e["name"], personal) or "",
                              reason=_text(e.get("reason"), personal)))  # fmt: skip
    return out


def step_out(row: CaseStep, impossible: str | None, personal: bool) -> StepOut:
    detail = dict(row.detail or {})
    reasons = detail.get("reasons")
    supplied = detail.get("supplied")
    return StepOut(
        department=row.department, seq=row.seq, step=row.step, occurred_at=svc.utc(row.occurred_at),
        recorded_at=svc.utc(row.recorded_at), actor=row.actor, note=_text(row.note, personal),
        missing=_missing(detail["missing"], personal) if "missing" in detail else None,
        supplied=[s["code"] for s in supplied] if supplied else None,
        reasons=[_text(r, personal) or "" for r in reasons] if reasons is not None else None,
        outcome=detail.get("outcome"), arrived_out_of_order=row.arrived_out_of_order, impossible=impossible,
    )  # fmt: skip


@dataclass(frozen=True)
class CaseRows:
    """Everything a case's answer is made of, as read from the database: the case, its log, dispatches,
    authorisations and materials, the licences its materials name (by id), the licences issued for it
    and, once concluded, its conclusion and evaluation.

    :func:`gather` reads them through a session; the API's timeline read takes them with a few
    precompiled statements (:mod:`recognition.case_reads`). :func:`render` makes the answer from
    either, so both give the same answer.
    """

    case: CaseRecord
    steps: Sequence[CaseStep]
    dispatches: Sequence[CaseDispatch]
    consents: Sequence[CaseAuthorisation]
    materials: Sequence[CaseMaterial]
    licences: Mapping[str, LicenseIndexRow]
    results: Sequence[LicenseIndexRow]
    conclusion: CaseConclusion | None
    evaluation: CaseEvaluation | None
    #: the log and dispatches read already (:func:`cases.service.reading` of these rows), where the
    #: writer of a new case worked it out; else :func:`render` reads them
    reading: svc.Reading | None = None


def gather(session: Session, case: CaseRecord) -> CaseRows:
    """The rows of ``case`` through ``session`` (each table read once)."""
    materials = list(
        session.scalars(
            select(CaseMaterial).where(CaseMaterial.case_id == case.id).order_by(CaseMaterial.material_code)
        )
    )
    licences = {}
    for m in materials:
        if m.license_id and m.license_id not in licences:
            row = license_row(session, m.license_id)
            if row is not None:
                licences[m.license_id] = row
    concluded = case.status in evaluations.CONCLUDED
    return CaseRows(
        case=case, steps=svc.log(session, case), dispatches=svc.dispatches(session, case),
        consents=authorisation.of_case(session, case), materials=materials, licences=licences,
        results=licenses_of_case(session, case.code),
        conclusion=session.get(CaseConclusion, case.id) if concluded else None,
        evaluation=(
            session.scalar(select(CaseEvaluation).where(CaseEvaluation.case_id == case.id)) if concluded else None
        ),
    )  # fmt: skip


def case_out(session: Session, case: CaseRecord, *, personal: bool, replayed: bool = False) -> CaseOut:
    """The whole case: item, parties, materials, stages and the timeline (masked unless ``personal``)."""
    return render(gather(session, case), personal=personal, replayed=replayed)


def render(found: CaseRows, *, personal: bool, replayed: bool = False, now: dt.datetime | None = None) -> CaseOut:
    """The answer for a case's rows (no database access): :func:`case_out` without the reads."""
    case, rows, dispatch_rows, consents = found.case, found.steps, found.dispatches, found.consents
    reading = found.reading or svc.reading(case, rows, dispatch_rows)
    by_key = {(r.department, r.seq): r for r in rows}
    timeline = [step_out(by_key[(s.department, s.seq)], s.impossible, personal) for s in reading.timeline]
    stage_state = {v.department: v.state for v in reading.stages}
    stages = [
        StageOut(department=d.department, name=d.stage_name, after=list(d.after or ()), statutory_days=d.statutory_days,
                 promised_days=d.promised_days, state=stage_state.get(d.department, "open"))
        for d in dispatch_rows
    ]  # fmt: skip
    materials = _materials(found.materials, found.licences, reading.status, consents)
    now = now or utcnow()
    authorisations = [
        authorisation.out(a, now, text=_text(a.revocation_reason, personal)).model_copy(
            update={"purpose": _text(a.purpose, personal) or "", "reference": _text(a.reference, personal)}
        )
        for a in consents
    ]
    agent = None
    if case.agent:
        agent = party_out("agent", {**case.agent, "kind": "person"}, AGENT_KINDS, personal)
    others = [party_out(role, p, PARTY_KINDS, personal) for role, p in (case.parties or {}).items()]
    delivery = {"method": case.delivery_method, "address": case.delivery_address}
    if not personal:
        delivery = mask_fields(delivery, DELIVERY_KINDS)
    detail = case.outcome_detail or {}
    results = found.results
    concluded = conclusion_out(found.conclusion, results, reading.timeline)
    flags = [f"{m.code}:{m.flag}" for m in materials if m.flag]
    flags += [f"licence_missing:{t}" for t in (concluded.missing if concluded else ())]
    evaluation = (
        evaluations.out(found.evaluation, case.code, personal=personal) if found.evaluation is not None else None
    )
    return CaseOut(
        code=case.code, printed_code=supervision_code.format(case.code),
        item=ItemOut(code=case.item_code, name=case.item_name, implementation_code=case.implementation_code,
                     lead_department=case.lead_department, statutory_days=case.statutory_days,
                     promised_days=case.promised_days),
        status=case.status, intake_outcome=case.intake_outcome, received_at=svc.utc(case.received_at),
        received_by=case.received_by, applicant=applicant_out(case, personal), agent=agent, parties=others,
        delivery=DeliveryOut.model_validate(delivery), materials=materials, authorisations=authorisations,
        results=[
            ResultOut(license_id=r.license_id, license_type_code=r.license_type_code,
                      license_type_name=r.license_type_name, issuer_code=r.issuer_code, issuer_name=r.issuer_name,
                      issue_date=r.issue_date, version=r.version, status=r.status)
            for r in results
        ],
        conclusion=concluded, flags=flags, evaluation=evaluation,
        subject=case.subject if personal or case.subject is None else str(mask(case.subject, SUBJECT_KIND)),
        missing=_missing(detail.get("missing"), personal),
        reasons=[_text(r, personal) or "" for r in detail.get("reasons") or ()], stages=stages,
        held_by=reading.held_by, timeline=timeline, masked=not personal, replayed=replayed,
    )  # fmt: skip


def conclusion_out(row: CaseConclusion | None, results: Sequence[Any], timeline: Sequence[Any]) -> ConclusionOut | None:
    """The case's conclusion with the licences issued for it now (a promised type without one is missing)."""
    if row is None:
        return None
    issued: dict[str, str] = {}
    for r in results:
        issued.setdefault(r.license_type_code, r.license_id)
    promised = [PromisedOut(department=e["department"], license_type_code=e["license_type_code"],
                            license_id=issued.get(e["license_type_code"])) for e in row.expected]  # fmt: skip
    out = concl.output(timeline) or {}
    return ConclusionOut(
        outcome=row.outcome, concluded_at=svc.utc(row.concluded_at), licences=promised,
        missing=[p.license_type_code for p in promised if p.license_id is None], flagged=row.flagged_at is not None,
        output=out.get("method"), output_at=out.get("at"), carrier=out.get("carrier"),
        tracking_number=out.get("tracking_number"),
    )  # fmt: skip


#: Case statuses in which nothing more happens: a licence revoked then no longer needs a look
CLOSED = frozenset({"concluded", "withdrawn", "not_accepted", "rejected"})


def _materials(
    rows: Sequence[CaseMaterial],
    licences: Mapping[str, LicenseIndexRow],
    status: str,
    consents: Sequence[CaseAuthorisation],
) -> list[MaterialOut]:
    out = []
    for m in rows:
        row = licences.get(m.license_id) if m.license_id else None
        flag = f"licence_{row.status}" if row is not None and row.status != "valid" and status not in CLOSED else None
        under = authorisation.covering(consents, m.holder_role, m.material_code) if m.license_id else None
        out.append(
            MaterialOut(
                code=m.material_code, name=m.name, required=m.required, holder=m.holder_role,
                license_type=m.license_type_code, provision=m.provision, license_id=m.license_id,
                license_version=m.license_version, found_by=m.found_by, promised_by=m.promised_by,
                authorisation=under.ref if under else None, licence_status=row.status if row else None, flag=flag,
            )
        )  # fmt: skip
    return out


def case_summary(session: Session, case: CaseRecord, *, personal: bool) -> CaseSummary:
    reading = svc.read(session, case)
    return CaseSummary(
        code=case.code, printed_code=supervision_code.format(case.code), item_code=case.item_code,
        item_name=case.item_name, status=case.status, intake_outcome=case.intake_outcome,
        received_at=svc.utc(case.received_at), applicant=applicant_out(case, personal), held_by=reading.held_by,
    )  # fmt: skip


def holder_shown(code: str, kind: str | None, personal: bool) -> str:
    """A holder code as a list of cases names it (a person's masked without ``personal``)."""
    return code if personal else str(mask(code, Personal.CODE, party=Party(kind, code)))
