"""``hub connectors state|reset``: read positions and batches not yet carried through (读取位置).

These two commands join the ``hub connectors`` group (``connectors/cli.py``) from here: they
need the pipeline's staged-batch ledger and the audit log, rooms above the connectors.
NAME is a mapping file's name; its ``department`` is the source whose positions are shown.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from connectors.cli import MAPPINGS_DIR, app, console
from hub import safe_yaml
from hub.db import get_engine
from pipeline.positions import (
    Feed,
    Position,
    ResetRefused,
    describe_state,
    feed_of,
    moved_state,
    parse_since,
    positions,
    reset_position,
)

__all__ = ["app"]


def _feed(name: str, directory: Path) -> Feed:
    path = directory / f"{name}.yaml"
    try:
        data = safe_yaml.load_file(path) if path.exists() else None
    except safe_yaml.YamlError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if not isinstance(data, dict) or not isinstance(data.get("source"), dict) or not data.get("department"):
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml"))) or "none"
        console.print(f"[red]no mapping named {name!r}[/red]; known: {known}")
        raise typer.Exit(2)
    return feed_of(name, data["source"], str(data["department"]))


def _engine() -> Any:
    return get_engine()


def _as_json(p: Position) -> dict[str, Any]:
    return {
        "source": p.source,
        "dataset": p.dataset,
        "position": p.describe(),
        "updated_at": p.updated_at.isoformat() if p.updated_at else None,
        "pending_batches": p.pending.batches,
        "pending_rows": p.pending.rows,
        "staged_by": p.pending.staged_by,
        "claimed_by": p.pending.claimed_by,
    }


@app.command()
def state(
    name: str,
    dataset: str | None = typer.Argument(None, help="One dataset (default: every dataset of the source)"),
    mappings: Path = typer.Option(MAPPINGS_DIR, help="Directory of mapping files"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line"),
) -> None:
    """Read positions of NAME's source per dataset, and staged batches not yet carried through."""
    feed = _feed(name, mappings)
    found = positions(_engine(), feed, dataset)
    if as_json:
        for p in found:
            typer.echo(json.dumps(_as_json(p), ensure_ascii=False, default=str))
        return
    table = Table("source", "dataset", "position", "updated", "not yet published")
    for p in found:
        pending = (f"{p.pending.batches} batch(es), {p.pending.rows} row(s) staged by {', '.join(p.pending.staged_by)}"
                   if p.pending.batches else "-")  # fmt: skip
        table.add_row(p.source, p.dataset, json.dumps(p.describe(), ensure_ascii=False, default=str),
                      p.updated_at.isoformat(timespec="seconds") if p.updated_at else "-", pending)  # fmt: skip
    console.print(table)
    if any(p.pending.batches for p in found):
        console.print(f"The next run of {name} carries the batches not yet published through first.")


@app.command()
def reset(
    name: str,
    dataset: str,
    since: str | None = typer.Option(
        None, "--since", help="Read again what changed since this ISO time (without an offset: the source's local time)"
    ),
    to_start: bool = typer.Option(False, "--to-start", help="Read the dataset again from the beginning"),
    abandon_pending: bool = typer.Option(
        False,
        "--abandon-pending",
        help="Also give up the staged batches not "
        "yet carried through (no run will carry them; do not use while a run "
        "of NAME is running)",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
    mappings: Path = typer.Option(MAPPINGS_DIR, help="Directory of mapping files"),
) -> None:
    """Move the read position of DATASET (audited: action reset_position, consumer operator:<os user>)."""
    feed = _feed(name, mappings)
    if (since is not None) == to_start:
        console.print("[red]give exactly one of --since ISO_TIME and --to-start[/red]")
        raise typer.Exit(2)
    engine = _engine()
    try:
        when = parse_since(since, feed.timezone) if since is not None else None
        (current,) = positions(engine, feed, dataset)
        target = moved_state(current.state, feed, since=when)
    except ResetRefused as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"{feed.source}/{dataset}: {json.dumps(current.describe(), ensure_ascii=False)} → "
                  f"{json.dumps(describe_state(target), ensure_ascii=False)}")  # fmt: skip
    if current.pending.batches:
        fate = "abandoned" if abandon_pending else "kept: the next run carries them"
        console.print(f"{current.pending.batches} staged batch(es), {current.pending.rows} row(s) not yet "
                      f"published: {fate}")  # fmt: skip
    if not yes and not typer.confirm("Move the read position?"):
        console.print("nothing changed")
        raise typer.Exit(1)
    outcome = reset_position(engine, feed, dataset, since=when, abandon_pending=abandon_pending)
    console.print(f"[green]moved[/green] {feed.source}/{dataset}; audit entry {outcome.audit_seq}")
