"""How a department's approval system handles a dispatched case (审批行为): its steps and their times.

Each dispatch gets a fate drawn from its own seeded random stream (the seed, the department and
the dispatch's place among the department's), so a history plays out the same way every time:

* ``on_time`` (most): accepted within hours of the dispatch, in review, decided within the
  promised time limit, the result issued;
* ``correction``: a correction request (补正告知) listing what is missing at once, the applicant's
  material a few working days later (resumed), then the decision;
* ``late``: decided one to three working days past the promised limit;
* ``rejected``: decided against (不予许可), nothing issued.

Steps happen in office hours on working days (the statutory calendar), Asia/Shanghai time. A
step is entered into the department's system when it happens, or now and then the next morning
(补录), so the hub sometimes reads a department's steps out of order.

>>> d = Dispatch("A1B2", "commerce", dt.datetime(2026, 11, 2, 2, tzinfo=dt.UTC), promised_days=1)
>>> fate, steps = plan(d, seed=7)
>>> [s.step for s in steps][:2], all(a.occurred_at <= b.occurred_at for a, b in zip(steps, steps[1:]))
(['accepted', 'in_review'], True)
>>> plan(d, seed=7) == (fate, steps)
True
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import chinese_calendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
OPEN, CLOSE = dt.time(8, 30), dt.time(17, 30)
FATES = ("on_time", "correction", "late", "rejected")


@dataclass(frozen=True)
class Profile:
    """Shares of the fates other than on time."""

    correction: float = 0.10
    late: float = 0.07
    rejected: float = 0.03


@dataclass(frozen=True)
class Dispatch:
    """A case as the hub dispatched it to the department (what its ``case.dispatched`` event says)."""

    code: str
    department: str
    dispatched_at: dt.datetime
    promised_days: int = 1
    statutory_days: int = 20
    item_code: str = ""
    #: (material code, name) the department may find missing
    materials: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PlannedStep:
    """A step as the department's system records it (hub vocabulary; the protocols translate)."""

    code: str
    department: str
    seq: int
    step: str
    occurred_at: dt.datetime
    #: when the department's system has it on record (what a reader can see from then on)
    visible_at: dt.datetime
    note: str | None = None
    missing: tuple[tuple[str, str], ...] = ()


NOTES = {
    "accepted": "已受理", "in_review": "审查中", "correction_requested": "申请材料不齐全，请一次性补正",
    "resumed": "补正材料已收到", "approved": "准予许可", "rejected": "不符合法定条件，不予许可",
    "result_issued": "已出具结果",
}  # fmt: skip


class _Days:
    """Working days by the State Council's arrangement (the ``chinese-calendar`` release); weekdays
    beyond the years it knows."""

    def is_workday(self, day: dt.date) -> bool:
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return day.weekday() < 5

    def later(self, day: dt.date, n: int) -> dt.date:
        while n > 0:
            day += dt.timedelta(days=1)
            n -= self.is_workday(day)
        return day


_DAYS = _Days()


def _days() -> _Days:
    return _DAYS


def _at(day: dt.date, minutes: int) -> dt.datetime:
    """``minutes`` after opening on ``day`` (local), in UTC, whole seconds."""
    local = dt.datetime.combine(day, OPEN, tzinfo=SHANGHAI) + dt.timedelta(minutes=minutes)
    return local.astimezone(dt.UTC)


def in_office(at: dt.datetime, rng: random.Random) -> dt.datetime:
    """``at`` if it falls in office hours on a working day, else a time early on the next working day."""
    local = at.astimezone(SHANGHAI)
    days = _days()
    if days.is_workday(local.date()) and OPEN <= local.time() < CLOSE:
        return at.replace(microsecond=0)
    day = local.date() if local.time() < OPEN and days.is_workday(local.date()) else days.later(local.date(), 1)
    return _at(day, rng.randint(0, 90))


def _after(at: dt.datetime, rng: random.Random, low: int, high: int) -> dt.datetime:
    return in_office(at + dt.timedelta(minutes=rng.randint(low, high)), rng)


def _workdays_after(at: dt.datetime, n: int, rng: random.Random) -> dt.datetime:
    if n <= 0:
        return _after(at, rng, 30, 180)
    day = _days().later(at.astimezone(SHANGHAI).date(), n)
    return _at(day, rng.randint(0, 480))


def fate_of(rng: random.Random, profile: Profile) -> str:
    draw = rng.random()
    for fate, share in (("correction", profile.correction), ("late", profile.late), ("rejected", profile.rejected)):
        if draw < share:
            return fate
        draw -= share
    return "on_time"


def plan(
    d: Dispatch, *, seed: int, profile: Profile | None = None, ordinal: int | None = None
) -> tuple[str, list[PlannedStep]]:
    """The dispatch's fate and every step it will produce, in the order they happen: drawn from
    the seed and the dispatch's ``ordinal`` among its department's (or its supervision code)."""
    rng = random.Random(f"{seed}:{d.department}:{d.code if ordinal is None else ordinal}")
    fate = fate_of(rng, profile or Profile())
    times: list[tuple[str, dt.datetime, tuple[tuple[str, str], ...]]] = []
    accepted = _after(d.dispatched_at, rng, 10, 180)
    times.append(("accepted", accepted, ()))
    review = _after(accepted, rng, 30, 240)
    times.append(("in_review", review, ()))
    start = review
    if fate == "correction":
        pick = rng.choice(d.materials) if d.materials else ("", "补充说明材料")
        asked = _workdays_after(review, rng.randint(0, 1), rng)
        times.append(("correction_requested", asked, (pick,)))
        start = _workdays_after(asked, rng.randint(1, 3), rng)
        times.append(("resumed", start, ()))
    promised = max(d.promised_days, 0)
    n = promised + rng.randint(1, 3) if fate == "late" else rng.randint(0, max(promised - 1, 0))
    decided = _workdays_after(start, n, rng)
    if decided <= start:
        decided = _after(start, rng, 20, 120)
    times.append(("rejected" if fate == "rejected" else "approved", decided, ()))
    if fate != "rejected":
        times.append(("result_issued", _after(decided, rng, 20, 120), ()))
    steps: list[PlannedStep] = []
    for seq, (step, at, missing) in enumerate(times, start=1):
        late_entry = rng.random() < 0.1  # entered the next working morning (补录)
        seen = _at(_days().later(at.astimezone(SHANGHAI).date(), 1), rng.randint(0, 60)) if late_entry else at
        steps.append(PlannedStep(d.code, d.department, seq, step, at, seen, NOTES[step], missing))
    return fate, steps
