"""A Celery worker killed mid-task (issue 19, Faults).

The scaled mode runs the registries of record (population, then commerce) on a small city; as soon as a
task of theirs has been running on the first worker for a moment, that worker's whole process group
(the Celery worker, its pool process, the task supervisor and the task) is killed with SIGKILL. With a
short task heartbeat timeout for the test, the scheduler finds the task's heartbeat gone, fails the try
and retries it (the DAGs' retries); only the second worker is left to run it. The run succeeds and the
hub holds what the same job leaves on the embedded default without any kill (the digest, as in the
equivalence test).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from pipeline.factory import exchange_dag_id
from rigs.airflow_runner import AirflowProcesses
from sandbox.generator import Sizes
from tests.pipeline.scaled_runs import run_both
from tests.pipeline.test_scaled_equivalence import scaled_config

pytestmark = [
    pytest.mark.airflow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.odbc, pytest.mark.slow,
    pytest.mark.timeout(1200),
]  # fmt: skip

SIZES = Sizes(persons=300, enterprises=80, properties=60)
FEEDS = ["commerce_enterprises", "public_security_persons"]
#: tasks worth killing: the ones that do the work (extract may end before it is seen running)
WORK = ("map", "validate", "resolve", "publish")
#: a task's heartbeat missing this long fails its try (the default is 300 s); checked every 2 s
HEARTBEAT = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
}


class Killer:
    """Kills the first worker's process group once one of :data:`WORK` has run there for ``after`` seconds."""

    def __init__(self, worker: str, after: float = 1.5, timeout: float = 600) -> None:
        self.worker, self.after, self.timeout = worker, after, timeout
        self.killed: dict[str, Any] = {}

    def __call__(self, af: AirflowProcesses) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with af.engine().connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT dag_id, run_id, task_id, try_number FROM task_instance WHERE state = 'running' "
                        "AND hostname = :host AND task_id = ANY(:tasks) "
                        "AND start_date < now() - make_interval(secs => :after)"
                    ),
                    {"host": f"celery@{self.worker}", "tasks": list(WORK), "after": self.after},
                ).first()
            if row is not None:
                # out of the runner's watch first: a component that died is otherwise an error
                proc = af.procs.pop(f"worker-{self.worker}")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                self.killed = dict(row._mapping) | {"pgid": proc.pid}
                return
            time.sleep(0.2)
        raise AssertionError(f"no task of {WORK} ran on {self.worker} within {self.timeout}s")


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_worker_killed_mid_task_the_other_finishes_the_same_job(
    tmp_path: Path, pg_hub_db_url: str, airflow_db_url: str, celery_broker: tuple[str, str]
) -> None:
    config = scaled_config(airflow_db_url, pg_hub_db_url, celery_broker)
    killer = Killer(config.workers[0])
    reference, scaled = run_both(tmp_path, SIZES, config, names=FEEDS, extra_env=HEARTBEAT, during=killer)

    assert killer.killed, "no worker was killed"
    assert _group_gone(killer.killed["pgid"])
    assert scaled.result.ok, (scaled.result.states, scaled.result.push_runs)
    key = (killer.killed["dag_id"], killer.killed["run_id"])
    task = killer.killed["task_id"]
    assert key[0] in {exchange_dag_id(n) for n in FEEDS}
    # the killed try failed on its heartbeat, and a later try ran it on the other worker
    assert scaled.tries[key][task] > killer.killed["try_number"], scaled.tries[key]
    assert scaled.hosts[key][task] == f"celery@{config.workers[1]}", scaled.hosts[key]

    assert reference.result.ok
    assert reference.digest.differences(scaled.digest) == []
    assert reference.digest.hexdigest == scaled.digest.hexdigest
    assert scaled.digest.invariant_problems() == []
