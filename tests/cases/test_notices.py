"""The applicant told: notices at acceptance, each correction request and conclusion, from the case's
log, to the number given at intake, once per idempotency key — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select

from cases import intake, notices, service
from cases.catalogue import load_catalogue
from cases.ingest import ReportedStep, ingest_steps, settle
from cases.schemas import IntakeIn, StepIn
from cases.steps import Step
from cases.supervision_tables import CaseConclusion
from hub.models import OutboxEvent
from tests.cases import world as w
from tests.cases.world import World, joint_registration

CST = dt.timezone(dt.timedelta(hours=8))


def at(day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=CST)


def take_in(city: World, body: dict[str, Any]) -> str:
    with city.sessions() as s:
        code = intake.take_in(s, IntakeIn.model_validate(body), actor="window", now=at(16, 9)).case.code
        s.commit()
    return code


def step(city: World, code: str, department: str, seq: int, kind: Step, day: int, **extra: Any) -> None:
    with city.sessions() as s:
        body = StepIn(seq=seq, step=kind, occurred_at=at(day), **extra)
        service.record_step(s, code, department, body, actor=department, now=at(day, 12))
        s.commit()


def conclude(city: World, code: str) -> None:
    """Every stage of the joint registration approved and its result issued (commerce first)."""
    for department in ("commerce", "tax", "public_security"):
        for seq, kind in enumerate((Step.ACCEPTED, Step.APPROVED, Step.RESULT_ISSUED), start=1):
            step(city, code, department, seq, kind, 17)


def sent(city: World, code: str) -> list[OutboxEvent]:
    with city.sessions() as s:
        q = select(OutboxEvent).where(OutboxEvent.event_type == notices.NOTICE_EVENT, OutboxEvent.subject == code)
        return list(s.scalars(q.order_by(OutboxEvent.id)))


def test_an_on_the_spot_item_is_told_so_not_within_zero_working_days(city: World) -> None:
    """开具纳税证明 is promised in 0 working days (即办件): its acceptance uses the on-the-spot template."""
    body = {"item_code": "GG00201000", "applicant": {"code": w.P1, "name": "陈海生", "phone": w.PHONE},
            "materials": [{"code": "M01", "provided": "upload"}]}  # fmt: skip
    code = take_in(city, body)
    (accepted,) = sent(city, code)
    templates = load_catalogue().notices
    assert templates is not None
    template = templates.template("accepted_on_the_spot")
    assert accepted.idempotency_key == f"case.notice:{code}:accepted"
    assert (accepted.payload["notice"], accepted.payload["template_code"]) == ("accepted_on_the_spot",
                                                                              template.template_code)  # fmt: skip
    assert "days" not in accepted.payload["params"]
    text = template.render({**accepted.payload["params"], "name": "陈**"})
    assert "当场办结" in text and "0个工作日" not in text


def test_accepted_corrected_and_concluded_each_told_once(city: World) -> None:
    code = take_in(city, joint_registration(received_at=at(16, 9).isoformat()))
    step(city, code, "commerce", 1, Step.ACCEPTED, 16)
    missing = [{"code": "M02", "name": "公司章程"}, {"name": "股东会决议"}]
    step(city, code, "commerce", 2, Step.CORRECTION_REQUESTED, 16, missing=missing)
    step(city, code, "commerce", 3, Step.RESUMED, 17)
    for department in ("commerce", "tax", "public_security"):
        first = 4 if department == "commerce" else 1
        kinds = (Step.APPROVED, Step.RESULT_ISSUED) if department == "commerce" else (
            Step.ACCEPTED, Step.APPROVED, Step.RESULT_ISSUED)  # fmt: skip
        for seq, kind in enumerate(kinds, start=first):
            step(city, code, department, seq, kind, 17)
    events = sent(city, code)
    assert [e.idempotency_key for e in events] == [
        f"case.notice:{code}:accepted",
        f"case.notice:{code}:correction:commerce:2",
        f"case.notice:{code}:concluded",
    ]
    templates = load_catalogue().notices
    assert templates is not None
    accepted, correction, concluded = (e.payload for e in events)
    assert accepted == {
        "code": code, "notice": "accepted", "recipient": "applicant",
        "sign_name": templates.signature, "template_code": templates.template("accepted").template_code,
        "params": {"item": "企业设立登记（多证联办）", "code": f"{code[:6]}-{code[6:14]}-{code[14:]}", "days": "3"},
    }  # fmt: skip
    assert correction["params"]["materials"] == "公司章程、股东会决议"
    assert (concluded["notice"], concluded["template_code"]) == (
        "concluded_pickup", templates.template("concluded_pickup").template_code)  # fmt: skip
    # no personal data in an event: the worker reads the number and the name from the case as it sends
    text = json.dumps([(e.idempotency_key, e.payload) for e in events], ensure_ascii=False)
    assert w.PHONE not in text and "陈海生" not in text and w.P1 not in text
    with city.sessions() as s:
        assert notices.contacts(s, [code]) == {code: (w.PHONE, "陈海生")}
    # re-reading the case announces nothing again
    with city.sessions() as s:
        service.refresh(s, service.find_case(s, code), at(18))
        s.commit()
    assert len(sent(city, code)) == 3


def test_a_case_to_post_is_told_it_is_posted_with_the_tracking_number(city: World) -> None:
    body = joint_registration(delivery={"method": "post", "address": w.ADDRESS})
    code = take_in(city, body)
    conclude(city, code)
    step(city, code, "window", 3, Step.DELIVERED, 18, carrier="中国邮政EMS", tracking_number="1187654321098")
    kinds = [(e.payload["notice"], e.payload["params"]) for e in sent(city, code)]
    assert kinds[1:] == [
        ("concluded_post", {"item": "企业设立登记（多证联办）", "code": kinds[1][1]["code"]}),
        ("posted", {"item": "企业设立登记（多证联办）", "code": kinds[1][1]["code"], "carrier": "中国邮政EMS",
                    "tracking": "1187654321098"}),
    ]  # fmt: skip


def test_the_window_s_correction_request_at_intake_is_told(city: World) -> None:
    body = joint_registration()
    body["materials"] = [m for m in body["materials"] if m["code"] != "M02"]
    code = take_in(city, body)
    (event,) = sent(city, code)
    assert event.idempotency_key == f"case.notice:{code}:correction:window:2"
    assert event.payload["params"]["materials"] == "公司章程"


def test_the_agent_s_number_when_the_applicant_gave_none_and_no_notice_without_a_number(city: World) -> None:
    applicant = {"code": w.P1, "name": w.NAMES[w.P1]}
    agent = {"code": w.AGENT, "name": w.NAMES[w.AGENT], "phone": "13957700001", "authorisation": "委托书 2026-11"}
    code = take_in(city, joint_registration(applicant=w.P1) | {"applicant": applicant, "agent": agent})
    (event,) = sent(city, code)
    assert event.payload["recipient"] == "agent"
    with city.sessions() as s:
        assert notices.contacts(s, [code]) == {code: ("13957700001", "王建国")}
    silent = take_in(city, joint_registration() | {"applicant": applicant})
    assert sent(city, silent) == []


def test_steps_in_bulk_conclude_the_case_and_tell_the_applicant_once(city: World) -> None:
    code = take_in(city, joint_registration())
    reported = [
        ReportedStep(code, department, seq, kind.value, at(17, 10 + seq + (0 if department == "commerce" else 3)))
        for department in ("commerce", "tax", "public_security")
        for seq, kind in enumerate((Step.ACCEPTED, Step.APPROVED, Step.RESULT_ISSUED), start=1)
    ]
    for _ in range(2):  # the batch again (a retried task): nothing new
        with city.sessions() as s:
            done = ingest_steps(s, reported, actor="feed", now=at(18))
            settle(s, [service.find_case(s, code).id], now=at(18))
            s.commit()
    assert done.appended == 0 and done.resent == len(reported)
    assert [e.payload["notice"] for e in sent(city, code)] == ["accepted", "concluded_pickup"]
    with city.sessions() as s:
        (row,) = s.scalars(select(CaseConclusion))
        assert (row.outcome, [e["license_type_code"] for e in row.expected]) == ("granted", ["1101", "1102", "1103"])
