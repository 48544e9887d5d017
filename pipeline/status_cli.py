"""``hub status``: one screen for an operator (运行概况) — feeds, push, licences, review queue, cases.

Read from :func:`pipeline.metrics.figures` (the same aggregates ``/metrics`` shows); ``--json`` for
tools. Lag is the time since a feed's last published run. Nothing personal is shown.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.table import Table

from hub.db import get_engine, session_scope
from pipeline.metrics import Figures, figures


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _when(at: dt.datetime | None) -> str:
    return "-" if at is None else at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def render(f: Figures) -> Group:
    feeds = Table(title="Feeds (lag: since the last published run)", title_justify="left")
    feeds.add_column("department", overflow="fold")
    feeds.add_column("feed", overflow="fold")
    feeds.add_column("last run")
    feeds.add_column("state")
    for col in ("pulled", "accepted", "quarantined", "issued", "changed", "lag"):
        feeds.add_column(col, justify="right")
    for feed in f.feeds:
        style = "green" if feed.state == "ok" else "red"
        feeds.add_row(feed.department, feed.mapping, _when(feed.last_run_at), f"[{style}]{feed.state}[/{style}]",
                      str(feed.pulled), str(feed.accepted), str(feed.quarantined), str(feed.licenses_issued),
                      str(feed.licenses_changed), _ago(feed.lag(f.at)))  # fmt: skip
    title = (f"Push: {f.push.backlog_events} event(s) not fanned out, {f.push.pending_deliveries} "
             f"delivery(ies) pending, oldest {_ago(f.push.oldest_age(f.at))}")  # fmt: skip
    push = Table(title=title, title_justify="left")
    for col in ("consumer", "sent", "failed", "dead"):
        push.add_column(col, justify="left" if col == "consumer" else "right")
    for consumer, counts in sorted(f.push.deliveries.items()):
        dead = counts.get("dead", 0)
        push.add_row(consumer, str(counts.get("sent", 0)), str(counts.get("failed", 0)),
                     f"[red]{dead}[/red]" if dead else "0")  # fmt: skip
    other = Table(title="Licences, review, cases", title_justify="left", show_header=False)
    other.add_column("what")
    other.add_column("n", justify="right")
    for status, n in sorted(f.licenses.items()):
        other.add_row(f"licences {status}", str(n))
    other.add_row("identity review queue (open)", str(f.review_open))
    deleted = f.review_source_deleted
    other.add_row("  of which source record deleted", f"[yellow]{deleted}[/yellow]" if deleted else "0")
    other.add_row("licences in review (source record deleted)", str(f.licenses_in_review))
    for light, n in sorted(f.cases_open.items()):
        other.add_row(f"open cases {light}", str(n))
    return Group(feeds, push, other)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of the tables")] = False,
) -> None:
    """What every feed and the push are doing: last run, state, counts, lag; backlog, dead letters; licences; cases."""
    with session_scope(get_engine()) as s:
        f = figures(s)
    if as_json:
        typer.echo(json.dumps(f.as_dict(), ensure_ascii=False))
        return
    Console().print(render(f))
