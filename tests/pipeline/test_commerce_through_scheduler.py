"""First slice, for real: commerce over ODBC through Airflow's scheduler, dag-processor and api-server.

The exchange DAG is triggered through Airflow's CLI; the push DAG must then run on its own,
woken by the Asset the publish task emitted. Airflow's database and the hub's are PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from hub.db import get_engine, session_scope
from hub.models import OutboxEvent, QuarantineRecord
from pipeline.factory import PUSH_DAG_ID, exchange_dag_id
from pipeline.summary import summarize
from rigs.airflow_runner import start_airflow
from tests.pipeline.conftest import conn_env, hub_env

pytestmark = [
    pytest.mark.airflow, pytest.mark.mariadb, pytest.mark.postgres, pytest.mark.odbc, pytest.mark.slow,
    pytest.mark.timeout(1200),
]  # fmt: skip

COMMERCE = exchange_dag_id("commerce_enterprises")


def _outbox_count() -> int:
    with session_scope(get_engine()) as s:
        return int(s.scalar(select(func.count(OutboxEvent.id))) or 0)


def test_commerce_runs_end_to_end_through_the_scheduler(
    tmp_path: Path, pg_hub_db_url: str, airflow_db_url: str, commerce_registry: Any
) -> None:
    from e_license_store.tables import LicenseIndexEntry

    env = {**hub_env(tmp_path / "home", pg_hub_db_url), **conn_env("commerce_registry", commerce_registry.connection)}
    with start_airflow(tmp_path / "airflow", sql_alchemy_conn=airflow_db_url, extra_env=env) as af:
        af.wait_for_dags([COMMERCE, PUSH_DAG_ID])

        # run 1: everything is new
        run1 = af.trigger(COMMERCE)
        assert af.wait_for_run(COMMERCE, run1, timeout=400) == "success", af.task_states(COMMERCE, run1)
        (first,) = summarize([run1])
        pulled = commerce_registry.count()
        assert first.department == "commerce"
        assert first.pulled == pulled
        assert first.accepted + first.quarantined == pulled  # reconciliation holds
        assert first.accepted > 0 and first.licenses_issued > 0
        with session_scope(get_engine()) as s:
            licences = s.scalar(select(func.count()).select_from(LicenseIndexEntry))
            quarantined = s.scalar(select(func.count(QuarantineRecord.id)).where(QuarantineRecord.run_id == run1))
        assert licences == first.licenses_issued
        assert quarantined == first.quarantined

        # the push DAG ran by itself, scheduled on the Asset the publish task updated
        pushes = af.wait_for_new_runs(PUSH_DAG_ID, after=0, count=1, timeout=300)
        assert pushes[0]["run_type"] == "asset_triggered"
        assert pushes[0]["state"] == "success"

        # run 2: one enterprise's licence is revoked at the source → exactly that licence changes
        row = next(r for r in commerce_registry.fetch() if r["uscc"] and r["status"] in ("存续", "在业"))
        now = dt.datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None) + dt.timedelta(seconds=1)
        assert commerce_registry.update_status(row["ent_id"], "吊销", now)
        events_before = _outbox_count()
        run2 = af.trigger(COMMERCE)
        assert af.wait_for_run(COMMERCE, run2, timeout=400) == "success", af.task_states(COMMERCE, run2)
        (second,) = summarize([run2])
        assert second.pulled >= 1
        assert second.licenses_changed == 1 and second.licenses_issued == 0
        assert _outbox_count() == events_before + 1

        # run 3: nothing changed → nothing happens
        run3 = af.trigger(COMMERCE)
        assert af.wait_for_run(COMMERCE, run3, timeout=400) == "success"
        (third,) = summarize([run3]) or [None]
        assert third is None or (third.licenses_issued, third.licenses_changed) == (0, 0)
        assert _outbox_count() == events_before + 1
