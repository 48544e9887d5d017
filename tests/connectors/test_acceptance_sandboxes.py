"""The acceptance kit against the shared department sandboxes (tax SOAP, land XML packages)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.acceptance import AcceptanceSuite
from rigs.fixtures import TEST_SEED, fixture_sizes
from sandbox.runtime import Sandboxes, start_sandboxes
from tests.connectors.sandbox_harness import SandboxLandHarness, SandboxTaxHarness


@pytest.fixture()
def sandboxes(tmp_path: Path) -> Iterator[Sandboxes]:
    with start_sandboxes(tmp_path / "sbhome", TEST_SEED, fixture_sizes(), backend="embedded", land_batch=50) as sb:
        yield sb


class TestSandboxTaxSoap(AcceptanceSuite):
    @pytest.fixture()
    def harness(self, sandboxes: Sandboxes, monkeypatch: pytest.MonkeyPatch, hub_db_url: str) -> SandboxTaxHarness:
        return SandboxTaxHarness(sandboxes, monkeypatch)


class TestSandboxLandXml(AcceptanceSuite):
    @pytest.fixture()
    def harness(self, sandboxes: Sandboxes, tmp_path: Path, hub_db_url: str) -> SandboxLandHarness:
        return SandboxLandHarness(sandboxes, tmp_path / "landwork")
