"""China's statutory working days (法定工作日): the calendar every time limit of a case counts in.

A day is a working day when it is a weekday and not a public holiday, or when it is a weekend
day the State Council's arrangement makes a working day (调休上班). The arrangement is
published year by year (国务院办公厅关于某年部分节假日安排的通知); the years the
``chinese-calendar`` release knows come from it, and an operator adds a year it does not know
yet, from the notice, to ``cases/workdays.yaml`` (:data:`OVERRIDES_PATH`; a year there
replaces the library's for that year). A date in a year neither knows is an error
(:class:`CalendarUnknown`), never a guess: a deadline that falls there is "unknown until the
next year's notice".

Counting follows the rule for periods in Chinese law: the day an act happens is not counted,
so a limit of N working days accepted on day D ends on the N-th working day after D
(:meth:`WorkCalendar.add`).

>>> import datetime as dt
>>> cal = WorkCalendar.default()
>>> cal.is_workday(dt.date(2026, 2, 14))  # a Saturday worked before the 2026 Spring Festival
True
>>> cal.is_workday(dt.date(2026, 2, 16))  # a Monday of the Spring Festival holiday
False
>>> cal.add(dt.date(2026, 2, 13), 1)  # Friday, then the Saturday worked
datetime.date(2026, 2, 14)
>>> cal.add(dt.date(2026, 2, 14), 1)  # the holiday runs 15–23 February
datetime.date(2026, 2, 24)
>>> cal.between(dt.date(2026, 2, 13), dt.date(2026, 2, 24))
2
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from chinese_calendar import constants

from hub import safe_yaml

OVERRIDES_PATH = Path(__file__).with_name("workdays.yaml")

_EPOCH = np.datetime64("1970-01-01", "D")


class CalendarError(ValueError):
    """The calendar's own configuration is wrong (``cases/workdays.yaml``)."""


class CalendarUnknown(LookupError):
    """A date in a year whose holiday arrangement is not known (not yet published, or not added)."""

    def __init__(self, day: dt.date, known: tuple[int, int]) -> None:
        self.day = day
        self.known = known
        super().__init__(
            f"{day.isoformat()}: the working-day calendar knows {known[0]}–{known[1]} only; add the State "
            f"Council's holiday arrangement for {day.year} to cases/{OVERRIDES_PATH.name} when it is published"
        )


@dataclass(frozen=True)
class YearArrangement:
    """One year's arrangement: its public holidays and its worked weekend days (调休上班)."""

    year: int
    holidays: frozenset[dt.date]
    workdays: frozenset[dt.date]
    source: str = ""


@dataclass
class WorkCalendar:
    """Working days over a contiguous span of known years, one at a time or a million at once.

    The vectorised methods (:meth:`add_many`, :meth:`between_many`) read a cumulative
    working-day count (``cum[i]`` = working days from the first known day up to and including
    day ``i``) with ``searchsorted``; they answer exactly what the one-day-at-a-time
    :meth:`is_workday` walk answers (a property test checks it). NumPy's business-day
    functions cannot express a worked weekend day, hence the index.
    """

    years: Mapping[int, YearArrangement]
    first: dt.date = field(init=False)
    last: dt.date = field(init=False)
    _work: npt.NDArray[np.bool_] = field(init=False, repr=False)
    _cum: npt.NDArray[np.int64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.years:
            raise CalendarError("the working-day calendar knows no year")
        ordered = sorted(self.years)
        for before, after in itertools.pairwise(ordered):
            if after != before + 1:
                raise CalendarError(
                    f"the working-day calendar has a gap: {after} is known but {before + 1} is not "
                    f"(add {before + 1} to {OVERRIDES_PATH.name} first)"
                )
        self.first, self.last = dt.date(ordered[0], 1, 1), dt.date(ordered[-1], 12, 31)
        days = np.arange(_day(self.first), _day(self.last) + 1, dtype=np.int64)
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday: Monday = 0
        work = weekday < 5
        first_day = _day(self.first)
        for arrangement in self.years.values():
            if arrangement.holidays:
                work[np.fromiter((_day(d) for d in arrangement.holidays), np.int64) - first_day] = False
            if arrangement.workdays:
                work[np.fromiter((_day(d) for d in arrangement.workdays), np.int64) - first_day] = True
        self._work = work
        self._cum = np.cumsum(work, dtype=np.int64)

    # --- building -------------------------------------------------------------------------------

    @classmethod
    @cache
    def default(cls) -> WorkCalendar:
        """The library's years with ``cases/workdays.yaml`` on top (read once per process)."""
        return cls.from_sources(OVERRIDES_PATH)

    @classmethod
    def from_sources(cls, overrides: Path | None = None) -> WorkCalendar:
        years = dict(_library_years())
        if overrides is not None:
            years.update(load_overrides(overrides))
        return cls(years)

    @property
    def known_years(self) -> tuple[int, int]:
        return self.first.year, self.last.year

    # --- one at a time --------------------------------------------------------------------------

    def is_workday(self, day: dt.date) -> bool:
        return bool(self._work[self._index(day)])

    def add(self, day: dt.date, n: int) -> dt.date:
        """The ``n``-th working day after ``day`` (``day`` itself not counted); ``n`` ≤ 0 counts back.

        ``add(day, 0)`` is ``day``. Raises :class:`CalendarUnknown` when the answer (or ``day``)
        lies outside the known years.
        """
        i = self._index(day)
        if n == 0:
            return day
        if n > 0:
            target = self._cum[i] + n
            j = int(np.searchsorted(self._cum, target, side="left"))
            if j >= len(self._cum):
                raise CalendarUnknown(self.last + dt.timedelta(days=1), self.known_years)
        else:
            # the |n|-th working day before: the last day whose count is cum[i-1 or before] - |n| + 1
            before = self._cum[i] - (1 if self._work[i] else 0)  # working days strictly before `day`
            target = before + n + 1
            if target <= 0:
                raise CalendarUnknown(self.first - dt.timedelta(days=1), self.known_years)
            j = int(np.searchsorted(self._cum, target, side="left"))
        return self.first + dt.timedelta(days=j)

    def between(self, start: dt.date, end: dt.date) -> int:
        """Working days in ``(start, end]``; negative when ``end`` is before ``start``."""
        return int(self._cum[self._index(end)] - self._cum[self._index(start)])

    # --- a million at once ----------------------------------------------------------------------

    def add_many(
        self, days: npt.ArrayLike, n: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.bool_]]:
        """:meth:`add` for arrays of days (``datetime64[D]``) and counts ``n`` ≥ 0.

        Returns the results and a mask of those the calendar knows; an unknown result is
        ``NaT`` (never a guess).
        """
        idx, known = self._indices(days)
        counts = np.broadcast_to(np.asarray(n, dtype=np.int64), idx.shape)
        if (counts < 0).any():
            raise ValueError("add_many counts forward only (n ≥ 0)")
        safe = np.where(known, idx, 0)
        target = self._cum[safe] + counts
        j = np.searchsorted(self._cum, target, side="left")
        j = np.where(counts == 0, safe, j)
        known = known & (j < len(self._cum))
        out = np.full(idx.shape, np.datetime64("NaT"), dtype="datetime64[D]")
        out[known] = (j[known] + _day(self.first)).astype("datetime64[D]")
        return out, known

    def between_many(
        self, start: npt.ArrayLike, end: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """:meth:`between` for arrays: working days in ``(start, end]`` and a mask of known pairs."""
        a, known_a = self._indices(start)
        b, known_b = self._indices(end)
        known = known_a & known_b
        out = np.where(known, self._cum[np.where(known_b, b, 0)] - self._cum[np.where(known_a, a, 0)], 0)
        return out.astype(np.int64), known

    # --- internals ------------------------------------------------------------------------------

    def _index(self, day: dt.date) -> int:
        if not (self.first <= day <= self.last):
            raise CalendarUnknown(day, self.known_years)
        return (day - self.first).days

    def _indices(self, days: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        values = np.asarray(days, dtype="datetime64[D]")
        idx = (values - np.datetime64(self.first, "D")).astype(np.int64)
        known = ~np.isnat(values) & (idx >= 0) & (idx < len(self._cum))
        return idx, known


def _day(day: dt.date) -> int:
    return int((np.datetime64(day, "D") - _EPOCH).astype(np.int64))


def _library_years() -> dict[int, YearArrangement]:
    """The years ``chinese-calendar`` carries, from its own tables of holidays and worked days."""
    holidays: dict[int, set[dt.date]] = {}
    workdays: dict[int, set[dt.date]] = {}
    for day in constants.holidays:
        holidays.setdefault(day.year, set()).add(day)
    for day in constants.workdays:
        workdays.setdefault(day.year, set()).add(day)
    source = "chinese-calendar"
    return {
        year: YearArrangement(year, frozenset(holidays.get(year, ())), frozenset(workdays.get(year, ())), source)
        for year in sorted(set(holidays) | set(workdays))
    }


def load_overrides(path: Path) -> dict[int, YearArrangement]:
    """Read ``workdays.yaml``: each year's holidays (ranges) and worked weekend days, checked."""
    try:
        doc = safe_yaml.load_file(path) or {}
    except (OSError, ValueError, safe_yaml.YamlError) as exc:  # ValueError: a date YAML cannot construct
        raise CalendarError(f"{path}: cannot read the working-day overrides: {exc}") from exc
    years = doc.get("years") if isinstance(doc, dict) else None
    years = {} if years is None else years
    if not isinstance(years, dict):
        raise CalendarError(f"{path}: `years` must map a year to its arrangement")
    return {int(year): _arrangement(path, int(year), body or {}) for year, body in years.items()}


def _arrangement(path: Path, year: int, body: Mapping[str, Any]) -> YearArrangement:
    where = f"{path}: {year}"
    holidays: set[dt.date] = set()
    for entry in body.get("holidays") or []:
        start, end = _date(where, entry.get("from")), _date(where, entry.get("to", entry.get("from")))
        if end < start:
            raise CalendarError(f"{where}: holiday {entry.get('name', '')} ends before it starts")
        holidays.update(start + dt.timedelta(days=k) for k in range((end - start).days + 1))
    workdays = {_date(where, d) for d in body.get("workdays") or []}
    for day in holidays | workdays:
        if day.year != year:
            raise CalendarError(f"{where}: {day.isoformat()} is not in {year}")
    for day in sorted(workdays):
        if day.weekday() < 5:
            raise CalendarError(f"{where}: worked day {day.isoformat()} is a weekday (only weekend days are moved)")
    both = holidays & workdays
    if both:
        raise CalendarError(f"{where}: {min(both).isoformat()} is both a holiday and a worked day")
    if not holidays:
        raise CalendarError(f"{where}: no holidays given (copy them from the State Council's notice)")
    return YearArrangement(year, frozenset(holidays), frozenset(workdays), str(body.get("notice", "")))


def _date(where: str, value: object) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise CalendarError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from exc


def iso_days(values: Iterable[str]) -> list[dt.date]:
    """Parse command-line dates (``YYYY-MM-DD``), naming the bad one."""
    out = []
    for value in values:
        try:
            out.append(dt.date.fromisoformat(value))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from exc
    return out
