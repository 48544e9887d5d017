"""Statutory working days: the official arrangements, the operator's overrides, a million at once."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import chinese_calendar
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cases.calendar_cli import app
from cases.workdays import CalendarError, CalendarUnknown, WorkCalendar

CAL = WorkCalendar.default()
runner = CliRunner()


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# (date, working day?) from the State Council's notices themselves (国办发明电), not from the library
OFFICIAL = [
    ("2024-02-04", True),
    ("2024-02-10", False),
    ("2024-02-17", False),
    ("2024-02-18", True),  # 2024 春节
    ("2025-01-26", True),
    ("2025-01-28", False),
    ("2025-02-04", False),
    ("2025-02-08", True),  # 2025 春节
    ("2025-09-28", True),
    ("2025-10-01", False),
    ("2025-10-08", False),
    ("2025-10-11", True),  # 2025 国庆
    ("2026-02-14", True),
    ("2026-02-15", False),
    ("2026-02-23", False),
    ("2026-02-28", True),  # 2026 春节
    ("2026-09-20", True),
    ("2026-10-01", False),
    ("2026-10-07", False),
    ("2026-10-10", True),  # 2026 国庆
    ("2026-12-03", True),
    ("2026-12-05", False),  # an ordinary Thursday and Saturday
]


@pytest.mark.parametrize(("day", "expected"), OFFICIAL)
def test_official_arrangements_including_worked_weekends(day: str, expected: bool) -> None:
    assert CAL.is_workday(d(day)) is expected


def test_every_known_day_agrees_with_the_library() -> None:
    day, disagree = CAL.first, []
    while day <= CAL.last:
        if CAL.is_workday(day) != chinese_calendar.is_workday(day):
            disagree.append(day)
        day += dt.timedelta(days=1)
    assert disagree == []
    assert CAL.known_years == (2004, 2026)


def test_limits_count_from_the_day_after_across_spring_festival_and_national_day() -> None:
    # accepted on Friday 13 February 2026: the 14th is worked, 15–23 is the holiday, the 28th is worked
    assert [CAL.add(d("2026-02-13"), n) for n in (1, 2, 5)] == [d("2026-02-14"), d("2026-02-24"), d("2026-02-27")]
    assert CAL.add(d("2026-02-13"), 6) == d("2026-02-28")
    assert CAL.add(d("2026-09-30"), 1) == d("2026-10-08")
    assert CAL.add(d("2026-10-08"), -1) == d("2026-09-30")
    assert CAL.add(d("2026-10-03"), 0) == d("2026-10-03")
    assert CAL.between(d("2026-09-30"), d("2026-10-10")) == 3  # the 8th, the 9th and the worked Saturday
    assert CAL.between(d("2026-10-10"), d("2026-09-30")) == -3


def test_a_year_nobody_knows_is_an_error_never_a_guess() -> None:
    with pytest.raises(CalendarUnknown, match=r"knows 2004–2026 only.*2027"):
        CAL.is_workday(d("2027-01-04"))
    with pytest.raises(CalendarUnknown):
        CAL.add(d("2026-12-20"), 20)  # the 20th working day falls in January 2027
    out, known = CAL.add_many(np.array(["2026-12-01", "2026-12-20"], dtype="datetime64[D]"), 20)
    assert known.tolist() == [True, False] and np.isnat(out[1]) and str(out[0]) == "2026-12-29"


_days = st.dates(min_value=dt.date(2004, 1, 1), max_value=dt.date(2026, 12, 31))


@settings(max_examples=300, deadline=None)
@given(days=st.lists(_days, min_size=1, max_size=40), counts=st.lists(st.integers(0, 400), min_size=40, max_size=40))
def test_vectorised_add_equals_one_at_a_time(days: list[dt.date], counts: list[int]) -> None:
    n = np.array(counts[: len(days)])
    out, known = CAL.add_many(np.array(days, dtype="datetime64[D]"), n)
    for day, k, got, ok in zip(days, n.tolist(), out.tolist(), known.tolist(), strict=True):
        try:
            expected = _walk(day, k)
        except CalendarUnknown:
            assert not ok
            continue
        assert ok and got == expected


@settings(max_examples=300, deadline=None)
@given(a=st.lists(_days, min_size=1, max_size=30), b=st.lists(_days, min_size=30, max_size=30))
def test_vectorised_between_equals_counting_days(a: list[dt.date], b: list[dt.date]) -> None:
    got, known = CAL.between_many(np.array(a, dtype="datetime64[D]"), np.array(b[: len(a)], dtype="datetime64[D]"))
    assert known.all()
    for start, end, count in zip(a, b, got.tolist(), strict=False):
        lo, hi = sorted((start, end))
        walked = sum(CAL.is_workday(lo + dt.timedelta(days=k)) for k in range(1, (hi - lo).days + 1))
        assert count == (walked if end >= start else -walked)


def _walk(day: dt.date, n: int) -> dt.date:
    """The plain definition: step a day at a time, counting working days."""
    while n > 0:
        day += dt.timedelta(days=1)
        n -= CAL.is_workday(day)
    return day


def test_the_operators_year_extends_the_calendar(tmp_path: Path) -> None:
    overrides = tmp_path / "workdays.yaml"
    overrides.write_text(
        "years:\n  2027:\n    notice: test arrangement\n    holidays:\n"
        "      - {name: 元旦, from: 2027-01-01, to: 2027-01-03}\n"
        "      - {name: 春节, from: 2027-02-05, to: 2027-02-13}\n"
        "    workdays: [2027-02-14]\n",
        encoding="utf-8",
    )
    cal = WorkCalendar.from_sources(overrides)
    assert cal.known_years == (2004, 2027)
    assert cal.add(d("2026-12-31"), 1) == d("2027-01-04")  # 1–3 January off
    assert cal.is_workday(d("2027-02-14")) and not cal.is_workday(d("2027-02-08"))
    assert cal.years[2027].source == "test arrangement"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("years:\n  2028:\n    holidays: [{from: 2028-01-01}]\n", "gap: 2028 is known but 2027 is not"),
        ("years:\n  2027:\n    holidays: [{from: 2027-01-01}]\n    workdays: [2027-01-05]\n", "is a weekday"),
        ("years:\n  2027:\n    holidays: [{from: 2027-13-01}]\n", "month must be in 1..12"),
        ("years:\n  2027:\n    holidays: [{from: 2026-12-31}]\n", "is not in 2027"),
        ("years:\n  2027:\n    workdays: [2027-01-09]\n", "no holidays given"),
        ("years: [2027]\n", "must map a year"),
    ],
)
def test_a_wrong_override_is_a_clear_error(tmp_path: Path, body: str, message: str) -> None:
    overrides = tmp_path / "workdays.yaml"
    overrides.write_text(body, encoding="utf-8")
    with pytest.raises(CalendarError, match=message):
        WorkCalendar.from_sources(overrides)


def test_the_shipped_overrides_file_loads() -> None:
    assert WorkCalendar.from_sources(Path("cases/workdays.yaml")).known_years[0] == 2004


def test_cli_workday_and_add_print_json_lines_and_exit_2_for_an_unknown_year() -> None:
    res = runner.invoke(app, ["workday", "2026-02-14", "2026-02-16"])
    assert res.exit_code == 0
    assert [json.loads(line) for line in res.stdout.splitlines()] == [
        {"date": "2026-02-14", "workday": True},
        {"date": "2026-02-16", "workday": False},
    ]
    res = runner.invoke(app, ["add", "2026-09-30", "1"])
    assert res.exit_code == 0 and json.loads(res.stdout) == {"date": "2026-09-30", "n": 1, "result": "2026-10-08"}
    res = runner.invoke(app, ["add", "2026-12-20", "20"])
    assert res.exit_code == 2 and res.stdout == ""
    assert "knows 2004–2026 only" in res.stderr and "cases/workdays.yaml" in res.stderr
    res = runner.invoke(app, ["workday", "2026-12-31", "2027-01-04"])
    assert res.exit_code == 2
    assert json.loads(res.stdout) == {"date": "2026-12-31", "workday": True}
    res = runner.invoke(app, ["workday", "31/12/2026"])
    assert res.exit_code == 2 and "is not a date" in res.stderr
