"""Destination harnesses for the write half of the acceptance kit: the tax sandbox's SOAP notice
operation (by Connection, and by WSDL URL as the delivery worker pushes), a signed-webhook
receiver, the sandbox SMS gateway, and the SQL harnesses' tables."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest

from cases.catalogue import load_catalogue
from connectors.base import Connector
from connectors.egress import DestinationPolicy
from connectors.registry import make_connector
from connectors.sms import MESSAGES as SMS_MESSAGES
from connectors.sms import SmsGatewayConnector
from connectors.sms import message as sms_message
from connectors.soap import SoapConnector, SoapEndpoint
from connectors.webhook import MESSAGES, WebhookConnector, generate_secret
from sandbox.faults import FaultFile
from sandbox.sms import start_gateway
from sandbox.tax.server import TaxServer
from sandbox.tax.store import TaxStore
from sandbox.tax.wsgi import Credentials
from tests.connectors.conftest import SqlHarness, conn_env
from tests.recognition.rec_helpers import Receiver

LOCAL_TZ = dt.timezone(dt.timedelta(hours=8))
TAX_USER, TAX_PASSWORD = "hub", "pw-accept"


def notice(key: str) -> dict[str, Any]:
    """A ``LicenseNotice`` as the tax bureau's ``ReceiveLicenseNotice`` takes it."""
    return {
        "idempotency_key": key,
        "event_type": "license.issued",
        "license_id": f"L-{key}",
        "license_type_code": "1101",
        "holder_code": "91330322MA2C8XYZ1K",
        "holder_name": "",
        "status": "valid",
        "issued_at": dt.datetime(2026, 11, 2, 9, 0, tzinfo=LOCAL_TZ),
        "payload_json": "{}",
        "signature": "",
    }


class TaxNoticeDestination:
    """The tax sandbox's SOAP service (WS-Security on), its notices read back from its store."""

    capabilities = frozenset({"auth"})
    name = "tax_notices"

    def __init__(self, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.store = TaxStore(work / "tax.db")
        self.store.create()
        self.server = TaxServer(self.store, FaultFile(work / "faults.json"), Credentials(TAX_USER, TAX_PASSWORD))
        self.server.start()
        self.monkeypatch = monkeypatch

    def new_records(self, n: int) -> list[dict[str, Any]]:
        return [notice(f"accept-{uuid.uuid4().hex[:12]}") for _ in range(n)]

    def key_of(self, record: dict[str, Any]) -> str:
        return str(record["idempotency_key"])

    def received_keys(self) -> list[str]:
        return [str(n["idempotency_key"]) for n in self.store.notices()]

    def close(self) -> None:
        self.server.stop()


class TaxByConnection(TaxNoticeDestination):
    """Reached through an Airflow Connection, like a department read by a mapping file."""

    dataset = "taxpayers"

    def __init__(self, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(work, monkeypatch)
        base = {"conn_type": "http", "host": "127.0.0.1", "login": TAX_USER, "extra": {"wsdl_path": "/tax?wsdl"}}
        conn_env(monkeypatch, "taxw_ok", **base, port=self.server.port, password=TAX_PASSWORD)
        conn_env(monkeypatch, "taxw_badauth", **base, port=self.server.port, password="not-the-password")
        conn_env(monkeypatch, "taxw_down", **base, port=1, password=TAX_PASSWORD)

    def _block(self, conn_id: str) -> dict[str, Any]:
        return {
            "protocol": "soap",
            "conn_id": conn_id,
            "timeout_seconds": 5,
            "retry": {"attempts": 2, "base_delay_seconds": 0.01, "max_delay_seconds": 0.05},
            "datasets": {
                "taxpayers": {
                    "operation": "ListChangedTaxpayers",
                    "items": "taxpayers",
                    "key": "taxpayer_code",
                    "watermark": "updated_at",
                    "push": {"operation": "ReceiveLicenseNotice", "argument": "notice"},
                }
            },
        }

    def connector(self) -> Connector:
        return make_connector(self._block("taxw_ok"), name=self.name)

    def connector_bad_credentials(self) -> Connector:
        return make_connector(self._block("taxw_badauth"), name=self.name)

    def connector_unreachable(self) -> Connector:
        return make_connector(self._block("taxw_down"), name=self.name)


class TaxByWsdlUrl(TaxNoticeDestination):
    """Named by its WSDL's URL and reached only where the policy allows, as a subscription is pushed."""

    dataset = "notices"

    def _connector(self, wsdl_url: str, password: str) -> Connector:
        from recognition.push import soap_block

        endpoint = SoapEndpoint(wsdl_url, TAX_USER, password, DestinationPolicy.declared(wsdl_url))
        return SoapConnector(self.name, soap_block(5.0), endpoint=endpoint)

    def connector(self) -> Connector:
        return self._connector(self.server.wsdl_url, TAX_PASSWORD)

    def connector_bad_credentials(self) -> Connector:
        return self._connector(self.server.wsdl_url, "not-the-password")

    def connector_unreachable(self) -> Connector:
        return self._connector("http://127.0.0.1:1/tax?wsdl", TAX_PASSWORD)


class WebhookDestination:
    """A real receiver that verifies signatures (401 otherwise) and keeps one message per ``webhook-id``."""

    capabilities = frozenset({"auth"})
    name = "webhook"
    dataset = MESSAGES

    def __init__(self) -> None:
        self.secret = generate_secret()
        self.receiver = Receiver(self.secret)
        self.receiver.start()
        self._ids = itertools.count(1)

    def _connector(self, url: str, secret: str) -> Connector:
        return WebhookConnector(self.name, {"url": url, "secret": secret, "timeout_seconds": 5},
                                policy=DestinationPolicy.declared(url))  # fmt: skip

    def connector(self) -> Connector:
        return self._connector(self.receiver.url, self.secret)

    def connector_bad_credentials(self) -> Connector:
        return self._connector(self.receiver.url, generate_secret())

    def connector_unreachable(self) -> Connector:
        return self._connector("http://127.0.0.1:1/hook", self.secret)

    def new_records(self, n: int) -> list[dict[str, Any]]:
        return [
            {"type": "license.issued", "idempotency_key": f"msg-{uuid.uuid4().hex[:8]}-{next(self._ids)}",
             "data": {"license_id": f"L{i}"}}
            for i in range(n)
        ]  # fmt: skip

    def key_of(self, record: dict[str, Any]) -> str:
        return str(record["idempotency_key"])

    def received_keys(self) -> list[str]:
        return [msg_id for msg_id, _ in self.receiver.unique_in_order()]

    def close(self) -> None:
        self.receiver.stop()


class SqlDestination:
    """A SQL harness's department table, written by upsert on its key."""

    capabilities = frozenset({"auth"})

    def __init__(self, h: SqlHarness) -> None:
        self.h = h
        self.name = h.name
        self.dataset = h.dataset
        self._next = itertools.count(9_001)

    def connector(self) -> Connector:
        return self.h.connector()

    def connector_bad_credentials(self) -> Connector:
        return self.h.connector_bad_credentials()

    def connector_unreachable(self) -> Connector:
        return self.h.connector_unreachable()

    def new_records(self, n: int) -> list[dict[str, Any]]:
        return [
            {self.h.key: next(self._next), "status": "alive", "updated_at": dt.datetime(2026, 11, 2, 8, 0, 0)}
            for _ in range(n)
        ]

    def key_of(self, record: dict[str, Any]) -> str:
        return str(record[self.h.key])

    def received_keys(self) -> list[str]:
        return [str(r[0]) for r in self.h._sql(f"SELECT {self.h.key} FROM {self.h.qualified}")]


class SmsDestination:
    """The sandbox SMS gateway (token-authenticated; one message per ``out_id``)."""

    capabilities = frozenset({"auth"})
    name = "sms_gateway"
    dataset = SMS_MESSAGES

    def __init__(self, work: Path) -> None:
        self.server = start_gateway(work, token="tok-accept")
        self._ids = itertools.count(1)

    def _connector(self, url: str, token: str) -> Connector:
        return SmsGatewayConnector(self.name, {"url": url, "token": token, "timeout_seconds": 5},
                                   policy=DestinationPolicy.declared(url))  # fmt: skip

    def connector(self) -> Connector:
        return self._connector(self.server.url, "tok-accept")

    def connector_bad_credentials(self) -> Connector:
        return self._connector(self.server.url, "tok-wrong")

    def connector_unreachable(self) -> Connector:
        return self._connector("http://127.0.0.1:1/sms/send", "tok-accept")

    def new_records(self, n: int) -> list[dict[str, Any]]:
        templates = load_catalogue().notices
        assert templates is not None
        accepted = templates.template("accepted")
        params = {"name": "李小龙", "item": "开具纳税证明", "code": "330322-20261201-7K3PQ0", "days": "1"}
        return [sms_message(f"sms-{uuid.uuid4().hex[:8]}-{next(self._ids)}", "13805771234", templates.signature,
                            accepted.template_code, params) for _ in range(n)]  # fmt: skip

    def key_of(self, record: dict[str, Any]) -> str:
        return str(record["out_id"])

    def received_keys(self) -> list[str]:
        return [m.out_id for m in self.server.gateway.store.messages()]

    def close(self) -> None:
        self.server.stop()
