"""Push by a department's SOAP operation (SOAP 通知): the tax bureau's ``ReceiveLicenseNotice``.

One zeep client per WSDL and destination policy, created on first use; WS-Security
UsernameToken when a password is configured (user ``HUB_SOAP_USERNAME``, default ``hub``;
password from the subscription's ``secret_env`` variable). The receiving operation is
idempotent by the notice's ``idempotency_key``. The WSDL, what it imports and the service
address it names are reached only where the subscription's destinations allow
(:class:`~connectors.egress_soap.GuardedZeepTransport`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import threading
from typing import Any

from connectors.egress import DestinationPolicy, DestinationRefused, Resolver, system_resolver
from connectors.webhook import DESTINATION_REFUSED, PushResult


class SoapNoticePusher:
    def __init__(self, *, timeout: float = 10.0, resolver: Resolver = system_resolver) -> None:
        self.timeout = timeout
        self.resolver = resolver
        self._clients: dict[tuple[str, str | None, DestinationPolicy], Any] = {}
        self._lock = threading.Lock()

    def _client(self, wsdl_url: str, password: str | None, policy: DestinationPolicy) -> Any:
        from zeep import Client, Settings

        from connectors.egress_soap import GuardedZeepTransport

        key = (wsdl_url, password, policy)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                wsse = None
                if password:
                    from zeep.wsse.username import UsernameToken

                    wsse = UsernameToken(os.environ.get("HUB_SOAP_USERNAME", "hub"), password)
                transport = GuardedZeepTransport(policy, resolver=self.resolver, timeout=self.timeout)
                client = Client(wsdl_url, transport=transport, wsse=wsse, settings=Settings(strict=False))
                self._clients[key] = client
            return client

    def push(
        self,
        wsdl_url: str,
        password: str | None,
        notice: dict[str, Any],
        *,
        policy: DestinationPolicy = DestinationPolicy(),
    ) -> PushResult:
        from requests.exceptions import RequestException
        from zeep.exceptions import Error as ZeepError
        from zeep.exceptions import Fault

        try:
            client = self._client(wsdl_url, password, policy)
            result = client.service.ReceiveLicenseNotice(notice=notice)
        except DestinationRefused as exc:
            self._forget(wsdl_url, password, policy)
            return PushResult(False, None, f"{DESTINATION_REFUSED}: {exc}"[:300], False)
        except Fault as exc:
            code = str(getattr(exc, "code", "") or "")
            # an authentication or a malformed-notice fault will not heal by retrying soon; it still
            # retries up to the dead-letter limit, so an operator sees it instead of a silent loss
            transient = "Authentication" not in code and "Client" not in code
            return PushResult(False, None, f"SOAP fault {code}: {exc.message}"[:300], transient)
        except (RequestException, ZeepError, OSError) as exc:
            self._forget(wsdl_url, password, policy)  # a WSDL fetched from a service that was down: fetch again
            return PushResult(False, None, f"{type(exc).__name__}: {exc}"[:300], True)
        accepted = result["accepted"] if isinstance(result, dict) else getattr(result, "accepted", None)
        if accepted:
            return PushResult(True, 200)
        return PushResult(False, 200, "notice not accepted", True)

    def _forget(self, wsdl_url: str, password: str | None, policy: DestinationPolicy) -> None:
        with self._lock:
            self._clients.pop((wsdl_url, password, policy), None)


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
