"""The webhook connector (回调推送): signed pushes, Standard Webhooks style; push only.

Every message carries ``webhook-id`` (the idempotency key: the same for every retry of one
event, so the receiver deduplicates), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``. The secret is
``whsec_`` + base64 of the key bytes. Timeouts are a transport concern, set once per sender.

A sender posts only where the message's :class:`~connectors.egress.DestinationPolicy` allows
(:class:`~connectors.egress_http.GuardedTransport`; public addresses only when none is given),
over one pooled client per policy, and never follows a redirect. :class:`WebhookConnector` is the
connector (``write`` posts each record as one message); :class:`WebhookSender` is its wire.

>>> secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
>>> sig = sign(secret, "msg_1", 1700000000, b'{"a":1}')
>>> sig.startswith("v1,")
True
>>> verify(secret, {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": sig},
...        b'{"a":1}', now=1700000010)
>>> verify(secret, {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": sig},
...        b'{"a":2}', now=1700000010)
Traceback (most recent call last):
...
connectors.webhook.WebhookVerificationError: no matching signature
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.base import Batch, CheckResult, State, WriteResult
from connectors.egress import DESTINATION_REFUSED, DestinationPolicy, DestinationRefused, Resolver, system_resolver
from connectors.egress_http import GuardedTransport, destination_where
from connectors.errors import (
    BadRecord,
    ConnectorAuthError,
    ConnectorConfigError,
    ConnectorDestinationRefused,
    ConnectorError,
    ConnectorTimeout,
    ConnectorUnavailable,
)

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret
#: Receivers reject messages whose timestamp is further than this from their clock (replay defence).
DEFAULT_TOLERANCE_S = 300
#: The one dataset of a webhook: the messages posted to its URL.
MESSAGES = "messages"


class WebhookVerificationError(ValueError):
    pass


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers_for(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
        "content-type": "application/json",
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check a received message's signature and timestamp; raises :class:`WebhookVerificationError`."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id, ts_text, sig_header = lower["webhook-id"], lower["webhook-timestamp"], lower["webhook-signature"]
        ts = int(ts_text)
    except (KeyError, ValueError) as exc:
        raise WebhookVerificationError("missing or malformed webhook headers") from exc
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise WebhookVerificationError("timestamp outside tolerance")
    expected = sign(secret, msg_id, ts, body).split(",", 1)[1]
    for candidate in sig_header.split():  # several signatures while a secret rotates
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return
    raise WebhookVerificationError("no matching signature")


@dataclass(frozen=True)
class PushResult:
    """Outcome of one push: ``ok``; otherwise whether trying again may help."""

    ok: bool
    status_code: int | None = None
    error: str | None = None
    transient: bool = True


class WebhookSender:
    """Posts signed messages with bounded timeouts, over a pooled HTTP client per destination policy."""

    def __init__(
        self,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_connections: int = 64,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._resolver = resolver
        self._clients: dict[DestinationPolicy, httpx.Client] = {}
        self._lock = threading.Lock()

    def _client(self, policy: DestinationPolicy) -> httpx.Client:
        with self._lock:
            client = self._clients.get(policy)
            if client is None:
                transport = GuardedTransport(policy, resolver=self._resolver, limits=self._limits)
                client = httpx.Client(transport=transport, timeout=self._timeout, follow_redirects=False)
                self._clients[policy] = client
            return client

    def send(
        self,
        url: str,
        secret: str,
        msg_id: str,
        body: bytes,
        *,
        policy: DestinationPolicy = DestinationPolicy(),
        timestamp: int | None = None,
    ) -> PushResult:
        headers = headers_for(secret, msg_id, body, timestamp)
        try:
            response = self._client(policy).post(url, content=body, headers=headers)
        except DestinationRefused as exc:
            return PushResult(False, None, f"{DESTINATION_REFUSED}: {exc}"[:300], False)
        except httpx.TimeoutException as exc:
            return PushResult(False, None, f"timeout: {type(exc).__name__}", True)
        except httpx.HTTPError as exc:
            return PushResult(False, None, f"{type(exc).__name__}: {exc}"[:300], True)
        if 200 <= response.status_code < 300:
            return PushResult(True, response.status_code)
        # 4xx other than 408/409/425/429 means the receiver refuses this message: retrying will not help,
        # but it is still retried up to the dead-letter limit so an operator sees it (no silent drop).
        transient = response.status_code >= 500 or response.status_code in (408, 409, 425, 429)
        return PushResult(False, response.status_code, f"HTTP {response.status_code}", transient)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _answer_error(sent: PushResult, where: str) -> ConnectorError | None:
    """The error a failed post raises (the whole write stops), or ``None`` when the receiver refused
    this one message (a 4xx that retrying will not change: the record is rejected)."""
    error = sent.error or "push failed"
    if sent.status_code is None:
        if error.startswith(DESTINATION_REFUSED):
            return ConnectorDestinationRefused(error, where=where)
        if error.startswith("timeout"):
            return ConnectorTimeout(error, where=where)
        return ConnectorUnavailable(error, where=where)
    if sent.status_code in (401, 403):
        return ConnectorAuthError(
            error, where=where, status_code=sent.status_code, action="check the signing secret the receiver holds"
        )
    if sent.transient:
        return ConnectorUnavailable(error, where=where, status_code=sent.status_code)
    return None


class WebhookConnector:
    """Pushes records as signed messages to one URL (push only: a webhook has nothing to read).

    ``block``: ``url``, ``secret`` (``whsec_…``), ``id_field`` (the record field whose value is the
    message's ``webhook-id``, its idempotency key; default ``idempotency_key``), ``timeout_seconds``.
    Each record is posted as its JSON, in order. A receiver's 2xx writes it; a 4xx other than
    401/403/408/409/425/429 rejects it (:class:`~connectors.errors.BadRecord`, the status in
    ``details``); anything else stops the write with a typed error carrying the status, if any.
    """

    protocol = "webhook"
    directions = frozenset({"write"})

    def __init__(
        self,
        name: str,
        block: Mapping[str, Any],
        *,
        sender: WebhookSender | None = None,
        policy: DestinationPolicy = DestinationPolicy(),
    ) -> None:
        self.name = name
        self.block = dict(block)
        self.personal_columns: dict[str, str] = {}
        self.url = str(self.block["url"])
        self.secret: str | None = self.block.get("secret")
        self.id_field = str(self.block.get("id_field", "idempotency_key"))
        self.policy = policy
        timeout = float(self.block.get("timeout_seconds", 10.0))
        self.sender = sender or WebhookSender(read_timeout=timeout, connect_timeout=min(3.0, timeout))
        self._own_sender = sender is None

    def _where(self, dataset: str | None = None) -> str:
        return destination_where(self.name, self.url, dataset)

    def spec(self) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["url", "secret"],
            "properties": {
                "url": {"type": "string", "format": "uri"},
                "secret": {"type": "string", "description": "whsec_ + base64 of the signing key"},
                "id_field": {"type": "string", "default": "idempotency_key"},
                "timeout_seconds": {"type": "number", "default": 10},
            },
        }

    def check(self) -> CheckResult:
        """The URL is an allowed destination and the secret a signing key; nothing is sent."""
        try:
            self.policy.check_url(self.url)
            if not self.secret:
                raise ConnectorConfigError("the webhook has no signing secret", where=self._where())
            _key(self.secret)
        except DestinationRefused as exc:
            error: ConnectorError = ConnectorDestinationRefused(f"{DESTINATION_REFUSED}: {exc}", where=self._where())
            return CheckResult(False, str(error), type(error).__name__)
        except (binascii.Error, ValueError) as exc:
            error = ConnectorConfigError(f"the signing secret is not base64: {exc}", where=self._where())
            return CheckResult(False, str(error), type(error).__name__)
        except ConnectorError as exc:
            return CheckResult(False, str(exc), type(exc).__name__)
        return CheckResult(True, "destination allowed and signing secret readable")

    def discover(self) -> dict[str, dict[str, Any]]:
        return {MESSAGES: {"type": "object", "x-idempotency-key": self.id_field}}

    def read(self, dataset: str, state: State | None, *, limit: int | None = None) -> Iterator[Batch]:
        raise ConnectorConfigError(
            "a webhook is push only",
            where=self._where(dataset),
            action="read this department through its SQL, SOAP or XML connector",
        )

    def write(self, dataset: str, records: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Post each record (its JSON) with its signature; ``details`` has the receiver's status per answer."""
        if dataset != MESSAGES:
            raise ConnectorConfigError(f"unknown dataset {dataset!r} (known: {MESSAGES})", where=self._where(dataset))
        if not self.secret:
            raise ConnectorConfigError("the webhook has no signing secret", where=self._where(dataset))
        result = WriteResult(0)
        for record in records:
            msg_id = str(record[self.id_field])
            body = json.dumps(dict(record), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            sent = self.sender.send(self.url, self.secret, msg_id, body, policy=self.policy)
            if sent.ok:
                result.written += 1
                result.details.append({"webhook-id": msg_id, "status_code": sent.status_code})
                continue
            error = _answer_error(sent, self._where(dataset))
            if error is not None:
                raise error
            result.details.append({"webhook-id": msg_id, "status_code": sent.status_code})
            result.rejected.append(BadRecord("push_rejected", sent.error or "refused", source_key=msg_id))
        return result

    def close(self) -> None:
        if self._own_sender:
            self.sender.close()
