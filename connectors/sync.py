"""Running a connector safely (同步): stage, then quarantine, then advance the watermark.

For every batch :func:`run_sync` (1) stages the rows durably (Parquet, idempotent name),
(2) records the batch's bad records in ``quarantine``, (3) records the staged object in
``staged_batch`` when the caller names the feed (``mapping=``) and (4) advances ``sync_state``
— (2) to (4) in one transaction, after (1). A crash at any point therefore repeats work
(the same object name, the same quarantine rows, skipped as duplicates) and never loses
a record; downstream dedupes rows on ``(_source_key, _source_version)``. Counts
reconcile: rows read = rows staged + records quarantined.

The read position moves past a batch once it is staged, not once it is published: some
sources cannot be read twice (XML packages are acknowledged and archived when read). The
``staged_batch`` row is what keeps the batch until the pipeline has carried it through
(``pipeline.carry``; docs/decisions/0016-staged-batches-carried-through.md).
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
from hub.killpoints import kill_point
from hub.models import QuarantineRecord, StagedBatch, SyncState, utcnow

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


def record_staged(
    session: Session, source: str, dataset: str, mapping: str, staged_ref: str, rows: int, *, run_id: str | None
) -> None:
    """Enter a staged object in the ``staged_batch`` ledger, ``staged`` and claimed by ``run_id``.

    Staging the same object again (a crash before the state moved, or a read position moved
    back by an operator) makes it ``staged`` again: its rows are to be carried through anew.
    """
    row = session.scalar(
        select(StagedBatch).where(StagedBatch.mapping == mapping, StagedBatch.staged_ref == staged_ref)
    )
    now = utcnow()
    if row is None:
        row = StagedBatch(source=source, dataset=dataset, mapping=mapping, staged_ref=staged_ref, created_at=now)
        session.add(row)
    row.run_id, row.rows, row.status, row.finished_at = run_id, rows, "staged", None
    row.claimed_by, row.claimed_at = run_id, now
    session.flush()


def commit_batch(
    engine: Engine,
    source: str,
    dataset: str,
    batch: Batch,
    *,
    run_id: str | None = None,
    mapping: str | None = None,
    staged_ref: str | None = None,
) -> None:
    """Quarantine the batch's bad records, record its staged object and advance the state, atomically."""
    with session_scope(engine) as session:
        quarantine_bad_records(session, source, dataset, batch.bad_records, run_id=run_id)
        if mapping is not None and staged_ref is not None:
            record_staged(session, source, dataset, mapping, staged_ref, batch.table.num_rows, run_id=run_id)
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
    mapping: str | None = None,
) -> SyncResult:
    """Read ``dataset`` from its saved state to the end, staging and checkpointing each batch.

    ``mapping`` names the pipeline feed that will carry the staged batches through: each is
    then entered in ``staged_batch`` with the state it moves past (the pipeline passes it;
    previews and the acceptance kit do not).
    """
    source = source or connector.name
    stager = stager or LocalStager()
    engine = engine or get_engine()
    with session_scope(engine) as session:
        state = load_state(session, source, dataset)
    result = SyncResult(source, dataset, state=state)
    for batch in connector.read(dataset, state, **(read_kwargs or {})):
        ref = None
        if batch.table.num_rows:
            name = batch_object_name(source, dataset, state, batch.checkpoint)
            ref = stager.stage(name, batch.table)
            result.staged_refs.append(ref)
            kill_point("extract.batch_staged")
        commit_batch(engine, source, dataset, batch, run_id=run_id, mapping=mapping, staged_ref=ref)
        kill_point("extract.batch_committed")
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
