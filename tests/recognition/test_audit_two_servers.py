"""Two API processes (``hub serve``, real HTTP) writing the audit log at once on PostgreSQL keep
one valid chain with no gap.

The overlap is forced: the test holds the chain's head row locked while a burst of requests
reaches both servers, and lets go only once PostgreSQL shows both servers' audit writers
waiting behind it; then every answer arrives and ``hub audit verify`` (``audit.verify``) finds
one chain, numbered without a gap, with an entry for every request.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub.db import make_engine, session_scope
from recognition import audit
from recognition.consumers import add_consumer
from recognition.tables import AuditEntry, AuditHead
from tests.recognition.rec_helpers import RESIDENT_ID, auth

ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 90
PER_SERVER = 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _waiting_writers(engine: Engine) -> int:
    """Backends of this database waiting for a lock (the audit writers, behind the head row)."""
    with engine.connect() as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        return int(conn.scalar(sa.text(query)) or 0)


@pytest.mark.postgres
def test_two_api_processes_write_one_audit_chain(pg_hub_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(pg_hub_db_url)
    with session_scope(engine) as s:
        token = add_consumer(s, "portal", ["licenses:read:*"])[1]
    env = {**os.environ, "HUB_DB_URL": pg_hub_db_url, "HUB_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    ports = [_free_port(), _free_port()]
    command = [sys.executable, "-m", "recognition.serve", "--workers", "1", "--port"]
    # each in its own process group: a failed test takes the servers down with it
    servers = [subprocess.Popen([*command, str(port)], env=env, cwd=ROOT, start_new_session=True) for port in ports]
    head_lock = engine.connect()
    try:
        _until(lambda: all(_healthy(p) for p in ports), "both servers answering")
        base = audit.verify(engine).checked  # the health checks are not audited; anything else would count
        urls = [f"http://127.0.0.1:{p}/v1/holders/{RESIDENT_ID}/licenses" for p in ports]
        # a burst on both servers while the head row is locked: both audit writers must queue behind it
        trans = head_lock.begin()
        head_lock.execute(sa.select(AuditHead.id).where(AuditHead.id == audit.HEAD_ID).with_for_update())
        start = threading.Barrier(2 * PER_SERVER)

        def call(url: str, good: bool) -> int:
            start.wait(WAIT_SECONDS)
            headers = auth(token) if good else auth("hub_not-a-key")
            return httpx.get(url, headers=headers, timeout=WAIT_SECONDS).status_code

        jobs = [(url, i % 4 != 3) for i in range(PER_SERVER) for url in urls]  # a quarter refused
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            answers = [pool.submit(call, url, good) for url, good in jobs]
            _until(lambda: _waiting_writers(engine) >= 2, "both servers' audit writers waiting on the head")
            assert not any(a.done() for a in answers)  # no answer before its entry is written
            trans.commit()
            codes = [a.result(WAIT_SECONDS) for a in answers]
        assert sorted(set(codes)) == [200, 401]
        assert codes.count(401) == len(jobs) // 4

        report = audit.verify(engine)
        assert report.ok, report.problems
        assert report.checked == base + len(jobs) and report.head_seq == report.checked
        with engine.connect() as conn:
            seqs = list(conn.scalars(sa.select(AuditEntry.seq).order_by(AuditEntry.seq)))
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        head_lock.close()
        for server in servers:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        engine.dispose()
