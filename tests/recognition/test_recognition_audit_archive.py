"""Audit retention (at least six months) and the archive: files with a manifest, the chain still verifiable."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from hub.db import make_engine, session_scope
from hub.settings import get_settings
from recognition import audit, audit_archive
from recognition.audit_cli import app as audit_app
from recognition.config import RecognitionSettings
from recognition.tables import AuditArchive, AuditEntry

NOW = dt.datetime.now(dt.UTC)


def _records(n: int, age_days: float, start: int = 0) -> list[audit.AuditRecord]:
    at = NOW - dt.timedelta(days=age_days)
    return [
        audit.AuditRecord(consumer="portal", action="read", resource=f"GET /v1/licenses/L{i}", subject=f"L{i}",
                          outcome="ok", fields=["metadata"], purpose="service_portal", detail={"i": i},
                          at=at + dt.timedelta(seconds=i))
        for i in range(start, start + n)
    ]  # fmt: skip


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def _archive_keeps_chain_verifiable(engine: Engine, directory: Path) -> None:
    audit.write_now(engine, _records(25, age_days=200))
    audit.write_now(engine, _records(5, age_days=10, start=25))
    cutoff = audit_archive.retention_cutoff(190, NOW)
    report = audit_archive.archive(engine, directory, before=cutoff, chunk=10)
    assert report.entries == 25 and report.through_seq == 25
    assert report.files == [
        "audit-000000000001-000000000010.jsonl.gz", "audit-000000000011-000000000020.jsonl.gz",
        "audit-000000000021-000000000025.jsonl.gz",
    ]  # fmt: skip
    assert _count(engine) == 5  # only the recent entries stay in the table

    manifest = json.loads((directory / "audit-000000000021-000000000025.manifest.json").read_text())
    last_file = directory / "audit-000000000021-000000000025.jsonl.gz"
    with gzip.open(last_file, "rt", encoding="utf-8") as fh:
        lines = [json.loads(x) for x in fh]
    assert [e["seq"] for e in lines] == [21, 22, 23, 24, 25]
    assert manifest["first_seq"] == 21 and manifest["last_seq"] == 25 and manifest["entries"] == 5
    assert manifest["last_hash"] == lines[-1]["hash"] and manifest["file_sha256"] == audit_archive.file_sha256(
        last_file
    )

    report_v = audit.verify(engine, archive_dir=directory, deep=True)
    assert report_v.ok and report_v.archived == 25 and report_v.checked == 5, report_v.problems
    # the chain goes on: new entries, a second archive run with nothing due, still verifiable
    audit.write_now(engine, _records(3, age_days=0, start=30))
    assert audit_archive.archive(engine, directory, before=cutoff).entries == 0
    report_v = audit.verify(engine, archive_dir=directory)
    assert report_v.ok and report_v.head_seq == 33 and report_v.checked == 8, report_v.problems

    # the database still refuses to delete what no archive covers, and archive rows cannot be changed
    with pytest.raises(DBAPIError, match="append-only"), session_scope(engine) as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq == 26))
    with pytest.raises(DBAPIError, match="append-only"), session_scope(engine) as s:
        s.execute(update(AuditArchive).where(AuditArchive.first_seq == 21).values(last_hash="0" * 64))

    # an archive file altered after the fact (one entry's subject) is caught by its SHA-256
    altered = [dict(e, subject="L999") if e["seq"] == 23 else e for e in lines]
    with gzip.open(last_file, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in altered)
    report_v = audit.verify(engine, archive_dir=directory)
    assert not report_v.ok and any("audit-000000000021-000000000025.jsonl.gz altered" in p for p in report_v.problems)
    last_file.unlink()
    report_v = audit.verify(engine, archive_dir=directory)
    assert not report_v.ok and any("missing" in p for p in report_v.problems)


def test_audit_archive_keeps_chain_verifiable(hub_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(hub_db_url)
    _archive_keeps_chain_verifiable(engine, tmp_path / "archive")
    engine.dispose()


@pytest.mark.postgres
def test_audit_archive_keeps_chain_verifiable_postgres(pg_hub_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(pg_hub_db_url)
    _archive_keeps_chain_verifiable(engine, tmp_path / "archive")
    engine.dispose()


def test_archive_refuses_a_broken_chain_and_removes_nothing(hub_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(hub_db_url)
    audit.write_now(engine, _records(12, age_days=300))
    with engine.begin() as conn:  # someone with DDL rights edits an old entry
        conn.execute(text("DROP TRIGGER recognition_audit_no_update"))
        conn.execute(update(AuditEntry).where(AuditEntry.seq == 7).values(subject="L999"))
    directory = tmp_path / "archive"
    with pytest.raises(audit_archive.ArchiveRefused, match="entry 7"):
        audit_archive.archive(engine, directory, before=NOW - dt.timedelta(days=190), chunk=5)
    # the first chunk (1..5) chained and was archived; nothing from the broken one on was touched
    assert _count(engine) == 7
    assert sorted(p.name for p in directory.glob("audit-*.jsonl.gz")) == ["audit-000000000001-000000000005.jsonl.gz"]
    engine.dispose()


def test_archive_run_that_crashed_before_its_commit_is_redone(hub_db_url: str, tmp_path: Path) -> None:
    engine = make_engine(hub_db_url)
    audit.write_now(engine, _records(8, age_days=300))
    directory = tmp_path / "archive"
    directory.mkdir()
    # what a crash between writing the file and committing leaves: a file no archive row names
    (directory / "audit-000000000001-000000000006.jsonl.gz").write_bytes(b"half-written")
    (directory / "audit-000000000001-000000000006.manifest.json").write_text("{}")
    report = audit_archive.archive(engine, directory, before=NOW - dt.timedelta(days=190))
    assert report.files == ["audit-000000000001-000000000008.jsonl.gz"]
    assert sorted(p.name for p in directory.iterdir() if not p.name.startswith(".")) == [
        "audit-000000000001-000000000008.jsonl.gz", "audit-000000000001-000000000008.manifest.json"]  # fmt: skip
    assert audit.verify(engine, archive_dir=directory, deep=True).ok
    engine.dispose()


def test_audit_retention_below_six_months_is_refused(hub_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="six months"):
        RecognitionSettings(audit_retention_days=182)
    assert RecognitionSettings().audit_retention_days == 190
    with pytest.raises(audit_archive.ArchiveRefused):
        audit_archive.retention_cutoff(100)
    runner = CliRunner()
    monkeypatch.setenv("HUB_AUDIT_RETENTION_DAYS", "100")
    res = runner.invoke(audit_app, ["archive"])
    assert res.exit_code == 2 and "six months" in res.output
    monkeypatch.setenv("HUB_AUDIT_RETENTION_DAYS", "190")
    recent = (NOW - dt.timedelta(days=100)).date().isoformat()
    res = runner.invoke(audit_app, ["archive", "--before", recent])
    assert res.exit_code == 2 and "inside the retention period" in res.output


def test_audit_cli_archive_and_verify(hub_db_url: str) -> None:
    engine = make_engine(hub_db_url)
    audit.write_now(engine, _records(4, age_days=400))
    audit.write_now(engine, _records(3, age_days=250, start=4))
    runner = CliRunner()
    before = (NOW - dt.timedelta(days=300)).date().isoformat()
    res = runner.invoke(audit_app, ["archive", "--before", before])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["entries"] == 4
    assert (get_settings().home / "archive" / "audit" / "audit-000000000001-000000000004.jsonl.gz").is_file()
    res = runner.invoke(audit_app, ["verify", "--deep"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) | {"head_hash": None} == {
        "ok": True, "entries": 3, "archived": 4, "head_seq": 7, "head_hash": None, "problems": []}  # fmt: skip
    engine.dispose()


def test_housekeeping_archives_entries_past_retention(hub_db_url: str) -> None:
    from pipeline import housekeeping

    engine = make_engine(hub_db_url)
    audit.write_now(engine, _records(6, age_days=191))
    audit.write_now(engine, _records(2, age_days=189, start=6))
    out = housekeeping.archive_audit("run-1")
    assert out["entries"] == 6 and out["through_seq"] == 6
    assert _count(engine) == 2 and audit.verify(engine).ok
    engine.dispose()
