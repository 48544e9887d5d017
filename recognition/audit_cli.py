"""``hub audit``: check the audit log's hash chain (审计日志校验)."""

from __future__ import annotations

import json

import typer

from hub.db import get_engine
from recognition import audit

app = typer.Typer(no_args_is_help=True, help="The audit log: verify.")


@app.command("verify")
def verify() -> None:
    """Walk the chain; exit 1 and list the problems if any entry was altered, removed or reordered."""
    report = audit.verify(get_engine())
    typer.echo(
        json.dumps(
            {
                "ok": report.ok,
                "entries": report.checked,
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
