"""``hub calendar``: statutory working days from the shell.

``hub calendar workday DATE...`` prints ``{"date", "workday"}`` per date, one JSON object per
line; ``hub calendar add DATE N`` prints ``{"date", "n", "result"}``, the N-th working day after
DATE (N < 0 counts back). Both exit 2 with one ``error:`` line on stderr for a date that is not
a date or that lies in a year the calendar does not know (see ``cases/workdays.yaml``).
"""

from __future__ import annotations

import json
from typing import Annotated, NoReturn

import typer

from cases.workdays import CalendarError, CalendarUnknown, WorkCalendar, iso_days

app = typer.Typer(no_args_is_help=True, help="Statutory working days (法定工作日): workday, add, years.")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _calendar() -> WorkCalendar:
    try:
        return WorkCalendar.default()
    except CalendarError as exc:
        _fail(str(exc))


@app.command()
def workday(dates: Annotated[list[str], typer.Argument(help="Dates, YYYY-MM-DD")]) -> None:
    """Whether each date is a working day."""
    cal = _calendar()
    for value in dates:  # each answer as it is known; the first date it cannot answer ends the run
        try:
            [day] = iso_days([value])
            typer.echo(json.dumps({"date": day.isoformat(), "workday": cal.is_workday(day)}))
        except (ValueError, CalendarUnknown) as exc:
            _fail(str(exc))


@app.command()
def add(
    date: Annotated[str, typer.Argument(help="The day counting starts after, YYYY-MM-DD")],
    n: Annotated[int, typer.Argument(help="Working days to add (negative: count back)")],
) -> None:
    """The N-th working day after DATE (DATE itself not counted, as for every legal time limit)."""
    cal = _calendar()
    try:
        [day] = iso_days([date])
        result = cal.add(day, n)
    except (ValueError, CalendarUnknown) as exc:
        _fail(str(exc))
    typer.echo(json.dumps({"date": day.isoformat(), "n": n, "result": result.isoformat()}))


@app.command()
def years() -> None:
    """The years the calendar knows, and where each year's arrangement comes from."""
    cal = _calendar()
    for year in sorted(cal.years):
        typer.echo(json.dumps({"year": year, "source": cal.years[year].source or "cases/workdays.yaml"}))
