"""The clock of a department's stage (审批时限) and its light (绿灯、黄灯、红灯).

The rules of the Administrative Licensing Law as a case's step log records them:

- the clock **starts** when the department accepts its stage (the day of acceptance is not
  counted: a period runs from the next day);
- it **stops** while a correction is requested from the applicant (补正, art. 32) and during
  the periods the law excludes — hearing, tender, auction, testing, quarantine, appraisal,
  expert review (art. 45) — and **resumes** after them (the day it resumes is not counted);
- it can be **extended once**, with the organ head's approval and a reason (延期, art. 42): the
  days granted are added to both limits; a second extension is flagged in the timeline and
  adds nothing;
- it **ends** with the decision (approved or rejected), the result, or a withdrawal.

Both the statutory limit (法定时限) and the promised one (承诺时限, the shorter, published
commitment) are tracked; the light follows the promised limit: **red** once the working days
used exceed it, **yellow** once they reach a share of it (default 80%) or only a few working
days are left (if configured), **green** otherwise. A running clock whose promised deadline
falls in a year the working-day calendar does not know yet is **unknown** ("deadline unknown
until the next year's notice"), never green by default. A stopped clock keeps the light its
used days give (the days do not grow while it is stopped).

>>> import datetime as dt
>>> from cases.steps import LoggedStep, Step
>>> cal = WorkCalendar.default()
>>> at = lambda day: dt.datetime.fromisoformat(day + "T10:00:00+08:00")
>>> steps = [LoggedStep("tax", 1, Step.ACCEPTED, at("2026-09-25")),
...          LoggedStep("tax", 2, Step.CORRECTION_REQUESTED, at("2026-09-28")),
...          LoggedStep("tax", 3, Step.RESUMED, at("2026-10-09"))]
>>> r = read_clock(steps, Limits(statutory=20, promised=5), cal, today=dt.date(2026, 10, 12))
>>> r.state, r.used, r.promised_due, r.light
('running', 3, datetime.date(2026, 10, 14), 'green')
>>> read_clock(steps, Limits(20, 5), cal, today=dt.date(2026, 10, 13)).light  # 4 of 5: 80%
'yellow'
>>> read_clock(steps, Limits(20, 5), cal, today=dt.date(2026, 10, 15)).overdue
1
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cases.steps import LoggedStep, Step
from cases.workdays import CalendarUnknown, WorkCalendar
from hub.clock import local_day

GREEN, YELLOW, RED, UNKNOWN = "green", "yellow", "red", "unknown"
NOT_STARTED, RUNNING, STOPPED, ENDED = "not_started", "running", "stopped", "ended"

_STOPS = {Step.CORRECTION_REQUESTED: "correction", Step.SUSPENDED: "suspension"}
_RESUMES = {Step.RESUMED: "correction", Step.SUSPENSION_ENDED: "suspension"}
_ENDS = frozenset({Step.APPROVED, Step.REJECTED, Step.RESULT_ISSUED, Step.WITHDRAWN})


@dataclass(frozen=True)
class Limits:
    """A stage's limits in working days (from the catalogue)."""

    statutory: int
    promised: int


@dataclass(frozen=True)
class LightRule:
    """When a light turns yellow: a share of the promised limit used, or N working days left."""

    yellow_share: float = 0.8
    yellow_days_left: int | None = None

    def light(self, used: int, limit: int) -> str:
        if used > limit:
            return RED
        if used >= math.ceil(self.yellow_share * limit) and limit > 0:
            return YELLOW
        if self.yellow_days_left is not None and limit - used <= self.yellow_days_left:
            return YELLOW
        return GREEN


@dataclass(frozen=True)
class Stop:
    reason: str  # correction | suspension
    period: str | None  # the excluded period, for a suspension
    start: dt.date
    end: dt.date | None  # None: still stopped


@dataclass(frozen=True)
class ClockReading:
    state: str
    started_on: dt.date | None
    used: int
    extension: int
    #: the limits in force: the catalogue's plus any extension granted
    promised_limit: int
    statutory_limit: int
    light: str
    #: working days past the promised limit (0 when within it)
    overdue: int
    #: working days past the statutory limit (0 when within it)
    statutory_overdue: int
    #: the dates the limits are reached, while the clock runs; None when stopped, ended, or unknown
    promised_due: dt.date | None = None
    statutory_due: dt.date | None = None
    stops: tuple[Stop, ...] = field(default=())
    #: why a date is missing: the working-day calendar does not reach it yet
    unknown_reason: str | None = None
    #: while running: the day the current running period began, and the days used before it
    #: (what :func:`lights_many` needs to bring the clock up to date without the step log)
    running_since: dt.date | None = None
    used_before: int = 0

    @property
    def on_time(self) -> bool | None:
        """For an ended clock: within the promised limit."""
        return None if self.state != ENDED else self.used <= self.promised_limit


def read_clock(
    steps: Sequence[LoggedStep],
    limits: Limits,
    calendar: WorkCalendar,
    *,
    today: dt.date,
    rule: LightRule | None = None,
) -> ClockReading:
    """One stage's clock from its department's steps (placed, in time order) as of ``today``.

    Steps flagged impossible by the timeline (``LoggedStep.impossible``) do not move the clock.
    """
    rule = rule or LightRule()
    started: dt.date | None = None
    running_since: dt.date | None = None
    used = extension = 0
    stops: list[Stop] = []
    open_stop: Stop | None = None
    ended_on: dt.date | None = None
    for s in steps:
        if s.impossible is not None:
            continue
        day = local_day(s.occurred_at)  # the departments' day (Asia/Shanghai)
        if started is None:
            if s.step is Step.ACCEPTED:
                started = running_since = day
            continue
        if ended_on is not None:
            break
        if s.step is Step.EXTENDED:  # a second one is flagged impossible by the timeline
            extension = _int((s.detail or {}).get("days"))
            continue
        if s.step in _STOPS and open_stop is None:
            if running_since is not None:
                used += calendar.between(running_since, day)
                running_since = None
            open_stop = Stop(_STOPS[s.step], _period(s), day, None)
        elif s.step in _RESUMES and open_stop is not None and _RESUMES[s.step] == open_stop.reason:
            stops.append(Stop(open_stop.reason, open_stop.period, open_stop.start, day))
            open_stop, running_since = None, day
        elif s.step in _ENDS:
            if running_since is not None:
                used += calendar.between(running_since, day)
                running_since = None
            ended_on = day
    if open_stop is not None:
        stops.append(open_stop)
    if started is None:
        return ClockReading(NOT_STARTED, None, 0, 0, limits.promised, limits.statutory, GREEN, 0, 0, stops=tuple(stops))
    promised, statutory = limits.promised + extension, limits.statutory + extension
    promised_due = statutory_due = None
    reason = None
    promised_unknown = False
    before = used
    if running_since is not None:
        state = RUNNING
        try:
            used += calendar.between(running_since, max(today, running_since))
            promised_due = calendar.add(running_since, max(promised - before, 0))
        except CalendarUnknown as exc:
            promised_unknown, reason = True, f"deadline unknown until the next year's notice ({exc})"
        try:
            statutory_due = calendar.add(running_since, max(statutory - before, 0))
        except CalendarUnknown as exc:
            reason = reason or f"statutory deadline unknown until the next year's notice ({exc})"
    else:
        state = ENDED if ended_on is not None else STOPPED
    light = rule.light(used, promised)
    if promised_unknown and light == GREEN:
        light = UNKNOWN
    return ClockReading(
        state, started, used, extension, promised, statutory, light, max(used - promised, 0),
        max(used - statutory, 0), promised_due, statutory_due, tuple(stops), reason, running_since, before,
    )  # fmt: skip


def _period(s: LoggedStep) -> str | None:
    period = (s.detail or {}).get("period")
    return str(period) if period is not None else None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


#: the lights in the order of their codes in :func:`light_codes_many` (and in the supervision task's reads)
LIGHTS = (GREEN, YELLOW, RED, UNKNOWN)


def lights_many(
    calendar: WorkCalendar,
    *,
    running_since: npt.ArrayLike,
    used_before: npt.ArrayLike,
    promised: npt.ArrayLike,
    today: dt.date,
    rule: LightRule | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.object_]]:
    """Working days used and the light of a million running clocks in one pass.

    ``running_since`` (``datetime64[D]``) is the day each clock last started or resumed,
    ``used_before`` the working days it used before that, ``promised`` its promised limit with
    any extension. The answer equals :func:`read_clock` case by case (a property test checks it).
    A clock whose promised deadline lies beyond the known calendar and is not yet yellow or red
    is ``unknown``.
    """
    used, codes = light_codes_many(
        calendar, running_since=running_since, used_before=used_before, promised=promised, today=today, rule=rule
    )
    return used, np.array(LIGHTS, dtype=object)[codes]


def light_codes_many(
    calendar: WorkCalendar,
    *,
    running_since: npt.ArrayLike,
    used_before: npt.ArrayLike,
    promised: npt.ArrayLike,
    today: dt.date,
    rule: LightRule | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8]]:
    """:func:`lights_many` with each light as its index in :data:`LIGHTS` (what the supervision task compares)."""
    rule = rule or LightRule()
    since = np.asarray(running_since, dtype="datetime64[D]")
    before = np.asarray(used_before, dtype=np.int64)
    limit = np.asarray(promised, dtype=np.int64)
    today_arr = np.full(since.shape, np.datetime64(today, "D"))
    ran, known = calendar.between_many(since, np.maximum(today_arr, since))
    used = before + np.where(known, ran, 0)
    share = np.ceil(rule.yellow_share * limit).astype(np.int64)
    yellow = (used >= share) & (limit > 0)
    if rule.yellow_days_left is not None:
        yellow |= limit - used <= rule.yellow_days_left
    codes = np.where(used > limit, 2, np.where(yellow, 1, 0)).astype(np.int8)
    _, due_known = calendar.add_many(since, np.maximum(limit - before, 0))
    codes[(codes == 0) & ~(due_known & known)] = 3
    return used, codes


#: the department name of a case's own clock (its stages' clocks carry their department's)
CASE = "*"


def case_steps(timeline: Sequence[LoggedStep], *, ended_at: dt.datetime | None, extension: int = 0) -> list[LoggedStep]:
    """The steps of the case's own clock, from its whole timeline: it starts when the window
    accepts the application, stops while any stage is stopped (a correction, an excluded
    period), runs again when none is, carries the largest extension a stage was granted, and
    ends at ``ended_at`` (when the case was concluded, rejected or withdrawn)."""
    out: list[LoggedStep] = []
    open_stops: dict[str, int] = {}
    seq = 0

    def add(step: Step, at: dt.datetime, detail: dict[str, object] | None = None) -> None:
        nonlocal seq
        seq += 1
        out.append(LoggedStep(CASE, seq, step, at, order=seq, detail=detail))

    for s in timeline:
        if s.impossible is not None:
            continue
        if s.department == "window":
            if s.step is Step.ACCEPTED and not out:
                add(Step.ACCEPTED, s.occurred_at)
            continue
        if not out:
            continue
        was = sum(open_stops.values())
        if s.step in _STOPS:
            open_stops[s.department] = open_stops.get(s.department, 0) + 1
        elif s.step in _RESUMES and open_stops.get(s.department, 0) > 0:
            open_stops[s.department] -= 1
        now_open = sum(open_stops.values())
        if was == 0 and now_open > 0:
            add(Step.CORRECTION_REQUESTED, s.occurred_at)
        elif was > 0 and now_open == 0:
            add(Step.RESUMED, s.occurred_at)
    if out and extension:
        add(Step.EXTENDED, out[0].occurred_at, {"days": extension})
    if out and ended_at is not None:
        if sum(open_stops.values()):
            add(Step.RESUMED, ended_at)
        add(Step.APPROVED, ended_at)
    out.sort(key=lambda x: (x.occurred_at, x.order))
    return out
