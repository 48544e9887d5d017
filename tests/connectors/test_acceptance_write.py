"""The write half of the acceptance kit, for every connector that declares ``write``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.acceptance import WriteSuite
from connectors.registry import PROTOCOLS, connector_class
from connectors.sms import SmsGatewayConnector
from connectors.webhook import WebhookConnector
from tests.connectors.conftest import SqlHarness
from tests.connectors.destinations import (
    SmsDestination,
    SqlDestination,
    TaxByConnection,
    TaxByWsdlUrl,
    WebhookDestination,
)


class TestSoapByConnection(WriteSuite):
    protocol = "soap"

    @pytest.fixture()
    def destination(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TaxByConnection]:
        d = TaxByConnection(tmp_path / "tax", monkeypatch)
        yield d
        d.close()


class TestSoapByWsdlUrl(WriteSuite):
    """How the delivery worker pushes a SOAP notice (recognition.push)."""

    protocol = "soap"

    @pytest.fixture()
    def destination(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TaxByWsdlUrl]:
        d = TaxByWsdlUrl(tmp_path / "tax", monkeypatch)
        yield d
        d.close()


class TestWebhook(WriteSuite):
    protocol = "webhook"

    @pytest.fixture()
    def destination(self) -> Iterator[WebhookDestination]:
        d = WebhookDestination()
        yield d
        d.close()


class TestSmsGateway(WriteSuite):
    """How the delivery worker sends the applicant's notices (recognition.push)."""

    protocol = "sms"

    @pytest.fixture()
    def destination(self, tmp_path: Path) -> Iterator[SmsDestination]:
        d = SmsDestination(tmp_path / "sms")
        yield d
        d.close()


@pytest.mark.odbc
@pytest.mark.postgres
class TestSqlPostgres(WriteSuite):
    protocol = "sql"

    @pytest.fixture()
    def destination(self, pg_harness: SqlHarness) -> SqlDestination:
        return SqlDestination(pg_harness)


@pytest.mark.odbc
@pytest.mark.mariadb
class TestSqlMariaDB(WriteSuite):
    protocol = "sql"

    @pytest.fixture()
    def destination(self, mariadb_harness: SqlHarness) -> SqlDestination:
        return SqlDestination(mariadb_harness)


def test_every_connector_that_declares_write_passes_the_write_suite() -> None:
    classes = [connector_class(p) for p in PROTOCOLS] + [WebhookConnector, SmsGatewayConnector]
    declaring = {c.protocol for c in classes if "write" in c.directions}
    assert declaring == {"soap", "sql", "webhook", "sms"}
    assert {suite.protocol for suite in WriteSuite.__subclasses__() if hasattr(suite, "protocol")} >= declaring
