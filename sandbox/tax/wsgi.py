"""The WSGI layer in front of the tax SOAP service: WS-Security and injected faults.

spyne does not check WS-Security, so the UsernameToken (用户名令牌) is read here from the
raw envelope (a hardened parser: no entities, no network) and a bad or missing token is
answered with a SOAP 1.1 fault ``Client.Authentication``, as a real department gateway
would. Faults switched on in the :class:`~sandbox.faults.FaultFile` are applied first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

from sandbox.faults import FaultFile

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class AuthError(Exception):
    pass


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)


def check_username_token(envelope: bytes, expected: Credentials) -> None:
    """Raise :class:`AuthError` unless the envelope carries a matching UsernameToken."""
    try:
        root = etree.fromstring(envelope, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise AuthError(f"malformed envelope: {exc}") from exc
    token = root.find(f"{{{SOAP_ENV}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
    if token is None:
        raise AuthError("WS-Security UsernameToken required")
    username = token.findtext(f"{{{WSSE}}}Username") or ""
    password_el = token.find(f"{{{WSSE}}}Password")
    if password_el is None or not hmac.compare_digest(username, expected.username):
        raise AuthError("invalid username or password")
    given = password_el.text or ""
    if password_el.get("Type") == DIGEST:
        nonce = base64.b64decode(token.findtext(f"{{{WSSE}}}Nonce") or "")
        created = token.findtext(f"{{{WSU}}}Created") or ""
        digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + expected.password.encode()).digest()).decode()  # noqa: S324 - the WS-Security profile fixes SHA-1
        ok = hmac.compare_digest(given, digest)
    else:
        ok = hmac.compare_digest(given, expected.password)
    if not ok:
        raise AuthError("invalid username or password")


def soap_fault(code: str, message: str) -> bytes:
    """A SOAP 1.1 fault envelope."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap11env:Envelope xmlns:soap11env="{SOAP_ENV}"><soap11env:Body><soap11env:Fault>'
        f"<faultcode>soap11env:{escape(code)}</faultcode><faultstring>{escape(message)}</faultstring>"
        f"</soap11env:Fault></soap11env:Body></soap11env:Envelope>"
    ).encode()


class TaxGateway:
    """WSGI middleware: path ``/tax``, injected faults, WS-Security, then spyne."""

    def __init__(self, inner: WsgiApp, faults: FaultFile, credentials: Credentials | None) -> None:
        self.inner = inner
        self.faults = faults
        self.credentials = credentials

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not environ.get("PATH_INFO", "").startswith("/tax"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        if self.faults.take_503():
            start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Retry-After", "1")])
            return [b"tax service temporarily unavailable"]
        state = self.faults.read()
        if state.slow_seconds > 0:
            time.sleep(state.slow_seconds)  # the simulated slow department, not a test wait
        if environ.get("REQUEST_METHOD") != "POST":
            return self.inner(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        if self.credentials is not None:
            try:
                check_username_token(body, self.credentials)
            except AuthError as exc:
                return self._fault(start_response, "Client.Authentication", str(exc))
        if state.soap_fault:
            return self._fault(start_response, "Server.Unavailable", "injected fault: tax registry unavailable")
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.inner(environ, start_response)

    @staticmethod
    def _fault(start_response: StartResponse, code: str, message: str) -> list[bytes]:
        body = soap_fault(code, message)
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]
