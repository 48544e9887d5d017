"""Acceptance harnesses on the shared department sandboxes (sandbox.runtime), with their fault switches."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from connectors.base import Connector
from connectors.registry import make_connector
from sandbox.land.share import share_drops_after
from sandbox.runtime import Sandboxes

LAND_NS = "{urn:hub:sandbox:land:1}"
LOCAL_TZ = dt.timezone(dt.timedelta(hours=8))


def _conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


class SandboxTaxHarness:
    """The tax sandbox's SOAP service (WS-Security on), faults through its fault file."""

    capabilities = frozenset({"auth", "faults", "updates"})
    dataset = "taxpayers"
    name = "sandbox_tax"

    def __init__(self, sb: Sandboxes, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sb = sb
        base = {"conn_type": "http", "host": "127.0.0.1", "login": sb.tax.username, "extra": {"wsdl_path": "/tax?wsdl"}}
        _conn(monkeypatch, "sbtax_ok", **base, port=sb.tax.port, password=sb.tax.password)
        _conn(monkeypatch, "sbtax_badauth", **base, port=sb.tax.port, password="not-the-password")
        _conn(monkeypatch, "sbtax_down", **base, port=1, password=sb.tax.password)

    def block(self, conn_id: str) -> dict[str, Any]:
        return {
            "protocol": "soap",
            "conn_id": conn_id,
            "timeout_seconds": 10,
            "page_size": 25,
            "batch_size": 25,
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
        return make_connector(self.block("sbtax_ok"), name=self.name)

    def connector_bad_credentials(self) -> Connector:
        return make_connector(self.block("sbtax_badauth"), name=self.name)

    def connector_unreachable(self) -> Connector:
        return make_connector(self.block("sbtax_down"), name=self.name)

    def add_records(self, n: int) -> list[str]:
        return [str(self.sb.mutations.add_enterprise()["uscc"]) for _ in range(n)]

    def update_record(self, key: str) -> None:
        now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
        assert self.sb.prepared.tax_store.update_status(key, "02", now)

    def delete_record(self, key: str) -> None:
        raise NotImplementedError

    def add_bad_record(self) -> str:
        raise NotImplementedError

    def current_keys(self) -> set[str]:
        keys: set[str] = set()
        token: str | None = None
        while True:
            rows, token = self.sb.prepared.tax_store.changed_since(None, token, 1000)
            keys.update(str(r["taxpayer_code"]) for r in rows)
            if token is None:
                return keys

    def late_commit(self) -> contextlib.AbstractContextManager[str]:
        raise NotImplementedError

    @contextlib.contextmanager
    def fault(self) -> Iterator[None]:
        """The sandbox answers HTTP 503 until switched off (its fault file)."""
        with self.sb.faults.tax_fault(http_503=-1):
            yield


class SandboxLandHarness:
    """The land sandbox's outbox (some packages GB18030).

    Bad records: a truncated package. Updates: the bureau re-sends a property right with a
    higher version in a new package. Faults: the exchange share drops after the first package
    (:func:`sandbox.land.share.share_drops_after`).
    """

    capabilities = frozenset({"bad_records", "faults", "updates"})
    dataset = "property_rights"
    name = "sandbox_land"

    def __init__(self, sb: Sandboxes, work: Path) -> None:
        self.sb = sb
        self.work = work
        self.keys: set[str] = set()
        for package in sorted(sb.land.outbox_dir.glob("*.xml")):
            self.keys |= self._units(package)

    @staticmethod
    def _units(package: Path) -> set[str]:
        root = etree.parse(str(package), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
        return {str(e.get("unitNo")) for e in root.iter(f"{LAND_NS}PropertyRight")}

    def block(self, outbox: Path) -> dict[str, Any]:
        import yaml

        from hub.settings import REPO_ROOT

        source = yaml.safe_load((REPO_ROOT / "mappings" / "land_property_rights.yaml").read_text())["source"]
        source = {k: v for k, v in source.items() if k not in {"conn_id", "consumers"}}
        return {
            **source,
            "outbox": str(outbox),
            "archive": str(self.work / "archive"),
            "xsd": str(self.sb.land.xsd_path),
            "batch_size": 40,
        }

    def connector(self) -> Connector:
        return make_connector(self.block(self.sb.land.outbox_dir), name=self.name, work_root=self.work / "w")

    def connector_bad_credentials(self) -> Connector:
        raise NotImplementedError

    def connector_unreachable(self) -> Connector:
        return make_connector(self.block(self.work / "unmounted"), name=self.name, work_root=self.work / "w")

    def add_records(self, n: int) -> list[str]:
        # approvals=0 trips the sandbox generator (empty region array); one approval avoids it
        package = self.sb.mutations.new_land_package(properties=n, approvals=1)
        units = self._units(package)
        self.keys |= units
        return sorted(units)

    def update_record(self, key: str) -> None:
        """The bureau registers a mortgage on ``key`` and re-sends the right, version + 1, in a new package."""
        rights = self.sb.population.property_rights
        row = rights["unit_no"].astype(str) == key
        assert row.sum() == 1, f"no single property right {key}"
        rights.loc[row, "version"] = rights.loc[row, "version"].astype(int) + 1
        rights.loc[row, "status"] = "mortgaged"
        approvals = self.sb.population.approval_results.iloc[0:0]
        (package,) = self.sb.prepared.land.publish(rights[row], approvals, dt.datetime.now(LOCAL_TZ))
        assert self._units(package) == {key}

    def delete_record(self, key: str) -> None:
        raise NotImplementedError

    def add_bad_record(self) -> str:
        return self.sb.faults.land_truncated_package().name

    def current_keys(self) -> set[str]:
        return set(self.keys)

    def late_commit(self) -> contextlib.AbstractContextManager[str]:
        raise NotImplementedError

    @contextlib.contextmanager
    def fault(self) -> Iterator[None]:
        """The exchange share drops after the first waiting package: later ones no longer open."""
        with share_drops_after(self.sb.land.outbox_dir, readable=1) as dropped:
            assert dropped, "the fault needs a second waiting package"
            yield
