"""The scaled mode for real: exchange DAGs on CeleryExecutor with two workers (issue 19, first slice).

Airflow's api-server, scheduler, dag-processor, triggerer and two Celery workers run as processes
(:func:`rigs.scaled.start_scaled`) against a PostgreSQL metadata database and a Redis database of the
test's own; the hub's state is on PostgreSQL too. The commerce and population feeds run against their
sandboxes, at once (one task slot per worker); the task instances say which worker ran each task, and
both workers must have worked. Everything is torn down afterwards: the process groups are gone, the
databases dropped (fixtures), the broker keys deleted.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from minio import Minio

from hub.airflow_env import VENV_BIN
from hub.settings import REPO_ROOT
from pipeline.factory import PUSH_DAG_ID, exchange_dag_id
from pipeline.summary import summarize
from rigs.airflow_runner import free_port
from rigs.connections import sandbox_connections
from rigs.main_job import wait_for_push
from rigs.scaled import ScaledConfig, check_scaled_environment, start_s3_server, start_scaled
from tests.pipeline.conftest import hub_env

pytestmark = [
    pytest.mark.airflow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.odbc, pytest.mark.slow,
    pytest.mark.timeout(900),
]  # fmt: skip

COMMERCE = exchange_dag_id("commerce_enterprises")
PERSONS = exchange_dag_id("public_security_persons")


def _group_gone(pgid: int, timeout: float = 30) -> bool:
    """No process is left in the process group ``pgid`` (a worker's pool children, a task's supervisor)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def _rows(url: str, table: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar() or 0)
    finally:
        engine.dispose()


def test_an_exchange_dag_runs_on_two_celery_workers(
    tmp_path: Path,
    pg_hub_db_url: str,
    airflow_db_url: str,
    celery_broker: tuple[str, str],
    sandbox_embedded: Any,
) -> None:
    broker_url, key_prefix = celery_broker
    token = key_prefix.rstrip(":").rsplit("_", 1)[-1]  # node names of this test's own on the shared broker
    workers = (f"hub-worker-1-{token}", f"hub-worker-2-{token}")
    config = ScaledConfig(
        airflow_db_url=airflow_db_url,
        hub_db_url=pg_hub_db_url,
        broker_url=broker_url,
        key_prefix=key_prefix,
        workers=workers,
    )
    s3 = start_s3_server(tmp_path / "s3.log")
    try:
        af = start_scaled(
            tmp_path / "airflow",
            config,
            connections=sandbox_connections(sandbox_embedded),
            extra_env={**hub_env(tmp_path / "home", pg_hub_db_url), **s3.env()},
        )
    except BaseException:
        s3.stop()
        raise
    with af, s3:
        assert check_scaled_environment(af.env) == []
        assert af.env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert af.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{af.api_port}/execution/"
        assert {f"worker-{w}" for w in workers} | {"scheduler", "dag-processor", "triggerer", "api-server"} == set(
            af.procs
        )
        af.wait_for_dags([COMMERCE, PERSONS, PUSH_DAG_ID])

        # two registries of record at once: with one task slot per worker, their first tasks must go one
        # to each worker (the Redis queue has no other consumer free)
        runs = {dag_id: af.trigger(dag_id) for dag_id in (COMMERCE, PERSONS)}
        for dag_id, run in runs.items():
            assert af.wait_for_run(dag_id, run, timeout=400) == "success", af.task_states(dag_id, run)
        summaries = {s.department: s for s in summarize(runs.values())}
        enterprises = _rows(sandbox_embedded.commerce.sqlalchemy_url, sandbox_embedded.commerce.table)
        assert summaries["commerce"].pulled == enterprises
        for summary in summaries.values():
            assert summary.accepted + summary.quarantined == summary.pulled  # reconciliation holds
            assert summary.accepted > 0
        assert summaries["commerce"].licenses_issued > 0
        # the licences went to the S3 server, not to a local directory
        objects = Minio(s3.endpoint, "hub", "hub-secret", secure=False).list_objects("hub-licenses", recursive=True)
        assert sum(1 for _ in objects) >= summaries["commerce"].licenses_issued
        assert not (tmp_path / "home" / "store").exists()

        # the push DAG ran by itself, woken by the Assets the publish tasks updated, on the workers too
        last_publish = max(af.task_end(dag_id, run, "publish") for dag_id, run in runs.items())  # timestamptz
        pushes = wait_for_push(af, last_publish, timeout=300)
        assert {(p["run_type"], p["state"]) for p in pushes} == {("asset_triggered", "success")}

        # every task ran on one of the two Celery workers, and both of them worked
        ran = [*runs.items(), *((PUSH_DAG_ID, p["run_id"]) for p in pushes)]
        hosts = [h for dag_id, run in ran for h in af.task_hosts(dag_id, run).values()]
        assert len(hosts) >= 11
        assert set(hosts) == {f"celery@{w}" for w in workers}, hosts
        groups = [p.pid for p in af.procs.values()]

    assert all(p.poll() is not None for p in af.procs.values())
    assert all(_group_gone(pgid) for pgid in groups)


@pytest.mark.parametrize("command", [["up", "--scaled"], ["demo", "--scaled"]], ids=["up", "demo"])
def test_a_dead_broker_stops_the_scaled_mode_at_once(tmp_path: Path, command: list[str]) -> None:
    """The broker on a port nobody listens on: a clear message in seconds, nothing started."""
    dead = f"redis://127.0.0.1:{free_port()}/3"
    env = {
        **os.environ,
        "HUB_HOME": str(tmp_path / "home"),
        "AIRFLOW_HOME": str(REPO_ROOT),
        "AIRFLOW__CELERY__BROKER_URL": dead,
    }
    env.pop("HUB_DB_URL", None)
    started = time.monotonic()
    proc = subprocess.run(
        [str(VENV_BIN / "hub"), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    seconds = time.monotonic() - started
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert dead in output and "Celery broker" in output and "AIRFLOW__CELERY__BROKER_URL" in output, output
    assert seconds < 60, seconds
    assert not (tmp_path / "home" / "sandbox" / "state.json").exists()  # no sandbox was started
