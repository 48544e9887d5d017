"""The SMS gateway connector (短信网关): a registered template sent to a phone number; push only.

Chinese SMS gateways send registered texts only: a message names its registered signature
(``sign_name``), its template's code and the template's parameters, and the gateway fills them
in. One message is one ``POST`` of JSON to the gateway's URL, with the account's token as
``Authorization: Bearer``::

    {"phone_numbers": "13805771234", "sign_name": "洞头政务服务", "template_code": "SMS_330322001",
     "template_param": {"name": "李小龙", "item": "…", "code": "…"}, "out_id": "<idempotency key>"}

``out_id`` is the message's idempotency key: the same for every retry of one notice, so the
gateway sends it once however often it is posted (a timed-out post may have been sent). The
gateway answers ``{"code": "OK", "biz_id": …}``, or another ``code`` (``isv.…``) when it refuses
the message (an unregistered template or signature, a malformed number): that message is
rejected (:class:`~connectors.errors.BadRecord`), the others go on. 401/403 stop the write with
:class:`~connectors.errors.ConnectorAuthError`; a 5xx, a dropped connection and a timeout with a
transient error, so the delivery worker retries them and, in the end, dead-letters them.

Errors and details name the gateway's answer code only, never the number or a parameter: they go
to the delivery log and the audit trail.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
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

#: The one dataset of a gateway: the messages it is asked to send.
MESSAGES = "messages"
#: The fields of a message (:func:`message`).
FIELDS = ("phone_numbers", "sign_name", "template_code", "template_param", "out_id")
OK = "OK"


def message(out_id: str, phone: str, sign_name: str, template_code: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """One message as the gateway takes it."""
    return {
        "phone_numbers": phone,
        "sign_name": sign_name,
        "template_code": template_code,
        "template_param": {k: str(v) for k, v in params.items()},
        "out_id": out_id,
    }


class SmsSender:
    """Posts messages with bounded timeouts, over one pooled HTTP client per destination policy."""

    def __init__(
        self,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_connections: int = 16,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._timeout = httpx.Timeout(read_timeout, connect=min(connect_timeout, read_timeout))
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._resolver = resolver
        self._clients: dict[DestinationPolicy, httpx.Client] = {}
        self._lock = threading.Lock()

    def client(self, policy: DestinationPolicy) -> httpx.Client:
        with self._lock:
            client = self._clients.get(policy)
            if client is None:
                transport = GuardedTransport(policy, resolver=self._resolver, limits=self._limits)
                client = httpx.Client(transport=transport, timeout=self._timeout, follow_redirects=False)
                self._clients[policy] = client
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


class SmsGatewayConnector:
    """Sends records (:func:`message`) through one gateway account.

    ``block``: ``url``, ``token`` (the account's API token), ``timeout_seconds``.
    """

    protocol = "sms"
    directions = frozenset({"write"})

    def __init__(
        self,
        name: str,
        block: Mapping[str, Any],
        *,
        sender: SmsSender | None = None,
        policy: DestinationPolicy = DestinationPolicy(),
    ) -> None:
        self.name = name
        self.block = dict(block)
        self.personal_columns: dict[str, str] = {"phone_numbers": "phone"}
        self.url = str(self.block["url"])
        self.token: str | None = self.block.get("token")
        self.policy = policy
        timeout = float(self.block.get("timeout_seconds", 10.0))
        self.sender = sender or SmsSender(read_timeout=timeout)
        self._own_sender = sender is None

    def _where(self, dataset: str | None = None) -> str:
        return destination_where(self.name, self.url, dataset)

    def spec(self) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["url", "token"],
            "properties": {
                "url": {"type": "string", "format": "uri"},
                "token": {"type": "string", "description": "the gateway account's API token"},
                "timeout_seconds": {"type": "number", "default": 10},
            },
        }

    def check(self) -> CheckResult:
        """The URL is an allowed destination and a token is set; nothing is sent."""
        try:
            self.policy.check_url(self.url)
        except DestinationRefused as exc:
            error: ConnectorError = ConnectorDestinationRefused(f"{DESTINATION_REFUSED}: {exc}", where=self._where())
            return CheckResult(False, str(error), type(error).__name__)
        if not self.token:
            error = ConnectorConfigError("the SMS gateway has no token", where=self._where())
            return CheckResult(False, str(error), type(error).__name__)
        return CheckResult(True, "destination allowed and token set")

    def discover(self) -> dict[str, dict[str, Any]]:
        return {MESSAGES: {"type": "object", "required": list(FIELDS), "x-idempotency-key": "out_id"}}

    def read(self, dataset: str, state: State | None, *, limit: int | None = None) -> Iterator[Batch]:
        raise ConnectorConfigError("an SMS gateway is push only", where=self._where(dataset))

    def write(self, dataset: str, records: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Post each message in order; ``details`` has the gateway's answer per message (no number)."""
        if dataset != MESSAGES:
            raise ConnectorConfigError(f"unknown dataset {dataset!r} (known: {MESSAGES})", where=self._where(dataset))
        if not self.token:
            raise ConnectorConfigError("the SMS gateway has no token", where=self._where(dataset))
        result = WriteResult(0)
        client = self.sender.client(self.policy)
        for record in records:
            out_id = str(record["out_id"])
            body = json.dumps({k: record[k] for k in FIELDS}, ensure_ascii=False, separators=(",", ":"))
            headers = {"authorization": f"Bearer {self.token}", "content-type": "application/json"}
            try:
                response = client.post(self.url, content=body.encode("utf-8"), headers=headers)
            except DestinationRefused as exc:
                raise ConnectorDestinationRefused(f"{DESTINATION_REFUSED}: {exc}", where=self._where(dataset)) from None
            except httpx.TimeoutException as exc:
                raise ConnectorTimeout(f"timeout: {type(exc).__name__}", where=self._where(dataset)) from None
            except httpx.HTTPError as exc:
                raise ConnectorUnavailable(f"{type(exc).__name__}", where=self._where(dataset)) from None
            status = response.status_code
            if status in (401, 403):
                raise ConnectorAuthError(f"HTTP {status}", where=self._where(dataset), status_code=status,
                                         action="check the gateway token (the subscription's secret_env)")  # fmt: skip
            if status >= 500 or status in (408, 425, 429):
                raise ConnectorUnavailable(f"HTTP {status}", where=self._where(dataset), status_code=status)
            answer = _answer(response)
            code = str(answer.get("code") or f"HTTP {status}")
            detail = {"out_id": out_id, "status_code": status, "code": code, "biz_id": answer.get("biz_id"),
                      "duplicate": bool(answer.get("duplicate"))}  # fmt: skip
            result.details.append(detail)
            if 200 <= status < 300 and code == OK:
                result.written += 1
            else:
                result.rejected.append(BadRecord("sms_refused", f"gateway answered {code}"[:120], source_key=out_id))
        return result

    def close(self) -> None:
        if self._own_sender:
            self.sender.close()


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
