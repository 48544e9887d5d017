"""The demo's back-dated month on a small city: lights turn yellow and red during the run, the
supervision office receives both, the SMS gateway sends the joint registration's conclusion, the
licences are listed together under the case, and the figures table prints."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from pathlib import Path

import chinese_calendar
import pytest
from rich.console import Console
from sqlalchemy import func, select

from cases import service
from cases.supervision_tables import CaseClock, CaseLightChange
from cases.tables import CaseRecord, CaseStep
from cases.views import case_out
from hub.models import OutboxEvent
from rigs.demo_month import SMS_TOKEN_ENV, MonthReplayed, print_month, run_month
from sandbox.approvals.lights import expected_lights
from tests.cases import world as w
from tests.cases.world import World

CST = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture()
def city(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    request.param = "sqlite"
    yield from w.on_database(request, tmp_path, monkeypatch)


def test_the_month_lights_pushes_tells_and_counts(city: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SMS_TOKEN_ENV, "unset")  # restored after the test
    report = run_month(city.engine, city.service, tmp_path / "home", today=dt.date(2026, 11, 30))
    assert report.turned["yellow"] >= 2 and report.turned["red"] >= 2  # the stalled stage and its case
    assert report.escalations >= 1
    with city.sessions() as s:
        events = list(s.scalars(select(OutboxEvent).where(OutboxEvent.event_type.like("supervision.%"))))
        notices = s.scalars(select(OutboxEvent.idempotency_key).where(OutboxEvent.event_type == "case.notice")).all()
        light_log = s.scalar(select(func.count()).select_from(CaseLightChange))
        joint = case_out(s, service.find_case(s, report.joint_code), personal=True)
    pushed = [e for e in events if e.event_type != "supervision.licence_missing"]
    # the office received every change and escalation, each exactly once per idempotency key; every
    # change of light in the log was announced once
    assert sum(report.office.values()) == len(pushed) and report.office["supervision.escalated"] >= 1
    assert sorted(report.office_keys) == sorted(e.idempotency_key for e in pushed)
    assert len([e for e in pushed if e.event_type == "supervision.light_changed"]) == light_log
    assert {e.payload["to"] for e in pushed if e.event_type == "supervision.light_changed"} >= {"yellow", "red"}
    assert report.sms_sent == len(notices)
    # the gateway sent each notice once, under the notice's own key, and was never asked twice
    assert sorted(report.sms_keys) == sorted(notices) and report.sms_outcomes == {"sent": len(notices)}
    assert any("已办结，请尽快前来领取" in t for t in report.joint_texts)
    assert any("已受理" in t for t in report.joint_texts)
    # the summary shows the texts with the recipient's name masked, as the gateway logs them
    assert report.joint_texts and all(re.search(r"】\S\*+您好", t) for t in report.joint_texts)
    assert joint.conclusion is not None and joint.conclusion.missing == [] and joint.conclusion.output == "pickup"
    assert sorted(r.license_type_code for r in joint.results) == ["1101", "1102", "1103"]
    console = Console(record=True, width=160)
    print_month(report, console)
    out = console.export_text()
    assert "the month's figures" in out and "XK00101001" in out and "GG00201000" in out
    joint_figures = next(f for f in report.figures if f.key == "XK00101001")
    assert (joint_figures.evaluated, joint_figures.poor) == (1, 0)
    assert_lights_agree_with_the_official_calendar(city, dt.date(2026, 11, 30))
    assert_lights_are_the_sandbox_truth(city, dt.date(2026, 11, 30))
    with pytest.raises(MonthReplayed):
        run_month(city.engine, city.service, tmp_path / "home", today=dt.date(2026, 11, 30))


def assert_lights_are_the_sandbox_truth(city: World, today: dt.date) -> None:
    """Every clock of every case of the month — stages and cases, running, stopped and ended — has the
    working days used, light and overdue days the sandbox's ground truth
    (:mod:`sandbox.approvals.lights`) counts from the steps the month recorded and the catalogue."""

    def utc(at: dt.datetime) -> dt.datetime:
        return at if at.tzinfo else at.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC

    with city.sessions() as s:
        logged = select(CaseRecord.code, CaseStep.department, CaseStep.seq, CaseStep.step, CaseStep.occurred_at)
        steps = [{"code": code, "department": department, "seq": seq, "step": step, "occurred_at": utc(at)}
                 for code, department, seq, step, at in s.execute(
                     logged.join(CaseRecord, CaseRecord.id == CaseStep.case_id)
                     .where(CaseStep.department != "window"))]  # fmt: skip
        received = select(CaseRecord.code, CaseRecord.item_code, CaseRecord.received_at)
        receipts = {code: (item, utc(at)) for code, item, at in s.execute(received)}
        clocks = select(CaseRecord.code, CaseClock).join(CaseRecord, CaseRecord.id == CaseClock.case_id)
        got = {(code, c.department): (c.state, c.used, c.light, c.overdue)
               for code, c in s.execute(clocks) if c.state != "not_started"}  # fmt: skip
    truth = expected_lights(steps, receipts, as_of=dt.datetime.combine(today, dt.time(23), tzinfo=CST))
    want = {(e.code, e.department): (e.state, e.used, e.light, e.overdue) for e in truth}
    assert got == want
    assert {light for _, _, light, _ in want.values()} == {"green", "yellow", "red"}


def assert_lights_agree_with_the_official_calendar(city: World, today: dt.date) -> None:
    """Every stage still running at the end (accepted, then left): its working days used, overdue days
    and light as chinese_calendar's own workday list and the 80% rule give them, not the hub's clock."""
    with city.sessions() as s:
        running = s.execute(
            select(CaseRecord.code, CaseClock.department, CaseClock.used, CaseClock.overdue, CaseClock.light,
                   CaseClock.promised_limit)
            .join(CaseRecord, CaseRecord.id == CaseClock.case_id)
            .where(CaseClock.state == "running", CaseClock.department != "*")
        ).all()  # fmt: skip
        assert len(running) >= 2  # the stalled stage (red) and yesterday's (yellow)
        for code, department, used, overdue, light, limit in running:
            case = service.find_case(s, code)
            (accepted,) = [x for x in service.read(s, case).timeline
                           if x.department == department and x.step.value == "accepted"]  # fmt: skip
            day = accepted.occurred_at.astimezone(CST).date()
            expected = len(chinese_calendar.get_workdays(day + dt.timedelta(days=1), today))
            light_expected = "red" if expected > limit else "yellow" if expected >= math.ceil(0.8 * limit) else "green"
            assert (used, overdue, light) == (expected, max(0, expected - limit), light_expected), code
        assert {r.light for r in running} >= {"yellow", "red"}
