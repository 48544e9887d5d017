"""The sandbox's own count of lights (:mod:`sandbox.approvals.lights`) on cases counted by hand on
the 2026 calendar: a correction pause over National Day, a refusal ending a joint case while a
parallel stage goes on, a step entered the next morning."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sandbox.approvals.lights import CASE, catalogue_limits, expected_lights

CST = dt.timezone(dt.timedelta(hours=8))


def at(month: int, day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=CST)


def step(code: str, department: str, seq: int, kind: str, when: dt.datetime, **extra: Any) -> dict[str, Any]:
    return {"code": code, "department": department, "seq": seq, "step": kind, "occurred_at": when, **extra}


def by_clock(rows: list[Any]) -> dict[tuple[str, str], tuple[str, int, str, int]]:
    return {(r.code, r.department): (r.state, r.used, r.light, r.overdue) for r in rows}


def test_the_catalogue_limits_are_read_as_data() -> None:
    limits = catalogue_limits()
    assert limits["XK00101001"].promised == 3
    assert limits["XK00101001"].stages == {"commerce": 1, "tax": 1, "public_security": 1}
    assert limits["GG00201000"].issuing == frozenset()  # the tax certificate is concluded by its approval


def test_a_correction_over_national_day_stops_the_stage_and_the_case() -> None:
    """Accepted and sent for correction on 30 September, resumed Friday 9 October: as of Monday the 12th
    the days run are Saturday the 10th (worked, 调休) and the 12th — two, past the promised one."""
    steps = [step("C1", "commerce", 1, "accepted", at(9, 30)),
             step("C1", "commerce", 2, "correction_requested", at(9, 30, 15)),
             step("C1", "commerce", 3, "resumed", at(10, 9))]  # fmt: skip
    got = by_clock(expected_lights(steps, {"C1": ("XK00102000", at(9, 30, 9))}, as_of=at(10, 12, 20)))
    assert got == {("C1", "commerce"): ("running", 2, "red", 1), ("C1", CASE): ("running", 2, "red", 1)}
    before = by_clock(expected_lights(steps, {"C1": ("XK00102000", at(9, 30, 9))}, as_of=at(10, 8, 20)))
    assert before[("C1", "commerce")] == ("stopped", 0, "green", 0)


def test_a_refusal_ends_the_case_though_a_parallel_stage_goes_on() -> None:
    steps = [step("J", "commerce", 1, "accepted", at(9, 1)), step("J", "commerce", 2, "approved", at(9, 1, 14)),
             step("J", "commerce", 3, "result_issued", at(9, 1, 15)),
             step("J", "tax", 1, "accepted", at(9, 2)), step("J", "tax", 2, "rejected", at(9, 3)),
             step("J", "public_security", 1, "accepted", at(9, 2)),
             step("J", "public_security", 2, "approved", at(9, 8)),
             step("J", "public_security", 3, "result_issued", at(9, 8, 11))]  # fmt: skip
    got = by_clock(expected_lights(steps, {"J": ("XK00101001", at(9, 1, 9))}, as_of=at(9, 30, 20)))
    assert got[("J", CASE)] == ("ended", 2, "green", 0)  # 2 and 3 September: 2 of 3 is under 80%
    assert got[("J", "public_security")] == ("ended", 4, "red", 3)  # 3, 4, 7, 8 September
    assert got[("J", "tax")] == ("ended", 1, "yellow", 0)


def test_a_step_entered_the_next_morning_is_not_on_record_until_then() -> None:
    late = step("C2", "commerce", 2, "approved", at(9, 2, 16), visible_at=at(9, 3, 9))
    steps = [step("C2", "commerce", 1, "accepted", at(9, 1)), late]
    evening = {(r.code, r.department): r.on_record for r in
               expected_lights(steps, {"C2": ("XK00102000", at(9, 1, 9))}, as_of=at(9, 2, 20))}  # fmt: skip
    assert evening == {("C2", "commerce"): False, ("C2", CASE): False}
    after = expected_lights(steps, {"C2": ("XK00102000", at(9, 1, 9))}, as_of=at(9, 3, 20))
    assert all(r.on_record for r in after)
    assert by_clock(after)[("C2", "commerce")] == ("ended", 1, "yellow", 0)
