"""The applicant told (短信告知): a notice at acceptance, at each correction request, at conclusion
and when the result is posted, to the contact number given at intake.

The notices are worked out from the case's log each time it is re-read
(:func:`cases.service.refresh`, for one step and for a batch alike), and written to the outbox in
the same transaction as the step that calls for them, as ``case.notice`` events. Each has an
idempotency key naming the case and what it answers — ``case.notice:<code>:accepted``,
``…:correction:<department>:<seq>``, ``…:concluded``, ``…:posted:<seq>`` — so a step re-read or a
batch retried never announces a notice twice. The delivery worker sends them through the SMS
gateway's connector (:mod:`connectors.sms`) like any other push: retried with backoff,
dead-lettered, replayable, in order per case; a notice that cannot be sent holds back only the
case's later notices, never the case.

The number is the one the intake form gave: the applicant's, else the agent's (代办员), never one
looked up elsewhere; a case with neither gets no notice. The event carries no personal data — the
case, the notice, the template and its parameters, and whose number it goes to (``applicant`` or
``agent``); the delivery worker reads the number and the name from the case when it sends
(:func:`contacts`), so the outbox and its archive never hold them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.catalogue import WINDOW, Catalogue, load_catalogue
from cases.notice_templates import Templates
from cases.steps import LoggedStep, Step
from cases.tables import CaseRecord
from hub.outbox import emit_many
from identifiers import supervision_code

NOTICE_EVENT = "case.notice"
#: the longest list of missing materials a notice names (gateways bound a parameter's length)
MATERIALS_CHARS = 60


def recipient(case: CaseRecord) -> tuple[str, str, str] | None:
    """(``applicant`` or ``agent``, phone, name) of the contact number given at intake, or ``None``."""
    if (case.applicant_phone or "").strip():
        return "applicant", str(case.applicant_phone).strip(), case.applicant_name
    agent = case.agent or {}
    if str(agent.get("phone") or "").strip():
        return "agent", str(agent["phone"]).strip(), str(agent.get("name") or "")
    return None


def contacts(session: Session, codes: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(phone, name) of each case's recipient (:func:`recipient`), by supervision code: what the
    delivery worker adds to a notice as it sends it."""
    out: dict[str, tuple[str, str]] = {}
    wanted_codes = sorted(set(codes))
    for lo in range(0, len(wanted_codes), 1000):
        for case in session.scalars(select(CaseRecord).where(CaseRecord.code.in_(wanted_codes[lo : lo + 1000]))):
            to = recipient(case)
            if to is not None:
                out[case.code] = (to[1], to[2])
    return out


def wanted(case: CaseRecord, timeline: Sequence[LoggedStep], status: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The notices the case's log calls for, in its order: (key suffix, notice kind, parameters)."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    for s in timeline:
        if s.impossible is not None:
            continue
        detail: Mapping[str, Any] = s.detail or {}
        if s.department == WINDOW and s.step is Step.ACCEPTED:
            if case.promised_days:
                out.append(("accepted", "accepted", {"days": case.promised_days}))
            else:  # an on-the-spot item (即办件): "within 0 working days" would read oddly
                out.append(("accepted", "accepted_on_the_spot", {}))
        elif s.step is Step.CORRECTION_REQUESTED:
            names = "、".join(str(m.get("name", "")) for m in detail.get("missing") or ())
            if len(names) > MATERIALS_CHARS:
                names = names[: MATERIALS_CHARS - 1] + "…"
            out.append((f"correction:{s.department}:{s.seq}", "correction_requested", {"materials": names}))
        elif s.department == WINDOW and s.step is Step.DELIVERED and detail.get("tracking_number"):
            out.append((f"posted:{s.seq}", "posted",
                        {"carrier": detail.get("carrier", ""), "tracking": detail["tracking_number"]}))  # fmt: skip
    if status == "concluded":
        out.append(("concluded", "concluded_post" if case.delivery_method == "post" else "concluded_pickup", {}))
    elif status == "rejected":
        out.append(("concluded", "rejected", {}))
    return out


def notify(
    session: Session,
    case: CaseRecord,
    timeline: Sequence[LoggedStep],
    status: str,
    *,
    catalogue: Catalogue | None = None,
) -> int:
    """Write the notices ``case``'s log calls for that are not in the outbox yet; returns how many."""
    return emit_many(session, events(case, timeline, status, catalogue=catalogue))


def events(
    case: CaseRecord, timeline: Sequence[LoggedStep], status: str, *, catalogue: Catalogue | None = None
) -> list[dict[str, Any]]:
    """The outbox events of the notices ``case``'s log calls for (:func:`hub.outbox.emit_many`'s form)."""
    templates = (catalogue or load_catalogue()).notices
    to = recipient(case)
    if templates is None or to is None:
        return []
    return [_event(case, templates, to, suffix, kind, params) for suffix, kind, params in
            wanted(case, timeline, status)]  # fmt: skip


def _event(
    case: CaseRecord, templates: Templates, to: tuple[str, str, str], suffix: str, kind: str, params: dict[str, Any]
) -> dict[str, Any]:
    template = templates.template(kind)
    role = to[0]
    filled = {"item": case.item_name, "code": supervision_code.format(case.code), **params}
    payload = {
        "code": case.code, "notice": kind, "recipient": role,
        "sign_name": templates.signature, "template_code": template.template_code,
        "params": {k: str(v) for k, v in filled.items() if k in template.parameters},
    }  # fmt: skip
    return {
        "event_type": NOTICE_EVENT,
        "subject": case.code,
        "region_code": case.region_code,
        "payload": payload,
        "idempotency_key": f"{NOTICE_EVENT}:{case.code}:{suffix}",
    }
