"""SQLite's write-ahead log after a large commit: copied into the database off the caller's path.

In WAL mode a commit appends the transaction's pages to the ``-wal`` file and syncs it: the
data is durable then. Copying those pages into the database file (a *checkpoint*) is
maintenance; SQLite runs it inside the commit that grows the log past
``wal_autocheckpoint`` pages, so a commit of a bulk load of 600 MB writes and syncs it twice
before returning. :func:`defer_checkpoint` makes a session's next commit return after the
first write, and a worker thread checkpoints on a connection of its own (``PASSIVE``: it never
blocks readers or writers, and copies only what no reader still needs). ``sqlite3`` releases
the GIL while SQLite works, so the caller's next batch runs meanwhile on the other core.

The worker threads are not daemons: a process that ends (an Airflow task) waits for its
checkpoint. :func:`wait` waits for every checkpoint started so far (benchmarks time it apart).
A checkpoint that fails (the database is busy for longer than the busy timeout) is logged;
the log is then checkpointed by the next commit that grows it, as SQLite does by default.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: Key in a pooled connection's ``info``: its pending :class:`_Deferral`.
_DEFERRED = "hub_wal_autocheckpoint"

_lock = threading.Lock()
_workers: dict[str, threading.Thread] = {}
_again: set[str] = set()
#: (database path, pages copied, seconds) of the checkpoints run, for tests and benchmarks.
history: list[tuple[str, int, float]] = []


def _database_path(raw: Any) -> str:
    for _seq, name, path in raw.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(path or "")
    return ""


def defer_checkpoint(session: Session) -> bool:
    """Make ``session``'s next commit leave the checkpoint to a worker thread (SQLite file
    databases in WAL mode; elsewhere nothing changes). Returns whether it was deferred."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    fairy = session.connection().connection
    raw: Any = fairy.driver_connection
    path = _database_path(raw)
    (mode,) = raw.execute("PRAGMA journal_mode").fetchone()
    if not path or str(mode).lower() != "wal":
        return False
    if _DEFERRED not in fairy.info:
        (pages,) = raw.execute("PRAGMA wal_autocheckpoint").fetchone()
        raw.execute("PRAGMA wal_autocheckpoint=0")
        deferral = _Deferral(int(pages))
        fairy.info[_DEFERRED] = deferral

        def committed(_session: Session) -> None:
            # only the commit of this deferral: after a rollback the connection went back to
            # the pool (restored there) and may serve another session by now
            if fairy.info.get(_DEFERRED) is deferral:
                restore(raw, fairy.info)
                start(path)

        event.listen(session, "after_commit", committed, once=True)
    return True


class _Deferral:
    """One deferred checkpoint of a connection: the ``wal_autocheckpoint`` to put back."""

    def __init__(self, pages: int) -> None:
        self.pages = pages


def restore(raw: Any, info: dict[str, Any]) -> None:
    """Put a connection's ``wal_autocheckpoint`` back after a deferred commit (or when it
    returns to the pool without one: a rollback, a closed session)."""
    deferral = info.pop(_DEFERRED, None)
    if deferral is not None and raw is not None:
        raw.execute(f"PRAGMA wal_autocheckpoint={int(deferral.pages)}")


def on_checkin(dbapi_connection: Any, record: Any) -> None:
    """Pool ``checkin`` listener of the hub's SQLite engines (:func:`hub.db.make_engine`)."""
    restore(dbapi_connection, record.info)
    background = record.info.get(_BACKGROUND)
    if background is not None and dbapi_connection is not None and not _checkpointing.get(background[1]):
        del record.info[_BACKGROUND]  # its checkpointer has stopped: the connection checkpoints again itself
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={int(background[0])}")
    held = record.info.pop(_WRITER, None)
    if held is not None:  # a session that never ended its transaction: its lock goes with the connection
        held.release()
    level = record.info.pop(_UNSYNCED, None)
    if level is not None and dbapi_connection is not None:
        dbapi_connection.execute(f"PRAGMA synchronous={int(level)}")


#: Key in a pooled connection's ``info``: the ``synchronous`` level to put back (:func:`sync_later`).
_UNSYNCED = "hub_wal_sync_later"
#: Key in a pooled connection's ``info``: its own ``synchronous`` level in WAL mode (0: not a WAL file).
_LEVEL = "hub_wal_sync_level"


def sync_later(session: Session) -> bool:
    """Make ``session``'s commits on a SQLite file in WAL mode leave out their own sync of the log
    (``synchronous=NORMAL`` until the connection returns to the pool): for a caller that syncs the
    log itself before anyone is told of the commit — the API, whose answer waits for its audit
    entry, committed and the same log synced after it (:class:`recognition.audit._ChainSink`). A
    sync of the log makes every frame before it durable, this commit's included; a process that
    dies keeps the commit (it is in the log), only a machine that stops before the sync loses it,
    and then no answer told of it. Before the session's first write only (SQLite refuses inside a
    transaction); elsewhere, or when the level is already below ``FULL``, nothing changes.
    Returns whether the sync was left out."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    fairy = session.connection().connection
    raw: Any = fairy.driver_connection
    if _UNSYNCED in fairy.info:
        return True
    level = fairy.info.get(_LEVEL)
    if level is None:  # once per connection: its mode and level stay as the engine set them
        (mode,) = raw.execute("PRAGMA journal_mode").fetchone()
        (found,) = raw.execute("PRAGMA synchronous").fetchone()
        level = fairy.info[_LEVEL] = int(found) if str(mode).lower() == "wal" and _database_path(raw) else 0
    if level < 2 or raw.in_transaction:
        return False
    raw.execute("PRAGMA synchronous=NORMAL")
    fairy.info[_UNSYNCED] = level
    return True


def start(path: str) -> None:
    """Checkpoint the database at ``path`` on a worker thread (one per database at a time; a
    request while one runs makes it run once more)."""
    with _lock:
        worker = _workers.get(path)
        if worker is not None and worker.is_alive():
            _again.add(path)
            return
        worker = threading.Thread(target=_run, args=(path,), name="sqlite-wal-checkpoint", daemon=False)
        _workers[path] = worker
        worker.start()


def _run(path: str) -> None:
    while True:
        t0 = time.perf_counter()
        try:
            # read-write, never create: a database removed meanwhile is not made again empty
            con = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=rw", uri=True, timeout=30)
            try:
                busy, _log_pages, copied = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                con.close()
            history.append((path, int(copied), time.perf_counter() - t0))
            if busy:
                log.info("WAL checkpoint of %s could not finish (busy); the next commit continues it", path)
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint of %s failed: %s; the next commit that grows the log runs it", path, exc)
        with _lock:
            if path not in _again:
                _workers.pop(path, None)
                return
            _again.discard(path)


def wait() -> float:
    """Wait for every checkpoint started so far; the seconds waited."""
    t0 = time.perf_counter()
    while True:
        with _lock:
            running = [w for w in _workers.values() if w.is_alive()]
        if not running:
            return time.perf_counter() - t0
        for worker in running:
            worker.join()


#: Key in a pooled connection's ``info``: the writers' lock it holds (:func:`hold_writers_lock`).
_WRITER = "hub_wal_writers_lock"
#: Key in a pooled connection's ``info``: its database's path ("" in memory).
_PATH = "hub_wal_path"
#: This thread's open lock files by database path: ``flock`` excludes open files, not threads, so
#: each thread opens its own (the threads of one process then exclude one another too).
_lock_files = threading.local()


def writers_lock_path(database: str) -> str:
    """The file whose ``flock`` the writers of the SQLite database at ``database`` queue on (the
    audit log's writers, :mod:`recognition.audit`, and intake, :func:`hold_writers_lock`)."""
    return f"{database}.audit-lock"


class _Held:
    """One hold of the writers' lock; released once, by whichever comes first: the end of the
    session's transaction or the connection's return to the pool."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)


def hold_writers_lock(session: Session) -> bool:
    """Queue for SQLite's one write lock on a file lock, held until ``session``'s transaction ends.

    SQLite's busy handler waits for a taken write lock by sleeping (1, 2, 5, 10 … ms) and trying
    again, so a writer that finds it taken sleeps past its release; a blocking ``flock`` wakes as
    soon as it is released. Writers that all queue on the same file (the audit log's,
    :class:`recognition.audit._ChainSink`, and a new case's, :func:`cases.intake.take_in`) find
    SQLite's lock free when their turn comes. Call it right before the transaction's first write:
    a session that has written already (it may hold SQLite's lock, and a writer holding the file
    lock may be waiting for it) is left to SQLite's handler, as is anything but a SQLite file.
    Returns whether the lock is held."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    fairy = session.connection().connection
    raw: Any = fairy.driver_connection
    if raw.in_transaction or _WRITER in fairy.info:
        return False
    path = fairy.info.get(_PATH)
    if path is None:  # once per connection
        path = fairy.info[_PATH] = _database_path(raw)
    if not path:
        return False
    files: dict[tuple[int, str], int] = _lock_files.__dict__.setdefault("files", {})
    key = (os.getpid(), path)  # a forked child opens its own: an inherited one shares the parent's lock
    fd = files.get(key)
    if fd is None:
        fd = files[key] = os.open(writers_lock_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    held = fairy.info[_WRITER] = _Held(fd)
    session.info[_WRITER] = (session.get_transaction(), fairy.info, held)
    return True


@event.listens_for(Session, "after_transaction_end")
def _transaction_ended(session: Session, transaction: Any) -> None:
    """Release the writers' lock a session holds (:func:`hold_writers_lock`) when the transaction
    it was taken in ends. One listener for every session: listening on each session that takes the
    lock cost more than the lock (an intake takes it once)."""
    hold = session.info.get(_WRITER)
    if hold is None or transaction is not hold[0]:
        return
    del session.info[_WRITER]
    _root, info, held = hold
    if info.get(_WRITER) is held:
        info.pop(_WRITER, None)
        held.release()


#: Key in a pooled connection's ``info``: (its ``wal_autocheckpoint``, its database's path) while a
#: :class:`Checkpointer` of this process checkpoints for it.
_BACKGROUND = "hub_wal_background"
#: database path → how many :class:`Checkpointer` of this process run for it
_checkpointing: dict[str, int] = {}


#: Checkpoints a :class:`Checkpointer` runs in a row while writers add to the log as it copies: a log
#: copied to its end is started over by the next writer, so it does not grow without end.
_CATCH_UP = 8


class Checkpointer:
    """The WAL of a busy database checkpointed by a thread, not inside the commits of requests.

    SQLite copies the log into the database (``PASSIVE``) inside the commit that finds the log past
    ``wal_autocheckpoint`` pages: that commit's caller — an API worker's event loop, and with it
    every request of the worker — waits for a thousand pages to be written and the database file
    synced, holding the writers' lock (:func:`hold_writers_lock`) meanwhile. While a checkpointer
    runs, the connections its engine hands out leave checkpoints to it (``wal_autocheckpoint=0``,
    put back when they return to the pool after it stopped), and its thread checkpoints
    (``PASSIVE``: it never blocks readers or writers) every ``every`` seconds on a connection of
    its own, again at once while writers added to the log meanwhile (a log copied to its end is
    started over by the next writer); ``sqlite3`` releases the GIL while SQLite works. Checkpoints
    keep their syncs: only who waits for them changes. Other processes' connections (the audit writers, Airflow tasks)
    checkpoint as before. Elsewhere than on a SQLite file in WAL mode it does nothing.
    """

    def __init__(self, engine: Any, *, every: float = 0.05) -> None:
        self.engine = engine
        self.every = every
        self.path = ""
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start checkpointing; whether it did (a SQLite file in WAL mode)."""
        if self._thread is not None or self.engine.dialect.name != "sqlite":
            return self._thread is not None
        with self.engine.connect() as conn:
            raw: Any = conn.connection.driver_connection
            path = _database_path(raw)
            (mode,) = raw.execute("PRAGMA journal_mode").fetchone()
        if not path or str(mode).lower() != "wal":
            return False
        self.path = path
        with _lock:
            _checkpointing[path] = _checkpointing.get(path, 0) + 1
        event.listen(self.engine, "checkout", self._checkout)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sqlite-wal-checkpointer", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop (its connections checkpoint themselves again once they return to the pool)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        event.remove(self.engine, "checkout", self._checkout)
        with _lock:
            left = _checkpointing.get(self.path, 0) - 1
            if left > 0:
                _checkpointing[self.path] = left
            else:
                _checkpointing.pop(self.path, None)
        self._stop.set()
        thread.join()

    def _checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if _BACKGROUND not in record.info:  # once per connection while the checkpointer runs
            (pages,) = dbapi_connection.execute("PRAGMA wal_autocheckpoint").fetchone()
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
            record.info[_BACKGROUND] = (int(pages), self.path)

    def _run(self) -> None:
        con: sqlite3.Connection | None = None
        while not self._stop.wait(self.every):
            try:
                if con is None:  # read-write, never create: a database removed meanwhile is not made again
                    con = sqlite3.connect(f"file:{urllib.parse.quote(self.path)}?mode=rw", uri=True)
                for _ in range(_CATCH_UP):
                    busy, frames, copied = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                    # caught up (the next writer starts the log over), or another checkpointer runs
                    if busy or copied >= frames:
                        break
            except sqlite3.Error as exc:
                log.warning("WAL checkpoint of %s failed: %s; tried again in %.2fs", self.path, exc, self.every)
                if con is not None:
                    con.close()
                con = None
        if con is not None:
            con.close()
