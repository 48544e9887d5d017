"""The licences-by-holder hot path: answers as FastAPI's own handling does, audit chained and synced."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.db import make_engine, session_scope
from hub.settings import get_settings
from recognition import audit
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.directory import LicenseDirectory
from recognition.tables import AuditEntry
from tests.recognition.rec_helpers import RESIDENT_ID, USCC, World, auth

_AUDITED = ("consumer", "key_id", "action", "resource", "subject", "fields", "purpose", "outcome", "detail")


def _entries_after(world: World, seq: int) -> list[dict[str, Any]]:
    with world.sessions() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.seq > seq).order_by(AuditEntry.seq)).all()
        return [{k: getattr(r, k) for k in _AUDITED} for r in rows]


def _last_seq(world: World) -> int:
    with world.sessions() as s:
        return int(s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0)


@pytest.fixture()
def two_clients(world: World, tokens: dict[str, str]) -> Iterator[tuple[TestClient, TestClient]]:
    """The app as served, and the same app with every request left to FastAPI's own parsing."""
    config = RecognitionSettings(api_key_cache_seconds=0.0)
    directory = LicenseDirectory(world.store, world.keyring)
    fast = create_app(get_settings(), engine=world.engine, directory=directory, config=config)
    plain = create_app(get_settings(), engine=world.engine, directory=directory, config=config, fast_paths=False)
    with TestClient(fast, raise_server_exceptions=False) as a, TestClient(plain, raise_server_exceptions=False) as b:
        yield a, b


QUERIES = [
    "", "?limit=1", "?limit=1&offset=1", "?offset=0&limit=200", "?limit=0", "?limit=201", "?limit=abc", "?limit=01",
    "?limit=%201", "?limit=1&limit=2", "?offset=1000000", "?offset=1000001", "?offset=-1", "?status=valid",
    "?status=revoked", "?status=bogus", "?status=valid&status=revoked", "?valid_on=2016-05-10",
    "?valid_on=2016-02-30", "?valid_on=20160510", "?valid_on=2016-5-10", "?type=1101", "?type=1101&type=3101",
    "?type=2101", "?type=", "?type=1101&status=valid&valid_on=2030-01-01&limit=5", "?unknown=1&limit=2",
    "?" + "&".join(["type=1101"] * 20), "?" + "&".join(["type=1101"] * 21),
]  # fmt: skip
CODES = [
    USCC, USCC.lower(), RESIDENT_ID, RESIDENT_ID[:-1] + "x", f" {RESIDENT_ID}", "330322800101123", "NOBODY",
    "９１３３０３２２MA2C8XYZ1K", "A" * 64, "A" * 65,
]  # fmt: skip


def test_plain_requests_answer_as_fastapi_does(
    world: World, tokens: dict[str, str], two_clients: tuple[TestClient, TestClient]
) -> None:
    world.service.revoke(world.licenses["tax"], "cancelled")
    fast, plain = two_clients
    cases: list[tuple[str, dict[str, str]]] = []
    for name in ("portal", "tax_bureau", "land_bureau", "nobody", "admin"):
        for query in QUERIES:
            cases.append((f"/v1/holders/{USCC}/licenses{query}", auth(tokens[name])))
        for code in CODES:
            cases.append((f"/v1/holders/{code}/licenses", auth(tokens[name])))
    cases += [
        (f"/v1/holders/{USCC}/licenses", {}),
        (f"/v1/holders/{USCC}/licenses", {"Authorization": "Bearer hub_k_nonsense"}),
        (f"/v1/holders/{USCC}/licenses", {"Authorization": "Basic abc"}),
        (f"/v1/holders/{USCC}/licenses", {"Authorization": f"bearer {tokens['portal']}"}),
        (f"/v1/holders/{USCC}/licenses", {**auth(tokens["portal"]), "X-Purpose": "service_portal"}),
        (f"/v1/holders/{USCC}/licenses", {**auth(tokens["portal"]), "X-Purpose": "tax_registration"}),
        (f"/v1/holders/{RESIDENT_ID}/licenses?limit=1", {**auth(tokens["land_bureau"]), "X-Purpose": ""}),
    ]
    statuses = set()
    for path, headers in cases:
        before = _last_seq(world)
        a = fast.get(path, headers=headers)
        written_a = _entries_after(world, before)
        middle = _last_seq(world)
        b = plain.get(path, headers=headers)
        written_b = _entries_after(world, middle)
        assert (a.status_code, a.headers["content-type"]) == (b.status_code, b.headers["content-type"]), path
        assert a.json() == b.json(), (path, headers.keys())
        assert written_a == written_b, path
        # every request leaves exactly one entry: an answered read, or a refusal with its reason
        assert len(written_a) == 1, path
        if a.status_code != 200:
            assert written_a[0]["outcome"] == "refused" and written_a[0]["detail"]["code"] == a.json()["code"], path
        statuses.add(a.status_code)
    assert statuses == {200, 401, 403, 422}  # the cases reach every outcome of the route


def _odd_records(n: int, start: int = 0) -> list[audit.AuditRecord]:
    out = []
    for i in range(start, start + n):
        out.append(
            audit.AuditRecord(
                consumer=f"消费者-{i}", action="read", resource=f'GET /v1/x/"{i}"\\', outcome="ok",
                key_id=None if i % 3 else f"k{i}", subject=None if i % 4 == 0 else f"330322********{i:03d}X",
                fields=[] if i % 2 else ["metadata", "masked", "换行\n\t\u0001"],
                purpose=None if i % 5 else "tax", detail={"z": [i, None, 1.5], "a": {"y": "é", "b": True}, "m": ""},
                at=dt.datetime(2024, 1, 1, 12, 0, i % 60, 123456, tzinfo=dt.UTC) if i % 2 else audit.utcnow(),
            )
        )  # fmt: skip
    return out


def _check_odd_chain(url: str) -> None:
    engine = make_engine(url)
    writer = audit.AuditWriter(engine)

    async def burst(records: list[audit.AuditRecord]) -> list[int]:
        return list(await asyncio.gather(*(writer.write(r) for r in records)))

    got: list[int] = []
    start = 0
    for size in (1, 5, 70, 130, 3):  # groups across the multi-row INSERT sizes
        got += asyncio.run(burst(_odd_records(size, start)))
        start += size
    got += [writer.write_sync(r) for r in _odd_records(4, start)]
    writer.close()
    assert sorted(got) == list(range(1, start + 5)) and len(set(got)) == len(got)
    report = audit.verify(engine)  # recomputes every hash with entry_hash
    assert report.ok and report.checked == start + 4, report.problems
    with session_scope(engine) as s:
        row = s.scalars(select(AuditEntry).where(AuditEntry.seq == 3)).one()
        assert row.detail == {"z": [2, None, 1.5], "a": {"y": "é", "b": True}, "m": ""}
        assert row.fields == ["metadata", "masked", "换行\n\t\u0001"] and row.subject == "330322********002X"
    engine.dispose()


def test_group_commit_chains_entries_of_any_content_sqlite(hub_db_url: str) -> None:
    _check_odd_chain(hub_db_url)


@pytest.mark.postgres
def test_group_commit_chains_entries_of_any_content_postgres(pg_hub_db_url: str) -> None:
    _check_odd_chain(pg_hub_db_url)


def test_group_commit_syncs_the_wal_before_releasing_callers(hub_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real = os.fdatasync

    def spy(fd: int) -> None:
        real(fd)
        events.append(f"sync {os.readlink(f'/proc/self/fd/{fd}')}")

    monkeypatch.setattr(os, "fdatasync", spy)
    engine = make_engine(hub_db_url)
    with engine.connect() as conn:  # the hub's own connections keep SQLite's full per-commit sync
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    writer = audit.AuditWriter(engine)
    for rec in _odd_records(3):
        fut = writer.submit(rec)
        fut.add_done_callback(lambda f: events.append(f"released {f.result()}"))
        fut.result(10)
    writer.close()
    wal = f"sync {engine.url.database}-wal"
    released = [i for i, e in enumerate(events) if e.startswith("released")]
    assert len(released) == 3
    for i in released:  # each caller is released only after a sync of the WAL that holds its commit
        assert wal in events[:i] and events[i - 1] == wal, events
    assert audit.verify(engine).ok
    engine.dispose()


_CHILD = """
import sys, threading
from hub.db import make_engine
from recognition import audit
engine = make_engine(sys.argv[1])
writer = audit.AuditWriter(engine)
def work(k):
    for i in range(40):
        rec = audit.AuditRecord(consumer=sys.argv[2], action="read", resource=f"GET /{k}/{i}", outcome="ok")
        writer.write_sync(rec)
threads = [threading.Thread(target=work, args=(k,)) for k in range(5)]
for t in threads: t.start()
for t in threads: t.join()
writer.close()
"""


def test_writers_in_several_processes_keep_one_chain(hub_db_url: str) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHILD, hub_db_url, f"proc{k}"], env=env, cwd=root) for k in range(3)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    engine = make_engine(hub_db_url)
    report = audit.verify(engine)
    assert report.ok and report.checked == 600 and report.head_seq == 600, report.problems
    with session_scope(engine) as s:
        consumers = s.scalars(select(AuditEntry.consumer)).all()
    assert sorted(set(consumers)) == ["proc0", "proc1", "proc2"] and len(consumers) == 600
    engine.dispose()


def test_reader_connection_is_per_thread_and_dropped_after_a_failure(world: World) -> None:
    app = create_app(get_settings(), engine=world.engine, directory=LicenseDirectory(world.store, world.keyring))
    ctx = app.state.ctx
    with ctx.reader() as first:
        pass
    with ctx.reader() as again:
        assert again is first  # kept between requests
    seen: list[Any] = []

    def other() -> None:
        with ctx.reader() as conn:
            seen.append(conn)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen and seen[0] is not first
    with pytest.raises(RuntimeError), ctx.reader():
        raise RuntimeError("query failed")
    with ctx.reader() as fresh:
        assert fresh is not first
        cur = fresh.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]
    ctx.close_readers()
    ctx.audit.close()
