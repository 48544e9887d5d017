"""The audit log (审计日志): append-only, hash-chained, written before the answer is sent.

Every read, verification and delivery becomes an :class:`AuditRecord` (who, what, which
fields, when, why) holding masked personal data only. Entries are numbered without gaps
and each entry's hash covers the previous entry's hash, so an altered, removed or
reordered entry breaks the chain; the head row (latest number and hash) catches a
cut-off tail. :class:`AuditWriter` groups concurrent records into one commit (group
commit) and releases each caller only once its entry is durable.

One job, one module: writing and verifying the one chain; the archive of old entries is
:mod:`recognition.audit_archive`, the command line :mod:`recognition.audit_cli`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Table, bindparam, select
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import Session

from hub import sqlite_wal
from hub.db import session_scope
from hub.dbapi import Prepared
from hub.models import utcnow
from hub.settings import get_settings
from recognition.config import RecognitionSettings
from recognition.tables import AuditArchive, AuditEntry, AuditHead

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


_ENTRY_COLUMNS = tuple(c.name for c in _ENTRY.c)
_CHAINED = ("seq", "prev_hash", "hash")  # the values only known under the head's lock
_INSERT_CHUNKS = (64, 16, 4, 1)  # multi-row INSERT sizes: a group is written in a few statements


class _ChainStatements:
    """:func:`append` compiled once for the dialect and run on a DBAPI connection, lock held briefly.

    Everything that does not depend on the head — bound values, JSON, most of each entry's
    canonical form — is worked out before the head is locked; under the lock remain the head
    read (one ``UPDATE … RETURNING`` where the database has it), the hashes, a few multi-row
    INSERTs and the head update. The writer thread shares the interpreter lock with the event
    loop and must take it back after every database call, so fewer calls under the lock means
    a shorter wait for the other processes' writers.
    """

    def __init__(self, dialect: Dialect) -> None:
        head_id = _HEAD.c.id == bindparam("head_id")
        touch = _HEAD.update().where(head_id).values(updated_at=bindparam("now"))
        self.returning = bool(getattr(dialect, "update_returning", False))
        if self.returning:
            touch = touch.returning(_HEAD.c.seq, _HEAD.c.hash)
        self.touch = Prepared(touch, dialect)
        self.create = Prepared(
            _HEAD.insert().values(id=bindparam("head_id"), seq=bindparam("new_seq"), hash=bindparam("new_hash"),
                                  updated_at=bindparam("now")),
            dialect,
        )  # fmt: skip
        self.read = Prepared(select(_HEAD.c.seq, _HEAD.c.hash).where(head_id), dialect)
        self.advance = Prepared(
            _HEAD.update().where(head_id).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"),
                                                 updated_at=bindparam("now")),
            dialect,
        )  # fmt: skip
        self._bind = {c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in _ENTRY.c}
        self.positional = self.touch.positional
        self._inserts = {n: self._insert_sql(n, dialect) for n in _INSERT_CHUNKS}

    @staticmethod
    def _insert_sql(n: int, dialect: Dialect) -> str:
        rows = [{c.name: bindparam(f"{c.name}_{i}", type_=c.type) for c in _ENTRY.c} for i in range(n)]
        prepared = Prepared(_ENTRY.insert().values(rows), dialect)
        expected = tuple(f"{name}_{i}" for i in range(n) for name in _ENTRY_COLUMNS)
        # the flat parameter lists below are laid out row by row, column by column
        assert not prepared.positional or prepared.names == expected, prepared.names
        return prepared.sql

    def bound(self, rec: AuditRecord) -> tuple[dict[str, Any], str, str]:
        """An entry's bound column values (chained ones left out) and its canonical form around ``seq``."""
        body = {
            "action": rec.action, "at": _utc_iso(rec.at), "consumer": rec.consumer, "detail": rec.detail,
            "fields": list(rec.fields), "key_id": rec.key_id, "outcome": rec.outcome, "purpose": rec.purpose,
            "resource": rec.resource,
        }  # fmt: skip
        # entry_hash's canonical JSON has keys sorted, "seq" between "resource" and "subject": the two
        # halves are serialised here and joined around the number once it is known
        before = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        after = json.dumps({"subject": rec.subject}, ensure_ascii=False, separators=(",", ":"))
        values = {
            "at": rec.at, "consumer": rec.consumer, "key_id": rec.key_id, "action": rec.action,
            "resource": rec.resource, "subject": rec.subject, "fields": list(rec.fields), "purpose": rec.purpose,
            "outcome": rec.outcome, "detail": rec.detail,
        }  # fmt: skip
        for name, value in values.items():
            proc = self._bind[name]
            if proc is not None:
                values[name] = proc(value)
        return values, before[:-1] + ',"seq":', "," + after[1:]

    def append(self, dbapi_conn: Any, records: list[AuditRecord], lock: Callable[[], Any] | None = None) -> list[int]:
        """:func:`append` in one DBAPI transaction, committed; same locking order, same rows and hashes.

        ``lock`` (a context manager factory) is held from before the head is locked to after the commit.
        """
        prepared = [self.bound(rec) for rec in records]
        now = utcnow()
        with lock() if lock is not None else contextlib.nullcontext():
            cur = dbapi_conn.cursor()
            try:
                cur.execute(self.touch.sql, self.touch.params({"head_id": HEAD_ID, "now": now}))
                head = cur.fetchall() if self.returning else None
                if cur.rowcount == 0 or (self.returning and not head):
                    values = {"head_id": HEAD_ID, "new_seq": 0, "new_hash": GENESIS, "now": now}
                    cur.execute(self.create.sql, self.create.params(values))
                    head = [(0, GENESIS)]
                elif not self.returning:
                    cur.execute(self.read.sql, self.read.params({"head_id": HEAD_ID}))
                    head = cur.fetchall()
                assert head
                seq, prev = int(head[0][0]), str(head[0][1])
                first = seq + 1
                rows = []
                for values, before, after in prepared:
                    seq += 1
                    digest = hashlib.sha256(f"{prev}\n{before}{seq}{after}".encode()).hexdigest()
                    rows.append({**values, "seq": seq, "prev_hash": prev, "hash": digest})
                    prev = digest
                self._insert(cur, rows)
                values = {"head_id": HEAD_ID, "new_seq": seq, "new_hash": prev, "now": now}
                cur.execute(self.advance.sql, self.advance.params(values))
                dbapi_conn.commit()
            except BaseException:
                dbapi_conn.rollback()
                raise
            finally:
                cur.close()
        return list(range(first, seq + 1))

    def _insert(self, cur: Any, rows: list[dict[str, Any]]) -> None:
        at = 0
        while at < len(rows):
            n = next(size for size in _INSERT_CHUNKS if size <= len(rows) - at)
            chunk = rows[at : at + n]
            if self.positional:
                params: Any = [row[name] for row in chunk for name in _ENTRY_COLUMNS]
            else:
                params = {f"{name}_{i}": row[name] for i, row in enumerate(chunk) for name in _ENTRY_COLUMNS}
            cur.execute(self._inserts[n], params)
            at += n


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
    with open(sqlite_wal.writers_lock_path(database), "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def write_now(engine: Engine, records: Iterable[AuditRecord]) -> list[int]:
    """Append and commit at once (CLI, tests; the API goes through :class:`AuditWriter`)."""
    with _sqlite_writer_lock(engine), engine.begin() as conn:
        return append(conn, records)


@dataclass
class VerifyReport:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    problems: list[str]
    #: Entries moved to archive files (see :mod:`recognition.audit_archive`), before ``checked`` ones.
    archived: int = 0


def _iter_entries(session: Session, batch: int = 5000, after: int = 0) -> Iterator[AuditEntry]:
    last = after
    while True:
        rows = list(
            session.scalars(select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(batch))
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify(
    engine: Engine, *, max_problems: int = 50, archive_dir: Path | None = None, deep: bool = False
) -> VerifyReport:
    """Walk the chain: numbering without gaps, each link, each hash, and the head.

    Archived entries are checked through their archive records and files
    (:func:`recognition.audit_archive.check`; ``deep`` re-walks every archived entry); the walk
    through the table starts from the last archived entry's hash.
    """
    from recognition import audit_archive  # noqa: PLC0415 - cycle: recognition.audit_archive imports recognition.audit

    with session_scope(engine) as session:
        if archive_dir is None and session.scalar(select(AuditArchive.first_seq).limit(1)) is not None:
            archive_dir = audit_archive.archive_dir(RecognitionSettings(), get_settings().home)
        archived, start, prev, problems = audit_archive.check(session, archive_dir or Path("."), deep=deep)
        expected_seq, checked = start + 1, 0
        for row in _iter_entries(session, after=start):
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
    return VerifyReport(not problems, checked, head_seq, head_hash, problems, archived)


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
    directly (:class:`hub.dbapi.Prepared`): it shares the interpreter lock with the
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
        """Start the writer thread (else the first entry starts it)."""
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
    """The writer thread's end: one DBAPI connection, the compiled statements, the cross-process lock.

    On a SQLite file in WAL mode the commit is made durable by syncing the WAL after the
    cross-process lock is released, not inside the commit: the lock then guards the chain
    (head read to commit, well under a millisecond) rather than a disk flush, and the other
    processes' writers proceed while this one waits for the disk. ``synchronous=NORMAL`` on
    this connection leaves out only the per-commit WAL sync, which the sink does itself before
    anyone is told the entry is written; checkpoints and WAL restarts stay synced by SQLite.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: _ChainStatements | None = None
        self._conn: Any = None
        self._lock_file: BinaryIO | None = None
        self._wal_path: str | None = None
        self._wal_fd: int | None = None
        database = engine.url.database
        self._sqlite_file = engine.dialect.name == "sqlite" and bool(database) and database != ":memory:"
        if self._sqlite_file and database:
            self._lock_file = open(sqlite_wal.writers_lock_path(database), "a+b")  # noqa: SIM115 - held for the thread's life

    def _connect(self) -> Any:
        conn = self.engine.raw_connection()
        conn.detach()  # this thread's own for its life (and its pragmas with it), not the pool's
        self._wal_path = None
        if self._sqlite_file:
            cur = conn.cursor()
            try:
                cur.execute("PRAGMA journal_mode")
                mode = str(cur.fetchall()[0][0]).lower()
                cur.execute("PRAGMA synchronous")
                level = int(cur.fetchall()[0][0])
                if mode == "wal" and level >= 2:  # FULL or EXTRA: the sink syncs the WAL itself
                    cur.execute("PRAGMA synchronous=NORMAL")
                    self._wal_path = f"{self.engine.url.database}-wal"
            finally:
                cur.close()
        if self.statements is None:
            self.statements = _ChainStatements(self.engine.dialect)  # after connecting: dialect initialised
        return conn

    @contextmanager
    def _locked(self) -> Iterator[None]:
        assert self._lock_file is not None
        # a blocking flock wakes at once where SQLite's busy handler would sleep (see _sqlite_writer_lock)
        fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)

    def _sync_wal(self) -> None:
        """Flush the WAL to disk: every frame written so far, this group's commit included."""
        assert self._wal_path is not None
        if self._wal_fd is not None and os.fstat(self._wal_fd).st_nlink == 0:
            os.close(self._wal_fd)  # the WAL was removed (checkpointed away) and made anew
            self._wal_fd = None
        if self._wal_fd is None:
            self._wal_fd = os.open(self._wal_path, os.O_RDONLY | os.O_CLOEXEC)
        os.fdatasync(self._wal_fd)

    def write(self, records: list[AuditRecord]) -> list[int]:
        if self._conn is None:
            self._conn = self._connect()
        assert self.statements is not None
        try:
            seqs = self.statements.append(self._conn, records, self._locked if self._lock_file else None)
            if self._wal_path is not None:
                self._sync_wal()
            return seqs
        except Exception:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                conn.close()  # a connection that failed mid-commit is not trusted again
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
