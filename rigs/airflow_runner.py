"""Running Airflow for real (真实调度): scheduler, dag-processor and api-server as processes.

``dag.test()`` never runs DAGs scheduled on Assets, so the demo, the end-to-end test and
the benchmark start Airflow's own components (LocalExecutor) against a metadata database
(SQLite embedded, PostgreSQL in CI), trigger exchange DAGs and wait for the push DAG to
follow on its own. Each component runs in its own process group with its log under
``<state_dir>/logs/``; :meth:`AirflowProcesses.stop` ends exactly those groups.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from hub.airflow_env import VENV_BIN, airflow_environment
from hub.settings import REPO_ROOT

AIRFLOW = str(VENV_BIN / "airflow")
COMPONENTS = ("dag-processor", "scheduler", "api-server")
FINISHED = {"success", "failed"}


class AirflowRunError(RuntimeError):
    """Airflow did not do what was asked in time; the message says where to look."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AirflowProcesses:
    """Airflow components started by :func:`start_airflow`, and how to talk to them."""

    state_dir: Path
    env: dict[str, str]
    api_port: int
    sql_alchemy_conn: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)
    _engine: Engine | None = None

    @property
    def api_url(self) -> str:
        return f"http://localhost:{self.api_port}"

    def log_path(self, component: str) -> Path:
        return self.state_dir / "logs" / f"{component}.log"

    # -- metadata queries (read-only, straight from Airflow's database) -------------------
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.sql_alchemy_conn)
        return self._engine

    def dag_ids(self) -> set[str]:
        with self.engine().connect() as conn:
            return {r[0] for r in conn.execute(text("SELECT dag_id FROM dag WHERE is_stale = :f"), {"f": False})}

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        sql = text(
            "SELECT run_id, state, run_type, queued_at, start_date, end_date FROM dag_run WHERE dag_id = :d ORDER BY id"
        )
        with self.engine().connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sql, {"d": dag_id})]

    def task_end(self, dag_id: str, run_id: str, task_id: str) -> Any:
        sql = text("SELECT end_date FROM task_instance WHERE dag_id = :d AND run_id = :r AND task_id = :t")
        with self.engine().connect() as conn:
            return conn.execute(sql, {"d": dag_id, "r": run_id, "t": task_id}).scalar()

    def task_hosts(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """task id → the host its (last) try ran on, as the worker reported it (``task_instance.hostname``)."""
        sql = text("SELECT task_id, hostname FROM task_instance WHERE dag_id = :d AND run_id = :r")
        with self.engine().connect() as conn:
            return {r[0]: r[1] for r in conn.execute(sql, {"d": dag_id, "r": run_id})}

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        sql = text("SELECT task_id, state FROM task_instance WHERE dag_id = :d AND run_id = :r")
        with self.engine().connect() as conn:
            return {r[0]: r[1] for r in conn.execute(sql, {"d": dag_id, "r": run_id})}

    # -- control ------------------------------------------------------------------------
    def spawn(self, component: str, args: list[str]) -> None:
        """Start one component in its own process group, its output in :meth:`log_path`."""
        log = open(self.log_path(component), "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        self.procs[component] = subprocess.Popen(
            args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True
        )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AirflowRunError(f"airflow {name} exited with {proc.returncode}; see {self.log_path(name)}")

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 180) -> None:
        """Poll until the dag-processor has serialised every DAG in ``dag_ids``."""
        wanted = set(dag_ids)
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                missing = wanted - self.dag_ids()
            except Exception:  # tables appear with the first parse
                missing = wanted
            if not missing:
                return
            if time.monotonic() > deadline:
                where = self.log_path("dag-processor")
                raise AirflowRunError(f"DAGs not parsed in {timeout}s: {sorted(missing)}; see {where}")
            time.sleep(0.5)

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        """Trigger a DAG run through Airflow's CLI; returns the run id."""
        run_id = run_id or f"manual__hub_{uuid.uuid4().hex[:12]}"
        args = [AIRFLOW, "dags", "trigger", dag_id, "--run-id", run_id]
        if conf:
            args += ["--conf", json.dumps(dict(conf))]
        proc = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=180, cwd=REPO_ROOT)
        if proc.returncode != 0:
            raise AirflowRunError(f"trigger {dag_id} failed: {proc.stderr[-2000:]}")
        return run_id

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        """Poll until the run finishes; returns its state (``success`` or ``failed``)."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            runs = {r["run_id"]: r for r in self.dag_runs(dag_id)}
            state = runs.get(run_id, {}).get("state")
            if state in FINISHED:
                return str(state)
            if time.monotonic() > deadline:
                raise AirflowRunError(
                    f"{dag_id} run {run_id} still {state} after {timeout}s; tasks "
                    f"{self.task_states(dag_id, run_id)}; see {self.log_path('scheduler')}"
                )
            time.sleep(0.5)

    def wait_for_new_runs(
        self, dag_id: str, after: int, count: int = 1, timeout: float = 300, *, finished: bool = True
    ) -> list[dict[str, Any]]:
        """Poll until ``dag_id`` has ``count`` runs beyond the first ``after`` (and they finished)."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            runs = self.dag_runs(dag_id)[after:]
            if len(runs) >= count and (not finished or all(r["state"] in FINISHED for r in runs)):
                return runs
            if time.monotonic() > deadline:
                raise AirflowRunError(f"{dag_id}: expected {count} new run(s), have {runs} after {timeout}s")
            time.sleep(0.5)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM each component's process group, then SIGKILL what is left after ``timeout``."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for fh in self._logs:
            fh.close()
        if self._engine is not None:
            self._engine.dispose()

    def __enter__(self) -> AirflowProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def migrate_airflow(env: Mapping[str, str], timeout: float = 600) -> None:
    """``airflow db migrate`` then the per-department pools."""
    for args in ([AIRFLOW, "db", "migrate"], [str(VENV_BIN / "python"), "-m", "pipeline.pools"]):
        proc = subprocess.run(args, env=dict(env), capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
        if proc.returncode != 0:
            raise AirflowRunError(f"{' '.join(args[-3:])} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def fail_leftover_runs(sql_alchemy_conn: str) -> int:
    """Mark runs an earlier, interrupted session left queued or running as failed (before any component starts).

    Otherwise the scheduler resumes them with *this* session's environment and Connections, and they
    consume the new session's changes under the old run ids.
    """
    unfinished = "('queued', 'running', 'scheduled', 'up_for_retry', 'up_for_reschedule', 'deferred', 'restarting')"
    engine = create_engine(sql_alchemy_conn)
    try:
        with engine.begin() as conn:
            runs = conn.execute(text("UPDATE dag_run SET state = 'failed' WHERE state IN ('queued', 'running')"))
            conn.execute(text(f"UPDATE task_instance SET state = 'failed' WHERE state IN {unfinished}"))
            return int(runs.rowcount or 0)
    finally:
        engine.dispose()


def start_airflow(
    state_dir: Path,
    *,
    sql_alchemy_conn: str | None = None,
    connections: Mapping[str, Mapping[str, Any]] | None = None,
    extra_env: Mapping[str, str] | None = None,
    components: Iterable[str] = COMPONENTS,
    celery_workers: Iterable[str] = (),
    migrate: bool = True,
    fresh_session: bool = True,
    check_env: Callable[[Mapping[str, str]], None] | None = None,
    api_port: int | None = None,
) -> AirflowProcesses:
    """Start Airflow's components against ``state_dir`` (SQLite there unless ``sql_alchemy_conn``).

    ``celery_workers`` names Celery workers to start too (``airflow celery worker --celery-hostname NAME``,
    component ``worker-NAME``), started once the api-server listens: their tasks call its Execution API.
    ``fresh_session`` fails runs an interrupted earlier session left unfinished (see :func:`fail_leftover_runs`).
    ``check_env`` sees the complete environment before anything is migrated or started (it raises to stop).
    ``api_port`` is the api-server's (a free one unless given).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "logs").mkdir(exist_ok=True)
    api_port = api_port or free_port()
    env = airflow_environment(
        state_dir, api_port=api_port, sql_alchemy_conn=sql_alchemy_conn, connections=connections, extra=extra_env
    )
    # the rigs trigger the exchange DAGs themselves: they start unpaused here (a live deployment's start paused)
    env.setdefault("HUB_EXCHANGE_DAGS_PAUSED", "off")
    # Quick turnarounds for a run that waits on the scheduler (the cfg keeps production values).
    env.setdefault("AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL", "5")
    env.setdefault("AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC", "1")
    env.setdefault("AIRFLOW__SCHEDULER__ASSET_MANAGER_POLL_INTERVAL", "1")
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if check_env is not None:
        check_env(env)
    if migrate:
        migrate_airflow(env)
    if fresh_session:
        fail_leftover_runs(url)
    runner = AirflowProcesses(state_dir=state_dir, env=env, api_port=api_port, sql_alchemy_conn=url)
    try:
        for component in components:
            args = [AIRFLOW, *component.split()]
            if component == "api-server":
                args += ["--port", str(api_port), "--host", "127.0.0.1"]
            elif component == "triggerer":
                args += ["--skip-serve-logs"]  # its log server's fixed port is not ours on a shared machine
            runner.spawn(component, args)
        if "api-server" in runner.procs:
            _wait_for_port(api_port, runner, timeout=120)
        for name in celery_workers:
            # one machine, several workers: no log server each (fixed port; the files are local anyway),
            # no mingle/gossip chatter with other workers on a shared broker
            worker = ["celery", "worker", "--celery-hostname", name, "--skip-serve-logs"]
            runner.spawn(f"worker-{name}", [AIRFLOW, *worker, "--without-mingle", "--without-gossip"])
    except BaseException:
        runner.stop()
        raise
    return runner


def _wait_for_port(port: int, runner: AirflowProcesses, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runner.check_alive()
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise AirflowRunError(f"api-server not listening on {port} after {timeout}s; see {runner.log_path('api-server')}")
