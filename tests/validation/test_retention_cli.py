"""Retention purge (quarantine, staged Parquet, GX results), the CLI, and mapping rejects."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from hub.db import get_engine, session_scope
from hub.models import QuarantineRecord
from tests.validation.conftest import VALID_RID_2, person_frame
from validation.cli import app
from validation.quarantine import BatchRef
from validation.retention import purge
from validation.run import validate_batch, validate_mapped
from validation.tables import QuarantineReason

BATCH = BatchRef(department="public_security", dataset="persons", staged_ref="staging/ps/r/part-0.parquet")


def _age(path: Path, days: int) -> None:
    t = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).timestamp()
    os.utime(path, (t, t))


def test_purge_past_retention(session: Session, _private_home: Path) -> None:
    validate_batch(
        person_frame(), "person", mapping_name="m", threshold=1.0, source_ref=BATCH, run_id="old", session=session
    )
    validate_batch(
        person_frame(), "person", mapping_name="m", threshold=1.0, source_ref=BATCH, run_id="new", session=session
    )
    old_time = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    session.execute(update(QuarantineRecord).where(QuarantineRecord.run_id == "old").values(created_at=old_time))
    staging = _private_home / "staging" / "public_security" / "run-old"
    staging.mkdir(parents=True)
    (staging / "part-0.parquet").write_bytes(b"PAR1")
    _age(staging / "part-0.parquet", 40)
    fresh = _private_home / "staging" / "public_security" / "run-new" / "part-0.parquet"
    fresh.parent.mkdir(parents=True)
    fresh.write_bytes(b"PAR1")
    results = sorted((_private_home / "gx" / "uncommitted" / "validations").rglob("*.json"))
    assert len(results) == 2
    _age(results[0], 40)

    report = purge(session, dt.datetime.now(dt.UTC) - dt.timedelta(days=30))

    assert report.quarantine_rows == 3 and report.staged_files == 1 and report.gx_results == 1
    assert {r.run_id for r in session.scalars(select(QuarantineRecord))} == {"new"}
    assert session.scalar(select(func.count()).select_from(QuarantineReason)) == 5  # the new run's only
    assert not staging.exists() and fresh.exists()
    assert not results[0].exists() and results[1].exists()


def test_purge_default_uses_hub_retention_days(hub_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.settings import reset_settings

    monkeypatch.setenv("HUB_RETENTION_DAYS", "0")
    reset_settings()
    with session_scope(get_engine(hub_db_url)) as s:
        validate_batch(
            person_frame(),
            "person",
            mapping_name="m",
            threshold=1.0,
            source_ref=BATCH,
            run_id="r",
            session=s,
            build_docs=False,
        )
    with session_scope(get_engine(hub_db_url)) as s:
        assert purge(s).quarantine_rows == 3


@dataclass
class _Mapped:
    """The shape of mappings.engine.MappedBatch."""

    records: pd.DataFrame
    rejects: pd.DataFrame
    tombstones: pd.DataFrame
    rows_in: int
    entity: str = "person"


def test_mapping_rejects_are_quarantined_and_reconciled(session: Session) -> None:
    records = person_frame()
    rejects = pd.DataFrame(
        {"_source_key": ["p9"], "_source_version": ["v"], "reason_code": ["duplicate_record"], "reason": ["dup"]}
    )
    tombstones = pd.DataFrame({"_source_key": ["p8"], "_source_version": ["v"]})
    mapped = _Mapped(records, rejects, tombstones, rows_in=6)
    outcome = validate_mapped(
        mapped,
        mapping_name="public_security_persons",
        threshold=0.8,
        source_ref=BATCH,
        run_id="r",
        session=session,
        build_docs=False,
    )
    assert outcome.pulled == 5 and outcome.quarantined_count == 4 and len(outcome.accepted_df) == 1
    assert outcome.reasons["duplicate_record"] == 1
    keys = set(session.scalars(select(QuarantineRecord.source_key)))
    assert keys == {"p2", "p3", "p4", "p9"}
    # re-running the batch converges
    validate_mapped(
        mapped,
        mapping_name="public_security_persons",
        threshold=0.8,
        source_ref=BATCH,
        run_id="r",
        session=session,
        build_docs=False,
    )
    assert session.scalar(select(func.count()).select_from(QuarantineRecord)) == 4


def test_cli_quarantine_suites_purge(hub_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    with session_scope(get_engine(hub_db_url)) as s:
        validate_batch(
            person_frame(),
            "person",
            mapping_name="m",
            threshold=1.0,
            source_ref=BATCH,
            run_id="r",
            session=s,
            build_docs=False,
        )
    runner = CliRunner()
    out = runner.invoke(app, ["quarantine", "--department", "public_security", "--limit", "2", "--json"])
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.output.splitlines()]
    assert len(lines) == 2
    assert VALID_RID_2 not in out.output and "李四" not in out.output
    assert all(line["department"] == "public_security" for line in lines)
    table = runner.invoke(app, ["quarantine"])
    assert table.exit_code == 0 and "invalid_resident_id" in table.output and VALID_RID_2 not in table.output
    assert runner.invoke(app, ["quarantine", "--department", "tax", "--json"]).output == ""

    suites = runner.invoke(app, ["suites"])
    assert suites.exit_code == 0 and "unresolved_holder" in suites.output and "hub.property_right" in suites.output

    kept = runner.invoke(app, ["purge", "--days", "30"])
    assert kept.exit_code == 0 and json.loads(kept.output)["quarantine_rows"] == 0
    purged = runner.invoke(app, ["purge", "--days", "0"])
    assert json.loads(purged.output)["quarantine_rows"] == 3
