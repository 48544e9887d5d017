"""Read positions of a department feed (读取位置): what ``hub connectors state|reset`` show and move.

A position is the connector's saved state per (source, dataset) in ``sync_state`` — a watermark
for SQL and SOAP sources, the packages already read for XML. Beside it, the batches staged past
it that no run has carried through yet (``staged_batch``): the next run of the mapping carries
them first. Moving a position is an operator's act: it is written with its audit entry (the
hash-chained audit log, consumer ``operator:<os user>``, action ``reset_position``) in one
transaction, so the log holds every move and no move is missing from it.
"""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.db import session_scope
from hub.masking import scrub_text
from hub.models import StagedBatch, SyncState, utcnow
from hub.settings import get_settings

AUDIT_ACTION = "reset_position"


class ResetRefused(ValueError):
    """The position cannot be moved as asked (e.g. a time for a source that has none)."""


@dataclass(frozen=True)
class Feed:
    """What a mapping file says about its source: the department and the datasets it reads."""

    mapping: str
    source: str
    protocol: str
    datasets: tuple[str, ...]
    timezone: str | None = None


@dataclass
class Pending:
    """Staged batches of a dataset not yet carried through."""

    batches: int = 0
    rows: int = 0
    staged_by: list[str] = field(default_factory=list)
    claimed_by: list[str] = field(default_factory=list)


@dataclass
class Position:
    source: str
    dataset: str
    state: dict[str, Any] | None
    updated_at: dt.datetime | None
    pending: Pending

    def describe(self) -> dict[str, Any]:
        """The position as shown (and audited): no source keys, no personal data."""
        return describe_state(self.state)


def feed_of(mapping_name: str, block: Mapping[str, Any], department: str) -> Feed:
    datasets = block.get("datasets")
    names = tuple(datasets) if isinstance(datasets, Mapping) else (str(block.get("dataset") or ""),)
    return Feed(mapping_name, department, str(block.get("protocol")), tuple(n for n in names if n),
                block.get("timezone"))  # fmt: skip


def describe_state(state: Mapping[str, Any] | None) -> dict[str, Any]:
    """A connector state summarised: the watermark, or the packages read; keys masked, sets counted."""
    if not state:
        return {"position": "start"}
    out: dict[str, Any] = {}
    cursor = state.get("cursor")
    if isinstance(cursor, Mapping):
        out["watermark"] = cursor.get("hwm")
        if cursor.get("hwm_key") is not None:
            out["watermark_key"] = scrub_text(str(cursor["hwm_key"]))
        out["seen_in_lookback"] = len(cursor.get("recent") or {})
    if "done" in state:
        out["packages_read"] = len(state.get("done") or [])
        current = state.get("current")
        if isinstance(current, Mapping) and current:
            out["in_package"] = {"sha256": str(current.get("sha", ""))[:16], "offset": current.get("offset")}
    for key in ("last_reconcile",):
        if state.get(key):
            out[key] = state[key]
    return out or {"position": "saved", "keys": sorted(state)}


def pending_batches(session: Session, source: str, dataset: str) -> Pending:
    rows = session.execute(
        select(StagedBatch.rows, StagedBatch.run_id, StagedBatch.claimed_by).where(
            StagedBatch.source == source, StagedBatch.dataset == dataset, StagedBatch.status == "staged"
        )
    ).all()
    return Pending(
        batches=len(rows),
        rows=sum(int(r) for r, _, _ in rows),
        staged_by=sorted({s for _, s, _ in rows if s}),
        claimed_by=sorted({c for _, _, c in rows if c}),
    )


def positions(engine: Engine, feed: Feed, dataset: str | None = None) -> list[Position]:
    """Every dataset of the feed's source (those the mapping names, and any other with a saved state)."""
    with session_scope(engine) as session:
        saved = {r.dataset: r for r in session.scalars(select(SyncState).where(SyncState.source == feed.source))}
        staged = set(session.scalars(select(StagedBatch.dataset).where(StagedBatch.source == feed.source).distinct()))
        names = sorted(set(feed.datasets) | set(saved) | staged)
        if dataset is not None:
            names = [dataset]
        out = []
        for name in names:
            row = saved.get(name)
            out.append(Position(feed.source, name, dict(row.state) if row is not None and row.state else None,
                                row.updated_at if row is not None else None,
                                pending_batches(session, feed.source, name)))  # fmt: skip
    return out


def parse_since(text: str, timezone: str | None) -> dt.datetime:
    """An ISO time; without an offset it is the source's local time (as its timestamps are)."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ResetRefused(f"--since {text!r} is not an ISO time (e.g. 2026-11-01T09:00:00+08:00)") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(timezone or get_settings().source_timezone))
    return value.astimezone(dt.UTC)


def moved_state(state: Mapping[str, Any] | None, feed: Feed, *, since: dt.datetime | None) -> dict[str, Any] | None:
    """The state after the move: back to the start (``since`` None), or a watermark at ``since``.

    The watermark's look-back set and any page token are dropped: the next read starts at
    ``since`` minus the look-back window and reads every row changed since then again.
    """
    if since is None:
        return None
    if feed.protocol == "xml" or (state and "done" in state and "cursor" not in state):
        raise ResetRefused(
            "XML packages have no time position: they are acknowledged and archived when read. Use --to-start to "
            "forget the packages read, and move a package from the archive back into the outbox to read it again."
        )
    kept = {k: v for k, v in (state or {}).items() if k not in {"cursor", "page"}}
    return {**kept, "cursor": {"hwm": since.isoformat(), "hwm_key": None, "recent": {}}}


@dataclass(frozen=True)
class ResetOutcome:
    before: dict[str, Any]
    after: dict[str, Any]
    abandoned_batches: int
    abandoned_rows: int
    audit_seq: int


def operator() -> str:
    return f"operator:{getpass.getuser()}"


def reset_position(
    engine: Engine,
    feed: Feed,
    dataset: str,
    *,
    since: dt.datetime | None,
    abandon_pending: bool = False,
    consumer: str | None = None,
) -> ResetOutcome:
    """Move the read position of ``dataset`` and write its audit entry, in one transaction.

    ``since`` None moves it to the start. ``abandon_pending`` also gives up the staged batches
    not yet carried through (status ``abandoned``: no run carries them; the rows come again only
    if the source is read again past them).
    """
    from recognition.audit import AuditRecord, append  # noqa: PLC0415 - ~0.2 s; `hub --help`

    with session_scope(engine) as session:
        row = session.get(SyncState, (feed.source, dataset))
        state = dict(row.state) if row is not None and row.state else None
        after = moved_state(state, feed, since=since)
        abandoned = (0, 0)
        if abandon_pending:
            abandoned = _abandon(session, feed.source, dataset)
        if after is None:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(SyncState(source=feed.source, dataset=dataset, state=after))
        else:
            row.state = after
        record = AuditRecord(
            consumer=consumer or operator(),
            action=AUDIT_ACTION,
            resource=f"sync_state/{feed.source}/{dataset}",
            outcome="ok",
            subject=feed.mapping,
            detail={
                "mapping": feed.mapping, "source": feed.source, "dataset": dataset,
                "before": describe_state(state), "after": describe_state(after),
                "since": since.isoformat() if since is not None else None,
                "abandoned_batches": abandoned[0], "abandoned_rows": abandoned[1],
            },
        )  # fmt: skip
        (seq,) = append(session, [record])
    return ResetOutcome(describe_state(state), describe_state(after), abandoned[0], abandoned[1], seq)


def _abandon(session: Session, source: str, dataset: str) -> tuple[int, int]:
    where = (StagedBatch.source == source, StagedBatch.dataset == dataset, StagedBatch.status == "staged")
    rows = int(session.scalar(select(func.coalesce(func.sum(StagedBatch.rows), 0)).where(*where)) or 0)
    result = session.execute(
        update(StagedBatch).where(*where).values(status="abandoned", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    return int(getattr(result, "rowcount", 0) or 0), rows
