"""A stage's clock under the Administrative Licensing Law, and its light: one at a time and a million
at once; the steps that move it (suspension, extension) are refused without what they must say."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cases import intake, service
from cases.clock import ENDED, RED, RUNNING, STOPPED, UNKNOWN, YELLOW, LightRule, Limits, lights_many, read_clock
from cases.errors import CaseRefused
from cases.schemas import IntakeIn, StepIn
from cases.steps import LoggedStep, Step, place
from cases.workdays import WorkCalendar
from tests.cases import world as w
from tests.cases.world import World, joint_registration

CAL = WorkCalendar.default()
LIMITS = Limits(statutory=20, promised=10)


def at(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hour:02d}:00:00+08:00")


def stage(*steps: tuple[str, str] | tuple[str, str, dict[str, object]]) -> list[LoggedStep]:
    logged = [
        LoggedStep("land", i, Step(s[0]), at(s[1]), order=i, detail=s[2] if len(s) > 2 else None)  # type: ignore[misc]
        for i, s in enumerate(steps, start=1)
    ]
    received = min(x.occurred_at for x in logged) - dt.timedelta(days=1)
    return place(logged, received_at=received)


def test_the_clock_starts_the_day_after_acceptance_and_counts_working_days_only() -> None:
    # accepted Friday 25 September 2026; National Day's holiday runs 1–7 October, 10 October is worked
    steps = stage(("accepted", "2026-09-25"))
    r = read_clock(steps, LIMITS, CAL, today=dt.date(2026, 10, 12))
    assert (r.state, r.started_on, r.used) == (RUNNING, dt.date(2026, 9, 25), 7)  # 28, 29, 30 Sep; 8, 9, 10, 12 Oct
    assert r.promised_due == dt.date(2026, 10, 15) and r.statutory_due == dt.date(2026, 10, 29)
    assert r.light == "green"
    assert read_clock(steps, LIMITS, CAL, today=dt.date(2026, 10, 13)).light == YELLOW  # 8 of 10 used
    late = read_clock(steps, LIMITS, CAL, today=dt.date(2026, 10, 19))
    assert (late.used, late.light, late.overdue, late.statutory_overdue) == (12, RED, 2, 0)


def test_a_correction_and_an_excluded_period_stop_the_clock_and_it_resumes_after() -> None:
    steps = stage(
        ("accepted", "2026-11-02"),  # Monday
        ("correction_requested", "2026-11-04"),  # 2 used (3rd, 4th)
        ("resumed", "2026-11-11"),
        ("suspended", "2026-11-13", {"period": "expert_review"}),  # 2 more (12th, 13th)
        ("suspension_ended", "2026-11-20"),
    )
    stopped = read_clock(steps[:4], LIMITS, CAL, today=dt.date(2026, 11, 18))
    assert (stopped.state, stopped.used, stopped.promised_due) == (STOPPED, 4, None)
    assert stopped.stops[-1].period == "expert_review" and stopped.stops[-1].end is None
    r = read_clock(steps, LIMITS, CAL, today=dt.date(2026, 11, 24))
    assert (r.state, r.used) == (RUNNING, 6)  # 23rd, 24th
    assert [(s.reason, s.start, s.end) for s in r.stops] == [
        ("correction", dt.date(2026, 11, 4), dt.date(2026, 11, 11)),
        ("suspension", dt.date(2026, 11, 13), dt.date(2026, 11, 20)),
    ]
    assert r.promised_due == dt.date(2026, 11, 30)  # 4 used before the 20th, 6 more: 23–27 and 30 November


def test_one_extension_adds_to_both_limits_and_a_second_adds_nothing() -> None:
    steps = stage(
        ("accepted", "2026-06-01"),
        ("extended", "2026-06-10", {"days": 10, "approved_by": "局长"}),
        ("extended", "2026-06-11", {"days": 10, "approved_by": "局长"}),
    )
    assert steps[2].impossible == "extended_twice"
    r = read_clock(steps, LIMITS, CAL, today=dt.date(2026, 6, 26))
    assert (r.extension, r.promised_limit, r.statutory_limit) == (10, 20, 30)
    assert r.used == 18 and r.light == YELLOW and r.overdue == 0  # 18 of 20 (without it: red)


def test_the_clock_ends_at_the_decision_and_says_whether_it_was_on_time() -> None:
    steps = stage(("accepted", "2026-03-02"), ("approved", "2026-03-10"), ("result_issued", "2026-03-20"))
    r = read_clock(steps, LIMITS, CAL, today=dt.date(2026, 12, 1))
    assert (r.state, r.used, r.on_time, r.promised_due) == (ENDED, 6, True, None)
    slow = stage(("accepted", "2026-03-02"), ("rejected", "2026-03-31"))
    assert read_clock(slow, LIMITS, CAL, today=dt.date(2026, 12, 1)).on_time is False


def test_a_decision_while_suspended_does_not_move_the_clock() -> None:
    steps = stage(
        ("accepted", "2026-05-11"), ("suspended", "2026-05-12", {"period": "hearing"}), ("approved", "2026-05-15")
    )
    assert steps[2].impossible == "while_suspended"
    assert read_clock(steps, LIMITS, CAL, today=dt.date(2026, 5, 29)).state == STOPPED


def test_before_acceptance_the_clock_has_not_started() -> None:
    r = read_clock(stage(("in_review", "2026-05-11")), LIMITS, CAL, today=dt.date(2026, 5, 29))
    assert (r.state, r.used, r.started_on) == ("not_started", 0, None)


def test_a_deadline_beyond_the_known_calendar_is_unknown_never_green() -> None:
    steps = stage(("accepted", "2026-12-21"))
    r = read_clock(steps, LIMITS, CAL, today=dt.date(2026, 12, 22))
    assert (r.light, r.used, r.promised_due) == (UNKNOWN, 1, None)
    assert r.unknown_reason is not None and "next year's notice" in r.unknown_reason
    # yellow and red are facts of the days already used, whatever next year brings
    r = read_clock(stage(("accepted", "2026-12-14")), Limits(20, 5), CAL, today=dt.date(2026, 12, 18))
    assert r.light == YELLOW


def test_yellow_by_days_left_when_configured() -> None:
    steps = stage(("accepted", "2026-06-01"))
    rule = LightRule(yellow_share=1.0, yellow_days_left=3)
    assert read_clock(steps, LIMITS, CAL, today=dt.date(2026, 6, 10), rule=rule).light == YELLOW  # 7 used, 3 left
    assert read_clock(steps, LIMITS, CAL, today=dt.date(2026, 6, 4), rule=rule).light == "green"


_since = st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2026, 12, 31))


@settings(max_examples=200, deadline=None)
@given(
    clocks=st.lists(st.tuples(_since, st.integers(0, 30), st.integers(0, 60)), min_size=1, max_size=30),
    today=st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2026, 12, 31)),
    rule=st.sampled_from([LightRule(), LightRule(0.5), LightRule(1.0, 2)]),
)
def test_a_million_at_once_equals_one_at_a_time(
    clocks: list[tuple[dt.date, int, int]], today: dt.date, rule: LightRule
) -> None:
    since = np.array([c[0] for c in clocks], dtype="datetime64[D]")
    before = np.array([c[1] for c in clocks])
    promised = np.array([c[2] for c in clocks])
    used, lights = lights_many(CAL, running_since=since, used_before=before, promised=promised, today=today, rule=rule)
    for (start, used_before, limit), got_used, got_light in zip(clocks, used.tolist(), lights.tolist(), strict=True):
        # the same clock through the step log: accepted, then stopped and resumed so that
        # `used_before` days are already used when it resumes on `start`
        r = read_clock(_resumed_on(start, used_before), Limits(limit + 20, limit), CAL, today=today, rule=rule)
        assert (got_used, got_light) == (r.used, r.light)


def _resumed_on(start: dt.date, used_before: int) -> list[LoggedStep]:
    accepted = CAL.add(start, -(used_before + 1)) if used_before else start
    steps = [("accepted", accepted.isoformat())]
    if used_before:
        stop = CAL.add(accepted, used_before)
        steps += [("correction_requested", stop.isoformat()), ("resumed", start.isoformat())]
    return stage(*steps)  # type: ignore[arg-type]


# --- the steps that move the clock, through the case service ---------------------------------------


@pytest.fixture()
def city(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_db_url: str) -> Iterator[World]:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    built = w.build(hub_db_url, tmp_path)
    yield built
    built.engine.dispose()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"step": "suspended"}, "period_required"),
        ({"step": "extended", "days": 10, "note": "复杂"}, "extension_incomplete"),
        ({"step": "extended", "days": 10, "approved_by": "局长"}, "extension_incomplete"),
        ({"step": "in_review", "period": "hearing"}, "step_not_allowed"),
        ({"step": "in_review", "days": 3}, "step_not_allowed"),
    ],
)
def test_clock_steps_without_what_they_must_say_are_refused(city: World, body: dict[str, object], code: str) -> None:
    with city.sessions() as s:
        received = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat()
        case = intake.take_in(s, IntakeIn.model_validate(joint_registration(received_at=received)), actor="test").case
        now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        service.record_step(s, case.code, "commerce", StepIn(seq=1, step=Step.ACCEPTED, occurred_at=now), actor="c")
        with pytest.raises(CaseRefused) as refused:
            service.record_step(
                s, case.code, "commerce", StepIn.model_validate({"seq": 2, "occurred_at": now, **body}), actor="c"
            )
        assert refused.value.code == code
        ok = StepIn(seq=2, step=Step.EXTENDED, occurred_at=now, days=10, approved_by="局长", note="需现场核查")
        done = service.record_step(s, case.code, "commerce", ok, actor="c")
        assert done.row.detail == {"days": 10, "approved_by": "局长"}
