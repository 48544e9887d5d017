"""Storage faults while licences are issued: a disk that takes no more than N bytes a file
(``RLIMIT_FSIZE`` on the issuing process) and an S3 server refusing writes. Either way the batch
stops with a clear error, leaves no index entry without its object and no half-written object,
and the next run issues everything.
"""

from __future__ import annotations

import http.client
import resource
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from e_license_store.model import LicenseDraft
from e_license_store.service import LicenseService
from e_license_store.signing import KeyRing
from e_license_store.store import open_store
from e_license_store.store.base import ObjectStore, StoreError
from e_license_store.store.local import LocalStore
from hub.db import make_engine, migrate, session_factory
from mappings.canonical.models import SourceRef
from rigs.testing import TempDatabase
from tests.e_license_store.conftest import business_draft, source
from tests.e_license_store.test_license_store_contract import moto_endpoint  # noqa: F401 - the S3 server fixture

REPO = Path(__file__).resolve().parents[2]
#: a file may grow to this many bytes in the issuing process: less than one sealed licence
FILE_LIMIT = 1024

ISSUE_BATCH = """
import sys
from pathlib import Path
from e_license_store.service import LicenseService
from e_license_store.signing import load_keyring
from e_license_store.store.local import LocalStore
from hub.db import make_engine, session_factory
from tests.e_license_store.test_license_storage_faults import batch
db_url, store_dir, key_dir = sys.argv[1:4]
service = LicenseService(LocalStore(Path(store_dir)), session_factory(make_engine(db_url)), load_keyring(Path(key_dir)))
print(len(service.issue_batch(batch())))
"""


def batch(n: int = 5) -> list[tuple[LicenseDraft, SourceRef]]:
    return [(business_draft(license_number=f"3303220000{i:05d}"), source(f"ent-{2000 + i}")) for i in range(n)]


def _index(sessions: sessionmaker[Session]) -> list[tuple[str, str, str | None]]:
    with sessions() as s:
        rows = s.execute(text("SELECT license_id, object_key, object_sha256 FROM license_index ORDER BY license_id"))
        return [(str(a), str(b), c) for a, b, c in rows]


def _events(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return int(s.execute(text("SELECT count(*) FROM outbox_event")).scalar_one())


def _every_entry_has_its_object(store: ObjectStore, sessions: sessionmaker[Session]) -> None:
    for license_id, key, sha in _index(sessions):
        info = store.stat(key)
        assert info is not None, f"{license_id}: indexed, its object {key} missing"
        assert sha is None or info.sha256 == sha or len(store.get(key)) == info.size


def _limited(limit: int) -> None:
    """In the child before exec: files may grow to ``limit`` bytes (Python ignores SIGXFSZ: a write past it fails)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def test_a_disk_taking_n_bytes_a_file_stops_the_batch_clearly_and_the_next_run_issues_it(
    pg_database: TempDatabase, key_dir: Path, keyring: KeyRing, tmp_path: Path
) -> None:
    """RLIMIT_FSIZE on the issuing process (the hub's database on PostgreSQL, off this process's files)."""
    url = pg_database.sqlalchemy_url
    migrate(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    store_dir = tmp_path / "store"
    LocalStore(store_dir)  # its directories and secret exist before the limit
    env = {"PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin",
           "HUB_HOME": str(tmp_path / "home"), "HUB_DB_URL": url}  # fmt: skip
    args = [sys.executable, "-c", ISSUE_BATCH, url, str(store_dir), str(key_dir)]
    failed = subprocess.run(
        args, env=env, cwd=REPO, capture_output=True, text=True, preexec_fn=lambda: _limited(FILE_LIMIT)
    )
    try:
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "File too large" in failed.stderr  # OSError EFBIG: the disk said no, and says why
        store = LocalStore(store_dir)
        assert list(store.list_keys()) == []  # no object, whole or half
        assert list((store_dir / "tmp").iterdir()) == []  # the partly written temporary file removed
        assert _index(sessions) == [] and _events(sessions) == 0  # nothing indexed or announced
        # the next run, the disk with room again: every licence, each indexed on its object
        rerun = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        assert rerun.stdout.strip() == "5"
        assert len(_index(sessions)) == 5 and _events(sessions) == 5
        _every_entry_has_its_object(store, sessions)
        assert len(list(store.list_keys())) == 5
    finally:
        engine.dispose()


class RefusingS3:
    """A front for the S3 server that, once ``refuse_after`` more object writes (``PUT
    /bucket/key``) went through, answers the next ones ``503 SlowDown`` (``None``: refuses none);
    everything else goes through."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.split(":")
        self.refuse_after: int | None = None
        self.refused = 0
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                object_write = self.command == "PUT" and "?" not in self.path and "/" in self.path.strip("/")
                if object_write and front.refuse_after is not None and front.refuse_after <= 0:
                    front.refused += 1
                    error = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                             b"<Message>writes refused</Message></Error>")  # fmt: skip
                    self.send_response(503)
                    self.send_header("content-type", "application/xml")
                    self.send_header("content-length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                if object_write and front.refuse_after is not None:
                    front.refuse_after -= 1
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = self.headers.get("host", upstream)
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection", "server", "date"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def refusing_s3(moto_endpoint: str) -> Iterator[RefusingS3]:  # noqa: F811 - the fixture imported above
    front = RefusingS3(moto_endpoint)
    yield front
    front.close()


def test_an_s3_server_refusing_writes_stops_the_batch_clearly_and_the_next_run_issues_it(
    refusing_s3: RefusingS3, sessions: sessionmaker[Session], keyring: KeyRing
) -> None:
    store = open_store(f"minio://test:test@{refusing_s3.endpoint}/lic-{uuid.uuid4().hex[:12]}")
    service = LicenseService(store, sessions, keyring)
    refusing_s3.refuse_after = 0
    with pytest.raises(StoreError, match=r"the S3 server took no write.*503"):
        service.issue_batch(batch(), concurrency=1)
    assert refusing_s3.refused >= 1
    assert list(store.list_keys()) == []  # nothing written
    assert _index(sessions) == [] and _events(sessions) == 0
    refusing_s3.refuse_after = None  # the server takes writes again: the next run issues everything
    assert len(service.issue_batch(batch(), concurrency=1)) == 5
    assert len(_index(sessions)) == 5 and _events(sessions) == 5
    _every_entry_has_its_object(store, sessions)


def test_an_s3_server_refusing_writes_part_way_leaves_stored_versions_the_next_run_indexes(
    refusing_s3: RefusingS3, sessions: sessionmaker[Session], keyring: KeyRing
) -> None:
    """Writes refused from the third object on: two versions stored and not indexed (the batch
    indexes in one transaction after every write); the next run finds and indexes them, writes
    the rest, and no version is written twice."""
    store = open_store(f"minio://test:test@{refusing_s3.endpoint}/lic-{uuid.uuid4().hex[:12]}")
    service = LicenseService(store, sessions, keyring)
    refusing_s3.refuse_after = 2
    with pytest.raises(StoreError, match=r"the S3 server took no write.*503"):
        service.issue_batch(batch(5), concurrency=1)
    assert len(set(store.list_keys())) == 2  # two whole objects, the third refused
    assert _index(sessions) == [] and _events(sessions) == 0
    refusing_s3.refuse_after = None
    issued = service.issue_batch(batch(5), concurrency=1)
    assert len(issued) == 5 and len(_index(sessions)) == 5 and _events(sessions) == 5
    assert len(set(store.list_keys())) == 5  # one version each: none written twice
    _every_entry_has_its_object(store, sessions)
