"""Joint issuance and the one output window: a concluded case with its outcome, the licences its
departments issued listed together, the output picked up or posted, and a promised licence that
never arrived flagged and announced once — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from cases import conclusion, notices, service, supervision
from cases.clock import CASE
from cases.schemas import StepIn
from cases.steps import Step
from cases.supervision_tables import CaseClock, CaseConclusion, CaseLightChange
from cases.views import case_out
from e_license_store.model import LicenseDraft
from hub.models import OutboxEvent, utcnow
from identifiers import supervision_code
from mappings.canonical.models import HolderKind, SourceRef
from rigs.testing import schema_drift
from tests.cases import world as w
from tests.cases.test_notices import at, conclude, step, take_in
from tests.cases.world import World, joint_registration

NEW_FIRM = w.uscc("330322", "55667788")
NAME = "温州洞头海霞科技有限公司"
ISSUERS = {
    "1101": ("commerce", "113303220025678958", {"enterprise_name": NAME}),
    "1102": ("tax", "11330322002567334J", {"taxpayer_name": NAME}),
    "1103": ("public_security", "113303220025675452", {"enterprise_name": NAME, "seal_types": "公章"}),
}


def issue(city: World, code: str, type_code: str) -> str:
    """The department's licence for the case, through the e-licence store (its record names the case)."""
    department, issuer, surface = ISSUERS[type_code]
    draft = LicenseDraft(
        license_type_code=type_code, license_number=f"N-{type_code}-{code[-6:]}", holder_name=NAME,
        holder_code=NEW_FIRM, holder_kind=HolderKind.enterprise, issuer_code=issuer, issue_date=dt.date(2026, 11, 17),
        surface=surface, case_code=supervision_code.format(code),
    )  # fmt: skip
    source = SourceRef(department=department, dataset="ds", source_key=f"{code}-{type_code}", source_version="v1",
                       run_id="run-1")  # fmt: skip
    return city.service.issue(draft, source).license_id


def view(city: World, code: str):  # type: ignore[no-untyped-def]
    with city.sessions() as s:
        return case_out(s, service.find_case(s, code), personal=True)


def check(city: World, now: dt.datetime) -> conclusion.Checked:
    with city.sessions() as s:
        done = conclusion.check_missing(s, now=now)
        s.commit()
    return done


def test_the_licences_issued_together_and_a_missing_one_flagged_once(city: World) -> None:
    code = take_in(city, joint_registration(received_at=at(16, 9).isoformat()))
    ids = {t: issue(city, code, t) for t in ("1101", "1102")}  # the seal filing (1103) never arrives
    conclude(city, code)
    out = view(city, code)
    assert out.status == "concluded" and out.conclusion is not None
    assert (out.conclusion.outcome, out.conclusion.concluded_at) == ("granted", at(17))
    assert [(p.department, p.license_type_code, p.license_id) for p in out.conclusion.licences] == [
        ("commerce", "1101", ids["1101"]), ("tax", "1102", ids["1102"]), ("public_security", "1103", None)]  # fmt: skip
    assert out.conclusion.missing == ["1103"] and "licence_missing:1103" in out.flags
    assert sorted(r.license_id for r in out.results) == sorted(ids.values())
    assert (out.conclusion.output, out.held_by) == (None, ["window"])  # waits at the window
    concluded_at = at(17).astimezone(dt.UTC)
    assert check(city, concluded_at + dt.timedelta(hours=1)) == conclusion.Checked(1, 0, 0)  # within the grace
    late = concluded_at + conclusion.GRACE + dt.timedelta(minutes=1)
    assert check(city, late) == conclusion.Checked(1, 0, 1)
    assert check(city, late + dt.timedelta(hours=1)) == conclusion.Checked(1, 0, 0)  # announced once
    with city.sessions() as s:
        (event,) = s.scalars(select(OutboxEvent).where(OutboxEvent.event_type == conclusion.MISSING_EVENT))
    assert event.idempotency_key == f"supervision.licence_missing:{code}"
    assert event.payload["missing"] == [{"department": "public_security", "license_type_code": "1103"}]
    assert view(city, code).conclusion.flagged is True  # type: ignore[union-attr]
    # it arrives at last: the conclusion is complete, nothing is missing any more
    issue(city, code, "1103")
    assert check(city, utcnow()) == conclusion.Checked(1, 1, 0)
    again = view(city, code)
    assert again.conclusion is not None and again.conclusion.missing == [] and not any(
        f.startswith("licence_missing") for f in again.flags)  # fmt: skip
    assert check(city, utcnow()) == conclusion.Checked(0, 0, 0)


def test_the_output_picked_up_or_posted(city: World) -> None:
    code = take_in(city, joint_registration(delivery={"method": "post", "address": w.ADDRESS}))
    for t in ("1101", "1102", "1103"):
        issue(city, code, t)
    conclude(city, code)
    with city.sessions() as s, pytest.raises(service.CaseRefused) as refused:
        body = StepIn(seq=3, step=Step.DELIVERED, occurred_at=at(18), carrier="中国邮政EMS")
        service.record_step(s, code, "window", body, actor="window", now=at(18, 12))
    assert refused.value.code == "delivery_incomplete"
    step(city, code, "window", 3, Step.DELIVERED, 18, carrier="中国邮政EMS", tracking_number="1187654321098")
    out = view(city, code)
    assert out.conclusion is not None and out.conclusion.missing == [] and out.held_by == []
    assert (out.conclusion.output, out.conclusion.output_at, out.conclusion.carrier,
            out.conclusion.tracking_number) == ("post", at(18), "中国邮政EMS", "1187654321098")  # fmt: skip
    picked = take_in(city, joint_registration())
    conclude(city, picked)
    step(city, picked, "window", 3, Step.DELIVERED, 18)
    assert view(city, picked).conclusion.output == "pickup"  # type: ignore[union-attr]


def test_a_rejected_case_is_concluded_with_its_outcome_and_promises_nothing(city: World) -> None:
    code = take_in(city, joint_registration())
    step(city, code, "commerce", 1, Step.ACCEPTED, 17)
    step(city, code, "commerce", 2, Step.REJECTED, 17, note="名称与已登记企业相同")
    out = view(city, code)
    assert out.status == "rejected" and out.conclusion is not None
    assert (out.conclusion.outcome, out.conclusion.licences, out.conclusion.missing) == ("rejected", [], [])
    with city.sessions() as s:
        assert s.scalars(select(CaseConclusion.complete)).all() == [True]


def test_steps_after_the_conclusion_or_timed_before_the_receipt_change_nothing(city: World) -> None:
    """A department's step after its result, and one timed before the case was received, are logged and
    flagged, but neither reopens a clock, moves the conclusion, lights the case or tells the applicant again."""
    code = take_in(city, joint_registration(received_at=at(16, 9).isoformat()))
    for t in ("1101", "1102", "1103"):
        issue(city, code, t)
    conclude(city, code)
    before = view(city, code)
    assert before.status == "concluded" and before.conclusion is not None
    step(city, code, "tax", 4, Step.IN_REVIEW, 18)  # after tax issued its result
    step(city, code, "commerce", 4, Step.ACCEPTED, 15)  # a day before the window received the case
    after = view(city, code)
    flagged = {(s.department, s.seq): s.impossible for s in after.timeline if s.department != "window"}
    assert (flagged[("tax", 4)], flagged[("commerce", 4)]) == ("after_result", "before_received")
    assert after.status == "concluded" and after.conclusion is not None
    assert (after.conclusion.outcome, after.conclusion.concluded_at) == ("granted", before.conclusion.concluded_at)
    assert after.conclusion.missing == [] and after.held_by == before.held_by
    with city.sessions() as s:
        assert len(s.scalars(select(CaseConclusion.case_id)).all()) == 1
        done = supervision.recompute_lights(s, today=dt.date(2026, 11, 30))  # ten working days on
        s.commit()
        clocks = {c.department: c.state for c in s.scalars(select(CaseClock))}
        assert s.scalars(select(CaseLightChange)).all() == [] and done.changes == 0
        told = s.scalars(select(OutboxEvent.idempotency_key).where(
            OutboxEvent.event_type == notices.NOTICE_EVENT, OutboxEvent.subject == code)).all()  # fmt: skip
    assert "running" not in clocks.values() and clocks[CASE] != "running", clocks
    assert told.count(f"case.notice:{code}:concluded") == 1


def test_the_conclusion_table_matches_its_migration(city: World) -> None:
    assert schema_drift(city.url, {CaseConclusion.__tablename__}) == []
