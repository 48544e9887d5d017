"""``hub audit``: check the audit log's hash chain (审计日志校验) and archive entries past retention."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError

from hub.db import get_engine
from hub.settings import get_settings
from recognition import audit, audit_archive
from recognition.config import RecognitionSettings

app = typer.Typer(no_args_is_help=True, help="The audit log: verify, head, archive.")


@app.command("verify")
def verify(
    deep: Annotated[bool, typer.Option("--deep", help="Also re-walk the chain through every archived entry")] = False,
) -> None:
    """Walk the chain; exit 1 and list the problems if any entry was altered, removed or reordered.

    Archived entries are checked through their archive records and the files' SHA-256.
    """
    report = audit.verify(get_engine(), deep=deep)
    typer.echo(
        json.dumps(
            {
                "ok": report.ok,
                "entries": report.checked,
                "archived": report.archived,
                "head_seq": report.head_seq,
                "head_hash": report.head_hash,
                "problems": report.problems,
            },
            ensure_ascii=False,
        )
    )
    if not report.ok:
        raise typer.Exit(1)


@app.command("head")
def head() -> None:
    """Print the latest entry number and hash (anchor it elsewhere to detect a rewritten log)."""
    report = audit.verify(get_engine(), max_problems=1)
    typer.echo(json.dumps({"head_seq": report.head_seq, "head_hash": report.head_hash}))


@app.command("archive")
def archive(
    before: Annotated[
        str | None,
        typer.Option(
            "--before",
            help="Archive entries written before this day (YYYY-MM-DD, the hub's timezone); "
            "default: HUB_AUDIT_RETENTION_DAYS ago. Never later than that.",
        ),
    ] = None,
) -> None:
    """Move entries past retention to archive files (what the housekeeping DAG runs daily)."""
    settings = get_settings()
    try:
        config = RecognitionSettings()
    except ValidationError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    limit = audit_archive.retention_cutoff(config.audit_retention_days)
    cutoff = limit
    if before is not None:
        try:
            day = dt.date.fromisoformat(before)
        except ValueError as exc:
            typer.echo(f"--before {before!r}: expected YYYY-MM-DD", err=True)
            raise typer.Exit(2) from exc
        cutoff = dt.datetime.combine(day, dt.time(), ZoneInfo(settings.source_timezone)).astimezone(dt.UTC)
        if cutoff > limit:
            typer.echo(
                f"--before {before} is inside the retention period ({config.audit_retention_days} days: "
                f"entries from {limit.date().isoformat()} on stay in the database)",
                err=True,
            )
            raise typer.Exit(2)
    try:
        report = audit_archive.archive(get_engine(), audit_archive.archive_dir(config, settings.home), before=cutoff)
    except audit_archive.ArchiveRefused as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps({"before": cutoff.isoformat(), **report.as_dict()}))
