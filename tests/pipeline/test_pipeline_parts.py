"""The pipeline's parts without Airflow running: staging, Connections, licence drafts, ledger, DAG shapes."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from pipeline import staging
from rigs.connections import odbc_connection, parse_odbc, state_connections
from rigs.main_job import ordered


# -- staging --------------------------------------------------------------------------------
def _table(n: int = 3) -> pa.Table:
    return pa.table({"_source_key": [str(i) for i in range(n)], "name": ["张三"] * n})


def test_file_stager_round_trip_and_private_files(tmp_path: Path) -> None:
    stager = staging.FileStager(tmp_path / "staging")
    ref = stager.stage("commerce/enterprises/batch-1.parquet", _table())
    assert ref.startswith("file://")
    assert stager.read(ref).num_rows == 3
    assert stager.list("commerce", "enterprises") == [ref]
    path = Path(ref.removeprefix("file://"))
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # staged personal data: owner only
    with pytest.raises(ValueError, match="outside the staging area"):
        stager.read(f"file://{tmp_path / 'elsewhere.parquet'}")


def test_purge_removes_only_objects_past_retention(tmp_path: Path) -> None:
    stager = staging.FileStager(tmp_path / "staging")
    old = stager.stage("a/b/old.parquet", _table())
    new = stager.stage("a/b/new.parquet", _table())
    past = (dt.datetime.now() - dt.timedelta(days=40)).timestamp()
    os.utime(old.removeprefix("file://"), (past, past))
    removed = staging.purge_older_than(stager, dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    assert removed == 1
    assert stager.list("a", "b") == [new]


@pytest.fixture()
def moto_s3() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    from rigs.airflow_runner import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


def test_minio_stager_speaks_s3(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_STORE_ACCESS_KEY", "test")
    monkeypatch.setenv("HUB_STORE_SECRET_KEY", "test-secret")
    stager = staging.open_stager(f"minio://{moto_s3}/hub-staging/pipeline")
    assert isinstance(stager, staging.MinioStager)
    ref = stager.stage("tax/taxpayers/batch-1.parquet", _table(5))
    assert ref == f"minio://{moto_s3}/hub-staging/pipeline/tax/taxpayers/batch-1.parquet"
    assert stager.read(ref).num_rows == 5
    assert stager.list("tax", "taxpayers") == [ref]
    assert staging.purge_older_than(stager, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)) == 1
    assert stager.list("tax", "taxpayers") == []


def test_frames_with_mixed_objects_stage(tmp_path: Path) -> None:
    stager = staging.FileStager(tmp_path)
    df = pd.DataFrame({"owners": [[{"name": "李四"}], None], "odd": [1, "x"]})
    back = staging.read_frame(stager, staging.stage_frame(stager, "x/y/z.parquet", df))
    assert list(back["odd"]) == ["1", "x"]
    assert back["owners"][0][0]["name"] == "李四"


# -- Connections ------------------------------------------------------------------------------
def test_odbc_connection_goes_through_a_dsn_and_keeps_the_dialect() -> None:
    conn = odbc_connection(
        "DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=3306;DATABASE=c;UID=root;PWD=;CHARSET=utf8mb4;", "mariadb"
    )
    assert conn == {
        "conn_type": "odbc",
        "host": "127.0.0.1",
        "port": 3306,
        "schema": "c",
        "login": "root",
        "extra": {"dsn": "hub_commerce_mariadb", "dialect": "mariadb", "CHARSET": "utf8mb4"},
    }
    dsns = (Path(__file__).parents[2] / "etc" / "odbc" / "odbc.ini").read_text()
    assert "[hub_commerce_mariadb]" in dsns and "[hub_sqlite3]" in dsns


def test_state_connections_cover_every_mapping(tmp_path: Path) -> None:
    import yaml

    state = {
        "tax": {"wsdl_url": "http://127.0.0.1:8801/tax?wsdl", "port": 8801, "username": "hub"},
        "public_security": {"sqlalchemy_url": f"sqlite:///{tmp_path / 'ps.db'}", "table": "person_registry"},
        "commerce": {"odbc_connection_string": f"DRIVER={{SQLite3}};Database={tmp_path / 'c.db'};"},
        "land": {"outbox_dir": str(tmp_path / "outbox")},
        "social_insurance": {"sqlalchemy_url": f"sqlite:///{tmp_path / 'si.db'}", "table": "insured_person"},
    }
    conns = state_connections(state, "pw")
    files = (Path(__file__).parents[2] / "mappings").glob("*.yaml")
    named = {yaml.safe_load(p.read_text())["source"]["conn_id"] for p in files}
    assert named <= set(conns)
    assert conns["population_registry"]["extra"]["dialect"] == "sqlite"
    assert conns["commerce_registry"]["schema"] == str(tmp_path / "c.db")
    assert conns["social_insurance_db"]["extra"]["dialect"] == "sqlite"
    assert conns["tax_soap"]["password"] == "pw"
    assert parse_odbc("DRIVER={SQLite3};Database=/x;") == {"DRIVER": "SQLite3", "DATABASE": "/x"}


def test_registries_of_record_run_first() -> None:
    assert ordered(["land_x", "tax_z", "public_security_persons", "commerce_y"]) == [
        ["public_security_persons"],
        ["commerce_y"],
        ["land_x", "tax_z"],
    ]
    assert ordered(["land_x", "commerce_y"]) == [["commerce_y"], ["land_x"]]


# -- licence drafts from mapped rows ----------------------------------------------------------
def _lic(**kw: Any) -> SimpleNamespace:
    base = dict(type_code="1101", number="uscc", holder_code="uscc", holder_name="name", holder_kind="enterprise",
                issue_date="license_issue_date", valid_until=None, status="status", issuer_code=None,
                when={"field": "uscc", "not_null": True}, surface={"enterprise_name": "name"})  # fmt: skip
    base.update(kw)
    return SimpleNamespace(**base)


def test_drafts_follow_the_mapping_and_prefer_the_resolved_holder() -> None:
    from pipeline.publish import drafts

    mapping = SimpleNamespace(licenses=(_lic(holder_code="taxpayer_code", number="taxpayer_code"),), name="m")
    # a valid old taxpayer id (county + organisation code MA2XXXXX-0)
    row = {"taxpayer_code": "330322MA2XXXXX0", "canonical_code": "91330322MA2XXXXX1X", "name": "温州某公司",
           "license_issue_date": pd.Timestamp("2020-01-02"), "status": "active", "region_code": "330322",
           "uscc": "x"}  # fmt: skip
    ((draft, suffix, status),) = list(drafts(row, mapping))
    assert draft.holder_code == "91330322MA2XXXXX1X"  # the identity step's USCC, not the old id
    assert draft.license_number == "330322MA2XXXXX0"  # the number the department issued: a valid code
    assert draft.issue_date == dt.date(2020, 1, 2)
    # no issuer in the source: the authority the licence catalogue names for the type, not the region
    assert draft.issuer_code == "113303220025678958" and suffix == "" and status == "active"
    assert draft.surface == {"enterprise_name": "温州某公司"}
    # a damaged code (no valid reading: an old id whose organisation code's check is wrong, a USCC one
    # character off) numbers nothing: the licence carries the code of the identity found
    for damaged in ("330322123456789", "91330322MA2XXXXX1Y"):
        ((draft, _, _),) = list(drafts({**row, "taxpayer_code": damaged}, mapping))
        assert (draft.license_number, draft.holder_code) == ("91330322MA2XXXXX1X", "91330322MA2XXXXX1X")
    # placed nowhere yet (in review): held and numbered as written until a steward's decision moves it
    ((draft, _, _),) = list(drafts({**row, "taxpayer_code": "91330322MA2XXXXX1Y", "canonical_code": None}, mapping))
    assert (draft.license_number, draft.holder_code) == ("91330322MA2XXXXX1Y", "91330322MA2XXXXX1Y")


def test_drafts_skip_rows_the_when_clause_excludes_and_fan_out_owners() -> None:
    from pipeline.publish import drafts

    skip = SimpleNamespace(licenses=(_lic(),), name="m")
    assert list(drafts({"uscc": None, "name": "x", "license_issue_date": "2020-01-01"}, skip)) == []
    owners = SimpleNamespace(
        licenses=(
            _lic(
                type_code="2101",
                number="certificate_no",
                holder_code="owners[].holder_code",
                holder_name="owners[].name",
                holder_kind="owners[].holder_kind",
                when=None,
                issue_date="registration_date",
                surface={"unit_no": "unit_no"},
            ),
        ),
        name="land",
    )
    row = {"certificate_no": "浙(2016)第1号", "registration_date": "2016-05-04", "unit_no": "U1", "owners": [
        {"holder_code": "11010519491231002X", "name": "张三", "holder_kind": "person"},
        {"holder_code": "91330322MA2XXXXX1X", "name": "某公司", "holder_kind": "enterprise"}]}  # fmt: skip
    out = list(drafts(row, owners))
    assert [d.holder_code for d, _, _ in out] == ["11010519491231002X", "91330322MA2XXXXX1X"]
    assert [s for _, s, _ in out] == ["#0", "#1"]
    assert {d.issuer_code for d, _, _ in out} == {"113303220025679671"}  # the land registration centre, not 000000
    # owners named by old codes hold under the canonical codes the identity step resolved
    row["owners"] = [
        {
            "holder_code": "110105491231002",
            "name": "张三",
            "holder_kind": "person",
            "resolved_id": "11010519491231002X",
        },
        {
            "holder_code": "MA2XXXXX1",
            "name": "某公司",
            "holder_kind": "enterprise",
            "resolved_id": "91330322MA2XXXXX1X",
        },
        {"holder_code": "330322ABCDEFGHI", "name": "未知", "holder_kind": "enterprise", "resolved_id": None},
    ]
    out = list(drafts(row, owners))
    assert [d.holder_code for d, _, _ in out] == ["11010519491231002X", "91330322MA2XXXXX1X", "330322ABCDEFGHI"]


# -- ledger, summary, reconciliation ---------------------------------------------------------
def test_ledger_rows_replace_on_retry_and_sum_per_department(hub_db_url: str) -> None:
    from pipeline.steps import Counts, record_step
    from pipeline.summary import summarize

    record_step("r1", "commerce_enterprises", "commerce", "extract", Counts(pulled=10, quarantined=1), 1.0)
    record_step("r1", "commerce_enterprises", "commerce", "validate", Counts(pulled=9, accepted=5, quarantined=4), 1)
    # a retried validate task rewrites its row instead of adding to it
    record_step("r1", "commerce_enterprises", "commerce", "validate", Counts(pulled=9, accepted=7, quarantined=2), 1)
    record_step("r1", "commerce_enterprises", "commerce", "publish", Counts(licenses_issued=6, licenses_changed=1), 1)
    (row,) = summarize(["r1"])
    assert (row.pulled, row.accepted, row.quarantined) == (10, 7, 3)
    assert (row.licenses_issued, row.licenses_changed) == (6, 1)
    assert row.reconciled


def test_housekeeping_reconciliation_catches_a_ledger_the_quarantine_does_not_back(hub_db_url: str) -> None:
    from hub.db import get_engine, session_scope
    from hub.models import QuarantineRecord
    from pipeline.housekeeping import ReconciliationFailed, reconcile
    from pipeline.steps import Counts, record_step

    record_step("r2", "tax_taxpayers", "tax", "validate", Counts(pulled=3, accepted=2, quarantined=1), 1)
    with pytest.raises(ReconciliationFailed, match="table holds 0"):
        reconcile("hk")
    with session_scope(get_engine()) as s:
        s.add(QuarantineRecord(source="tax", dataset="taxpayers", reason_code="invalid_uscc", reason="x", run_id="r2"))
    assert reconcile("hk") == {"runs_checked": 1}


# -- DAG shapes ---------------------------------------------------------------------------------
@pytest.fixture()
def dags(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("HUB_DAG_SCHEDULES", "off")
    from pipeline.factory import build_all

    return build_all()


def test_one_exchange_dag_per_mapping_file_with_pools_retries_and_docs(dags: dict[str, Any]) -> None:
    from mappings.engine import STEP_FEEDS_DIR, load_all
    from pipeline.openlineage import source_asset

    mappings = load_all()
    feeds = load_all(STEP_FEEDS_DIR)
    fixed = {"hub_push", "hub_housekeeping", "hub_supervision"}
    assert {f"hub_exchange_{n}" for n in (*mappings, *feeds)} | fixed == set(dags)
    for name, feed in feeds.items():  # a department's case steps end in the step log
        dag = dags[f"hub_exchange_{name}"]
        assert [t.task_id for t in dag.topological_sort()] == ["extract", "map", "validate", "take_steps"]
        assert all(t.pool == feed.spec.pool and t.retries >= 1 and t.doc_md for t in dag.tasks)
        assert {a.uri for a in dag.get_task("take_steps").outlets} == {f"hub://published/{feed.department}/case_steps"}
    for name, mapping in mappings.items():
        dag = dags[f"hub_exchange_{name}"]
        assert [t.task_id for t in dag.topological_sort()] == ["extract", "map", "validate", "resolve", "publish"]
        assert dag.schedule is None  # HUB_DAG_SCHEDULES=off: triggered by the demo and tests
        assert mapping.department in dag.tags and dag.doc_md
        for t in dag.tasks:
            assert t.pool == mapping.spec.pool
            assert t.retries >= 1 and t.retry_exponential_backoff
            assert t.execution_timeout is not None and t.doc_md
        # the Asset that wakes the push DAG, beside the licence store the step writes (OpenLineage)
        assert {a.uri for a in dag.get_task("publish").outlets} == {
            f"hub://published/{mapping.department}/{mapping.dataset}", "hub://licences/store"}  # fmt: skip
        assert [a.uri for a in dag.get_task("extract").inlets] == [source_asset(mapping).uri]


def test_push_dag_wakes_on_any_published_asset(dags: dict[str, Any]) -> None:
    push = dags["hub_push"]
    outlets = {a.uri for dag in dags.values() for t in dag.tasks for a in t.outlets}
    # the outlets declared for lineage (staging, canonical, quarantine, identity, licence store) wake nothing
    waking = {u for u in outlets if u.startswith("hub://published/") or u == "hub://supervision/lights"}
    watched = {a.uri for a in push.timetable.asset_condition.objects}  # AssetAny: any one of them wakes it
    assert waking and waking == watched
    assert len(waking) == len(dags) - 2 and "hub://licences/store" in outlets - watched
    assert dags["hub_housekeeping"].task_ids == [
        "relink_legacy_holders",
        "expire_licenses",
        "redeliver",
        "archive_outbox",
        "reconcile",
        "purge_personal_data",
        "archive_audit_log",
        "train_matching_model",
    ]
    # the model is retrained after the day's re-linking (the links it made are labels too)
    assert dags["hub_housekeeping"].get_task("train_matching_model").upstream_task_ids == {"relink_legacy_holders"}
    supervision = dags["hub_supervision"]
    assert supervision.task_ids == ["light_cases"] and supervision.schedule is None  # HUB_DAG_SCHEDULES=off
    assert [a.uri for a in supervision.get_task("light_cases").outlets] == ["hub://supervision/lights"]


def test_an_interrupted_session_leaves_no_runs_to_resume(tmp_path: Path) -> None:
    import sqlite3

    from rigs.airflow_runner import fail_leftover_runs

    db = tmp_path / "airflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE dag_run (run_id TEXT, state TEXT)")
        conn.execute("CREATE TABLE task_instance (task_id TEXT, state TEXT)")
        conn.executemany("INSERT INTO dag_run VALUES (?, ?)", [("a", "running"), ("b", "queued"), ("c", "success")])
        conn.executemany("INSERT INTO task_instance VALUES (?, ?)", [("x", "up_for_retry"), ("y", "success")])
    assert fail_leftover_runs(f"sqlite:///{db}") == 2
    with sqlite3.connect(db) as conn:
        assert dict(conn.execute("SELECT run_id, state FROM dag_run")) == {"a": "failed", "b": "failed", "c": "success"}
        assert dict(conn.execute("SELECT task_id, state FROM task_instance")) == {"x": "failed", "y": "success"}
