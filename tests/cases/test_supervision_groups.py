"""The supervision task lights its running clocks by group (the day each last started or resumed,
the working days it used before, its promised limit): every clock ends with the days, overdue and
light the one-clock computation gives it, across Spring Festival and National Day 2026 with their
adjusted working weekends, and every change of light is logged and announced once — on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Engine, func, insert, select

from cases import supervision, supervision_gauges
from cases.clock import CASE, LIGHTS, RUNNING, STOPPED, LightRule, light_codes_many
from cases.supervision_tables import CaseClock, CaseEscalation, CaseLightChange
from cases.tables import CaseRecord
from cases.workdays import WorkCalendar
from hub.db import make_engine, session_factory
from hub.models import OutboxEvent

#: days around the holidays: the Friday before Spring Festival, the worked Saturday 14 February,
#: the holiday 15–23 February, the first day back, the worked Saturday 28 February; the worked
#: Sunday 20 September, National Day 1–7 October, the worked Saturday 10 October, an ordinary week
SINCE = [dt.date(2026, 2, d) for d in (12, 13, 14, 15, 18, 23, 24, 27, 28)] + [
    dt.date(2026, 9, 18), dt.date(2026, 9, 20), dt.date(2026, 9, 30), dt.date(2026, 10, 1), dt.date(2026, 10, 7),
    dt.date(2026, 10, 8), dt.date(2026, 10, 10), dt.date(2026, 11, 16), dt.date(2026, 12, 21),
]  # fmt: skip
DEPARTMENTS = (CASE, "commerce", "tax")
LIMITS = (1, 3, 5, 10, 20)
BEFORE = (0, 2)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    url = request.getfixturevalue("hub_db_url" if request.param == "sqlite" else "pg_hub_db_url")
    built = make_engine(url)
    yield built
    built.dispose()


def _load(engine: Engine) -> list[tuple[int, str, dt.date, int, int]]:
    """Running clocks in every combination of SINCE × BEFORE × LIMITS × DEPARTMENTS (cases sharing a
    group, departments sharing one), some already yellow; plus a stopped clock the task leaves alone.
    Returns (case id, department, running since, used before, limit) of the running ones."""
    cases, clocks, running = [], [], []
    combos = list(itertools.product(SINCE, BEFORE, LIMITS))
    for i, (since, before, limit) in enumerate(combos, start=1):
        cases.append({
            "id": i, "code": f"C{i:019d}", "item_code": "XK00101001", "item_name": "企业设立登记",
            "implementation_code": "x", "lead_department": "commerce", "region_code": "330322",
            "statutory_days": limit * 2, "promised_days": limit,
            "received_by": "window", "received_at": dt.datetime(2026, 1, 5, tzinfo=dt.UTC), "received_on": since,
            "intake_outcome": "accepted", "outcome_detail": {}, "status": "in_progress", "applicant_kind": "person",
            "applicant_code": "P", "applicant_identity": "I", "applicant_name": "N", "delivery_method": "window",
            "intake_fingerprint": f"f{i}", "created_by": "test",
        })  # fmt: skip
        for department in DEPARTMENTS:
            light = "yellow" if i % 4 == 0 else "green"
            clocks.append({
                "case_id": i, "department": department, "state": RUNNING, "started_on": since, "running_since": since,
                "used_before": before, "used": before, "extension": 0, "promised_limit": limit,
                "statutory_limit": limit * 2, "light": light, "overdue": 0, "statutory_overdue": 0,
                "as_of": since,
            })  # fmt: skip
            running.append((i, department, since, before, limit))
    clocks.append({**clocks[0], "department": "public_security", "state": STOPPED, "used": 9, "light": "red"})
    with engine.begin() as c:
        c.execute(insert(CaseRecord), cases)
        c.execute(insert(CaseClock), clocks)
    return running


def _one_at_a_time(
    calendar: WorkCalendar, since: dt.date, before: int, limit: int, today: dt.date
) -> tuple[int, int, str]:
    used, codes = light_codes_many(calendar, running_since=np.array([since], dtype="datetime64[D]"),
                                   used_before=[before], promised=[limit], today=today, rule=LightRule())  # fmt: skip
    return int(used[0]), max(int(used[0]) - limit, 0), LIGHTS[int(codes[0])]


@pytest.mark.parametrize("today", [dt.date(2026, 2, 26), dt.date(2026, 3, 2), dt.date(2026, 10, 9),
                                   dt.date(2026, 10, 12), dt.date(2026, 12, 22)])  # fmt: skip
def test_each_clock_is_lit_as_the_one_clock_computation_lights_it(engine: Engine, today: dt.date) -> None:
    running = _load(engine)
    calendar = WorkCalendar.default()
    sessions = session_factory(engine)
    with sessions() as s:
        stored = {(c.case_id, c.department): (c.used, c.light) for c in s.scalars(select(CaseClock))}
    expected = {
        (i, d): _one_at_a_time(calendar, since, before, limit, max(today, since))
        for i, d, since, before, limit in running
    }
    with sessions() as s:
        done = supervision.recompute_lights(s, today=today)
        s.commit()
    turned = {k for k, (_u, _o, light) in expected.items() if light != stored[k][1]}
    moved = turned | {k for k, (used, _o, _l) in expected.items() if used != stored[k][0]}
    assert (done.running, done.updated, done.changes) == (len(running), len(moved), len(turned))
    assert turned and len(turned) < len(running)  # some clocks change light, some do not
    with sessions() as s:
        got = {(c.case_id, c.department): (c.used, c.overdue, c.light, c.as_of) for c in s.scalars(select(CaseClock))}
        for key, (used, overdue, light) in expected.items():
            assert got[key][:3] == (used, overdue, light), key
            assert got[key][3] == (today if key in moved else stored_as_of(key, running))
        assert got[(1, "public_security")] == (9, 0, "red", SINCE[0])  # not running: untouched
        logged = {
            (r.case_id, r.department): (r.from_light, r.to_light, r.used) for r in s.scalars(select(CaseLightChange))
        }
        assert logged == {k: (stored[k][1], expected[k][2], expected[k][0]) for k in turned}
        events = s.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        lights = [e for e in events if e.event_type == supervision.LIGHT_EVENT]
        codes = {i: f"C{i:019d}" for i, *_ in running}
        assert sorted(e.idempotency_key for e in lights) == sorted(
            f"supervision.light:{codes[i]}:{d}:1" for i, d in turned
        )
        raised = {(r.case_id, r.department) for r in s.scalars(select(CaseEscalation))}
        assert raised == {k for k in turned if expected[k][2] == "red" and k[1] != CASE}
        assert len(events) == len(turned) + len(raised)
        assert {(d, light): n for d, light, n in supervision_gauges.gauges(s) if n} == supervision_gauges.open_by_light(
            s
        )
    with sessions() as s:  # the same day again: nothing to write, nothing announced twice
        again = supervision.recompute_lights(s, today=today)
        s.commit()
        assert (again.running, again.updated, again.changes) == (len(running), 0, 0)
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == len(events)


def stored_as_of(key: tuple[int, str], running: list[tuple[int, str, dt.date, int, int]]) -> dt.date:
    """The as-of day a clock was loaded with (its running-since day)."""
    return next(since for i, d, since, _b, _l in running if (i, d) == key)
