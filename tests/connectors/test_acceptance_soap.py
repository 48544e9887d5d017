"""The acceptance kit for the SOAP connector against the tax sandbox's SOAP service on a store of its own."""

from __future__ import annotations

import pytest

from connectors.acceptance import AcceptanceSuite
from tests.connectors.conftest import SoapHarness


class TestSoapTax(AcceptanceSuite):
    @pytest.fixture()
    def harness(self, soap_harness: SoapHarness) -> SoapHarness:
        return soap_harness
