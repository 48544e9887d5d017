"""airflow.cfg and the DAGs folder are wired: Airflow reads the repo's config and runs a DAG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hub.airflow_env import airflow_environment
from hub.settings import REPO_ROOT

pytestmark = [pytest.mark.airflow]

AIRFLOW = str(REPO_ROOT / ".venv" / "bin" / "airflow")


def _run(args: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_config_defaults_come_from_the_repository(tmp_path: Path) -> None:
    env = airflow_environment(base={"PATH": "/usr/bin:/bin"})
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"  # the env override must win over the file...
    env["AIRFLOW__CORE__PARALLELISM"] = "3"
    script = (
        "from airflow.configuration import conf;import json;"
        "print(json.dumps({k: conf.get(*k.split('.')) for k in "
        "['core.dags_folder','core.executor','core.load_examples','database.sql_alchemy_conn','core.parallelism',"
        "'core.execution_api_server_url','api.port']}))"
    )
    out = _run([sys.executable, "-c", script], env).stdout.strip().splitlines()[-1]
    values = json.loads(out)
    assert values["core.dags_folder"] == str(REPO_ROOT / "dags")
    assert values["core.executor"] == "LocalExecutor"
    assert values["core.load_examples"] == "False"
    assert values["database.sql_alchemy_conn"] == f"sqlite:///{REPO_ROOT / 'var' / 'airflow' / 'airflow.db'}"
    assert values["core.parallelism"] == "3"  # ...and every option is overridable
    assert values["core.execution_api_server_url"].startswith(f"http://localhost:{values['api.port']}/")


def test_wiring_dag_runs_after_db_migrate(tmp_path: Path) -> None:
    env = airflow_environment(tmp_path / "airflow")
    _run([AIRFLOW, "db", "migrate"], env)
    assert (tmp_path / "airflow" / "airflow.db").exists()
    script = (
        "import sys;from airflow.dag_processing.dagbag import DagBag;"
        f"bag=DagBag(dag_folder={str(REPO_ROOT / 'dags' / 'hub_wiring_check.py')!r});"
        "assert not bag.import_errors, bag.import_errors;"
        "run=bag.get_dag('hub_wiring_check').test();"
        "print('STATE', run.state)"
    )
    proc = _run([sys.executable, "-c", script], env)
    assert "STATE success" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
