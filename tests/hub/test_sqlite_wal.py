"""A large commit's WAL checkpoint runs on a worker thread; the connection's own automatic
checkpoint comes back afterwards, whether the session commits or not."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from hub import sqlite_wal
from hub.db import make_engine, session_factory


def _autocheckpoint(session: object) -> int:
    raw = session.connection().connection.driver_connection  # type: ignore[attr-defined]
    return int(raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


def _fill(session: object, rows: int) -> None:
    session.execute(text("CREATE TABLE IF NOT EXISTS bulk (id INTEGER PRIMARY KEY, v TEXT)"))  # type: ignore[attr-defined]
    session.execute(text("INSERT INTO bulk (v) VALUES (:v)"), [{"v": "x" * 400}] * rows)  # type: ignore[attr-defined]


@pytest.fixture()
def one_connection(tmp_path: Path) -> Iterator[Engine]:
    """An engine on ``tmp_path/wal.db`` with one pooled connection: every session gets it back."""
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}", pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def test_commit_leaves_the_checkpoint_to_a_worker(tmp_path: Path, one_connection: Engine) -> None:
    path = tmp_path / "wal.db"
    before = len(sqlite_wal.history)
    with session_factory(one_connection)() as s:
        assert sqlite_wal.defer_checkpoint(s)
        assert _autocheckpoint(s) == 0
        _fill(s, 20_000)  # ~8 MB: past the 1,000 pages that trigger a checkpoint in the commit
        s.commit()
        sqlite_wal.wait()
        # the same pooled connection again: its automatic checkpoint is back
        assert _autocheckpoint(s) == 1000
    done = sqlite_wal.history[before:]
    assert [p for p, _pages, _s in done] == [str(path)]
    assert done[0][1] > 1000  # the worker copied the commit's pages into the database file
    assert os.path.getsize(path) > 8_000_000
    with session_factory(one_connection)() as s:
        assert s.execute(text("SELECT count(*) FROM bulk")).scalar() == 20_000


def test_a_rollback_puts_the_automatic_checkpoint_back(one_connection: Engine) -> None:
    before = len(sqlite_wal.history)
    with session_factory(one_connection)() as s:
        assert sqlite_wal.defer_checkpoint(s)
        _fill(s, 100)
        s.rollback()
    with session_factory(one_connection)() as s:
        assert _autocheckpoint(s) == 1000
    sqlite_wal.wait()
    assert len(sqlite_wal.history) == before  # nothing committed, nothing to copy


def test_a_later_commit_of_a_session_that_rolled_back_checkpoints_nothing(one_connection: Engine) -> None:
    """The deferral belongs to one transaction: after its rollback, the same session's next
    commit is an ordinary one (the connection checkpoints as SQLite does by default)."""
    before = len(sqlite_wal.history)
    with session_factory(one_connection)() as s:
        assert sqlite_wal.defer_checkpoint(s)
        _fill(s, 10)
        s.rollback()
        _fill(s, 10)
        assert _autocheckpoint(s) == 1000
        s.commit()
    sqlite_wal.wait()
    assert len(sqlite_wal.history) == before


def test_only_sqlite_files_in_wal_mode_defer() -> None:
    engine = make_engine("sqlite:///:memory:")
    try:
        with session_factory(engine)() as s:
            assert not sqlite_wal.defer_checkpoint(s)
    finally:
        engine.dispose()


def test_a_checkpoint_of_a_removed_database_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "gone 数据.db"  # a space and non-ASCII: the path is quoted into a URI
    before = len(sqlite_wal.history)
    sqlite_wal.start(str(path))
    sqlite_wal.wait()
    assert not path.exists()
    assert len(sqlite_wal.history) == before


def test_a_checkpoint_finds_a_path_that_needs_quoting(tmp_path: Path) -> None:
    path = tmp_path / "数据 #1.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        before = len(sqlite_wal.history)
        with session_factory(engine)() as s:
            assert sqlite_wal.defer_checkpoint(s)
            _fill(s, 3_000)
            s.commit()
        sqlite_wal.wait()
        assert [p for p, _n, _s in sqlite_wal.history[before:]] == [str(path)]
    finally:
        engine.dispose()


def _synchronous(session: object) -> int:
    raw = session.connection().connection.driver_connection  # type: ignore[attr-defined]
    return int(raw.execute("PRAGMA synchronous").fetchone()[0])


def test_a_commit_synced_later_leaves_out_its_sync_and_the_connection_comes_back_full(one_connection: Engine) -> None:
    with session_factory(one_connection)() as s:
        assert _synchronous(s) == 2  # FULL: SQLite's default, every commit syncs the log
        assert sqlite_wal.sync_later(s)
        assert sqlite_wal.sync_later(s)  # asked again: still left out, the level to put back kept
        assert _synchronous(s) == 1  # NORMAL: the caller syncs the log
        _fill(s, 3)
        s.commit()
    with session_factory(one_connection)() as s:  # the same pooled connection, its own level back
        assert _synchronous(s) == 2
        assert s.execute(text("SELECT count(*) FROM bulk")).scalar_one() == 3


def test_a_commit_is_synced_later_only_when_asked_before_its_first_write(one_connection: Engine) -> None:
    with session_factory(one_connection)() as s:
        _fill(s, 1)
        assert not sqlite_wal.sync_later(s)  # SQLite refuses to change the level inside a transaction
        assert _synchronous(s) == 2
        s.rollback()


def test_only_sqlite_files_in_wal_mode_sync_later() -> None:
    memory = make_engine("sqlite://")
    try:
        with session_factory(memory)() as s:
            assert not sqlite_wal.sync_later(s)
    finally:
        memory.dispose()


def _lock_taken(path: Path) -> bool:
    """Whether another open file (as another writer has) finds the writers' lock taken."""
    import fcntl

    fd = os.open(sqlite_wal.writers_lock_path(str(path)), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the file releases a lock taken here
    return False


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_the_writers_lock_is_held_from_the_first_write_to_the_end_of_the_transaction(
    tmp_path: Path, one_connection: Engine, end: str
) -> None:
    path = tmp_path / "wal.db"
    s = session_factory(one_connection)()
    s.execute(text("CREATE TABLE IF NOT EXISTS bulk (id INTEGER PRIMARY KEY, v TEXT)"))
    s.commit()
    assert not _lock_taken(path)
    assert sqlite_wal.hold_writers_lock(s)
    _fill(s, 3)
    assert _lock_taken(path)
    assert not sqlite_wal.hold_writers_lock(s)  # held already (and the transaction has written)
    getattr(s, end)()
    assert not _lock_taken(path)
    with session_factory(one_connection)() as again:  # the same pooled connection: taken anew, released anew
        assert sqlite_wal.hold_writers_lock(again)
        _fill(again, 1)
        again.commit()
        assert not _lock_taken(path)
        assert again.execute(text("SELECT count(*) FROM bulk")).scalar() == (4 if end == "commit" else 1)


def test_a_session_that_has_written_does_not_queue_for_the_writers_lock(tmp_path: Path, one_connection: Engine) -> None:
    # it may hold SQLite's write lock, which a writer holding the file lock may be waiting for
    with session_factory(one_connection)() as s:
        _fill(s, 1)
        assert not sqlite_wal.hold_writers_lock(s)
        assert not _lock_taken(tmp_path / "wal.db")
        s.commit()


def test_only_sqlite_files_queue_for_the_writers_lock() -> None:
    engine = make_engine("sqlite://")
    with session_factory(engine)() as s:
        assert not sqlite_wal.hold_writers_lock(s)
    engine.dispose()


def _wal_frames(path: Path) -> tuple[int, int]:
    """(frames in the log, frames copied into the database) as a PASSIVE checkpoint of another connection finds them."""
    import sqlite3

    con = sqlite3.connect(path)
    try:
        _busy, frames, copied = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        con.close()
    return int(frames), int(copied)


def test_a_checkpointer_takes_the_checkpoints_off_the_commits(tmp_path: Path, one_connection: Engine) -> None:
    sessions = session_factory(one_connection)
    with sessions() as s:  # before it: the connection checkpoints itself
        assert _autocheckpoint(s) == 1000
    checkpointer = sqlite_wal.Checkpointer(one_connection, every=0.01)
    assert checkpointer.start()
    try:
        with sessions() as s:
            assert _autocheckpoint(s) == 0  # none inside this commit: …
            _fill(s, 12_000)  # … a log well past 1,000 pages
            s.commit()
        deadline = time.monotonic() + 10
        while checkpointer.checkpoints < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        frames, copied = _wal_frames(tmp_path / "wal.db")
        assert checkpointer.checkpoints >= 3 and frames > 1000 and copied == frames  # … the thread copied it all
    finally:
        checkpointer.stop()
    with sessions() as s:  # handed out as it was when it last returned to the pool …
        _autocheckpoint(s)
    with sessions() as s:  # … and, returned after the checkpointer stopped, with its own automatic checkpoint back
        assert _autocheckpoint(s) == 1000
    assert checkpointer.start()  # it starts again
    checkpointer.stop()


def test_only_sqlite_files_in_wal_mode_get_a_checkpointer(tmp_path: Path) -> None:
    memory = make_engine("sqlite://")
    try:
        assert not sqlite_wal.Checkpointer(memory).start()
    finally:
        memory.dispose()
