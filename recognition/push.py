"""The wire of one delivery (推送线路): its message through the destination connector's ``write``.

The delivery worker (:mod:`recognition.delivery`) decides what goes to whom and when; here one
delivery becomes one ``write`` of the destination's connector, and the connector's answer a
:class:`PushResult`:

- a webhook through :class:`connectors.webhook.WebhookConnector` (signed, the idempotency key as
  ``webhook-id``), over one pooled sender per worker;
- a SOAP notice (SOAP 通知, the tax bureau's ``ReceiveLicenseNotice``) through
  :class:`connectors.soap.SoapConnector` at the subscription's WSDL (:class:`connectors.soap.SoapEndpoint`),
  WS-Security UsernameToken when a password is configured (user ``HUB_SOAP_USERNAME``, default
  ``hub``; password from the subscription's ``secret_env`` variable). One connector per WSDL,
  password and destination policy, kept while it works; the receiving operation is idempotent by
  the notice's ``idempotency_key``;
- an SMS (短信, the applicant's ``case.notice``) through :class:`connectors.sms.SmsGatewayConnector`:
  the event's template, signature, number and parameters as one gateway message whose ``out_id``
  is the idempotency key; the gateway's token from the subscription's ``secret_env`` variable.

The connectors do not retry (``retry.attempts: 1``): retries are the worker's, with its backoff and
dead letters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.base import WriteResult
from connectors.egress import DestinationPolicy, Resolver, system_resolver
from connectors.errors import ConnectorError
from connectors.sms import MESSAGES as SMS_MESSAGES
from connectors.sms import SmsGatewayConnector, SmsSender
from connectors.sms import message as sms_message
from connectors.soap import SoapConnector, SoapEndpoint
from connectors.webhook import MESSAGES, PushResult, WebhookConnector, WebhookSender
from recognition.config import RecognitionSettings

NO_SECRET = "subscription has no signing secret"  # noqa: S105 - a reason, not a secret
NOT_ACCEPTED = "notice not accepted"
NO_TOKEN = "subscription has no gateway token"  # noqa: S105 - a reason, not a secret
#: The SOAP operation a notice is pushed with, and its one argument.
NOTICE_OPERATION, NOTICE_ARGUMENT = "ReceiveLicenseNotice", "notice"
NOTICES = "notices"
SMS = "sms"


class Destination(Protocol):
    """Where one subscription is pushed (:class:`recognition.delivery.Target`)."""

    subscription_id: str
    channel: str
    url: str
    secret: str | None
    policy: DestinationPolicy


def notice_for(event: dict[str, Any], idempotency_key: str, secret: str | None) -> dict[str, Any]:
    """The ``LicenseNotice`` for an event; ``signature`` is an HMAC-SHA256 of ``payload_json`` when a secret is set."""
    data = event.get("data", {})
    payload_json = json.dumps(event, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    signature = (
        hmac.new(secret.encode("utf-8"), payload_json.encode("utf-8"), hashlib.sha256).hexdigest() if secret else ""
    )
    return {
        "idempotency_key": idempotency_key,
        "event_type": event["type"],
        "license_id": str(data.get("license_id") or event.get("subject") or ""),
        "license_type_code": str(data.get("license_type_code") or ""),
        "holder_code": str(data.get("holder_code") or ""),
        "holder_name": str(data.get("holder_name") or ""),
        "status": str(data.get("status") or ""),
        "issued_at": dt.datetime.fromisoformat(str(event["timestamp"])),
        "payload_json": payload_json,
        "signature": signature,
    }


def sms_for(event: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    """The gateway message for an applicant's notice (``case.notice``): its template, signature and
    parameters, the recipient's name as the ``name`` parameter, the key as ``out_id``."""
    data = event.get("data", {})
    params = {**(data.get("params") or {}), "name": data.get("recipient_name") or ""}
    return sms_message(idempotency_key, str(data.get("phone") or ""), str(data.get("sign_name") or ""),
                       str(data.get("template_code") or ""), params)  # fmt: skip


def soap_block(timeout: float) -> dict[str, Any]:
    """The SOAP connector's configuration for notices (no ``conn_id``: the endpoint names the service)."""
    return {
        "protocol": "soap",
        "timeout_seconds": timeout,
        "retry": {"attempts": 1},
        "datasets": {NOTICES: {"push": {"operation": NOTICE_OPERATION, "argument": NOTICE_ARGUMENT}}},
    }


def _result(written: WriteResult) -> PushResult:
    """One record's write as a push outcome (a rejected record is the receiver's refusal)."""
    status = written.details[-1].get("status_code") if written.details else None
    if written.rejected:
        return PushResult(False, status, written.rejected[0].reason[:300], False)
    return PushResult(True, status)


def _failed(exc: ConnectorError) -> PushResult:
    return PushResult(False, exc.status_code, exc.what[:300], exc.transient)


@dataclass
class Pushers:
    """The destination connectors' shared parts, built once per worker: one pooled webhook sender,
    the SOAP connectors (each with its zeep client) by WSDL, password and policy."""

    webhook: WebhookSender = field(default_factory=WebhookSender)
    sms: SmsSender = field(default_factory=SmsSender)
    soap_timeout: float = 10.0
    resolver: Resolver = system_resolver
    _soap: dict[tuple[str, str | None, DestinationPolicy], SoapConnector] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, target: Destination, idempotency_key: str, event: dict[str, Any]) -> PushResult:
        if target.channel == "soap":
            return self._notice(target, idempotency_key, event)
        if target.channel == SMS:
            return self._sms(target, idempotency_key, event)
        if not target.secret:
            return PushResult(False, None, NO_SECRET, False)
        connector = WebhookConnector(
            target.subscription_id, {"url": target.url, "secret": target.secret}, sender=self.webhook,
            policy=target.policy,
        )  # fmt: skip
        try:
            return _result(connector.write(MESSAGES, [{**event, "idempotency_key": idempotency_key}]))
        except ConnectorError as exc:
            return _failed(exc)

    def _notice(self, target: Destination, idempotency_key: str, event: dict[str, Any]) -> PushResult:
        connector = self._soap_connector(target)
        try:
            written = connector.write(NOTICES, [notice_for(event, idempotency_key, target.secret)])
        except ConnectorError as exc:  # the connector loads the WSDL again on its next write
            return _failed(exc)
        result = _result(written)
        if not result.ok:
            return result
        accepted = written.details[0].get("accepted") if written.details else None
        return PushResult(True, 200) if accepted else PushResult(False, 200, NOT_ACCEPTED, True)

    def _sms(self, target: Destination, idempotency_key: str, event: dict[str, Any]) -> PushResult:
        if not target.secret:
            return PushResult(False, None, NO_TOKEN, False)
        connector = SmsGatewayConnector(target.subscription_id, {"url": target.url, "token": target.secret},
                                        sender=self.sms, policy=target.policy)  # fmt: skip
        try:
            return _result(connector.write(SMS_MESSAGES, [sms_for(event, idempotency_key)]))
        except ConnectorError as exc:
            return _failed(exc)

    def _soap_connector(self, target: Destination) -> SoapConnector:
        key = (target.url, target.secret, target.policy)
        with self._lock:
            connector = self._soap.get(key)
            if connector is None:
                login = os.environ.get("HUB_SOAP_USERNAME", "hub") if target.secret else None
                endpoint = SoapEndpoint(target.url, login, target.secret, target.policy, self.resolver)
                connector = SoapConnector(target.subscription_id, soap_block(self.soap_timeout), endpoint=endpoint)
                self._soap[key] = connector
            return connector

    def close(self) -> None:
        self.webhook.close()
        self.sms.close()

    @classmethod
    def from_settings(cls, s: RecognitionSettings | None = None, *, resolver: Resolver = system_resolver) -> Pushers:
        """The wires as configured; ``resolver`` answers the destinations' names (the system's by default)."""
        s = s or RecognitionSettings()
        return cls(
            webhook=WebhookSender(
                connect_timeout=s.webhook_connect_timeout_seconds,
                read_timeout=s.webhook_read_timeout_seconds,
                max_connections=max(8, s.delivery_concurrency * 2),
                resolver=resolver,
            ),
            sms=SmsSender(
                connect_timeout=s.webhook_connect_timeout_seconds,
                read_timeout=s.webhook_read_timeout_seconds,
                resolver=resolver,
            ),
            soap_timeout=s.webhook_read_timeout_seconds,
            resolver=resolver,
        )
