"""The parts that keep staged batches until they are published: ledger, claims, retention, retries."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import select

from hub.db import get_engine, session_scope
from hub.models import StagedBatch
from pipeline.carry import claim_pending, mark_published

MAPPING = SimpleNamespace(name="commerce_enterprises", department="commerce", dataset="enterprises")


def _stage(ref: str, rows: int, run_id: str, status: str = "staged") -> None:
    with session_scope(get_engine()) as s:
        s.add(StagedBatch(source="commerce", dataset="enterprises", mapping=MAPPING.name, staged_ref=ref, rows=rows,
                          run_id=run_id, claimed_by=run_id, status=status))  # fmt: skip


def _claims() -> dict[str, str | None]:
    with session_scope(get_engine()) as s:
        return {ref: by for ref, by in s.execute(select(StagedBatch.staged_ref, StagedBatch.claimed_by))}


# -- the ledger matches its migration ---------------------------------------------------------
@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_staged_batch_and_ledger_match_the_pipeline_migration(db: str, request: pytest.FixtureRequest) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import pipeline.tables  # noqa: F401  (registers the ledger on Base)
    from hub.db import Base, make_engine

    url = request.getfixturevalue("hub_db_url" if db == "sqlite" else "pg_hub_db_url")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    flat = [d if isinstance(d, tuple) else d[0] for d in diffs]
    assert [d for d in flat if "staged_batch" in repr(d) or "pipeline_step" in repr(d)] == []


# -- claims ------------------------------------------------------------------------------------
def test_a_run_claims_what_a_finished_run_left_oldest_first_and_marks_what_it_published(hub_db_url: str) -> None:
    _stage("b1", 10, "run-1")
    _stage("b2", 5, "run-1")
    _stage("b0", 7, "run-0", status="published")
    carried = claim_pending(get_engine(), MAPPING, "run-2")
    assert [(c.staged_ref, c.rows, c.staged_by, c.previous_claim) for c in carried] == [
        ("b1", 10, "run-1", "run-1"), ("b2", 5, "run-1", "run-1")]  # fmt: skip
    assert _claims() == {"b0": "run-0", "b1": "run-2", "b2": "run-2"}
    # an extract retried in the same run takes its claims again
    assert [c.staged_ref for c in claim_pending(get_engine(), MAPPING, "run-2")] == ["b1", "b2"]
    assert mark_published(get_engine(), MAPPING.name, ["b1", "b2", "b1"], "run-2") == 2
    assert claim_pending(get_engine(), MAPPING, "run-3") == []


def test_batches_of_a_run_still_running_are_left_to_it(hub_db_url: str) -> None:
    _stage("b1", 10, "run-1")
    _stage("b2", 3, "run-2")
    carried = claim_pending(get_engine(), MAPPING, "run-3", still_running=lambda run: run == "run-1")
    assert [c.staged_ref for c in carried] == ["b2"]
    assert _claims() == {"b1": "run-1", "b2": "run-3"}


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_two_runs_never_claim_the_same_batch(db: str, request: pytest.FixtureRequest) -> None:
    """Run B reads the pending batches, then run C claims them all before B writes: B gets none.

    The interleaving is forced: B asks whether run A (the dead claimant) is still running, and
    that question is where C's whole claim happens.
    """
    request.getfixturevalue("hub_db_url" if db == "sqlite" else "pg_hub_db_url")
    for i in range(3):
        _stage(f"b{i}", 4, "run-A")
    got: dict[str, list[str]] = {}

    def a_is_over_but_c_claims_meanwhile(run: str) -> bool:
        got["C"] = [c.staged_ref for c in claim_pending(get_engine(), MAPPING, "run-C")]
        return False

    got["B"] = [c.staged_ref for c in claim_pending(get_engine(), MAPPING, "run-B",
                                                     still_running=a_is_over_but_c_claims_meanwhile)]  # fmt: skip
    assert got == {"C": ["b0", "b1", "b2"], "B": []}
    assert set(_claims().values()) == {"run-C"}


# -- retention ---------------------------------------------------------------------------------
def _old(path: Path, days: int = 40) -> None:
    t = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).timestamp()
    os.utime(path, (t, t))


def test_retention_never_purges_a_batch_not_yet_carried_through(
    hub_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from hub.settings import get_settings
    from pipeline.staging import FileStager, purge_older_than
    from validation.retention import pending_staged_refs, purge

    stager = FileStager(get_settings().home / "staging")
    table = pa.table({"_source_key": ["1", "2"]})
    pending = stager.stage("commerce/enterprises/batch-pending.parquet", table)
    published = stager.stage("commerce/enterprises/batch-published.parquet", table)
    for ref in (pending, published):
        _old(Path(ref.removeprefix("file://")))
    _stage(pending, 2, "run-1")
    _stage(published, 2, "run-0", status="published")

    with caplog.at_level(logging.WARNING), session_scope(get_engine()) as s:
        report = purge(s, dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    assert (report.staged_files, report.staged_kept) == (1, 1)
    assert stager.list("commerce", "enterprises") == [pending]
    assert "batch-pending.parquet" in caplog.text and "not yet carried through" in caplog.text

    # the object-store path of the housekeeping purge keeps it the same way
    with session_scope(get_engine()) as s:
        keep = pending_staged_refs(s)
    kept: list[str] = []
    assert purge_older_than(stager, dt.datetime.now(dt.UTC), keep=keep, kept=kept) == 0
    assert kept == [pending] and stager.list("commerce", "enterprises") == [pending]


# -- retries -----------------------------------------------------------------------------------
def _raise(exc: BaseException) -> Any:
    raise exc


def test_configuration_errors_and_verdicts_fail_the_task_at_once_transient_errors_retry() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from connectors.errors import ConnectorConfigError, ConnectorUnavailable
    from mappings.engine import MappingError
    from pipeline.factory import run_step
    from validation.run import ThresholdExceeded
    from validation.suites import SuiteError

    for exc in (SuiteError("no suite"), MappingError([]), ConnectorConfigError("no conn_id"),
                ThresholdExceeded("12 of 40")):  # fmt: skip
        with pytest.raises(AirflowFailException) as failed:
            run_step(_raise, exc)
        assert failed.value.__cause__ is exc
    with pytest.raises(ConnectorUnavailable):  # retried by Airflow, with backoff
        run_step(_raise, ConnectorUnavailable("department down"))
    assert run_step(lambda a, b=0: a + b, 1, b=2) == 3


def test_publish_attempts_add_up_what_they_issued_other_counts_are_replaced(hub_db_url: str) -> None:
    from pipeline.steps import LASTING, Counts, record_step
    from pipeline.summary import summarize

    # the first attempt issued 4 licences, then the store failed; the retry re-read all 9 rows and issued 5 more
    record_step(
        "r1", "commerce_enterprises", "commerce", "publish", Counts(pulled=4, licenses_issued=4), 0, add=LASTING
    )
    record_step("r1", "commerce_enterprises", "commerce", "publish", Counts(pulled=9, licenses_issued=5,
                licenses_changed=1), 1, add=LASTING)  # fmt: skip
    (row,) = summarize(["r1"])
    assert (row.licenses_issued, row.licenses_changed) == (9, 1)
    with session_scope(get_engine()) as s:
        from pipeline.tables import PipelineStep

        assert s.get(PipelineStep, ("r1", "commerce_enterprises", "publish")).pulled == 9  # type: ignore[union-attr]
