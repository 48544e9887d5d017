"""Kills through Airflow itself (issue: nothing lost, nothing twice): the scheduler killed with its
running task, and a task process killed mid-batch, each recovered by Airflow's own machinery (a
task instance whose heartbeat stopped is failed and retried; a killed task process fails its try and
is retried), and the hub then holds exactly what a clean run through the scheduler holds.

Two sessions of Airflow (scheduler, dag-processor, api-server; LocalExecutor) on PostgreSQL, each
with a hub database of its own, run the commerce feed over ODBC on the same MariaDB registry:

* the clean run: the reference digest (``rigs.digest``, the crash harness's and the scaled mode's);
* the faulted run: the scheduler's process group (the scheduler, its executor and the task running
  under it) is killed with SIGKILL while a task of the run is running, and a new scheduler started;
  and the publish task kills itself at its first batch (``HUB_KILL_POINT=publish.batch:1``, armed
  once for every process: ``HUB_KILL_ONCE``).

Both hubs are one installation at one place (the faulted one starts in the same home with the clean
one's signing and event keys) and both runs have one run id, each in an Airflow database of its own;
the push runs, named by Airflow, are compared under one alias. The crash harness
(``python -m bench crash``) kills the job at random points without Airflow; this test proves
Airflow's retries and heartbeat timeout bring the same convergence.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from e_license_store.model import parse_envelope
from e_license_store.store.local import LocalStore
from hub.db import migrate
from hub.killpoints import ENV as KILL_ENV
from hub.killpoints import ONCE_ENV
from pipeline.factory import PUSH_DAG_ID, exchange_dag_id
from rigs.airflow_runner import AIRFLOW, AirflowProcesses, start_airflow
from rigs.digest import Digest, take_digest
from rigs.testing import temp_postgres_database
from tests.pipeline.conftest import conn_env, hub_env

pytestmark = [
    pytest.mark.airflow, pytest.mark.mariadb, pytest.mark.postgres, pytest.mark.odbc, pytest.mark.slow,
    pytest.mark.timeout(1500),
]  # fmt: skip

COMMERCE = exchange_dag_id("commerce_enterprises")
#: both runs' id (the staged objects' names hash it)
RUN_ID = "manual__hubkill_commerce"
#: a dead task is noticed quickly, and a dead scheduler's tasks are taken over quickly (production
#: keeps Airflow's defaults: minutes)
QUICK_RECOVERY = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
}


def _tries(af: AirflowProcesses, run_id: str) -> dict[str, int]:
    sql = text("SELECT task_id, try_number FROM task_instance WHERE dag_id = :d AND run_id = :r")
    with af.engine().connect() as conn:
        return {r[0]: int(r[1]) for r in conn.execute(sql, {"d": COMMERCE, "r": run_id})}


def _running(af: AirflowProcesses, run_id: str) -> list[str]:
    return [t for t, state in af.task_states(COMMERCE, run_id).items() if state == "running"]


def _run_commerce(
    af: AirflowProcesses, run_id: str, *, kill_scheduler: bool = False
) -> tuple[str, list[str], dict[str, str]]:
    """Trigger the commerce DAG (``kill_scheduler``: kill the scheduler's group while a task runs,
    then start a new one); wait for it and the push it wakes. Returns the push run ids, and the
    task the scheduler was killed under."""
    af.wait_for_dags([COMMERCE, PUSH_DAG_ID])
    pushes_before = len(af.dag_runs(PUSH_DAG_ID))
    af.trigger(COMMERCE, run_id=run_id)
    killed_under: dict[str, str] = {}
    if kill_scheduler:
        deadline = time.monotonic() + 300
        while not (running := _running(af, run_id)):
            assert time.monotonic() < deadline, f"no task of {run_id} ran in 300 s: {af.task_states(COMMERCE, run_id)}"
            af.check_alive()
            time.sleep(0.1)
        scheduler = af.procs["scheduler"]
        os.killpg(scheduler.pid, signal.SIGKILL)  # the scheduler, its executor's workers and their task
        scheduler.wait(timeout=30)
        killed_under = {"task": running[0]}
        af.spawn("scheduler", [AIRFLOW, "scheduler"])
    state = af.wait_for_run(COMMERCE, run_id, timeout=900)
    pushes = af.wait_for_new_runs(PUSH_DAG_ID, after=pushes_before, count=1, timeout=300)
    return state, [str(p["run_id"]) for p in pushes], killed_under


def _digest(hub_url: str, home: Path, push_run_ids: list[str]) -> Digest:
    """The hub's digest; the push runs Airflow named (by the time the Asset woke them) under one alias."""
    aliases = {run_id: f"the-push-{i}" for i, run_id in enumerate(push_run_ids)}
    return take_digest(hub_url, home / "store", aliases=aliases)


def _document_differences(ref_home: Path, kill_home: Path, clean: Digest, faulted: Digest) -> list[str]:
    """For a failure's message: the fields in which the first differing licence document differs."""
    for key, seen in clean.licences.items():
        if faulted.licences.get(key) != seen:
            a, b = (parse_envelope(LocalStore(h / "store").get(key)).document.model_dump(mode="json")
                    for h in (ref_home, kill_home))  # fmt: skip
            flat_a, flat_b = _flat(a), _flat(b)
            return [f"{key} {f}: {flat_a.get(f)!r} != {flat_b.get(f)!r}"
                    for f in sorted(set(flat_a) | set(flat_b)) if flat_a.get(f) != flat_b.get(f)]  # fmt: skip
    return []


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for name, item in value.items() for k, v in _flat(item, f"{prefix}{name}.").items()}
    return {prefix.rstrip("."): value}


def test_the_scheduler_and_a_task_process_killed_the_run_converges_to_the_clean_runs_state(
    tmp_path: Path, airflow_db_url: str, commerce_registry: Any
) -> None:
    source = conn_env("commerce_registry", commerce_registry.connection)
    # one installation at one place: the staged objects' names hash their run id and path, so both runs
    # have the same run id (each in an Airflow database of its own) and the same home, one after the other
    home, clean_home = tmp_path / "hub", tmp_path / "hub-clean"
    digests: dict[str, Digest] = {}
    with (
        temp_postgres_database("hubkillref") as ref_db,
        temp_postgres_database("hubkill") as kill_db,
        temp_postgres_database("hubairflow") as second_airflow,
    ):
        # the clean run
        ref_url = ref_db.sqlalchemy_url
        migrate(ref_url)
        env = {**hub_env(home, ref_url), **source, **QUICK_RECOVERY}
        with start_airflow(tmp_path / "airflow-clean", sql_alchemy_conn=airflow_db_url, extra_env=env) as af:
            state, pushes, _ = _run_commerce(af, RUN_ID)
            assert state == "success", af.task_states(COMMERCE, RUN_ID)
            assert set(_tries(af, RUN_ID).values()) == {1}  # nothing retried in the clean run
        digests["clean"] = _digest(ref_url, home, pushes)
        assert digests["clean"].audit_ok and not digests["clean"].invariant_problems()
        home.rename(clean_home)

        # the faulted run: the scheduler killed under a running task, the publish task's process killed
        kill_url = kill_db.sqlalchemy_url
        migrate(kill_url)
        for installation in ("keys", "secrets"):  # one installation: its signing key and its event key
            shutil.copytree(clean_home / installation, home / installation)
        marker = tmp_path / "publish-killed"
        env = {**hub_env(home, kill_url), **source, **QUICK_RECOVERY,
               KILL_ENV: "publish.batch:1", ONCE_ENV: str(marker)}  # fmt: skip
        with start_airflow(tmp_path / "airflow-faulted", sql_alchemy_conn=second_airflow.sqlalchemy_url,
                           extra_env=env) as af:  # fmt: skip
            state, pushes, killed = _run_commerce(af, RUN_ID, kill_scheduler=True)
            tries = _tries(af, RUN_ID)
            assert state == "success", (af.task_states(COMMERCE, RUN_ID), tries, af.log_path("scheduler"))
        assert marker.read_text().startswith("publish.batch:1 pid ")  # the publish task's first try died there
        publish = next(t for t in tries if t.endswith("publish"))
        assert tries[publish] >= 2, tries
        assert tries[killed["task"]] >= 2, (killed, tries)  # the task under the killed scheduler ran again
        digests["faulted"] = _digest(kill_url, home, pushes)

    clean, faulted = digests["clean"], digests["faulted"]
    assert faulted.audit_ok and not faulted.invariant_problems(), faulted.invariant_problems()
    assert faulted.parts() == clean.parts(), "\n".join(
        clean.differences(faulted) + _document_differences(clean_home, home, clean, faulted)
    )
    assert "pipeline_step" in clean.tables and sum(clean.tables["pipeline_step"].values()) >= 5
