"""Tables every part shares: sync state, staged batches, quarantine, the event outbox and record lineage.

The outbox follows the transactional-outbox pattern: :func:`hub.outbox.emit` adds an
event row to the *same session* as the change it announces, so the event exists if and
only if the change was committed. Push delivery reads the outbox; Airflow Assets only
wake the push DAG.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.clock import local_today, utcnow
from hub.db import Base

__all__ = [
    "BigId",
    "LineageBatch",
    "LineageMapping",
    "LineageRecord",
    "OutboxEvent",
    "QuarantineRecord",
    "StagedBatch",
    "SyncState",
    "local_today",
    "utcnow",
]


# SQLite has no BIGINT autoincrement; this keeps ids 64-bit on PostgreSQL.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class SyncState(Base):
    """A connector's checkpoint (watermark) per source and dataset.

    Advanced only after the batch it describes is durably staged.
    """

    __tablename__ = "sync_state"

    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class StagedBatch(Base):
    """A batch a connector staged (暂存批次) and whether the pipeline has carried it through.

    Written by ``connectors.sync.run_sync`` in the same transaction as the read position it
    moves past, so a position never advances over rows that are not in this ledger. The staged
    Parquet is the durable buffer between the source and publishing: a batch stays ``staged``
    until the publish step of the run that carried it marks it ``published``; the next run of
    its mapping carries every batch still ``staged`` before its own (``pipeline.carry``);
    retention never deletes it meanwhile. ``abandoned`` is an operator's decision
    (``hub connectors reset --abandon-pending``). ``claimed_by`` is the run carrying it now:
    a claim, not a status, so a run that dies leaves the batch ``staged`` for the next one.
    (Migration ``pipeline_0002``.)
    """

    __tablename__ = "staged_batch"
    __table_args__ = (
        UniqueConstraint("mapping", "staged_ref", name="uq_staged_batch_mapping_ref"),
        Index("ix_staged_batch_pending", "mapping", "status", "id"),
        Index("ix_staged_batch_source_dataset", "source", "dataset", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100))
    dataset: Mapped[str] = mapped_column(String(100))
    #: the mapping (pipeline feed) that carries it: ``<department>_<dataset>``
    mapping: Mapped[str] = mapped_column(String(100))
    staged_ref: Mapped[str] = mapped_column(String(1000))
    #: the run whose extract staged it
    run_id: Mapped[str | None] = mapped_column(String(200))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    #: ``staged`` (not yet carried through), ``published`` or ``abandoned``
    status: Mapped[str] = mapped_column(String(20), default="staged")
    #: the run carrying it now; of a published batch, the run that carried it through
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: when it was published or abandoned
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class QuarantineRecord(Base):
    """A record (or a whole package) the hub refused, with why and where it came from.

    ``payload`` holds the offending data *masked* where it carries personal data;
    rows are purged after the retention period by the housekeeping job.
    """

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100), index=True)
    dataset: Mapped[str] = mapped_column(String(100))
    source_key: Mapped[str | None] = mapped_column(String(200))
    source_version: Mapped[str | None] = mapped_column(String(100))
    #: Stable reason code, e.g. ``invalid_resident_id``, ``xml_not_well_formed``, ``soap_fault``.
    reason_code: Mapped[str] = mapped_column(String(80), index=True)
    reason: Mapped[str] = mapped_column(Text)
    #: Where to find the original: staged object, package file, run id.
    source_ref: Mapped[str | None] = mapped_column(String(500))
    run_id: Mapped[str | None] = mapped_column(String(200), index=True)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxEvent(Base):
    """An event announcing a committed change (``license.issued``, ``identity.merged``, ...)."""

    __tablename__ = "outbox_event"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_outbox_event_idempotency_key"),
        Index("ix_outbox_event_holder_id", "holder_code", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(80), index=True)
    #: The subject the event is about (licence id, enterprise USCC, ...).
    subject: Mapped[str] = mapped_column(String(200))
    #: Holder (resident id or USCC): delivery keeps order per holder.
    holder_code: Mapped[str | None] = mapped_column(String(40))
    region_code: Mapped[str | None] = mapped_column(String(12))
    license_type_code: Mapped[str | None] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Deterministic from what happened, so re-running a job never emits the same event twice.
    idempotency_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class LineageMapping(Base):
    """A mapping file as a run applied it (映射版本), by the SHA-256 of its bytes: what lineage needs
    of it once the file has changed — each canonical field's source fields and normalisers, and
    which canonical field each licence field is drawn from. One row per content ever applied.
    (Migration ``core_0002``.)
    """

    __tablename__ = "lineage_mapping"

    mapping_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the mapping (feed) name, ``<department>_<dataset>``
    mapping: Mapped[str] = mapped_column(String(100))
    #: the file's name in ``mappings/``
    mapping_file: Mapped[str] = mapped_column(String(300))
    #: the ``version:`` the file declares
    mapping_version: Mapped[int] = mapped_column(Integer)
    #: canonical field (``owners[].name`` when nested) → ``{"from": [...], "normalizers": [...]}``
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: licence type code → licence field (``holder_name``, ``surface.address``) → canonical field
    licenses: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LineageBatch(Base):
    """One staged batch as one run mapped and validated it (批次血缘): run, mapping content, suite.

    Written by the validate step in the transaction that quarantines the batch's refused rows,
    together with a :class:`LineageRecord` per accepted record. The staged object it names may
    be purged by retention; nothing here needs it. (Migration ``core_0002``.)
    """

    __tablename__ = "lineage_batch"
    __table_args__ = (UniqueConstraint("mapping", "run_id", "staged_ref", name="uq_lineage_batch_run_ref"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(200), index=True)
    mapping: Mapped[str] = mapped_column(String(100))
    department: Mapped[str] = mapped_column(String(100))
    dataset: Mapped[str] = mapped_column(String(100))
    #: the extract's staged batch the records were read from
    staged_ref: Mapped[str] = mapped_column(String(1000))
    mapping_sha256: Mapped[str] = mapped_column(String(64))
    #: the expectation suite's name and the SHA-256 of its file: the suite's version
    suite: Mapped[str] = mapped_column(String(60))
    suite_sha256: Mapped[str] = mapped_column(String(64))
    #: the matching model's version when the model placed records of the batch (set by resolve)
    model_version: Mapped[str | None] = mapped_column(String(100))
    #: records accepted (one :class:`LineageRecord` each)
    records: Mapped[int] = mapped_column(Integer, default=0)
    #: when the extract staged the batch (pulled from the source)
    pulled_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LineageRecord(Base):
    """An accepted source record (key and version) and the batch it came in: the link from a
    licence version or golden value back to its :class:`LineageBatch`.

    Keyed by what a lookup starts from, the source key; on SQLite stored ``WITHOUT ROWID``, so a
    record costs one B-tree write. (Migration ``core_0002``.)
    """

    __tablename__ = "lineage_record"
    __table_args__ = ({"sqlite_with_rowid": False},)

    source_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_version: Mapped[str] = mapped_column(String(100), primary_key=True)
    batch_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
