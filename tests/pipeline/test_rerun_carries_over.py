"""A run that fails after extract leaves nothing behind: the next run carries every row through, once.

The read position moves when a batch is staged; the staged batch stays ``staged`` in
``staged_batch`` until a publish marks it. These tests run the exchange DAG's task bodies
against the embedded sandboxes (commerce over the SQLite ODBC driver, land XML packages),
fail a run on purpose — a mapping that misses a column its expectation suite requires, the
licence store failing part-way through publish, a run dying after extract while the XML
package is acknowledged — and check that the re-run brings every source row into the
quarantine or the master index and licence store exactly once, with a ledger that adds up.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.db import get_engine, session_scope
from hub.models import OutboxEvent, QuarantineRecord, StagedBatch, SyncState
from pipeline import steps
from pipeline.steps import StepOutput
from pipeline.summary import summarize
from pipeline.tables import PipelineStep

pytestmark = [pytest.mark.slow, pytest.mark.odbc]

REPO = Path(__file__).parents[2]
COMMERCE = "commerce_enterprises"
DOWNSTREAM = (steps.map_batches, steps.validate, steps.resolve, steps.publish)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The hub's database: SQLite (embedded) and PostgreSQL (CI, compose)."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("hub_db_url"))
    from hub.settings import reset_settings

    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    reset_settings()
    return str(request.getfixturevalue("pg_hub_db_url"))


@pytest.fixture()
def sandboxes(tmp_path: Path, hub_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from _sandboxes(tmp_path, monkeypatch)


@pytest.fixture()
def sandboxes_any_db(tmp_path: Path, hub_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from _sandboxes(tmp_path, monkeypatch)


def _sandboxes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from hub.airflow_env import connection_uri_env
    from rigs.connections import sandbox_connections
    from sandbox.generator import Sizes
    from sandbox.runtime import start_sandboxes

    with start_sandboxes(tmp_path / "sb", 2016, Sizes(persons=120, enterprises=40, properties=30),
                         land_batch=40) as sb:  # fmt: skip
        for conn_id, conn in sandbox_connections(sb).items():
            key, value = connection_uri_env(conn_id, conn)
            monkeypatch.setitem(os.environ, key, value)
        yield sb


@pytest.fixture()
def mapping_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped mapping files the tests may break and fix, read by the steps."""
    from mappings import engine

    d = tmp_path / "mappings"
    d.mkdir()
    for p in (REPO / "mappings").glob("*.yaml"):
        shutil.copy(p, d / p.name)
    monkeypatch.setattr(engine, "MAPPINGS_DIR", d)
    return d


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    st = path.stat()  # a new mtime, whatever the clock's resolution: the steps reload changed mappings
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def _run(name: str, run_id: str, *, upto: int = len(DOWNSTREAM)) -> StepOutput:
    out = steps.extract(name, run_id)
    for step in DOWNSTREAM[:upto]:
        out = step(name, out, run_id)
    return out


def _count(stmt: Any) -> int:
    with session_scope(get_engine()) as s:
        return int(s.scalar(stmt) or 0)


def _batches(mapping: str) -> dict[str, int]:
    with session_scope(get_engine()) as s:
        rows = s.execute(select(StagedBatch.status, func.count()).where(StagedBatch.mapping == mapping)
                         .group_by(StagedBatch.status)).all()  # fmt: skip
    return {str(k): int(v) for k, v in rows}


def _outcome(department: str, dataset: str, licence_type: str) -> dict[str, list[tuple[Any, ...]]]:
    """What a feed left in the hub: quarantined records, links in the master index, licences, events."""
    from e_license_store.tables import LicenseIndexEntry
    from identity.tables import IdentitySourceRecord

    with session_scope(get_engine()) as s:
        quarantined = s.execute(select(QuarantineRecord.source_key, QuarantineRecord.reason_code).where(
            QuarantineRecord.source == department, QuarantineRecord.dataset == dataset,
            QuarantineRecord.resolved_at.is_(None))).all()  # fmt: skip
        linked = s.execute(select(IdentitySourceRecord.source_key, IdentitySourceRecord.source_version,
                                  IdentitySourceRecord.canonical_code).where(
            IdentitySourceRecord.department == department, IdentitySourceRecord.dataset == dataset,
            IdentitySourceRecord.unlinked_at.is_(None))).all()  # fmt: skip
        licences = s.execute(select(LicenseIndexEntry.license_number, LicenseIndexEntry.holder_code,
                                    LicenseIndexEntry.status, LicenseIndexEntry.version).where(
            LicenseIndexEntry.license_type_code == licence_type)).all()  # fmt: skip
        events = s.execute(select(OutboxEvent.event_type, OutboxEvent.subject).where(
            OutboxEvent.license_type_code == licence_type)).all()  # fmt: skip
    out = {"quarantined": quarantined, "linked": linked, "licences": licences, "events": events}
    return {k: sorted(tuple("" if x is None else str(x) for x in row) for row in v) for k, v in out.items()}


def _assert_once(outcome: dict[str, list[tuple[Any, ...]]]) -> None:
    """No record quarantined or linked twice, none both; no licence or event twice."""
    q = [r[0] for r in outcome["quarantined"]]
    linked = [r[0] for r in outcome["linked"]]
    assert len(q) == len(set(q)), "a record quarantined twice"
    assert len(linked) == len(set(linked)), "a record linked twice"
    assert not set(q) & set(linked), "a record both quarantined and accepted"
    numbers = [r[:2] for r in outcome["licences"]]  # (number, holder)
    assert numbers and len(numbers) == len(set(numbers)), "a licence issued twice"
    assert len(outcome["events"]) == len(set(outcome["events"])), "an event emitted twice"


def _clean_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Point the steps at a fresh hub and run the feed once, cleanly (the source is unchanged)."""
    from hub.db import migrate
    from hub.settings import reset_settings

    url = f"sqlite:///{tmp_path / 'clean.db'}"
    monkeypatch.setenv("HUB_DB_URL", url)
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "clean-home"))
    reset_settings()
    get_engine.cache_clear()
    migrate(url)
    _run(name, "clean-1")


# -- (1) validate fails on a configuration error; the mapping is fixed; the re-run carries every row ----------------
def test_a_run_failing_at_validate_is_carried_through_by_the_rerun(
    sandboxes_any_db: Any, mapping_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandboxes = sandboxes_any_db
    from airflow.sdk.exceptions import AirflowFailException

    from pipeline import factory
    from validation.suites import SuiteError

    mapping_file = mapping_dir / f"{COMMERCE}.yaml"
    region = "  region_code: {from: region_code, normalizers: [digits]}\n"
    _edit(mapping_file, region, "")  # the suite requires region_code: a configuration error
    source_rows = sandboxes.prepared.commerce.count()

    mapped = steps.map_batches(COMMERCE, steps.extract(COMMERCE, "run-1"), "run-1")
    # the DAG's validate task fails without a retry: no retry fixes a mapping
    validate_task = factory.build_exchange_dag(steps.load_mapping(COMMERCE)).get_task("validate")
    monkeypatch.setattr(factory, "_run_id", lambda: "run-1")
    with pytest.raises(AirflowFailException, match=r"SuiteError.*region_code") as failed:
        validate_task.python_callable(mapped)  # type: ignore[union-attr]
    assert isinstance(failed.value.__cause__, SuiteError)
    with session_scope(get_engine()) as s:
        assert s.get(SyncState, ("commerce", "enterprises")) is not None  # the position moved at extract...
    assert _batches(COMMERCE) == {"staged": 1}  # ...past a batch kept until it is published

    _edit(mapping_file, "  status: {from: status", region + "  status: {from: status")  # the fix
    out = _run(COMMERCE, "run-2")  # before the fix: read 0 rows, published nothing

    assert out["batches_published"] == 1 and _batches(COMMERCE) == {"published": 1}
    (extract2,) = _ledger("run-2", "extract")
    assert (extract2.pulled, extract2.carried_over) == (0, source_rows)
    (both,) = summarize(["run-1", "run-2"])
    assert (both.pulled, both.carried_over) == (source_rows, source_rows)
    assert both.accepted + both.quarantined == source_rows  # every row, once
    rerun = _outcome("commerce", "enterprises", "1101")
    _assert_once(rerun)
    assert both.quarantined == len(rerun["quarantined"])
    assert both.licenses_issued == len(rerun["licences"])

    out = _run(COMMERCE, "run-3")  # nothing new, nothing left over
    assert (out["records"], out["licenses_issued"]) == (0, 0)
    (extract3,) = _ledger("run-3", "extract")
    assert (extract3.pulled, extract3.carried_over) == (0, 0)
    assert _outcome("commerce", "enterprises", "1101") == rerun

    _clean_run(tmp_path, monkeypatch, COMMERCE)  # the same source into a fresh hub, in one clean run
    assert _outcome("commerce", "enterprises", "1101") == rerun


def _ledger(run_id: str, step: str) -> list[PipelineStep]:
    with session_scope(get_engine()) as s:
        return list(s.scalars(select(PipelineStep).where(PipelineStep.run_id == run_id, PipelineStep.step == step)))


# -- (2) publish fails part-way; the re-run converges ----------------------------------------------------------------
def test_a_publish_failing_part_way_converges_on_the_rerun(
    sandboxes: Any, mapping_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.publish as publish_module
    from pipeline.housekeeping import reconcile

    _edit(mapping_dir / f"{COMMERCE}.yaml", "batch_size: 10000", "batch_size: 15")  # several batches
    source_rows = sandboxes.prepared.commerce.count()
    real = publish_module.publish_frame
    calls: list[str] = []

    def store_fails_on_the_second_batch(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["staged_ref"])
        if len(calls) == 2:
            raise ConnectionError("licence store unreachable")
        return real(*args, **kwargs)

    monkeypatch.setattr(publish_module, "publish_frame", store_fails_on_the_second_batch)
    with pytest.raises(ConnectionError):
        _run(COMMERCE, "run-1")
    assert _batches(COMMERCE) == {"staged": 3}  # 40 enterprises in batches of 15; none marked published
    (failed_publish,) = _ledger("run-1", "publish")
    assert failed_publish.licenses_issued > 0  # the first batch's licences were issued before the store failed

    monkeypatch.setattr(publish_module, "publish_frame", real)
    _run(COMMERCE, "run-2")
    assert _batches(COMMERCE) == {"published": 3}
    # run-1's map and validate were done again by run-2: superseded, not counted twice
    assert {r.superseded_by for r in _ledger("run-1", "validate") + _ledger("run-1", "map")} == {"run-2"}
    (both,) = summarize(["run-1", "run-2"])
    assert both.accepted + both.quarantined == both.pulled == source_rows
    rerun = _outcome("commerce", "enterprises", "1101")
    _assert_once(rerun)
    assert both.quarantined == len(rerun["quarantined"])
    # run-1's first batch plus what run-2 added
    assert both.licenses_issued == len(rerun["licences"])
    assert reconcile("hk")["runs_checked"] == 1  # run-2's validate agrees with the quarantine; run-1's superseded

    _clean_run(tmp_path, monkeypatch, COMMERCE)
    assert _outcome("commerce", "enterprises", "1101") == rerun


# -- (2b) extract fails mid-read and Airflow retries it in the same run ------------------------------------------------
def test_a_retried_extract_takes_up_what_its_first_attempt_staged(
    sandboxes: Any, mapping_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connectors.sync as sync

    _edit(mapping_dir / f"{COMMERCE}.yaml", "batch_size: 10000", "batch_size: 15")
    source_rows = sandboxes.prepared.commerce.count()
    real = sync.commit_batch
    commits: list[int] = []

    def connection_drops_after_the_first_batch(*args: Any, **kwargs: Any) -> None:
        commits.append(1)
        if len(commits) == 2:
            raise ConnectionResetError("department database went away")
        real(*args, **kwargs)

    monkeypatch.setattr(sync, "commit_batch", connection_drops_after_the_first_batch)
    with pytest.raises(ConnectionResetError):
        steps.extract(COMMERCE, "run-1")  # attempt 1: one batch staged and committed
    monkeypatch.setattr(sync, "commit_batch", real)
    out = steps.extract(COMMERCE, "run-1")  # attempt 2 (Airflow's retry): the same run id
    assert (out["pulled"], out["carried_over"], len(out["staged"])) == (source_rows, 0, 3)
    for step in DOWNSTREAM:
        out = step(COMMERCE, out, "run-1")
    assert _batches(COMMERCE) == {"published": 3}
    (one,) = summarize(["run-1"])
    assert one.accepted + one.quarantined == one.pulled == source_rows and one.carried_over == 0
    _assert_once(_outcome("commerce", "enterprises", "1101"))


# -- (3) XML: the package is acknowledged at read time; a run dying after extract still loses nothing --------------
def test_xml_rows_of_a_run_that_died_after_extract_arrive_with_the_next_run(
    sandboxes: Any, mapping_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = sandboxes.land.outbox_dir
    sent = tmp_path / "sent"  # what the department sent, to give a fresh hub the same packages later
    shutil.copytree(outbox, sent)
    packages = sorted(p.name for p in outbox.glob("*.xml"))
    assert packages

    first = steps.extract("land_property_rights", "land-1")  # ... and the run dies here
    assert first["pulled"] > 0
    _run("land_approval_results", "approvals-1")  # the other consumer reads the packages: acknowledged, archived
    assert not list(outbox.glob("*.xml"))
    assert all((outbox.parent / "archive" / "accepted" / p).exists() for p in packages)
    assert all((outbox / f"{p}.ack").exists() for p in packages)

    out = _run("land_property_rights", "land-2")  # reads nothing new: the rows come from the staged batches
    (extract2,) = _ledger("land-2", "extract")
    assert extract2.pulled == 0 and extract2.carried_over == first["accepted"]
    assert _batches("land_property_rights") == {"published": out["batches_published"]}
    (both,) = [d for d in summarize(["land-1", "land-2"]) if d.department == "land"]
    assert both.accepted + both.quarantined <= both.pulled == first["pulled"]  # deleted records are neither
    assert both.accepted > 0 and both.licenses_issued > 0
    rerun = _outcome("land", "property_rights", "2101")
    _assert_once(rerun)
    assert both.licenses_issued == len(rerun["licences"])

    for p in sent.iterdir():  # a fresh hub gets the same packages and reads them in one clean run
        shutil.copy(p, outbox / p.name)
    _clean_run(tmp_path, monkeypatch, "land_property_rights")
    assert _outcome("land", "property_rights", "2101") == rerun
