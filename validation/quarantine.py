"""Writing and reading quarantined records (隔离区): one row per refused record, its reasons beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.orm import Session

from hub.masking import scrub, scrub_text
from hub.models import QuarantineRecord
from validation.payload import mask_row
from validation.tables import QuarantineReason


@dataclass(frozen=True)
class BatchRef:
    """Where a batch came from: department (部门), dataset and the staged object it was read from."""

    department: str
    dataset: str
    staged_ref: str | None = None

    @property
    def source_ref(self) -> str:
        """The quarantine rows' ``source_ref``: the staged object, which also keys the batch."""
        return self.staged_ref or f"{self.department}/{self.dataset}"


@dataclass(frozen=True)
class Failure:
    """One failed expectation of one record."""

    reason_code: str
    expectation: str
    column: str


@dataclass
class QuarantinedRow:
    source_key: str | None
    source_version: str | None
    record: dict[str, Any]
    failures: list[Failure] = field(default_factory=list)


def _batch_filter(batch: BatchRef, run_id: str) -> list[Any]:
    return [
        QuarantineRecord.source == batch.department,
        QuarantineRecord.dataset == batch.dataset,
        QuarantineRecord.run_id == run_id,
        QuarantineRecord.source_ref == batch.source_ref,
    ]


def clear_batch(session: Session, batch: BatchRef, run_id: str) -> int:
    """Drop earlier quarantine rows of this batch in this run, so re-running converges."""
    ids = select(QuarantineRecord.id).where(*_batch_filter(batch, run_id))
    session.execute(delete(QuarantineReason).where(QuarantineReason.quarantine_id.in_(ids)))
    result = session.execute(delete(QuarantineRecord).where(*_batch_filter(batch, run_id)))
    return int(getattr(result, "rowcount", 0) or 0)


def write(
    session: Session,
    batch: BatchRef,
    run_id: str,
    rows: Sequence[QuarantinedRow],
    kinds: Mapping[str, str] | None = None,
) -> int:
    """Insert quarantined records (payload masked; ``kinds``: personal-data kinds of a mapping's
    own attributes) and their reasons; the number of records written."""
    if not rows:
        return 0
    records = []
    for row in rows:
        codes = list(dict.fromkeys(f.reason_code for f in row.failures))
        records.append(
            {
                "source": batch.department,
                "dataset": batch.dataset,
                "source_key": row.source_key,
                "source_version": row.source_version,
                "reason_code": codes[0],
                "reason": "; ".join(f"{f.reason_code} ({f.column}: {f.expectation})" for f in row.failures),
                "source_ref": batch.source_ref,
                "run_id": run_id,
                "payload": {"record": mask_row(row.record, kinds), "reason_codes": codes},
            }
        )
    # Core (not ORM) bulk insert, then the new ids read back in insertion order: ids grow as
    # rows are inserted (SQLite's rowid, a PostgreSQL sequence), and only this unit of work
    # writes this batch of this run. (``RETURNING`` in parameter order runs one statement per
    # row on SQLite: ten times slower for a batch with many refused records.)
    table = cast(Table, QuarantineRecord.__table__)
    mine = _batch_filter(batch, run_id)
    last = session.scalar(select(func.max(table.c.id)).where(*mine)) or 0
    session.execute(insert(table), records)
    ids = list(session.scalars(select(table.c.id).where(*mine, table.c.id > last).order_by(table.c.id)))
    if len(ids) != len(records):
        raise RuntimeError(f"wrote {len(records)} quarantine records but read back {len(ids)}")
    reasons = [
        {"quarantine_id": qid, "reason_code": f.reason_code, "expectation": f.expectation, "column": f.column}
        for qid, row in zip(ids, rows, strict=True)
        for f in row.failures
    ]
    session.execute(insert(cast(Table, QuarantineReason.__table__)), reasons)
    return len(ids)


def count_batch(session: Session, batch: BatchRef, run_id: str) -> int:
    """Quarantined records of this batch in this run, as the database holds them."""
    stmt = select(func.count()).select_from(QuarantineRecord).where(*_batch_filter(batch, run_id))
    return int(session.scalar(stmt) or 0)


@dataclass(frozen=True)
class QuarantineView:
    """A quarantined record as shown to operators (personal data already masked)."""

    id: int
    department: str
    dataset: str
    source_key: str | None
    reason_codes: list[str]
    reason: str
    source_ref: str | None
    run_id: str | None
    created_at: str
    payload: dict[str, Any] | None


def list_quarantine(session: Session, *, department: str | None = None, limit: int = 50) -> list[QuarantineView]:
    """Most recent quarantined records, optionally of one department."""
    stmt = select(QuarantineRecord).order_by(QuarantineRecord.id.desc()).limit(limit)
    if department:
        stmt = stmt.where(QuarantineRecord.source == department)
    records = list(session.scalars(stmt))
    reasons: dict[int, list[str]] = {r.id: [] for r in records}
    if records:
        rows = session.execute(
            select(QuarantineReason.quarantine_id, QuarantineReason.reason_code)
            .where(QuarantineReason.quarantine_id.in_(list(reasons)))
            .order_by(QuarantineReason.id)
        )
        for qid, code in rows:
            if code not in reasons[qid]:
                reasons[qid].append(code)
    return [
        QuarantineView(
            id=r.id,
            department=r.source,
            dataset=r.dataset,
            source_key=scrub_text(r.source_key) if r.source_key is not None else None,  # a key may be an id
            reason_codes=reasons[r.id] or [r.reason_code],
            reason=scrub_text(r.reason),
            source_ref=r.source_ref,
            run_id=r.run_id,
            created_at=r.created_at.isoformat() if r.created_at else "",
            payload=scrub(r.payload) if r.payload is not None else None,
        )
        for r in records
    ]
