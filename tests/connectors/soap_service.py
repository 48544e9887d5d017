"""A small tax SOAP service (spyne) to the sandbox contract, with WS-Security and fault switches.

Used by the SOAP connector tests until (and beside) the shared sandbox: it speaks the same
WSDL operations (ListChangedTaxpayers, GetTaxpayer, ReceiveLicenseNotice) in namespace
``urn:hub:sandbox:tax``.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from spyne import Application, Array, Boolean, ComplexModel, Date, DateTime, Fault, Integer, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

NS = "urn:hub:sandbox:tax"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


class Taxpayer(ComplexModel):
    __namespace__ = NS
    taxpayer_code = Unicode
    taxpayer_name = Unicode
    legal_rep_id = Unicode
    legal_rep_name = Unicode
    reg_address = Unicode
    tax_authority_code = Unicode
    tax_authority_name = Unicode
    registration_date = Date
    taxpayer_status = Unicode
    credit_rating = Unicode
    updated_at = DateTime


class TaxpayerPage(ComplexModel):
    __namespace__ = NS
    taxpayers = Array(Taxpayer)
    next_page_token = Unicode


class LicenseNotice(ComplexModel):
    __namespace__ = NS
    idempotency_key = Unicode
    event_type = Unicode
    license_id = Unicode
    license_type_code = Unicode
    holder_code = Unicode
    holder_name = Unicode
    status = Unicode
    issued_at = DateTime
    payload_json = Unicode
    signature = Unicode


class NoticeReceipt(ComplexModel):
    __namespace__ = NS
    accepted = Boolean
    notice_id = Unicode


@dataclass
class TaxState:
    taxpayers: dict[str, dict[str, Any]] = field(default_factory=dict)
    notices: dict[str, dict[str, Any]] = field(default_factory=dict)
    username: str | None = "hub"
    password: str = "sandbox-secret"
    #: from this request number on, answer HTTP 503 (None: never)
    fail_503_from_request: int | None = None
    requests: int = 0


STATE = TaxState()


def _taxpayer(row: dict[str, Any]) -> Taxpayer:
    return Taxpayer(**{k: v for k, v in row.items() if not k.startswith("_")})


def _page_token(ts: dt.datetime, code: str) -> str:
    return base64.urlsafe_b64encode(f"{ts.isoformat()}|{code}".encode()).decode()


class TaxService(ServiceBase):
    @rpc(DateTime, Unicode, Integer, _returns=TaxpayerPage)
    def ListChangedTaxpayers(ctx, since, page_token, page_size):
        # "_ts" orders rows; a dirty row may lack updated_at on the wire
        rows = sorted(STATE.taxpayers.values(), key=lambda r: (r["_ts"], r["taxpayer_code"]))
        if since is not None:
            since = since if since.tzinfo else since.replace(tzinfo=dt.UTC)
            rows = [r for r in rows if r["_ts"] >= since]
        if page_token:
            ts_s, code = base64.urlsafe_b64decode(page_token.encode()).decode().split("|", 1)
            after = (dt.datetime.fromisoformat(ts_s), code)
            rows = [r for r in rows if (r["_ts"], r["taxpayer_code"]) > after]
        size = page_size or 100
        page = rows[:size]
        token = _page_token(page[-1]["_ts"], page[-1]["taxpayer_code"]) if len(rows) > size else None
        return TaxpayerPage(taxpayers=[_taxpayer(r) for r in page], next_page_token=token)

    @rpc(Unicode, _returns=Taxpayer)
    def GetTaxpayer(ctx, taxpayer_code):
        row = STATE.taxpayers.get(taxpayer_code)
        if row is None:
            raise Fault("Client.NotFound", f"no taxpayer {taxpayer_code}")
        return _taxpayer(row)

    @rpc(LicenseNotice, _returns=NoticeReceipt)
    def ReceiveLicenseNotice(ctx, notice):
        if not notice.idempotency_key:
            raise Fault("Client.Validation", "idempotency_key is required")
        STATE.notices.setdefault(notice.idempotency_key, notice.as_dict())
        return NoticeReceipt(accepted=True, notice_id=f"N-{notice.idempotency_key}")


def _check_token(ctx: Any) -> None:
    if STATE.username is None:
        return
    doc = ctx.in_document
    user = doc.findtext(f".//{{{WSSE}}}Username") if doc is not None else None
    password = doc.findtext(f".//{{{WSSE}}}Password") if doc is not None else None
    if user != STATE.username or password != STATE.password:
        raise Fault("Client.Authentication", "WS-Security UsernameToken missing or wrong")


def make_wsgi() -> Any:
    app = Application(
        [TaxService], tns=NS, name="TaxService", in_protocol=Soap11(validator="lxml"), out_protocol=Soap11()
    )
    app.event_manager.add_listener("method_call", _check_token)
    inner = WsgiApplication(app)

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") == "POST":
            STATE.requests += 1
            if STATE.fail_503_from_request is not None and STATE.requests >= STATE.fail_503_from_request:
                start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Retry-After", "1")])
                return [b"tax system busy"]
        return inner(environ, start_response)

    return wsgi


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class TaxServer:
    def __init__(self) -> None:
        self.httpd: WSGIServer = make_server("127.0.0.1", 0, make_wsgi(), handler_class=_Quiet)
        self.port = self.httpd.server_port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> TaxServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
