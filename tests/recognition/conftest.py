"""Fixtures of the recognition tests: a licence repository with licences of three holders,
consumers with different scopes, the API app, and a real local webhook receiver."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.webhook import WebhookVerificationError, verify
from e_license_store.model import LicenseDraft
from e_license_store.service import LicenseService
from e_license_store.signing import KeyRing, load_keyring, rotate
from e_license_store.store.local import LocalStore
from hub.db import make_engine, session_factory, session_scope
from mappings.canonical.models import HolderKind, SourceRef
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.consumers import add_consumer
from recognition.directory import LicenseDirectory

USCC = "91330322MA2C8XYZ1K"
RESIDENT_ID = "330322198001011231"
OTHER_USCC = "91330322MA2C8XYZ2L"


@dataclass
class World:
    engine: Engine
    sessions: sessionmaker[Session]
    store: LocalStore
    keyring: KeyRing
    service: LicenseService
    licenses: dict[str, str] = field(default_factory=dict)  # name -> licence id


def _source(key: str, department: str = "commerce") -> SourceRef:
    return SourceRef(department=department, dataset="ds", source_key=key, source_version="v1", run_id="run-1")


def issue_business(service: LicenseService, key: str, holder: str = USCC, name: str = "温州洞头海景餐饮有限公司") -> str:
    draft = LicenseDraft(
        license_type_code="1101",
        license_number=f"3303220000{key[-5:]:0>5}",
        holder_name=name,
        holder_code=holder,
        holder_kind=HolderKind.enterprise,
        issuer_code="113303220025678912",
        issue_date=dt.date(2016, 5, 4),
        surface={"enterprise_name": name, "legal_rep_name": "张三丰", "address": "浙江省温州市洞头区北岙街道中心路12号"},
    )
    return service.issue(draft, _source(key)).license_id


@pytest.fixture()
def world(hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    key_dir = tmp_path / "keys"
    rotate(key_dir)
    monkeypatch.setenv("HUB_SIGNING_KEY_DIR", str(key_dir))
    root = tmp_path / "store"
    monkeypatch.setenv("HUB_STORE_URL", f"file://{root}")
    store = LocalStore(root)
    keyring = load_keyring(key_dir)
    engine = make_engine(hub_db_url)
    sessions = session_factory(engine)
    service = LicenseService(store, sessions, keyring)
    w = World(engine, sessions, store, keyring, service)
    w.licenses["business"] = issue_business(service, "ent-00001")
    w.licenses["tax"] = service.issue(
        LicenseDraft(
            license_type_code="1102",
            license_number="330322MA2C8XYZ1",
            holder_name="温州洞头海景餐饮有限公司",
            holder_code=USCC,
            holder_kind=HolderKind.enterprise,
            issuer_code="133032200000000001",
            issue_date=dt.date(2016, 6, 1),
            surface={"taxpayer_name": "温州洞头海景餐饮有限公司", "legal_rep_name": "张三丰"},
        ),
        _source("tax-1", "tax"),
    ).license_id
    w.licenses["property"] = service.issue(
        LicenseDraft(
            license_type_code="2101",
            license_number="浙(2016)洞头区不动产权第0001234号",
            holder_name="李小龙",
            holder_code=RESIDENT_ID,
            holder_kind=HolderKind.person,
            issuer_code="113303220025670000",
            issue_date=dt.date(2016, 5, 4),
            surface={"unit_no": "330322001001GB00001F00010001", "location": "浙江省温州市洞头区北岙街道海滨路8号"},
        ),
        _source("unit-1", "land"),
    ).license_id
    w.licenses["approval"] = service.issue(
        LicenseDraft(
            license_type_code="3101",
            license_number="洞自然资预〔2024〕12号",
            holder_name="温州洞头海景餐饮有限公司",
            holder_code=USCC,
            holder_kind=HolderKind.enterprise,
            issuer_code="113303220025671111",
            issue_date=dt.date.today() - dt.timedelta(days=30),
            surface={"project_name": "海景餐厅扩建", "conclusion": "approved"},
        ),
        _source("appr-1", "land"),
    ).license_id
    yield w
    engine.dispose()


#: consumer name -> scopes; the access matrix is asserted against these.
CONSUMERS: dict[str, list[str]] = {
    "portal": ["licenses:read:*", "licenses:file", "licenses:verify", "recognitions:read", "purpose:service_portal"],
    "tax_bureau": [
        "licenses:read:1101",
        "licenses:read:3101",
        "recognitions:read",
        "fields:enterprise_name",
        "fields:legal_rep_name",
        "subscriptions:manage",
        "deliveries:read",
        "purpose:tax_registration",
    ],
    "land_bureau": ["licenses:read:2101", "fields:*", "personal:read", "licenses:file", "purpose:property_transfer"],
    "verifier": ["licenses:verify"],
    "operator": ["deliveries:read", "deliveries:admin", "subscriptions:manage", "licenses:read:*"],
    "nobody": [],
}


@pytest.fixture()
def tokens(world: World) -> dict[str, str]:
    out = {}
    with session_scope(world.engine) as session:
        for name, scopes in CONSUMERS.items():
            out[name] = add_consumer(session, name, scopes)[1]
    return out


@pytest.fixture()
def app_config() -> RecognitionSettings:
    return RecognitionSettings(api_key_cache_seconds=0.0)


@pytest.fixture()
def client(world: World, tokens: dict[str, str], app_config: RecognitionSettings) -> Iterator[TestClient]:
    from hub.settings import get_settings

    app = create_app(
        get_settings(), engine=world.engine, directory=LicenseDirectory(world.store, world.keyring), config=app_config
    )
    with TestClient(app, raise_server_exceptions=False) as tc:
        yield tc


def auth(token: str, purpose: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if purpose:
        headers["X-Purpose"] = purpose
    return headers


class Receiver:
    """A real HTTP webhook receiver on a local port that verifies signatures and deduplicates.

    ``stop()`` closes the socket (the subscriber is down: connection refused); ``start()`` brings
    it back on the same port.
    """

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.received: list[tuple[str, dict[str, object]]] = []  # every accepted POST, duplicates included
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.fail_ids: set[str] = set()  # answer 500 for these webhook-ids

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def unique_in_order(self) -> list[tuple[str, dict[str, object]]]:
        seen: set[str] = set()
        out = []
        for msg_id, body in self.received:
            if msg_id not in seen:
                seen.add(msg_id)
                out.append((msg_id, body))
        return out

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                msg_id = self.headers.get("webhook-id", "")
                if receiver.secret is not None:
                    try:
                        verify(receiver.secret, dict(self.headers.items()), body)
                    except WebhookVerificationError:
                        with receiver.lock:
                            receiver.bad_signatures += 1
                        self.send_response(401)
                        self.end_headers()
                        return
                if msg_id in receiver.fail_ids:
                    self.send_response(500)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.received.append((msg_id, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()
