"""The audit log (审计日志): append-only, hash-chained, written before the answer is sent.

Every read, verification and delivery becomes an :class:`AuditRecord` (who, what, which
fields, when, why) holding masked personal data only. Entries are numbered without gaps
and each entry's hash covers the previous entry's hash, so an altered, removed or
reordered entry breaks the chain; the head row (latest number and hash) catches a
cut-off tail. :class:`AuditWriter` groups concurrent records into one commit (group
commit) and releases each caller only once its entry is durable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import hashlib
import json
import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from hub.db import session_scope
from hub.models import utcnow
from recognition.tables import AuditEntry, AuditHead

log = logging.getLogger(__name__)

GENESIS = "0" * 64
_ENTRY: Table = AuditEntry.__table__  # type: ignore[assignment]
_HEAD: Table = AuditHead.__table__  # type: ignore[assignment]
HEAD_ID = 1


@dataclass
class AuditRecord:
    """What happened, as the caller reports it (personal data already masked)."""

    consumer: str
    action: str
    resource: str
    outcome: str
    key_id: str | None = None
    subject: str | None = None
    fields: list[str] = field(default_factory=list)
    purpose: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    at: dt.datetime = field(default_factory=utcnow)


def _utc_iso(value: dt.datetime) -> str:
    if value.tzinfo is None:  # SQLite hands back naive datetimes; the hub stores UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def entry_hash(
    prev_hash: str,
    seq: int,
    at: dt.datetime,
    consumer: str,
    key_id: str | None,
    action: str,
    resource: str,
    subject: str | None,
    fields: list[str],
    purpose: str | None,
    outcome: str,
    detail: dict[str, Any],
) -> str:
    """SHA-256 over the previous hash and a canonical JSON of the entry's content."""
    body = {
        "seq": seq,
        "at": _utc_iso(at),
        "consumer": consumer,
        "key_id": key_id,
        "action": action,
        "resource": resource,
        "subject": subject,
        "fields": list(fields),
        "purpose": purpose,
        "outcome": outcome,
        "detail": detail,
    }
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + "\n" + canonical).encode("utf-8")).hexdigest()


def _row_hash(prev_hash: str, row: AuditEntry) -> str:
    return entry_hash(
        prev_hash,
        row.seq,
        row.at,
        row.consumer,
        row.key_id,
        row.action,
        row.resource,
        row.subject,
        list(row.fields or []),
        row.purpose,
        row.outcome,
        dict(row.detail or {}),
    )


def append(session: Session | Connection, records: Iterable[AuditRecord]) -> list[int]:
    """Chain ``records`` onto the log inside ``session`` (the caller commits); returns their numbers.

    The head row is updated first, which takes its write lock (a row lock on PostgreSQL, the
    database write lock on SQLite), so appenders in several processes never fork the chain.
    """
    records = list(records)
    if not records:
        return []
    now = utcnow()
    locked = session.execute(_HEAD.update().where(_HEAD.c.id == HEAD_ID).values(updated_at=now))
    if getattr(locked, "rowcount", 1) == 0:
        session.execute(_HEAD.insert().values(id=HEAD_ID, seq=0, hash=GENESIS, updated_at=now))
    head = session.execute(select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == HEAD_ID)).one()
    seq, prev = int(head.seq), str(head.hash)
    rows = []
    for rec in records:
        seq += 1
        digest = entry_hash(
            prev, seq, rec.at, rec.consumer, rec.key_id, rec.action, rec.resource, rec.subject,
            rec.fields, rec.purpose, rec.outcome, rec.detail,
        )  # fmt: skip
        rows.append(
            {
                "seq": seq,
                "at": rec.at,
                "consumer": rec.consumer,
                "key_id": rec.key_id,
                "action": rec.action,
                "resource": rec.resource,
                "subject": rec.subject,
                "fields": list(rec.fields),
                "purpose": rec.purpose,
                "outcome": rec.outcome,
                "detail": rec.detail,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    session.execute(_ENTRY.insert(), rows)
    session.execute(_HEAD.update().where(_HEAD.c.id == HEAD_ID).values(seq=seq, hash=prev, updated_at=now))
    return [int(str(r["seq"])) for r in rows]


@contextmanager
def _sqlite_writer_lock(engine: Engine) -> Iterator[None]:
    """Serialise audit writers of several processes on one SQLite file with a file lock.

    SQLite's own busy handler polls with sleeps of up to 100 ms when the write lock is taken,
    which would put those sleeps into API latency; a blocking ``flock`` wakes at once.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.audit-lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def write_now(engine: Engine, records: Iterable[AuditRecord]) -> list[int]:
    """Append and commit at once (API group commits, CLI, tests); SQLAlchemy Core, no ORM overhead."""
    with _sqlite_writer_lock(engine), engine.begin() as conn:
        return append(conn, records)


@dataclass
class VerifyReport:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    problems: list[str]


def _iter_entries(session: Session, batch: int = 5000) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = list(
            session.scalars(select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(batch))
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify(engine: Engine, *, max_problems: int = 50) -> VerifyReport:
    """Walk the chain: numbering without gaps, each link, each hash, and the head."""
    problems: list[str] = []
    expected_seq, prev, checked = 1, GENESIS, 0
    with session_scope(engine) as session:
        for row in _iter_entries(session):
            checked += 1
            if row.seq != expected_seq:
                problems.append(f"entry {expected_seq}..{row.seq - 1} missing (gap before {row.seq})")
            if row.prev_hash != prev:
                problems.append(f"entry {row.seq}: link broken (prev_hash does not match entry before it)")
            if _row_hash(row.prev_hash, row) != row.hash:
                problems.append(f"entry {row.seq}: content altered (hash does not match)")
            prev, expected_seq = row.hash, row.seq + 1
            if len(problems) >= max_problems:
                break
        head = session.get(AuditHead, HEAD_ID)
        head_seq, head_hash = (int(head.seq), head.hash) if head is not None else (0, GENESIS)
    if len(problems) < max_problems and (head_seq != expected_seq - 1 or head_hash != prev):
        problems.append(f"head says entry {head_seq} is last but the log ends at {expected_seq - 1} (tail removed?)")
    return VerifyReport(not problems, checked, head_seq, head_hash, problems)


_STOP = object()


class AuditWriter:
    """Group commit: one background thread writes whatever accumulated while it last committed.

    ``write`` (async) and ``write_sync`` return only once the entry is committed; a failed
    commit raises in every caller of that group, so no answer leaves without its entry.
    """

    def __init__(self, engine: Engine, *, max_batch: int = 500) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.commits = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    def submit(self, record: AuditRecord) -> Future[int]:
        if self._thread is None:
            self.start()
        fut: Future[int] = Future()
        self._queue.put((record, fut))
        return fut

    def write_sync(self, record: AuditRecord, timeout: float = 30.0) -> int:
        return self.submit(record).result(timeout)

    async def write(self, record: AuditRecord) -> int:
        return await asyncio.wrap_future(self.submit(record))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[AuditRecord, Future[int]]]) -> None:
        try:
            seqs = write_now(self.engine, [rec for rec, _ in batch])
        except Exception as exc:
            log.exception("audit commit of %d entries failed", len(batch))
            for _, fut in batch:
                fut.set_exception(exc)
            return
        self.commits += 1
        for (_, fut), seq in zip(batch, seqs, strict=True):
            fut.set_result(seq)
