"""Running a connector safely (同步): stage, then quarantine, then advance the watermark.

For every batch :func:`run_sync` (1) stages the rows durably (Parquet, idempotent name),
(2) records the batch's bad records in ``quarantine`` and (3) advances ``sync_state`` —
(2) and (3) in one transaction, after (1). A crash at any point therefore repeats work
(the same object name, the same quarantine rows, skipped as duplicates) and never loses
a record; downstream dedupes rows on ``(_source_key, _source_version)``. Counts
reconcile: rows read = rows staged + records quarantined.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from connectors.base import Batch, Connector, State
from connectors.errors import BadRecord
from connectors.staging import LocalStager, Stager, batch_object_name
from hub.db import get_engine, session_scope
from hub.models import QuarantineRecord, SyncState

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    """What one sync run did; ``reconciled`` is the invariant every run must hold."""

    source: str
    dataset: str
    batches: int = 0
    rows_read: int = 0
    rows_staged: int = 0
    quarantined: int = 0
    tombstones: int = 0
    staged_refs: list[str] = field(default_factory=list)
    state: State | None = None

    @property
    def reconciled(self) -> bool:
        return self.rows_read == self.rows_staged + self.quarantined


def load_state(session: Session, source: str, dataset: str) -> State | None:
    row = session.get(SyncState, (source, dataset))
    return dict(row.state) if row is not None and row.state is not None else None


def save_state(session: Session, source: str, dataset: str, state: State) -> None:
    row = session.get(SyncState, (source, dataset))
    if row is None:
        session.add(SyncState(source=source, dataset=dataset, state=state))
    else:
        row.state = dict(state)
    session.flush()


def quarantine_bad_records(
    session: Session, source: str, dataset: str, bad: Iterable[BadRecord], *, run_id: str | None = None
) -> int:
    """Insert bad records not already quarantined (same key, version and reason, unresolved)."""
    added = 0
    for rec in bad:
        exists = session.scalar(
            select(QuarantineRecord.id).where(
                QuarantineRecord.source == source,
                QuarantineRecord.dataset == dataset,
                QuarantineRecord.source_key == rec.source_key,
                QuarantineRecord.source_version.is_(None)
                if rec.source_version is None
                else QuarantineRecord.source_version == rec.source_version,
                QuarantineRecord.reason_code == rec.reason_code,
                QuarantineRecord.resolved_at.is_(None),
            )
        )
        if exists is not None:
            continue
        session.add(
            QuarantineRecord(
                source=source,
                dataset=dataset,
                source_key=rec.source_key,
                source_version=rec.source_version,
                reason_code=rec.reason_code,
                reason=rec.reason,
                source_ref=rec.source_ref,
                run_id=run_id,
                payload=rec.raw,
            )
        )
        added += 1
    session.flush()
    return added


def commit_batch(
    engine: Engine, source: str, dataset: str, batch: Batch, *, run_id: str | None = None
) -> None:
    """Quarantine the batch's bad records and advance the state, atomically."""
    with session_scope(engine) as session:
        quarantine_bad_records(session, source, dataset, batch.bad_records, run_id=run_id)
        save_state(session, source, dataset, batch.checkpoint)


def run_sync(
    connector: Connector,
    dataset: str,
    *,
    source: str | None = None,
    stager: Stager | None = None,
    engine: Engine | None = None,
    run_id: str | None = None,
    read_kwargs: dict[str, Any] | None = None,
) -> SyncResult:
    """Read ``dataset`` from its saved state to the end, staging and checkpointing each batch."""
    source = source or connector.name
    stager = stager or LocalStager()
    engine = engine or get_engine()
    with session_scope(engine) as session:
        state = load_state(session, source, dataset)
    result = SyncResult(source, dataset, state=state)
    for batch in connector.read(dataset, state, **(read_kwargs or {})):
        if batch.table.num_rows:
            name = batch_object_name(source, dataset, state, batch.checkpoint)
            result.staged_refs.append(stager.stage(name, batch.table))
        commit_batch(engine, source, dataset, batch, run_id=run_id)
        state = batch.checkpoint
        result.batches += 1
        result.rows_read += batch.rows_read
        result.rows_staged += batch.table.num_rows
        result.quarantined += len(batch.bad_records)
        result.tombstones += batch.tombstones
        result.state = state
    log.info(
        "sync %s/%s: read %d, staged %d, quarantined %d, tombstones %d in %d batch(es)",
        source,
        dataset,
        result.rows_read,
        result.rows_staged,
        result.quarantined,
        result.tombstones,
        result.batches,
    )
    return result
