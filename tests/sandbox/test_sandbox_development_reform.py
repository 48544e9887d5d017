"""The development-and-reform commission's approval platform: its processing record ``tzxm.xm_bljl``
(SQLite embedded, PostgreSQL on the server) holds the steps its approval system decided, in its own
column names and status codes, and the hub's connector and mapping read them back over ODBC as the
hub's steps — every step, every time — while a status code the mapping does not know is refused."""

from __future__ import annotations

import datetime as dt
import doctest
import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from connectors.registry import make_connector
from hub.airflow_env import connection_uri_env
from mappings.engine import STEP_FEEDS_DIR, load_mapping
from pipeline.steps import source_block
from rigs.connections import odbc_connection
from rigs.testing import TempDatabase
from sandbox.approvals import behaviour, clock, history
from sandbox.approvals.behaviour import SHANGHAI, Dispatch, Profile
from sandbox.approvals.system import ApprovalSystem, Truth
from sandbox.approvals.tables import DEVELOPMENT_REFORM
from sandbox.development_reform import platform as platform_module
from sandbox.development_reform.platform import Platform

MAPPING = STEP_FEEDS_DIR / "development_reform.yaml"
DISPATCHED = dt.datetime(2026, 11, 2, 9, 15, tzinfo=SHANGHAI)
MATERIALS = (("M04", "节能审查意见"),)


def test_the_platform_and_the_approval_systems_doctests() -> None:
    for module in (platform_module, behaviour, clock, history):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def _read_back(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    """The platform's rows as the hub reads and maps them (its connector over ODBC, its mapping file)."""
    conn = odbc_connection(platform.odbc_connection_string, platform.dialect)
    monkeypatch.setenv(*connection_uri_env("development_reform_approvals", conn))
    mapping = load_mapping(MAPPING)
    connector = make_connector(source_block(mapping), name=mapping.name)
    frames = []
    for batch in connector.read("case_steps", None):
        mapped = mapping.apply(batch.table)
        assert mapped.reconciles and mapped.rejected == 0, mapped.rejects
        frames.append(mapped.records)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _plays_out(platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    platform.create()
    truth = Truth(tmp_path / "approvals.db")
    # one project approval asked to correct its energy review, one refused, one on time
    fates = {}
    for n, profile in enumerate((Profile(correction=1.0), Profile(correction=0.0, late=0.0, rejected=1.0), Profile())):
        system = ApprovalSystem("development_reform", platform.outlet, truth, seed=16, profile=profile)
        code = f"DR{n}"
        assert system.take(Dispatch(code, "development_reform", DISPATCHED.astimezone(dt.UTC), promised_days=10,
                                    item_code="XK00501000", materials=MATERIALS))  # fmt: skip
        system.tick(DISPATCHED + dt.timedelta(days=60))
        fates[code] = truth.fates()[(code, "development_reform")]
    assert fates["DR0"] == "correction" and fates["DR1"] == "rejected"
    want = truth.steps(department="development_reform")
    assert platform.count() == len(want) and {"correction_requested", "resumed", "rejected"} <= set(want["step"])

    # the department's own vocabulary in its table: status codes, local times without a zone
    engine = sa.create_engine(platform.sqlalchemy_url, poolclass=sa.pool.NullPool)
    table = sa.Table(DEVELOPMENT_REFORM.table, sa.MetaData(), autoload_with=engine,
                     schema=None if platform.dialect == "sqlite" else "tzxm")  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.jgm, table.c.hjxh)).mappings().all()
    assert {r["blzt"] for r in rows} <= set(DEVELOPMENT_REFORM.codes.values()) and "301" in {r["blzt"] for r in rows}
    assert all(r["blsj"].tzinfo is None for r in rows)
    asked = next(r for r in rows if r["blzt"] == "301")
    assert json.loads(asked["bzclqd"]) == [{"code": "M04", "name": "节能审查意见"}]

    got = _read_back(platform, monkeypatch)
    mapped = sorted(
        (r.code, r.department, int(r.seq), r.step, pd.Timestamp(r.occurred_at).tz_convert("UTC"), r.note)
        for r in got.itertuples()
    )
    expected = sorted(
        (r.code, r.department, int(r.seq), r.step, pd.Timestamp(r.occurred_at), r.note) for r in want.itertuples()
    )
    assert mapped == expected


def test_embedded_platform_is_read_back_as_decided(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    platform = Platform.embedded(tmp_path)
    assert platform.dialect == "sqlite" and platform.table == "xm_bljl"
    _plays_out(platform, tmp_path, monkeypatch)


@pytest.mark.postgres
def test_platform_on_postgres_in_its_own_schema(
    pg_database: TempDatabase, odbc_postgres: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = Platform(pg_database.sqlalchemy_url, pg_database.odbc_connection_string)
    assert platform.dialect == "postgresql" and platform.table == "tzxm.xm_bljl"
    _plays_out(platform, tmp_path, monkeypatch)
    engine = sa.create_engine(pg_database.sqlalchemy_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        kind = conn.scalar(sa.text("SELECT data_type FROM information_schema.columns WHERE table_schema = 'tzxm' "
                                   "AND table_name = 'xm_bljl' AND column_name = 'gxsj'"))  # fmt: skip
    engine.dispose()
    assert kind == "timestamp without time zone"


def test_an_unknown_status_code_is_refused_by_the_mapping() -> None:
    mapping = load_mapping(MAPPING)
    frame = pd.DataFrame({"lsh": [1, 2], "jgm": ["C1", "C1"], "hjxh": [1, 2], "blzt": ["101", "999"],
                          "blsj": ["2026-11-02T09:30:00+08:00"] * 2, "blyj": ["已受理", "?"], "bzclqd": [None, None],
                          "gxsj": ["2026-11-02T09:30:00+08:00"] * 2})  # fmt: skip
    mapped = mapping.apply(frame)
    assert mapped.mapped == 1 and mapped.rejected == 1 and list(mapped.records["step"]) == ["accepted"]
