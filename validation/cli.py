"""``hub validation``: data-quality suites, the quarantine (隔离区) and its retention purge."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub.db import session_scope
from validation.quarantine import list_quarantine
from validation.retention import cutoff, purge
from validation.suites import all_suites

app = typer.Typer(no_args_is_help=True, help="Data-quality suites and quarantine.")


def _console() -> Console:
    return Console()


@app.command("quarantine")
def quarantine_cmd(
    department: Annotated[str | None, typer.Option(help="Only this department (tax, commerce, ...).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many records, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Quarantined records with their reasons (personal data masked)."""
    with session_scope() as session:
        views = list_quarantine(session, department=department, limit=limit)
    if as_json:
        for v in views:
            typer.echo(json.dumps(v.__dict__, ensure_ascii=False, default=str))
        return
    table = Table(title=f"quarantine ({len(views)} shown)")
    for col in ("id", "department", "dataset", "source key", "reasons", "run", "record (masked)"):
        table.add_column(col)
    for v in views:
        record = (v.payload or {}).get("record", {})
        table.add_row(
            str(v.id),
            v.department,
            v.dataset,
            v.source_key or "",
            ", ".join(v.reason_codes),
            v.run_id or "",
            json.dumps(record, ensure_ascii=False, default=str)[:120],
        )
    _console().print(table)


@app.command("purge")
def purge_cmd(
    days: Annotated[int | None, typer.Option(min=0, help="Retention in days (default: HUB_RETENTION_DAYS).")] = None,
) -> None:
    """Purge quarantine rows, staged Parquet and GX results past the retention period."""
    limit = cutoff(days)
    with session_scope() as session:
        report = purge(session, limit)
    typer.echo(json.dumps({"older_than": limit.isoformat(), **report.as_dict()}))


@app.command("suites")
def suites_cmd() -> None:
    """The expectation suite of every canonical entity, with reason codes."""
    table = Table(title="expectation suites")
    for col in ("suite", "expectation", "column", "reason code", "applies"):
        table.add_column(col)
    for spec in all_suites():
        for exp in spec.expectations:
            table.add_row(
                spec.name,
                exp.type,
                exp.column,
                exp.reason_code,
                "when column present" if exp.when_column_present else "always",
            )
    _console().print(table)
