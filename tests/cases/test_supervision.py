"""E-supervision: clocks stored as steps arrive, the supervision task's lights for all running clocks
at once equal a full re-read, changes of light logged and announced once, red stages escalated —
on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from cases import intake, service, supervision, supervision_gauges
from cases.clock import CASE
from cases.schemas import IntakeIn, StepIn
from cases.steps import Step
from cases.supervision_tables import CaseClock, CaseEscalation, CaseLightChange
from hub.models import OutboxEvent
from recognition.scopes import ScopeSet
from rigs.testing import schema_drift
from sandbox.approvals.lights import expected_lights
from tests.cases import world as w
from tests.cases.world import World, joint_registration

CST = dt.timezone(dt.timedelta(hours=8))


def at(day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=CST)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def city(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    url = request.getfixturevalue("hub_db_url" if request.param == "sqlite" else "pg_hub_db_url")
    built = w.build(url, tmp_path)
    yield built
    built.engine.dispose()


def _joint_case(city: World) -> str:
    """多证联办 received and accepted Monday 16 November 2026; commerce (promised 1 day) accepts that day."""
    with city.sessions() as s:
        body = IntakeIn.model_validate(joint_registration(received_at=at(16, 9).isoformat()))
        code = intake.take_in(s, body, actor="window", now=at(16, 9)).case.code
        accepted = StepIn(seq=1, step=Step.ACCEPTED, occurred_at=at(16))
        service.record_step(s, code, "commerce", accepted, actor="commerce", now=at(16, 11))
        s.commit()
    return code


def _clocks(city: World) -> dict[str, tuple[str, int, str]]:
    with city.sessions() as s:
        return {c.department: (c.state, c.used, c.light) for c in s.scalars(select(CaseClock))}


def _changes(city: World) -> list[tuple[str, str | None, str]]:
    with city.sessions() as s:
        rows = s.scalars(select(CaseLightChange).order_by(CaseLightChange.id))
        return [(r.department, r.from_light, r.to_light) for r in rows]


def _recompute(city: World, day: int) -> supervision.Recomputed:
    with city.sessions() as s:
        done = supervision.recompute_lights(s, today=dt.date(2026, 11, day))
        s.commit()
    return done


def test_times_with_an_offset_are_kept_as_the_same_instant(city: World) -> None:
    code = _joint_case(city)  # reported in China Standard Time: 09:00 and 10:00 +08:00
    with city.sessions() as s:
        case = service.find_case(s, code)
        assert service.utc(case.received_at) == at(16, 9)
        commerce = [x for x in service.read(s, case).timeline if x.department == "commerce"]
        assert [x.occurred_at for x in commerce] == [at(16)]


def test_lights_turn_yellow_then_red_once_each_and_red_stages_are_escalated(city: World) -> None:
    code = _joint_case(city)
    assert _clocks(city) == {
        "commerce": ("running", 0, "green"),
        "tax": ("not_started", 0, "green"),
        "public_security": ("not_started", 0, "green"),
        CASE: ("running", 0, "green"),
    }
    assert _recompute(city, 17).changes == 1  # commerce: 1 of its 1 promised day used
    assert _clocks(city)["commerce"] == ("running", 1, "yellow")
    assert _recompute(city, 18).changes == 1  # commerce 2 of 1: red; the case 2 of 3: still green
    again = _recompute(city, 18)
    assert (again.running, again.updated, again.changes) == (2, 0, 0)  # the same day twice changes nothing
    _recompute(city, 19)
    _recompute(city, 20)
    assert _clocks(city)["commerce"] == ("running", 4, "red") and _clocks(city)[CASE] == ("running", 4, "red")
    assert _changes(city) == [
        ("commerce", "green", "yellow"),
        ("commerce", "yellow", "red"),
        (CASE, "green", "yellow"),
        (CASE, "yellow", "red"),
    ]
    with city.sessions() as s:
        events = s.scalars(
            select(OutboxEvent).where(OutboxEvent.event_type.like("supervision.%")).order_by(OutboxEvent.id)
        ).all()
        assert [e.idempotency_key for e in events] == [
            f"supervision.light:{code}:commerce:1",
            f"supervision.light:{code}:commerce:2",
            f"supervision.escalated:{code}:commerce:1",
            f"supervision.light:{code}:*:1",
            f"supervision.light:{code}:*:2",
        ]
        assert events[1].payload["to"] == "red" and events[1].payload["overdue"] == 1
        [escalation] = supervision.escalations(s)
        assert (escalation.department, escalation.overdue) == ("commerce", 1)
        assert escalation.raised_on == dt.date(2026, 11, 18)


def test_the_task_agrees_with_a_full_reading_of_the_step_log(city: World) -> None:
    code = _joint_case(city)
    for day in (17, 18, 19, 23):
        _recompute(city, day)
        by_task = _clocks(city)
        with city.sessions() as s:
            case = service.find_case(s, code)
            reading = service.read(s, case)
            changes = supervision.store_clocks(s, case, reading.timeline, reading.status, today=dt.date(2026, 11, day))
            s.commit()
        assert changes == [] and _clocks(city) == by_task


def test_a_decision_ends_the_stage_clock_and_the_case_clock_runs_on(city: World) -> None:
    code = _joint_case(city)
    with city.sessions() as s:
        approved = StepIn(seq=2, step=Step.APPROVED, occurred_at=at(17))
        service.record_step(s, code, "commerce", approved, actor="commerce", now=at(17, 11))
        s.commit()
    clocks = _clocks(city)
    assert clocks["commerce"] == ("ended", 1, "yellow")
    assert clocks[CASE][0] == "running"
    assert _recompute(city, 30).running == 1  # only the case's clock still runs (tax and seal filing wait)


def test_acknowledging_an_escalation_closes_it_and_a_department_acknowledges_its_own_only(city: World) -> None:
    _joint_case(city)
    _recompute(city, 18)
    with city.sessions() as s:
        [escalation] = supervision.escalations(s)
        with pytest.raises(LookupError):
            supervision.acknowledge(s, escalation.id, "tax", by="tax", note=None)
        done = supervision.acknowledge(s, escalation.id, "commerce", by="commerce:张科长", note="已加快办理")
        assert done.acknowledged_by == "commerce:张科长"
        s.commit()
        assert supervision.escalations(s) == []
        assert len(supervision.escalations(s, open_only=False)) == 1


def test_the_log_of_lights_is_append_only(city: World) -> None:
    _joint_case(city)
    _recompute(city, 18)
    for statement in ("UPDATE case_light_change SET to_light = 'green'", "DELETE FROM case_light_change"):
        with city.engine.connect() as conn, pytest.raises(DatabaseError, match="append-only"):
            conn.execute(text(statement))


def test_supervision_events_go_to_the_supervision_office_only() -> None:
    office = ScopeSet.parse(["supervision:read"])
    portal = ScopeSet.parse(["cases:read", "licenses:read:*"])
    assert office.may_receive("supervision.light_changed", None) and office.may_receive("supervision.escalated", None)
    assert not portal.may_receive("supervision.light_changed", None)


def test_tables_match_their_migration(city: World) -> None:
    assert schema_drift(city.url, {
        CaseClock.__tablename__, CaseLightChange.__tablename__, CaseEscalation.__tablename__, "case_light_gauge",
    }) == []  # fmt: skip


def test_the_supervision_task_body_lights_the_running_clocks(city: World) -> None:
    from pipeline.housekeeping import supervise  # the hub database is the city's (HUB_DB_URL)

    _joint_case(city)
    assert supervise("manual__test", today=dt.date(2026, 11, 18)) == {"running": 2, "updated": 2, "changes": 1}
    assert supervise("manual__test", today=dt.date(2026, 11, 18)) == {"running": 2, "updated": 0, "changes": 0}


def test_the_supervision_benchmark_smoke() -> None:
    from bench.bench_supervision import run

    f = run(5_000, 200)  # what `--smoke` runs
    first, steady = f["lights"]["first run"], f["lights"]["steady state (next day)"]
    assert first["running"] == steady["running"] == 5_000 and f["year"]["received"] == 5_000
    assert 0 < first["updated"] <= first["running"] and f["changes"] == first["changes"] + steady["changes"] > 0
    assert f["events"] >= f["changes"]  # every change of light announced


def test_the_set_based_task_announces_what_the_per_case_path_announces(city: World) -> None:
    """A run that turns the stage red and the case yellow at once: every payload in full, each
    escalation right after the change that raised it, the gauges equal to a count of the clocks."""
    code = _joint_case(city)
    done = _recompute(city, 19)  # commerce 3 of 1 (red), the case 3 of 3 (yellow)
    assert (done.running, done.updated, done.changes) == (2, 2, 2)
    with city.sessions() as s:
        events = s.scalars(
            select(OutboxEvent).where(OutboxEvent.event_type.like("supervision.%")).order_by(OutboxEvent.id)
        ).all()
        by_key = {e.idempotency_key: e for e in events}
        keys = [e.idempotency_key for e in events]
        light, raised = f"supervision.light:{code}:commerce:1", f"supervision.escalated:{code}:commerce:1"
        assert sorted(keys) == sorted([light, raised, f"supervision.light:{code}:*:1"])
        assert keys.index(raised) == keys.index(light) + 1
        item = by_key[light].payload["item_code"]
        assert by_key[light].payload == {
            "code": code, "item_code": item, "department": "commerce", "from": "green", "to": "red", "used": 3,
            "promised_limit": 1, "overdue": 2, "promised_due": None, "as_of": "2026-11-19",
        }  # fmt: skip
        assert by_key[f"supervision.light:{code}:*:1"].payload == {
            "code": code, "item_code": item, "department": None, "from": "green", "to": "yellow", "used": 3,
            "promised_limit": 3, "overdue": 0, "promised_due": None, "as_of": "2026-11-19",
        }  # fmt: skip
        assert by_key[raised].payload == {
            "code": code, "item_code": item, "department": "commerce", "overdue": 2, "raised_on": "2026-11-19",
            "escalation": 1,
        }  # fmt: skip
        assert {e.event_type for e in events} == {"supervision.light_changed", "supervision.escalated"}
        assert all(e.subject == code and e.holder_code is None for e in events)
        counted = supervision_gauges.open_by_light(s)
        assert {(d, light): n for d, light, n in supervision_gauges.gauges(s) if n} == counted
        assert counted[("commerce", "red")] == 1 and counted[(CASE, "yellow")] == 1
        [clock] = [c for c in s.scalars(select(CaseClock)) if c.department == "commerce"]
        assert (clock.used, clock.overdue, clock.light, clock.as_of) == (3, 2, "red", dt.date(2026, 11, 19))
        [logged] = [c for c in s.scalars(select(CaseLightChange)) if c.department == "commerce"]
        assert (logged.from_light, logged.to_light, logged.used, logged.overdue) == ("green", "red", 3, 2)
    again = _recompute(city, 20)  # the case turns red; the stage stays red and is not escalated twice
    assert (again.updated, again.changes) == (2, 1)
    with city.sessions() as s:
        supervision_events = select(func.count()).where(OutboxEvent.event_type.like("supervision.%"))
        assert s.scalar(supervision_events) == len(events) + 1
        assert len(supervision.escalations(s)) == 1


def test_a_rejection_ends_the_case_clock_though_a_parallel_stage_goes_on(city: World) -> None:
    """Tax refuses on Wednesday 18 November while the seal filing (parallel) is decided a week later:
    the case was decided against on the 18th (不予许可 ends the application), so its clock ends
    there — as the sandbox's ground truth counts it — not when the last department acted."""
    code = _joint_case(city)
    steps = [("commerce", 2, Step.APPROVED, at(17)), ("commerce", 3, Step.RESULT_ISSUED, at(17, 11)),
             ("tax", 1, Step.ACCEPTED, at(17, 14)), ("public_security", 1, Step.ACCEPTED, at(17, 14)),
             ("tax", 2, Step.REJECTED, at(18)), ("public_security", 2, Step.APPROVED, at(23)),
             ("public_security", 3, Step.RESULT_ISSUED, at(23, 11))]  # fmt: skip
    for department, seq, step, when in steps:
        with city.sessions() as s:
            body = StepIn(seq=seq, step=step, occurred_at=when)
            service.record_step(s, code, department, body, actor=department, now=when + dt.timedelta(hours=1))
            s.commit()
    _recompute(city, 30)
    truth = expected_lights(
        [
            {"code": code, "department": d, "seq": n, "step": step.value, "occurred_at": when}
            for d, n, step, when in steps
        ]
        + [{"code": code, "department": "commerce", "seq": 1, "step": "accepted", "occurred_at": at(16)}],
        {code: ("XK00101001", at(16, 9))},
        as_of=at(30, 20),
    )
    want = {e.department: (e.state, e.used, e.light) for e in truth}
    assert want[CASE] == ("ended", 2, "green")  # 17 and 18 November
    assert _clocks(city) == want


def test_delivery_after_the_results_does_not_run_the_case_clock_on(city: World) -> None:
    """The three results are issued on Wednesday 18 November and picked up on Friday the 20th: the
    case was concluded on the 18th (送达 has its own period, art. 44), as the sandbox's truth counts it."""
    code = _joint_case(city)
    steps = [("commerce", 2, Step.APPROVED, at(17)), ("commerce", 3, Step.RESULT_ISSUED, at(17, 11)),
             ("tax", 1, Step.ACCEPTED, at(17, 14)), ("public_security", 1, Step.ACCEPTED, at(17, 14)),
             ("tax", 2, Step.APPROVED, at(18)), ("tax", 3, Step.RESULT_ISSUED, at(18, 11)),
             ("public_security", 2, Step.APPROVED, at(18)),
             ("public_security", 3, Step.RESULT_ISSUED, at(18, 11))]  # fmt: skip
    for department, seq, step, when in [*steps, ("window", 3, Step.DELIVERED, at(20, 15))]:
        with city.sessions() as s:
            body = StepIn(seq=seq, step=step, occurred_at=when)
            service.record_step(s, code, department, body, actor=department, now=when + dt.timedelta(hours=1))
            s.commit()
    truth = expected_lights(
        [
            {"code": code, "department": d, "seq": n, "step": step.value, "occurred_at": when}
            for d, n, step, when in steps
        ]
        + [{"code": code, "department": "commerce", "seq": 1, "step": "accepted", "occurred_at": at(16)}],
        {code: ("XK00101001", at(16, 9))},
        as_of=at(30, 20),
    )
    want = {e.department: (e.state, e.used, e.light) for e in truth}
    assert want[CASE] == ("ended", 2, "green")  # 17 and 18 November, not the 19th and 20th
    assert _clocks(city) == want
