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
import contextlib
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
from typing import Any, BinaryIO

from sqlalchemy import Table, bindparam, select
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import Session

from hub.db import session_scope
from hub.models import utcnow
from recognition.dbapi import Prepared
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


def _chain(seq: int, prev: str, records: Iterable[AuditRecord]) -> list[dict[str, Any]]:
    """The rows that chain ``records`` onto an entry ``seq`` with hash ``prev`` (one rule for every writer)."""
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
    return rows


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
    rows = _chain(int(head.seq), str(head.hash), records)
    session.execute(_ENTRY.insert(), rows)
    session.execute(
        _HEAD.update().where(_HEAD.c.id == HEAD_ID).values(seq=rows[-1]["seq"], hash=rows[-1]["hash"], updated_at=now)
    )
    return [int(r["seq"]) for r in rows]


class _ChainStatements:
    """:func:`append`'s statements, compiled once for the dialect and run on a DBAPI connection."""

    def __init__(self, dialect: Dialect) -> None:
        head_id = _HEAD.c.id == bindparam("head_id")
        self.touch = Prepared(_HEAD.update().where(head_id).values(updated_at=bindparam("now")), dialect)
        self.create = Prepared(
            _HEAD.insert().values(id=bindparam("head_id"), seq=bindparam("new_seq"), hash=bindparam("new_hash"),
                                  updated_at=bindparam("now")),
            dialect,
        )  # fmt: skip
        self.read = Prepared(select(_HEAD.c.seq, _HEAD.c.hash).where(head_id), dialect)
        self.insert = Prepared(_ENTRY.insert().values({c.name: bindparam(c.name) for c in _ENTRY.c}), dialect)
        self.advance = Prepared(
            _HEAD.update().where(head_id).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"),
                                                 updated_at=bindparam("now")),
            dialect,
        )  # fmt: skip

    def append(self, dbapi_conn: Any, records: list[AuditRecord]) -> list[int]:
        """:func:`append` in one DBAPI transaction, committed; same locking order, same rows."""
        now = utcnow()
        cur = dbapi_conn.cursor()
        try:
            cur.execute(self.touch.sql, self.touch.params({"head_id": HEAD_ID, "now": now}))
            if cur.rowcount == 0:
                values = {"head_id": HEAD_ID, "new_seq": 0, "new_hash": GENESIS, "now": now}
                cur.execute(self.create.sql, self.create.params(values))
            cur.execute(self.read.sql, self.read.params({"head_id": HEAD_ID}))
            seq, prev = self.read.row(cur.fetchone())
            rows = _chain(int(seq), str(prev), records)
            cur.executemany(self.insert.sql, self.insert.many(rows))
            last = rows[-1]
            values = {"head_id": HEAD_ID, "new_seq": last["seq"], "new_hash": last["hash"], "now": now}
            cur.execute(self.advance.sql, self.advance.params(values))
            dbapi_conn.commit()
        except BaseException:
            dbapi_conn.rollback()
            raise
        finally:
            cur.close()
        return [int(r["seq"]) for r in rows]


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


class _Pending:
    """One entry waiting for its commit, and how to tell its caller (a thread or an event loop)."""

    __slots__ = ("future", "loop", "record")

    def __init__(
        self,
        record: AuditRecord,
        future: Future[int] | asyncio.Future[int],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.record = record
        self.future = future
        self.loop = loop


def _settle(done: list[tuple[asyncio.Future[int], int | BaseException]]) -> None:
    """On the event loop: release every caller of one group at once."""
    for fut, outcome in done:
        if fut.done():  # the request went away meanwhile; its entry is committed all the same
            continue
        if isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)


class AuditWriter:
    """Group commit: one background thread writes whatever accumulated while it last committed.

    ``write`` (async) and ``write_sync`` return only once the entry is committed; a failed
    commit raises in every caller of that group, so no answer leaves without its entry.

    The thread keeps one DBAPI connection and runs :func:`append`'s statements on it
    directly (:class:`recognition.dbapi.Prepared`): it shares the interpreter lock with the
    event loop, so the less Python it runs per group, the less the loop waits for it.
    Callers on an event loop are released with one wake-up per group, not one per entry.
    """

    def __init__(self, engine: Engine, *, max_batch: int = 500) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
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
        self._queue.put(_Pending(record, fut, None))
        return fut

    def write_sync(self, record: AuditRecord, timeout: float = 30.0) -> int:
        return self.submit(record).result(timeout)

    async def write(self, record: AuditRecord) -> int:
        if self._thread is None:
            self.start()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._queue.put(_Pending(record, fut, loop))
        return await fut

    def _run(self) -> None:
        sink = _ChainSink(self.engine)
        try:
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
                self._commit(sink, batch)
                if stop:
                    return
        finally:
            sink.close()

    def _commit(self, sink: _ChainSink, batch: list[_Pending]) -> None:
        outcomes: list[int | BaseException]
        try:
            outcomes = list(sink.write([p.record for p in batch]))
            self.commits += 1
        except Exception as exc:
            log.exception("audit commit of %d entries failed", len(batch))
            outcomes = [exc] * len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int | BaseException]]] = {}
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.loop is None:
                fut = pending.future
                assert isinstance(fut, Future)
                if isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)
            else:
                by_loop.setdefault(pending.loop, []).append((pending.future, outcome))  # type: ignore[arg-type]
        for loop, done in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there any more
                loop.call_soon_threadsafe(_settle, done)


class _ChainSink:
    """The writer thread's end: one DBAPI connection, the compiled statements, the cross-process lock."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements = _ChainStatements(engine.dialect)
        self._conn: Any = None
        self._lock_file: BinaryIO | None = None
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database and database != ":memory:":
            self._lock_file = open(f"{database}.audit-lock", "a+b")  # noqa: SIM115 - held for the thread's life

    def write(self, records: list[AuditRecord]) -> list[int]:
        if self._conn is None:
            self._conn = self.engine.raw_connection()
        try:
            if self._lock_file is None:
                return self.statements.append(self._conn, records)
            # see _sqlite_writer_lock: a blocking flock wakes at once where SQLite's busy handler sleeps
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX)
            try:
                return self.statements.append(self._conn, records)
            finally:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
        except Exception:
            conn, self._conn = self._conn, None
            try:
                conn.invalidate()  # a connection that failed mid-commit is not trusted again
            except Exception:
                log.debug("invalidating the audit connection failed", exc_info=True)
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
