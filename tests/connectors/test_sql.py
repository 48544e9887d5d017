"""SQL connector details: dialect SQL snapshots, look-back, time zones, push, error mapping."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from connectors.errors import ConnectorAuthError, ConnectorError, ConnectorTimeout, ConnectorUnavailable
from connectors.registry import make_connector
from connectors.sql import classify_db_error
from connectors.sql_dialect import (
    TableRef,
    compile_sql,
    get_dialect,
    incremental_select,
    keys_select,
    missing_watermark_select,
    upsert_sql,
)
from connectors.staging import LocalStager
from connectors.sync import run_sync
from tests.connectors.conftest import SqlHarness

SNAPSHOTS = Path(__file__).parent / "snapshots"
PERSONS = TableRef(
    name="person_registry",
    schema="population",
    key="person_no",
    watermark="updated_at",
    columns=("person_no", "resident_id", "name", "updated_at"),
)
HWM = dt.datetime(2026, 11, 1, 9, 0, 0, 123456)


def _statements(dialect_name: str, driver: str) -> str:
    d = get_dialect(dialect_name, driver=driver)
    parts = []
    for label, stmt in [
        ("first read", incremental_select(PERSONS, lower=None, hwm=None, hwm_key=None, lookback=False)),
        ("after (hwm, key)", incremental_select(PERSONS, lower=None, hwm=HWM, hwm_key=42, lookback=False)),
        ("look-back", incremental_select(PERSONS, lower=HWM, hwm=HWM, hwm_key=42, lookback=True)),
        ("preview", incremental_select(PERSONS, lower=None, hwm=None, hwm_key=None, lookback=False, limit=10)),
        ("keys", keys_select(PERSONS)),
        ("missing watermark", missing_watermark_select(PERSONS)),
    ]:
        c = compile_sql(stmt, d)
        parts.append(f"-- {label}\n{c.sql}\n-- params: {c.params!r}\n")
    up = upsert_sql(PERSONS, list(PERSONS.columns), dialect_name, d)
    parts.append(f"-- upsert\n{up.sql}\n-- binds: {list(up.bind_names)!r}\n")
    return "\n".join(parts)


@pytest.mark.parametrize(("dialect_name", "driver"), [("oracle", "oracle"), ("mssql", "odbc")])
def test_compiled_sql_matches_snapshot(dialect_name: str, driver: str) -> None:
    text = _statements(dialect_name, driver)
    path = SNAPSHOTS / f"sql_{dialect_name}.sql"
    if os.environ.get("HUB_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), "compiled SQL changed; review, rerun with HUB_UPDATE_SNAPSHOTS=1"


@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql", "sqlite", "oracle", "mssql"])
def test_values_are_always_bind_parameters(dialect_name: str) -> None:
    evil = "1; DROP TABLE x --"
    d = get_dialect(dialect_name, driver="oracle" if dialect_name == "oracle" else "odbc")
    c = compile_sql(incremental_select(PERSONS, lower=None, hwm=HWM, hwm_key=evil, lookback=False), d)
    assert evil not in c.sql
    assert evil in (list(c.params.values()) if isinstance(c.params, dict) else list(c.params))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("28000", "[28000] Access denied for user 'root'"), ConnectorAuthError),
        (("08001", 'FATAL:  role "x" does not exist'), ConnectorAuthError),
        (("08001", "connection to server failed: Connection refused"), ConnectorUnavailable),
        (("HYT00", "[HYT00] Query timeout expired"), ConnectorTimeout),
        (("57P01", "terminating connection due to administrator command"), ConnectorUnavailable),
        (("42P01", 'relation "population.nope" does not exist'), ConnectorError),
    ],
)
def test_driver_errors_map_to_typed_errors(args: tuple[str, str], expected: type[Exception]) -> None:
    err = classify_db_error(Exception(*args), where="source=x")
    assert type(err) is expected
    assert "what to do:" in str(err) and "source=x" in str(err)


@pytest.mark.postgres
@pytest.mark.odbc
def test_without_lookback_a_late_commit_is_missed(pg_harness: SqlHarness, tmp_path: Path) -> None:
    """Why the look-back window exists: the keyset alone skips a row committed late."""
    from connectors.registry import make_connector

    block = pg_harness.block(f"{pg_harness.name}_ok")
    block["datasets"][pg_harness.dataset]["lookback_seconds"] = 0
    stager = LocalStager(tmp_path / "st")

    def sync() -> list[str]:
        conn = make_connector(block, name=pg_harness.name)
        res = run_sync(conn, pg_harness.dataset, source=pg_harness.name, stager=stager)
        import pyarrow.parquet as pq

        return [k for ref in res.staged_refs for k in pq.read_table(ref)["_source_key"].to_pylist()]

    sync()
    with pg_harness.late_commit() as late_key:
        sync()
    assert late_key not in sync()


@pytest.mark.postgres
@pytest.mark.odbc
def test_naive_local_times_become_shanghai_versions(pg_harness: SqlHarness) -> None:
    batch = next(iter(pg_harness.connector().read(pg_harness.dataset, None)))
    first = batch.table.to_pylist()[0]
    assert first["_source_version"] == "2026-11-01T09:00:01.000001+0800"
    hwm = dt.datetime.fromisoformat(batch.checkpoint["cursor"]["hwm"])
    assert hwm.utcoffset() == dt.timedelta(hours=8)
    assert hwm.astimezone(dt.UTC).hour == 1  # 09:00 in Shanghai is 01:00 UTC


@pytest.mark.odbc
@pytest.mark.parametrize("harness_name", ["pg_harness", "mariadb_harness"])
@pytest.mark.parametrize("fetch", ["bulk", "rows"])
def test_preview_limit(harness_name: str, fetch: str, request: pytest.FixtureRequest) -> None:
    h: SqlHarness = request.getfixturevalue(harness_name)
    block = {**h.block(f"{h.name}_ok"), "fetch": fetch}
    batches = list(make_connector(block, name=h.name).read(h.dataset, None, limit=37))  # type: ignore[attr-defined]
    assert sum(b.table.num_rows for b in batches) == 37  # more than one 25-row batch, cut inside the second
    keys = [k for b in batches for k in b.table[h.key].to_pylist()]
    assert keys == sorted(keys) and len(set(keys)) == 37


def _push_roundtrip(h: SqlHarness) -> list[tuple[object, ...]]:
    conn = h.connector()
    key = h.key
    cols = ["status"]
    base = {key: 9001, "updated_at": dt.datetime(2026, 11, 2, 8, 0, 0)}
    first = conn.write(h.dataset, [{**base, **dict.fromkeys(cols, "alive")}, {**base, key: 9002, "status": "alive"}])
    second = conn.write(h.dataset, [{**base, "status": "moved"}, {**base, key: 9003, "status": "alive"}])
    assert (first.written, second.written) == (2, 2)
    return h._sql(f"SELECT {key}, status FROM {h.qualified} WHERE {key} > 9000 ORDER BY {key}")


@pytest.mark.postgres
@pytest.mark.odbc
def test_push_upserts_through_odbc_postgres(pg_harness: SqlHarness) -> None:
    assert _push_roundtrip(pg_harness) == [(9001, "moved"), (9002, "alive"), (9003, "alive")]


@pytest.mark.mariadb
@pytest.mark.odbc
def test_push_upserts_through_odbc_mariadb(mariadb_harness: SqlHarness) -> None:
    assert [tuple(r) for r in _push_roundtrip(mariadb_harness)] == [(9001, "moved"), (9002, "alive"), (9003, "alive")]


def _live_block(dsn_env: str, dialect: str, driver: str) -> dict[str, object]:
    return {
        "protocol": "sql",
        "conn_id": "live_test",
        "dialect": dialect,
        "driver": driver,
        "batch_size": 100,
        "odbc_driver": "FreeTDS" if dialect == "mssql" else None,
        "datasets": {
            "probe": {
                "table": os.environ.get(f"{dsn_env}_TABLE", "person_registry"),
                "key": os.environ.get(f"{dsn_env}_KEY", "person_no"),
                "watermark": os.environ.get(f"{dsn_env}_WATERMARK", "updated_at"),
            }
        },
    }


def _assert_reads_the_probe(conn: Any) -> None:
    """The live probe table (it has rows) is read whole: every row keyed once, with a version, and a position saved."""
    batches = list(conn.read("probe", None))
    keys = [k for b in batches for k in b.table["_source_key"].to_pylist()]
    versions = [v for b in batches for v in b.table["_source_version"].to_pylist()]
    assert keys, "the probe table gave no rows: point HUB_TEST_*_TABLE at a table with data"
    assert all(keys) and all(versions), "a row came without its key or version"
    assert len(keys) == len(set(keys)), "a row was read twice"
    assert batches[-1].checkpoint.get("cursor"), "the read saved no position to resume from"


@pytest.mark.oracle
@pytest.mark.skipif(not os.environ.get("HUB_TEST_ORACLE_DSN"), reason="HUB_TEST_ORACLE_DSN not set (no Oracle here)")
def test_live_oracle_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """HUB_TEST_ORACLE_DSN is an Airflow Connection URI, e.g. oracle://user:pw@host:1521/?service_name=XE."""
    from connectors.registry import make_connector

    monkeypatch.setenv("AIRFLOW_CONN_LIVE_TEST", os.environ["HUB_TEST_ORACLE_DSN"])
    block = {k: v for k, v in _live_block("HUB_TEST_ORACLE", "oracle", "oracle").items() if v is not None}
    conn = make_connector(block, name="live_oracle")
    assert conn.check().ok
    _assert_reads_the_probe(conn)


@pytest.mark.mssql
@pytest.mark.skipif(not os.environ.get("HUB_TEST_MSSQL_DSN"), reason="HUB_TEST_MSSQL_DSN not set (no SQL Server here)")
def test_live_mssql_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """HUB_TEST_MSSQL_DSN is an Airflow Connection (odbc) whose extra carries TDS_Version=7.4."""
    from connectors.registry import make_connector

    monkeypatch.setenv("AIRFLOW_CONN_LIVE_TEST", os.environ["HUB_TEST_MSSQL_DSN"])
    conn = make_connector(_live_block("HUB_TEST_MSSQL", "mssql", "odbc"), name="live_mssql")
    assert conn.check().ok
    _assert_reads_the_probe(conn)


@pytest.mark.mariadb
@pytest.mark.odbc
def test_mariadb_odbc_keeps_every_cjk_character(mariadb_harness: SqlHarness) -> None:
    """MariaDB's ODBC driver with pyodbc's default decoding drops trailing CJK characters."""
    names = ["赵进嘉", "欧阳明月科技有限公司"]
    for name in names:
        mariadb_harness._sql(
            f"UPDATE {mariadb_harness.qualified} SET ent_name = %s WHERE ent_id = "
            f"(SELECT ent_id FROM (SELECT MIN(ent_id) AS ent_id FROM {mariadb_harness.qualified} "
            f"WHERE ent_name NOT IN ('赵进嘉', '欧阳明月科技有限公司')) AS x)",
            (name,),
        )
    rows = [r for b in mariadb_harness.connector().read(mariadb_harness.dataset, None) for r in b.table.to_pylist()]
    got = {r["ent_name"] for r in rows}
    assert set(names) <= got


def _read_all(h: SqlHarness, fetch: str) -> pa.Table:
    block = h.block(f"{h.name}_ok")
    block["fetch"] = fetch
    conn = make_connector(block, name=h.name)
    assert conn.fetch == fetch
    batches = list(conn.read(h.dataset, None))  # type: ignore[attr-defined]
    # the last batch holds the key reconciliation's tombstones (none here) and no data columns
    return pa.concat_tables([b.table for b in batches if h.key in b.table.column_names])


@pytest.mark.odbc
@pytest.mark.parametrize("harness_name", ["pg_harness", "mariadb_harness"])
def test_bulk_fetch_reads_exactly_what_row_fetch_reads(harness_name: str, request: pytest.FixtureRequest) -> None:
    """Column-wise bulk fetch (the default on PostgreSQL and MariaDB) and pyodbc's fetchmany agree
    value for value and type for type, CJK text, NULLs, dates, decimals and timestamps included."""
    h: SqlHarness = request.getfixturevalue(harness_name)
    h.add_bad_record()  # a NULL watermark: neither path may read it as a change
    default = make_connector(h.block(f"{h.name}_ok"), name=h.name)
    assert default.fetch == "bulk"
    bulk, rows = _read_all(h, "bulk"), _read_all(h, "rows")
    assert bulk.num_rows == rows.num_rows == len(h.current_keys())
    assert bulk.schema.names == rows.schema.names
    for name in rows.schema.names:
        if pa.types.is_decimal(rows[name].type):
            # row-wise, Arrow infers a decimal's precision from the values it sees; the bulk path
            # takes the declared column type, the same in every batch
            assert bulk[name].type == pa.decimal128(18, 4), bulk[name].type
            continue
        assert bulk[name].type == rows[name].type, (name, bulk[name].type, rows[name].type)
    assert bulk.to_pylist() == rows.to_pylist()
    assert any("洞头" in str(v) or "张" in str(v) for v in bulk.column(2).to_pylist())


def test_bulk_fetch_sends_parameters_as_text() -> None:
    from connectors.odbc_bulk import text_parameter

    assert text_parameter(HWM) == "2026-11-01 09:00:00.123456"
    assert text_parameter(dt.date(2026, 1, 2)) == "2026-01-02"
    with pytest.raises(TypeError):
        text_parameter(object())


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin", "America/St_Johns", "UTC"])
def test_source_versions_equal_arrow_strftime(unit: str, zone: str) -> None:
    """The fast source-version text equals Arrow's zone-aware strftime, summer time and NULLs included."""
    import pyarrow.compute as pc
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from connectors.sql import source_versions

    moments = st.datetimes(min_value=dt.datetime(1980, 1, 1), max_value=dt.datetime(2040, 1, 1))

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.one_of(st.none(), moments), max_size=40))
    def check(values: list[dt.datetime | None]) -> None:
        naive = pa.array(values, pa.timestamp(unit))
        aware = pc.assume_timezone(naive, zone, ambiguous="earliest", nonexistent="earliest")
        expected = pc.strftime(aware, format="%Y-%m-%dT%H:%M:%S%z")
        assert source_versions(aware, naive).to_pylist() == expected.to_pylist()

    check()
    # Shanghai's summer time of 1988 inside one batch: two offsets
    naive = pa.array([dt.datetime(1988, 1, 1), dt.datetime(1988, 7, 1)], pa.timestamp("us"))
    aware = pc.assume_timezone(naive, "Asia/Shanghai")
    assert [v[-5:] for v in source_versions(aware, naive).to_pylist()] == ["+0800", "+0900"]


@pytest.mark.odbc
def test_deletes_are_reconciled_on_every_read_without_an_option(mariadb_harness: SqlHarness, tmp_path: Path) -> None:
    """No ``reconcile_every_seconds``: every read lists the keys, so a deleted row is a tombstone
    on the very next read (what the shipped SQL feeds rely on: ``pipeline.deletions``)."""
    import pyarrow.parquet as pq

    from connectors.registry import make_connector

    block = mariadb_harness.block(f"{mariadb_harness.name}_ok")
    del block["datasets"][mariadb_harness.dataset]["reconcile_every_seconds"]
    stager = LocalStager(tmp_path / "st")

    def sync() -> tuple[int, list[str]]:
        conn = make_connector(block, name=mariadb_harness.name, ledger_root=tmp_path / "keys")
        res = run_sync(conn, mariadb_harness.dataset, source=mariadb_harness.name, stager=stager)
        deleted = [
            k
            for ref in res.staged_refs
            for k, d in zip(*pq.read_table(ref, columns=["_source_key", "_deleted"]).to_pydict().values(), strict=True)
            if d
        ]
        return res.tombstones, deleted

    assert sync() == (0, [])  # the first read learns the keys
    key = sorted(mariadb_harness.current_keys())[3]
    mariadb_harness.delete_record(key)
    assert sync() == (1, [key])
    assert sync() == (0, [])  # told once


def test_every_shipped_sql_feed_reconciles_deletions_on_each_run() -> None:
    from mappings.engine import load_all

    sql = {name: m for name, m in load_all().items() if m.spec.source.get("protocol") == "sql"}
    assert {"commerce_enterprises", "public_security_persons", "social_insurance_insured_persons"} <= set(sql)
    for name, mapping in sql.items():
        for dataset, spec in (mapping.spec.source.get("datasets") or {}).items():
            assert not spec.get("reconcile_every_seconds"), f"{name}/{dataset} spaces its key reconciliation out"
