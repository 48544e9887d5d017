"""The SMS gateway simulator (短信网关模拟): HTTP, token-authenticated, registered templates only,
recording what it received, failing on demand.

It speaks what :mod:`connectors.sms` sends: ``POST /sms/send`` with ``Authorization: Bearer
<token>`` and a JSON message (``phone_numbers``, ``sign_name``, ``template_code``,
``template_param``, ``out_id``). Like a real gateway it sends only a registered template under a
registered signature (:class:`Registration`: by default those the operator registered from the
catalogue's ``notices:`` section, read from ``cases/catalogue.yaml`` as a file), to
a mainland mobile number, with every parameter its text names; it answers ``{"code": "OK",
"biz_id"}`` or the refusal's ``isv.…`` code. A message is sent once per ``out_id``: a repeat is
answered with the first ``biz_id`` and ``"duplicate": true`` and counted, not sent again.

Everything lands in a SQLite file (:class:`SmsStore`): ``sms_message`` (each message sent, its
rendered text — the ground truth a test or the demo compares with) and ``sms_request`` (every
request and its outcome, faults included). Its log lines mask the number and the name.

Faults (:class:`SmsFaults`), in a small JSON file read on every request so a detached gateway is
switched like one in a thread: ``down`` (the connection is dropped unanswered), ``error`` (HTTP
500), ``timeout`` (the message is sent, the answer comes only after ``delay_seconds`` — later than
the client waits), each for the next ``remaining`` requests (``-1``: until cleared).

``python -m sandbox.sms --db sms.db --faults sms_faults.json --port-file port`` serves it as its
own process (token ``HUB_SANDBOX_SMS_TOKEN``, default :data:`DEFAULT_TOKEN`); tests use
:class:`SmsGatewayServer` in a thread.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import logging
import os
import re
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hub import safe_yaml
from hub.masking import mask_name, mask_phone
from sandbox.faults import SwitchFile
from sandbox.serving import serve

log = logging.getLogger("sandbox.sms")

DEFAULT_TOKEN = "sandbox-sms-token"  # noqa: S105 - the sandbox's documented default, overridable
PATH = "/sms/send"
MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: where the hub's operator keeps the texts it registered with the gateway
CATALOGUE = Path(__file__).resolve().parents[1] / "cases" / "catalogue.yaml"
DOWN, ERROR, TIMEOUT = "down", "error", "timeout"


def default_token() -> str:
    return os.environ.get("HUB_SANDBOX_SMS_TOKEN", DEFAULT_TOKEN)


@dataclass(frozen=True)
class SmsFaults:
    """What the gateway does wrong right now: ``mode`` for the next ``remaining`` requests."""

    mode: str | None = None
    remaining: int = 0
    delay_seconds: float = 3.0


class SmsFaultFile(SwitchFile[SmsFaults]):
    """The gateway's fault switch, shared between a test (or the demo) and the gateway."""

    kind = SmsFaults

    def set(self, mode: str, remaining: int = -1, delay_seconds: float = 3.0) -> None:
        if mode not in (DOWN, ERROR, TIMEOUT):
            raise ValueError(f"unknown fault {mode!r} (known: {DOWN}, {ERROR}, {TIMEOUT})")
        with self._locked():
            self._write(SmsFaults(mode, remaining, delay_seconds))

    def take(self) -> SmsFaults:
        """The fault for this request (one of ``remaining`` used up), or no fault."""
        with self._locked():
            faults = self._read()
            if faults.mode is None or faults.remaining == 0:
                return SmsFaults()
            if faults.remaining > 0:
                left = faults.remaining - 1
                self._write(SmsFaults(faults.mode if left else None, left, faults.delay_seconds))
            return faults


@dataclass(frozen=True)
class SentMessage:
    out_id: str
    phone: str
    sign_name: str
    template_code: str
    params: dict[str, str]
    text: str
    biz_id: str
    received_at: float


class SmsStore:
    """What the gateway sent and every request it answered (SQLite)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS sms_message (
                    out_id TEXT PRIMARY KEY, phone TEXT NOT NULL, sign_name TEXT NOT NULL,
                    template_code TEXT NOT NULL, params TEXT NOT NULL, text TEXT NOT NULL,
                    biz_id TEXT NOT NULL, received_at REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS sms_request (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, out_id TEXT, outcome TEXT NOT NULL, at REAL NOT NULL);
                """
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    def send(self, msg: SentMessage) -> tuple[str, bool]:
        """Record ``msg`` as sent unless its ``out_id`` was sent before: (biz_id, duplicate)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT biz_id FROM sms_message WHERE out_id = ?", (msg.out_id,)).fetchone()
            if row is not None:
                return str(row[0]), True
            db.execute(
                "INSERT INTO sms_message VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (msg.out_id, msg.phone, msg.sign_name, msg.template_code,
                 json.dumps(msg.params, ensure_ascii=False), msg.text, msg.biz_id, msg.received_at),
            )  # fmt: skip
            return msg.biz_id, False

    def note(self, out_id: str | None, outcome: str) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO sms_request (out_id, outcome, at) VALUES (?, ?, ?)", (out_id, outcome, time.time()))

    def messages(self) -> list[SentMessage]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM sms_message ORDER BY received_at, out_id").fetchall()
        return [SentMessage(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7]) for r in rows]

    def outcomes(self) -> dict[str, int]:
        """Requests by outcome (``sent``, ``duplicate``, ``down``, ``error``, ``refused:<code>`` …)."""
        with self._connect() as db:
            return {str(o): int(n) for o, n in db.execute("SELECT outcome, count(*) FROM sms_request GROUP BY outcome")}


@dataclass(frozen=True)
class Registration:
    """What the account registered with the gateway: its signature and its templates (code → text)."""

    signature: str
    templates: dict[str, str]

    @classmethod
    def from_catalogue(cls, path: Path = CATALOGUE) -> Registration:
        notices = (safe_yaml.load_file(path) or {}).get("notices") or {}
        if not notices:
            raise ValueError(f"{path} declares no notices: nothing is registered with the gateway")
        texts = {str(t["template_code"]): str(t["text"]) for t in notices["templates"].values()}
        return cls(str(notices["signature"]), texts)

    def parameters(self, code: str) -> list[str]:
        return _PLACEHOLDER.findall(self.templates[code])

    def render(self, code: str, params: dict[str, Any]) -> str:
        text = _PLACEHOLDER.sub(lambda m: str(params.get(m.group(1), "")), self.templates[code])
        return f"【{self.signature}】{text}"


class SmsGateway:
    """The gateway's rules: the account's token, the registered signature and templates."""

    def __init__(
        self, store: SmsStore, faults: SmsFaultFile, token: str, registration: Registration | None = None
    ) -> None:
        self.store, self.faults, self.token = store, faults, token
        self.registration = registration or Registration.from_catalogue()

    def answer(self, authorization: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) for one request that is not failing on purpose."""
        if not hmac.compare_digest(authorization or "", f"Bearer {self.token}"):
            return 401, {"code": "isv.INVALID_TOKEN", "message": "token refused"}
        try:
            msg = json.loads(body)
            out_id, phone = str(msg["out_id"]), str(msg["phone_numbers"])
            sign, code, params = str(msg["sign_name"]), str(msg["template_code"]), dict(msg["template_param"])
        except (ValueError, KeyError, TypeError):
            return 400, {"code": "isv.INVALID_PARAMETERS", "message": "not a message"}
        registered = self.registration
        refusal = (
            "isv.SMS_SIGNATURE_ILLEGAL" if sign != registered.signature
            else "isv.SMS_TEMPLATE_ILLEGAL" if code not in registered.templates
            else "isv.MOBILE_NUMBER_ILLEGAL" if not MOBILE.match(phone)
            else "isv.TEMPLATE_MISSING_PARAMETERS" if any(p not in params for p in registered.parameters(code))
            else None
        )  # fmt: skip
        if refusal is not None:
            self.store.note(out_id, f"refused:{refusal}")
            return 200, {"code": refusal, "message": "refused"}
        text = registered.render(code, params)
        sent = SentMessage(out_id, phone, sign, code, {k: str(v) for k, v in params.items()}, text,
                           uuid.uuid4().hex[:20], time.time())  # fmt: skip
        biz_id, duplicate = self.store.send(sent)
        self.store.note(out_id, "duplicate" if duplicate else "sent")
        shown = registered.render(code, {**params, "name": mask_name(str(params.get("name", ""))) or ""})
        log.info("%s %s to %s: %s", "repeat of" if duplicate else "sent", code, mask_phone(phone), shown)
        return 200, {"code": "OK", "biz_id": biz_id, "duplicate": duplicate}


class _Handler(BaseHTTPRequestHandler):
    gateway: SmsGateway

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path != PATH:
            self._reply(404, {"code": "isv.NOT_FOUND"})
            return
        fault = self.gateway.faults.take()
        if fault.mode == DOWN:
            self.gateway.store.note(None, DOWN)
            self.close_connection = True  # dropped unanswered: the client sees the connection fail
            return
        if fault.mode == ERROR:
            self.gateway.store.note(None, ERROR)
            self._reply(500, {"code": "isp.SYSTEM_ERROR"})
            return
        status, answer = self.gateway.answer(self.headers.get("authorization"), body)
        if fault.mode == TIMEOUT:
            self.gateway.store.note(None, TIMEOUT)
            time.sleep(fault.delay_seconds)  # sent, but answered later than the client waits
        self._reply(status, answer)

    def _reply(self, status: int, answer: dict[str, Any]) -> None:
        data = json.dumps(answer).encode("utf-8")
        with contextlib.suppress(OSError):  # the client may have given up (timeout)
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class SmsGatewayServer:
    """The gateway on ``<host>:<port>`` in a daemon thread (port 0: pick a free one)."""

    def __init__(self, gateway: SmsGateway, port: int = 0, host: str = "127.0.0.1") -> None:
        handler = type("Handler", (_Handler,), {"gateway": gateway})
        self.gateway = gateway
        self.httpd = _Server((host, port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="sms-gateway", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def start(self) -> SmsGatewayServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def start_gateway(work: Path, token: str | None = None, port: int = 0) -> SmsGatewayServer:
    """A gateway in a thread with its store and fault switch under ``work``."""
    gateway = SmsGateway(SmsStore(work / "sms.db"), SmsFaultFile(work / "sms_faults.json"), token or default_token())
    return SmsGatewayServer(gateway, port).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SMS gateway sandbox")
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--faults", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    args = parser.parse_args(argv)
    gateway = SmsGateway(SmsStore(args.db), SmsFaultFile(args.faults), default_token())
    server = SmsGatewayServer(gateway, args.port, args.host)
    return serve(server.httpd, server.port, args.port_file)


if __name__ == "__main__":
    sys.exit(main())
