"""The acceptance kit (验收套件): one pytest suite every connector must pass.

A connector's test module subclasses :class:`AcceptanceSuite` and provides a ``harness``
fixture implementing :class:`SourceHarness` against its sandbox (or a real system)::

    class TestOdbcPostgres(AcceptanceSuite):
        @pytest.fixture()
        def harness(self, ...) -> SourceHarness: ...

Capabilities a protocol cannot have (a SOAP listing has no transactions to commit late)
are declared in ``harness.capabilities``; their tests skip with the reason, and every
other test must pass. The suite runs the real sync path (:func:`connectors.sync.run_sync`):
stage → quarantine → advance state.

Every connector that declares ``write`` (``"write" in connector.directions``) also passes
:class:`WriteSuite` with a :class:`DestinationHarness` (the department's receiving side, under
the test's control): what it writes arrives once, writing again duplicates nothing, and refused
credentials or an unreachable destination fail with a typed error an operator can act on.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from connectors.base import DELETED, SOURCE_KEY, SOURCE_VERSION, Connector
from connectors.errors import ConnectorAuthError, ConnectorConfigError, ConnectorError
from connectors.staging import LocalStager
from connectors.sync import SyncResult, run_sync
from hub.db import session_scope
from hub.models import QuarantineRecord

#: what a harness may declare it supports
CAPABILITIES = frozenset({"auth", "late_commit", "deletes", "bad_records", "faults", "updates"})


class SourceHarness(Protocol):
    """A source a connector reads, under the test's control."""

    name: str
    dataset: str
    capabilities: frozenset[str]

    def connector(self) -> Connector: ...
    def connector_bad_credentials(self) -> Connector: ...
    def connector_unreachable(self) -> Connector: ...
    def add_records(self, n: int) -> list[str]:
        """Commit ``n`` new records; return their source keys."""
        ...

    def update_record(self, key: str) -> None: ...
    def delete_record(self, key: str) -> None: ...
    def add_bad_record(self) -> str:
        """Make one record the connector must refuse; return its source key."""
        ...

    def late_commit(self) -> contextlib.AbstractContextManager[str]:
        """Inside: a record with an *earlier* timestamp is written but uncommitted, and a later
        one is committed. On exit the early one commits. Yields the late record's key."""
        ...

    def fault(self) -> contextlib.AbstractContextManager[None]:
        """Inside: the source fails part-way through the next read (dropped connection, 503, truncation)."""
        ...

    def current_keys(self) -> set[str]:
        """The source's current good records' keys."""
        ...


class CrashAfter(Exception):
    """Simulated process death between staging a batch and committing its state."""


class CrashingStager(LocalStager):
    """Stages ``ok`` batches, then stages one more and 'dies' before its state is committed."""

    def __init__(self, root: Path, ok: int) -> None:
        super().__init__(root)
        self.remaining = ok

    def stage(self, name: str, table: pa.Table) -> str:
        ref = super().stage(name, table)
        if self.remaining <= 0:
            raise CrashAfter(name)
        self.remaining -= 1
        return ref


def staged_rows(stager_root: Path, source: str, dataset: str) -> list[tuple[str, str, bool]]:
    """Every staged (key, version, deleted) row, duplicates included."""
    out: list[tuple[str, str, bool]] = []
    for path in sorted((stager_root / source / dataset).glob("batch-*.parquet")):
        t = pq.read_table(path, columns=[SOURCE_KEY, SOURCE_VERSION, DELETED])
        out.extend(zip(t[SOURCE_KEY].to_pylist(), t[SOURCE_VERSION].to_pylist(), t[DELETED].to_pylist(), strict=True))
    return out


def staged_keys(result: SyncResult) -> list[str]:
    keys: list[str] = []
    for ref in result.staged_refs:
        t = pq.read_table(ref, columns=[SOURCE_KEY, DELETED])
        keys.extend(k for k, d in zip(t[SOURCE_KEY].to_pylist(), t[DELETED].to_pylist(), strict=True) if not d)
    return keys


def _assert_operator_message(exc_text: str) -> None:
    assert "what to do:" in exc_text, f"error does not tell the operator what to do: {exc_text}"


class AcceptanceSuite:
    """Subclass per connector and provide the ``harness`` fixture."""

    @pytest.fixture()
    def staging_root(self, tmp_path: Path) -> Path:
        return tmp_path / "staging"

    @pytest.fixture()
    def sync(self, harness: SourceHarness, staging_root: Path, hub_db_url: str) -> Any:
        def _sync(connector: Connector | None = None, stager: LocalStager | None = None) -> SyncResult:
            result = run_sync(
                connector or harness.connector(),
                harness.dataset,
                source=harness.name,
                stager=stager or LocalStager(staging_root),
            )
            assert result.reconciled, f"counts do not reconcile: {result}"
            return result

        return _sync

    @staticmethod
    def _needs(harness: SourceHarness, capability: str) -> None:
        if capability not in harness.capabilities:
            pytest.skip(f"{harness.name}: source has no '{capability}' (declared by its harness)")

    # -- spec / check / discover ------------------------------------------------------------
    def test_spec_is_a_json_schema(self, harness: SourceHarness) -> None:
        spec = harness.connector().spec()
        assert spec.get("type") == "object" and "properties" in spec

    def test_check_succeeds(self, harness: SourceHarness) -> None:
        result = harness.connector().check()
        assert result.ok, result.message

    def test_check_fails_clearly_on_bad_credentials(self, harness: SourceHarness) -> None:
        self._needs(harness, "auth")
        result = harness.connector_bad_credentials().check()
        assert not result.ok
        assert result.error == "ConnectorAuthError", result.message
        _assert_operator_message(result.message)

    def test_check_fails_clearly_on_unreachable_host(self, harness: SourceHarness) -> None:
        result = harness.connector_unreachable().check()
        assert not result.ok
        assert result.error in {"ConnectorUnavailable", "ConnectorTimeout"}, result.message
        _assert_operator_message(result.message)

    def test_discover_returns_the_schema(self, harness: SourceHarness) -> None:
        schemas = harness.connector().discover()
        assert harness.dataset in schemas
        schema = schemas[harness.dataset]
        assert schema["type"] == "object"
        assert len(schema["properties"]) >= 2

    # -- incremental reads ------------------------------------------------------------------
    def test_reading_twice_with_saved_state_returns_no_duplicates(self, harness: SourceHarness, sync: Any) -> None:
        first = sync()
        assert first.rows_staged > 0
        again = sync()
        assert staged_keys(again) == []
        new = harness.add_records(3)
        third = sync()
        assert sorted(staged_keys(third)) == sorted(new)

    def test_updated_record_is_read_again_with_a_new_version(
        self, harness: SourceHarness, sync: Any, staging_root: Path
    ) -> None:
        self._needs(harness, "updates")
        sync()
        key = sorted(set(k for k, _, _ in staged_rows(staging_root, harness.name, harness.dataset)))[0]
        harness.update_record(key)
        after = sync()
        assert staged_keys(after) == [key]
        versions = {v for k, v, _ in staged_rows(staging_root, harness.name, harness.dataset) if k == key}
        assert len(versions) == 2

    def test_read_killed_midway_and_resumed_loses_and_duplicates_nothing(
        self, harness: SourceHarness, sync: Any, staging_root: Path
    ) -> None:
        with pytest.raises(CrashAfter):
            sync(stager=CrashingStager(staging_root, ok=1))
        sync()
        rows = staged_rows(staging_root, harness.name, harness.dataset)
        pairs = [(k, v) for k, v, d in rows if not d]
        assert len(pairs) == len(set(pairs)), "a resumed read staged a record twice"
        assert {k for k, _ in pairs} == set(harness_keys(harness))

    def test_fault_midway_then_resume_loses_and_duplicates_nothing(
        self, harness: SourceHarness, sync: Any, staging_root: Path
    ) -> None:
        self._needs(harness, "faults")
        with harness.fault(), pytest.raises(ConnectorError) as info:
            sync()
        _assert_operator_message(str(info.value))
        assert info.value.transient, f"a mid-read drop must be transient: {info.value!r}"
        sync()
        rows = staged_rows(staging_root, harness.name, harness.dataset)
        pairs = [(k, v) for k, v, d in rows if not d]
        assert len(pairs) == len(set(pairs))
        assert {k for k, _ in pairs} == set(harness_keys(harness))

    def test_late_commit_with_earlier_timestamp_is_still_read(self, harness: SourceHarness, sync: Any) -> None:
        self._needs(harness, "late_commit")
        sync()
        with harness.late_commit() as late_key:
            during = sync()
            assert late_key not in staged_keys(during)
        after = sync()
        assert late_key in staged_keys(after)

    def test_deleted_record_is_detected(self, harness: SourceHarness, sync: Any, staging_root: Path) -> None:
        self._needs(harness, "deletes")
        sync()
        key = sorted(harness_keys(harness))[0]
        harness.delete_record(key)
        result = sync()
        assert result.tombstones == 1
        deleted = [k for k, _, d in staged_rows(staging_root, harness.name, harness.dataset) if d]
        assert deleted == [key]

    def test_bad_records_surface_with_reasons(self, harness: SourceHarness, sync: Any, hub_db_url: str) -> None:
        self._needs(harness, "bad_records")
        bad_key = harness.add_bad_record()
        result = sync()
        assert result.quarantined >= 1
        with session_scope() as s:
            rows = list(s.scalars(select(QuarantineRecord).where(QuarantineRecord.source == harness.name)))
        assert any(r.source_key == bad_key and r.reason_code and r.reason for r in rows), rows
        assert bad_key not in staged_keys(result)
        again = sync()  # reading again never quarantines the same record twice
        with session_scope() as s:
            n = len(list(s.scalars(select(QuarantineRecord).where(QuarantineRecord.source_key == bad_key))))
        assert n == 1, again

    def test_reads_and_refuses_a_verb_it_does_not_declare(self, harness: SourceHarness) -> None:
        connector = harness.connector()
        assert "read" in connector.directions and connector.directions <= {"read", "write"}
        if "write" not in connector.directions:
            with pytest.raises(ConnectorConfigError) as info:
                connector.write(harness.dataset, [{"x": 1}])
            _assert_operator_message(str(info.value))

    def test_counts_reconcile(self, harness: SourceHarness, sync: Any, staging_root: Path) -> None:
        result = sync()
        rows = staged_rows(staging_root, harness.name, harness.dataset)
        assert result.rows_read == result.rows_staged + result.quarantined
        assert result.rows_staged == len(rows)


def harness_keys(harness: SourceHarness) -> set[str]:
    """The source's current keys (good records only)."""
    return set(harness.current_keys())


class DestinationHarness(Protocol):
    """A department's receiving side a connector writes to, under the test's control."""

    name: str
    dataset: str
    #: ``auth`` when the destination checks credentials
    capabilities: frozenset[str]

    def connector(self) -> Connector: ...
    def connector_bad_credentials(self) -> Connector: ...
    def connector_unreachable(self) -> Connector: ...
    def new_records(self, n: int) -> list[dict[str, Any]]:
        """``n`` records the destination does not hold yet."""
        ...

    def key_of(self, record: dict[str, Any]) -> str:
        """The record's key as the destination keeps it (its idempotency key)."""
        ...

    def received_keys(self) -> list[str]:
        """The key of every record the destination holds, one entry per record it kept."""
        ...


class WriteSuite:
    """Subclass per connector that declares ``write`` and provide the ``destination`` fixture."""

    def test_write_is_declared(self, destination: DestinationHarness) -> None:
        assert "write" in destination.connector().directions

    def test_written_records_arrive_once(self, destination: DestinationHarness) -> None:
        records = destination.new_records(3)
        result = destination.connector().write(destination.dataset, records)
        assert (result.written, result.rejected) == (3, [])
        keys = [destination.key_of(r) for r in records]
        assert sorted(k for k in destination.received_keys() if k in keys) == sorted(keys)

    def test_writing_the_same_records_again_duplicates_nothing(self, destination: DestinationHarness) -> None:
        records = destination.new_records(2)
        connector = destination.connector()
        connector.write(destination.dataset, records)
        before = sorted(destination.received_keys())
        again = connector.write(destination.dataset, records)
        assert again.rejected == []
        assert sorted(destination.received_keys()) == before

    def test_writing_nothing_writes_nothing(self, destination: DestinationHarness) -> None:
        before = sorted(destination.received_keys())
        assert destination.connector().write(destination.dataset, []).written == 0
        assert sorted(destination.received_keys()) == before

    def test_write_fails_clearly_on_bad_credentials(self, destination: DestinationHarness) -> None:
        if "auth" not in destination.capabilities:
            pytest.skip(f"{destination.name}: destination checks no credentials (declared by its harness)")
        records = destination.new_records(1)
        with pytest.raises(ConnectorAuthError) as info:
            destination.connector_bad_credentials().write(destination.dataset, records)
        _assert_operator_message(str(info.value))
        assert destination.key_of(records[0]) not in destination.received_keys()

    def test_write_fails_transiently_on_unreachable_destination(self, destination: DestinationHarness) -> None:
        with pytest.raises(ConnectorError) as info:
            destination.connector_unreachable().write(destination.dataset, destination.new_records(1))
        assert info.value.transient, f"an unreachable destination must be transient: {info.value!r}"
        _assert_operator_message(str(info.value))
