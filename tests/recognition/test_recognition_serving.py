"""`hub serve` with several workers, and the audit child process behind each worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from hub.db import make_engine, session_scope
from hub.settings import get_settings
from recognition import audit
from recognition.app import create_app
from recognition.audit_process import ProcessAuditWriter
from recognition.config import RecognitionSettings
from recognition.consumers import add_consumer
from recognition.directory import LicenseDirectory
from tests.recognition.rec_helpers import RESIDENT_ID, World, auth

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


def _workers(pid: int) -> list[int]:
    """The server's worker processes: its children that run an audit child of their own."""
    return [w for w in _children(pid) if _children(w)]


def _until(check: object, seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)  # polling a condition with a deadline, not a fixed wait
    raise AssertionError("condition not reached")


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_with_two_workers_restarts_a_dead_one_and_stops_cleanly(hub_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(hub_db_url)
    with session_scope(engine) as s:
        token = add_consumer(s, "portal", ["licenses:read:*"])[1]
    port = _free_port()
    env = {**os.environ, "HUB_DB_URL": hub_db_url, "HUB_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "recognition.serve", "--port", str(port), "--workers", "2"], env=env, cwd=ROOT,
        start_new_session=True,  # its own process group: a failed test takes the workers down with it
    )  # fmt: skip
    try:
        # two workers, each with its audit child, listening on the one port
        _until(lambda: _healthy(port) and len(_workers(server.pid)) == 2)
        workers = _workers(server.pid)
        url = f"http://127.0.0.1:{port}/v1/holders/{RESIDENT_ID}/licenses"
        for _ in range(20):  # a new connection each time: the kernel spreads them over the workers
            assert httpx.get(url, headers=auth(token)).status_code == 200
        os.kill(workers[0], signal.SIGKILL)
        _until(lambda: workers[0] not in _children(server.pid) and len(_workers(server.pid)) == 2)
        _until(lambda: _healthy(port))
        assert httpx.get(url, headers=auth(token)).status_code == 200
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    report = audit.verify(engine)
    assert report.ok and report.checked == 21, report.problems
    engine.dispose()


def test_audit_child_that_dies_is_started_again(
    world: World, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import recognition.audit_process as audit_process

    monkeypatch.setattr(audit_process, "RESTART_SECONDS", 0.0)
    app = create_app(
        get_settings(), engine=world.engine, directory=LicenseDirectory(world.store, world.keyring),
        config=RecognitionSettings(api_key_cache_seconds=0.0),
    )  # fmt: skip
    writer = app.state.ctx.audit
    assert isinstance(writer, ProcessAuditWriter)
    path = f"/v1/holders/{RESIDENT_ID}/licenses"
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get(path, headers=auth(tokens["portal"])).status_code == 200
        proc = writer._proc
        assert proc is not None
        proc.kill()
        proc.wait()
        _until(lambda: writer._transport is None, 10)  # the worker sees the socket close
        again = client.get(path, headers=auth(tokens["portal"]))
        assert again.status_code == 200  # a new child took over
        assert writer._proc is not None and writer._proc.pid != proc.pid
    report = audit.verify(world.engine)
    assert report.ok and report.checked == 2, report.problems
