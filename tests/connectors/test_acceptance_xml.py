"""The acceptance kit for the XML package connector against a land outbox."""

from __future__ import annotations

import pytest

from connectors.acceptance import AcceptanceSuite
from tests.connectors.conftest import XmlHarness


class TestXmlLand(AcceptanceSuite):
    @pytest.fixture()
    def harness(self, xml_harness: XmlHarness) -> XmlHarness:
        return xml_harness
