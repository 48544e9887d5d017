"""Shared pieces of the recognition tests (constants, the world, a real webhook receiver)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.webhook import WebhookVerificationError, verify
from e_license_store.model import LicenseDraft
from e_license_store.service import LicenseService
from e_license_store.signing import KeyRing
from e_license_store.store.local import LocalStore
from mappings.canonical.models import HolderKind, SourceRef

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


def source_ref(key: str, department: str = "commerce") -> SourceRef:
    return SourceRef(department=department, dataset="ds", source_key=key, source_version="v1", run_id="run-1")


def issue_business(
    service: LicenseService, key: str, holder: str = USCC, name: str = "温州洞头海景餐饮有限公司"
) -> str:
    draft = LicenseDraft(
        license_type_code="1101",
        license_number=f"3303220000{key[-5:]:0>5}",
        holder_name=name,
        holder_code=holder,
        holder_kind=HolderKind.enterprise,
        issuer_code="113303220025678912",
        issue_date=dt.date(2016, 5, 4),
        surface={
            "enterprise_name": name,
            "legal_rep_name": "张三丰",
            "address": "浙江省温州市洞头区北岙街道中心路12号",
        },
    )
    return service.issue(draft, source_ref(key)).license_id


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
    "verifier": ["licenses:verify", "licenses:read:1101"],
    "monitor": ["metrics:read"],
    "operator": ["deliveries:read", "deliveries:admin", "subscriptions:manage", "licenses:read:*"],
    "nobody": [],
    "admin": [
        "licenses:read:*",
        "licenses:file",
        "licenses:verify",
        "recognitions:read",
        "personal:read",
        "fields:*",
        "subscriptions:manage",
        "deliveries:read",
        "deliveries:admin",
    ],
}


def allow_destination(engine: Engine, consumer: str, destination: str, *, private: bool = False) -> None:
    """An operator's ``hub consumers allow-destination CONSUMER DESTINATION``."""
    from hub.db import session_scope
    from recognition import destinations

    with session_scope(engine) as session:
        destinations.allow(session, consumer, destination, private=private)


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
        self.hosts: list[str] = []  # the Host header of every POST

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def origin(self) -> str:
        """What an operator allows for this receiver (``hub consumers allow-destination``)."""
        return f"http://127.0.0.1:{self.port}/"

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
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                msg_id = self.headers.get("webhook-id", "")
                with receiver.lock:
                    receiver.hosts.append(self.headers.get("host", ""))
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
