"""``hub cases``: the case repository from the shell — intake, show, list, steps, and the catalogue check.

Output is JSON (one object per line for lists), personal data masked unless ``--unmasked``.
What an operator writes here is the case repository's like any other write: recorded with the
actor ``operator:<os user>`` on the case and its steps, announced through the outbox. Exit
status: 0 done, 1 refused or not found (one line ``error: <code>: …`` on stderr), 2 a usage error
(a file that cannot be read, JSON that is not an intake or a step).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from cases import authorisation, parties
from cases import intake as intake_mod
from cases import service as svc
from cases.catalogue import CATALOGUE_PATH, check_file
from cases.errors import CaseRefused
from cases.receipt import render_receipt
from cases.schemas import IntakeIn, RevokeIn, StepIn
from cases.stats import Figures, figures
from cases.views import case_out, case_summary, step_out
from hub.db import get_engine, session_scope
from hub.masking import scrub_text
from hub.models import local_today, utcnow

app = typer.Typer(
    no_args_is_help=True,
    help="The case repository (办件库): intake, show, list, steps, authorisations; the catalogue.",
)
catalogue_app = typer.Typer(no_args_is_help=True, help="The service-item catalogue (事项库): check.")
app.add_typer(catalogue_app, name="catalogue")

UnmaskedOpt = Annotated[bool, typer.Option("--unmasked", help="Show personal data unmasked (operators only)")]


def _operator() -> str:
    return f"operator:{getpass.getuser()}"


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _echo(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


def _read(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path}: {exc}", 2)


@catalogue_app.command("check")
def check(
    files: Annotated[list[Path] | None, typer.Argument(help="Catalogue files (default: the packaged one)")] = None,
) -> None:
    """Check catalogue files against the schema and the e-licence catalogue; print file:line: problem."""
    paths = list(files) if files else [CATALOGUE_PATH]
    problems = [p for path in paths for p in check_file(path)]
    for p in problems:
        typer.echo(str(p))
    typer.echo(f"{len(paths)} file(s) checked, {len(problems)} problem(s)")
    if problems:
        raise typer.Exit(1)


@app.command("intake")
def intake(
    file: Annotated[str, typer.Argument(help="The application as JSON (the body of POST /v1/cases), - for stdin")],
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="The same key again answers the first case")
    ] = None,
    unmasked: UnmaskedOpt = False,
) -> None:
    """Take in an application at the window; prints the case with its supervision code."""
    try:
        body = IntakeIn.model_validate_json(_read(file))
    except ValidationError as exc:
        _fail(f"not an intake: {exc.error_count()} problem(s): {_errors(exc)}", 2)
    try:
        with session_scope(get_engine()) as session:
            taken = intake_mod.take_in(session, body, actor=_operator(), idempotency_key=idempotency_key)
            out = case_out(session, taken.case, personal=unmasked, replayed=taken.replayed)
    except CaseRefused as exc:
        _fail(f"{exc.code}: {exc.detail}")
    _echo(out.model_dump(mode="json"))


def _errors(exc: ValidationError) -> str:
    # locations and messages only: the input itself may be personal data
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])


@app.command("show")
def show(code: str, unmasked: UnmaskedOpt = False) -> None:
    """A case and its timeline by its supervision code."""
    try:
        with session_scope(get_engine()) as session:
            out = case_out(session, svc.find_case(session, code), personal=unmasked)
    except CaseRefused as exc:
        _fail(f"{exc.code}: {exc.detail}")
    _echo(out.model_dump(mode="json"))


@app.command("receipt")
def receipt(
    code: str,
    out: Annotated[Path | None, typer.Option("--out", help="Write the PDF here (default: stdout)")] = None,
    unmasked: UnmaskedOpt = False,
) -> None:
    """The receipt (受理回执) PDF of a case: its supervision code and a QR code to its status page."""
    try:
        with session_scope(get_engine()) as session:
            pdf = render_receipt(case_out(session, svc.find_case(session, code), personal=unmasked))
    except CaseRefused as exc:
        _fail(f"{exc.code}: {exc.detail}")
    if out is None:
        sys.stdout.buffer.write(pdf)
        sys.stdout.buffer.flush()
    else:
        try:
            out.write_bytes(pdf)
        except OSError as exc:
            _fail(f"cannot write {out}: {exc}", 2)
        typer.echo(str(out))


@app.command("list")
def list_(
    holder: Annotated[str, typer.Argument(help="The applicant's resident id, USCC or a legacy code")],
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    unmasked: UnmaskedOpt = False,
) -> None:
    """An applicant's cases, newest first: one JSON line each."""
    try:
        with session_scope(get_engine()) as session:
            rows = svc.cases_of(session, parties.lookup_codes(session, holder), limit=limit)
            lines = [case_summary(session, r, personal=unmasked).model_dump(mode="json") for r in rows]
    except CaseRefused as exc:
        _fail(f"{exc.code}: {exc.detail}")
    for line in lines:
        _echo(line)


@app.command("steps")
def steps(
    code: str,
    record: Annotated[
        str | None,
        typer.Option(
            "--record", help="Append the steps in this file (JSON lines, the body of POST …/steps), - for stdin"
        ),
    ] = None,
    department: Annotated[
        str | None, typer.Option("--department", help="The department the recorded steps are for (or window)")
    ] = None,
    unmasked: UnmaskedOpt = False,
) -> None:
    """The case's step log as recorded (one JSON line per step, in time order, with flags);
    with --record, append steps first (a department handing over its steps as a file)."""
    try:
        if record is not None:
            bodies = [StepIn.model_validate_json(line) for line in _read(record).splitlines() if line.strip()]
            for body in bodies:
                dept = body.department or department
                if dept is None:
                    _fail("name the department: --department or a department in each step", 2)
                with session_scope(get_engine()) as session:
                    svc.record_step(session, code, dept, body, actor=_operator())
        with session_scope(get_engine()) as session:
            case = svc.find_case(session, code)
            rows = {(r.department, r.seq): r for r in svc.log(session, case)}
            placed = svc.read(session, case, list(rows.values())).timeline
            lines = [step_out(rows[(p.department, p.seq)], p.impossible, unmasked) for p in placed]
    except ValidationError as exc:
        _fail(f"not a step: {_errors(exc)}", 2)
    except CaseRefused as exc:
        _fail(f"{exc.code}: {exc.detail}")
    for line in lines:
        _echo(line.model_dump(mode="json"))


@app.command("authorisations")
def authorisations(code: str, unmasked: UnmaskedOpt = False) -> None:
    """The holders' authorisations of a case to use their licences (授权): one JSON line each."""
    try:
        with session_scope(get_engine()) as session:
            lines = [a.model_dump(mode="json") for a in case_out(session, svc.find_case(session, code),
                                                                 personal=unmasked).authorisations]  # fmt: skip
    except CaseRefused as exc:
        _fail(f"{exc.code}: {exc.detail}")
    for line in lines:
        _echo(line)


@app.command("revoke-authorisation")
def revoke_authorisation(
    code: str,
    ref: Annotated[str, typer.Argument(help="The authorisation's reference (AU…)")],
    reason: Annotated[str, typer.Option("--reason", help="Why the holder withdraws it")],
) -> None:
    """Revoke a holder's authorisation: departments no longer read the licences under it."""
    try:
        body = RevokeIn(reason=reason)
    except ValidationError as exc:
        _fail(f"not a revocation: {_errors(exc)}", 2)
    now = utcnow()
    try:
        with session_scope(get_engine()) as session:
            row = authorisation.revoke(session, svc.find_case(session, code), ref, body, actor=_operator(), now=now)
            out = authorisation.out(row, now, text=scrub_text(reason))
    except CaseRefused as exc:
        _fail(f"{exc.code}: {exc.detail}")
    _echo(out.model_dump(mode="json"))


@app.command("stats")
def stats(
    since: Annotated[str | None, typer.Option(help="First day of receipt, YYYY-MM-DD (default: 30 days ago)")] = None,
    until: Annotated[str | None, typer.Option(help="Last day of receipt, YYYY-MM-DD (default: today)")] = None,
    by: Annotated[str, typer.Option(help="item or department")] = "item",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table")] = False,
) -> None:
    """The figures supervisors report: received, concluded, on the spot, early, overdue, working days, corrections,
    evaluations (好差评) and poor ones."""
    if by not in ("item", "department"):
        _fail("--by is item or department", 2)
    today = local_today()
    try:
        first = dt.date.fromisoformat(since) if since else today - dt.timedelta(days=30)
        last = dt.date.fromisoformat(until) if until else today
    except ValueError as exc:
        _fail(f"{exc} (dates are YYYY-MM-DD)", 2)
    if last < first:
        _fail("--until is before --since", 2)
    with session_scope(get_engine()) as session:
        rows = figures(session, since=first, until=last, by=by)  # type: ignore[arg-type]
    if as_json:
        for r in rows:
            _echo(r.as_dict())
        return
    Console(width=140).print(figures_table(rows, f"cases received {first.isoformat()} – {last.isoformat()}, by {by}"))


def figures_table(rows: Sequence[Figures], title: str) -> Table:
    """The figures as the supervisors' table (``hub cases stats``, the demo's summary)."""
    table = Table(title=title)
    for col in (
        "",
        "received",
        "concluded",
        "on the spot",
        "early",
        "overdue",
        "median",
        "p90",
        "corr./case",
        "evaluated",
        "poor",
    ):
        table.add_column(col, justify="left" if not col else "right")

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{x:.0%}"

    def num(x: float | None) -> str:
        return "–" if x is None else f"{x:g}"

    for r in rows:
        table.add_row(
            f"{r.key} {r.name}" if r.key != r.name else r.key, str(r.received), str(r.concluded),
            pct(r.on_the_spot_rate), pct(r.early_rate), str(r.overdue), num(r.median_days), num(r.p90_days),
            f"{r.corrections_per_case:.2f}", str(r.evaluated), pct(r.poor_rate),
        )  # fmt: skip
    return table
