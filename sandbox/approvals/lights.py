"""The lights the approval systems' record calls for (监察灯号的标准答案): for any "as of" time,
each case's and each department stage's working days used, overdue working days and light —
worked out by the sandbox on its own, from what its approval systems put on record, the
catalogue's limits (``cases/catalogue.yaml``, read as data) and the official calendar
(``chinese_calendar``), so the hub's e-supervision can be checked against it. Tests and
benchmarks read it; the hub never does.

The rules (Administrative Licensing Law, as the catalogue states the limits):

* a period counts **working days** by the State Council's arrangement — weekends and public
  holidays off, the adjusted working weekends (调休) on — and the day something happens is not
  counted (a period runs from the next day, art. 42/82 with the Civil Code's art. 201);
* a **stage** runs from its department's acceptance, stops at a correction request (补正,
  art. 32) until the material is in (the day it resumes not counted either), and ends at the
  department's decision (approved or rejected); its limit is the stage's promised days;
* the **case** runs from the window's acceptance, stops while any of its stages waits for a
  correction, and ends when every stage of the item is done — its result issued, or for a stage
  that issues no licence its approval — or at the first rejection (不予许可 ends the
  application); its limit is the item's promised days;
* the light: **red** once the days used exceed the limit, **yellow** once they reach a share
  of it (80% by default, rounded up; an on-the-spot limit of 0 is never yellow), **green**
  otherwise; overdue working days are the days used beyond the limit.

Only the years ``chinese_calendar`` knows are counted; a later year raises its
``NotImplementedError`` (the truth never guesses).

>>> import datetime as dt
>>> workdays_between(dt.date(2026, 2, 13), dt.date(2026, 2, 24))  # Spring Festival: Sat 14 Feb worked, 15–23 off
2
>>> workdays_between(dt.date(2026, 2, 24), dt.date(2026, 3, 2))  # Sat 28 Feb worked (调休)
5
>>> workdays_between(dt.date(2026, 9, 18), dt.date(2026, 9, 21))  # Sun 20 Sep worked before National Day
2
>>> workdays_between(dt.date(2026, 9, 30), dt.date(2026, 10, 12))  # 1–7 Oct off, Sat 10 Oct worked
4
>>> day = dt.date(2026, 10, 12)
>>> workdays_between(day, day), workdays_between(day, dt.date(2026, 10, 9))
(0, 0)
>>> light(4, 5), light(3, 5), light(6, 5), light(1, 1), light(0, 0), light(1, 0)
('yellow', 'green', 'red', 'yellow', 'green', 'red')
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chinese_calendar
import yaml

from sandbox.approvals.behaviour import SHANGHAI

CATALOGUE = Path(__file__).resolve().parents[2] / "cases" / "catalogue.yaml"
#: the department name of a case's own clock
CASE = "*"
STOPS, RESUMES, DECISIONS = {"correction_requested"}, {"resumed"}, {"approved", "rejected"}


def workdays_between(start: dt.date, end: dt.date) -> int:
    """Working days in ``(start, end]`` by the official calendar; 0 when ``end`` is not after ``start``."""
    if end <= start:
        return 0
    return len(chinese_calendar.get_workdays(start + dt.timedelta(days=1), end))


def light(used: int, limit: int, *, share: float = 0.8) -> str:
    """The light of ``used`` working days against a ``limit``."""
    if used > limit:
        return "red"
    if limit > 0 and used >= math.ceil(share * limit):
        return "yellow"
    return "green"


@dataclass(frozen=True)
class Limits:
    """An item's promised limit and its stages' (working days), from the catalogue."""

    promised: int
    stages: Mapping[str, int]
    #: the stages that issue a licence (concluded by their result; the others by their approval)
    issuing: frozenset[str] = frozenset()


def catalogue_limits(path: Path = CATALOGUE) -> dict[str, Limits]:
    """Each item's limits as ``cases/catalogue.yaml`` states them."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {
        str(item["code"]): Limits(int(item["promised_days"]),
                                  {str(s["department"]): int(s["promised_days"]) for s in item.get("stages") or ()},
                                  frozenset(str(s["department"]) for s in item.get("stages") or () if s.get("yields")))
        for item in data["items"]
    }  # fmt: skip


@dataclass(frozen=True)
class Expected:
    """A clock as the record calls for it, as of a day."""

    code: str
    department: str  # CASE for the case's own clock
    state: str  # running | stopped | ended
    used: int
    limit: int
    light: str
    overdue: int
    #: every step it depends on was on record by then
    on_record: bool = True


def _day(at: dt.datetime) -> dt.date:
    return at.astimezone(SHANGHAI).date()


def _run(start: dt.date, events: Iterable[tuple[dt.date, int]], end: dt.date | None, today: dt.date) -> tuple[int, str]:
    """Working days a clock started on ``start`` used by ``today``: ``events`` are (day, +1) when a
    stop begins and (day, -1) when one ends, in time order; the clock runs while no stop is open."""
    used, open_stops, since = 0, 0, start
    for day, delta in events:
        if end is not None and day > end:
            break
        if open_stops == 0 and delta > 0:
            used += workdays_between(since, day)
        open_stops = max(open_stops + delta, 0)
        if open_stops == 0 and delta < 0:
            since = day
    if end is not None:
        return used + (workdays_between(since, end) if open_stops == 0 else 0), "ended"
    if open_stops:
        return used, "stopped"
    return used + workdays_between(since, today), "running"


def expected_lights(
    steps: Iterable[Mapping[str, Any]],
    receipts: Mapping[str, tuple[str, dt.datetime]],
    *,
    as_of: dt.datetime,
    limits: Mapping[str, Limits] | None = None,
    share: float = 0.8,
) -> list[Expected]:
    """Every clock of every received case as of ``as_of``, from the ``steps`` that happened by then
    (mappings with code, department, seq, step, occurred_at, and visible_at when the step was
    put on record later) and the window's ``receipts`` (code → (item code, accepted at)). A stage
    its department has not accepted has no clock. ``on_record`` says whether every step the clock
    depends on was on record by ``as_of`` (a step entered the next morning, 补录, is not): only
    then can a reader of the departments' records know the clock."""
    limits = limits or catalogue_limits()
    today = _day(as_of)
    by_stage: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for s in sorted(steps, key=lambda s: (s["code"], s["department"], int(s["seq"]))):
        if s["occurred_at"] <= as_of:
            by_stage.setdefault((s["code"], s["department"]), []).append(s)
    behind = {(c, d) for (c, d), stage in by_stage.items() if any(s.get("visible_at", as_of) > as_of for s in stage)}
    out: list[Expected] = []
    for code, (item, received_at) in sorted(receipts.items()):
        if received_at > as_of:
            continue
        item_limits = limits[item]
        case_events: list[tuple[dt.datetime, int]] = []
        decided: dict[str, tuple[str, dt.datetime]] = {}
        issued: dict[str, dt.datetime] = {}
        for department, limit in item_limits.stages.items():
            stage = by_stage.get((code, department), [])
            decision = next((s for s in stage if s["step"] in DECISIONS), None)
            end = decision["occurred_at"] if decision is not None else None
            events = [(s["occurred_at"], 1 if s["step"] in STOPS else -1) for s in stage
                      if s["step"] in STOPS | RESUMES and (end is None or s["occurred_at"] <= end)]  # fmt: skip
            case_events += events
            if stage and stage[0]["step"] == "accepted":
                used, state = _run(_day(stage[0]["occurred_at"]), [(_day(t), d) for t, d in events],
                                   _day(end) if end is not None else None, today)  # fmt: skip
                out.append(Expected(code, department, state, used, limit, light(used, limit, share=share),
                                    max(used - limit, 0), (code, department) not in behind))  # fmt: skip
            if decision is not None:
                decided[department] = (decision["step"], decision["occurred_at"])
            done = "result_issued" if department in item_limits.issuing else "approved"
            result = next((s for s in stage if s["step"] in (done, "result_issued")), None)
            if result is not None:
                issued[department] = result["occurred_at"]
        rejections = [at for step, at in decided.values() if step == "rejected"]
        if rejections:
            case_end: dt.datetime | None = min(rejections)
        elif set(issued) == set(item_limits.stages):
            case_end = max(issued.values())
        else:
            case_end = None
        case_events.sort(key=lambda e: e[0])
        counted = [(_day(t), d) for t, d in case_events if case_end is None or t <= case_end]
        used, state = _run(_day(received_at), counted, _day(case_end) if case_end is not None else None, today)
        limit = item_limits.promised
        out.append(Expected(code, CASE, state, used, limit, light(used, limit, share=share), max(used - limit, 0),
                            not any(c == code for c, _ in behind)))  # fmt: skip
    return out
