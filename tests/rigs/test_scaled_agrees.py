"""docker-compose.yml and ``hub up --scaled`` (rigs/scaled.py) describe one scaled deployment.

The variables the scaled mode reads and sets are compose's names, with compose's values where both
fix one (the executor, the hostname callable, the result backend on the metadata database), and
compose's configuration passes the checks ``hub up --scaled`` makes before it starts anything.
Only what a machine shared with other installations needs (a Redis key prefix, small worker
concurrency) is the scaled mode's alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.settings import REPO_ROOT
from rigs.scaled import (
    CELERY_WORKERS,
    KEY_PREFIX_OPTION,
    SCALED_COMPONENTS,
    SHARED_SECRETS,
    ScaledConfig,
    celery_environment,
    check_scaled_environment,
    default_config,
)

COMPOSE = REPO_ROOT / "docker-compose.yml"
SCALED = REPO_ROOT / "rigs" / "scaled.py"
#: what every Airflow process of the hub gets from the environment (OpenLineage's destination)
AIRFLOW_ENV = REPO_ROOT / "hub" / "airflow_env.py"
#: the scaled mode's alone: one shared Redis and two cores here, a Redis and a machine per service there
SHARED_MACHINE_ONLY = {KEY_PREFIX_OPTION, "AIRFLOW__CELERY__WORKER_CONCURRENCY"}
#: an operator's own override, read when set: compose leaves it unset so HUB_OPENLINEAGE_* decide
OPERATOR_OVERRIDES = {"AIRFLOW__OPENLINEAGE__TRANSPORT"}
#: secrets compose takes from an .env file (its header): what an operator sets before `docker compose up`
DOT_ENV = {"HUB_AIRFLOW_FERNET_KEY": "fernet", "HUB_AIRFLOW_JWT_SECRET": "jwt", "HUB_AIRFLOW_API_SECRET_KEY": "api"}
PLACEHOLDER = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


@pytest.fixture(scope="module")
def worker_env() -> dict[str, str]:
    """The Celery worker's environment in compose, ``${VAR:-default}`` resolved as compose would with DOT_ENV."""
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    env = compose["services"]["airflow-worker-1"]["environment"]
    return {
        str(k): PLACEHOLDER.sub(lambda m: DOT_ENV.get(m.group(1), m.group(2) or ""), str(v)) for k, v in env.items()
    }


def _names_read(path: Path) -> set[str]:
    return set(re.findall(r"""env\.get\(\s*["']((?:AIRFLOW|HUB)_\w+)["']""", path.read_text(encoding="utf-8")))


def _config() -> ScaledConfig:
    return default_config({}, REPO_ROOT)[0]


def test_the_scaled_mode_reads_and_sets_compose_names(worker_env: dict[str, str]) -> None:
    read = _names_read(SCALED) | _names_read(AIRFLOW_ENV)
    assert {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "HUB_DB_URL", "AIRFLOW__CELERY__BROKER_URL"} <= read
    assert {"HUB_OPENLINEAGE_URL", "HUB_OPENLINEAGE_ENDPOINT", "HUB_OPENLINEAGE_FILE"} <= read
    names = read | set(celery_environment(_config())) | set(SHARED_SECRETS)
    missing = names - SHARED_MACHINE_ONLY - OPERATOR_OVERRIDES - set(worker_env)
    assert not missing, f"docker-compose.yml's workers lack {sorted(missing)}"


def test_both_fix_the_same_values(worker_env: dict[str, str]) -> None:
    scaled = celery_environment(_config())
    for key in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__HOSTNAME_CALLABLE"):
        assert worker_env[key] == scaled[key], key
    # Celery's task states live on Airflow's metadata database in both
    for env in (worker_env, scaled):
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql")
    assert (
        worker_env["AIRFLOW__CELERY__RESULT_BACKEND"].split("@", 1)[1]
        == (worker_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split("@", 1)[1])
    )


def test_compose_passes_the_checks_hub_up_scaled_makes(worker_env: dict[str, str]) -> None:
    assert check_scaled_environment(worker_env) == []
    # ... which do catch what would break remote workers
    broken = {**worker_env, "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-apiserver:9999/execution/"}
    assert any("port 9999" in p for p in check_scaled_environment(broken))
    assert any("JWT_SECRET" in p for p in check_scaled_environment({**worker_env, "AIRFLOW__API_AUTH__JWT_SECRET": ""}))
    sqlite = {**worker_env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////tmp/airflow.db"}
    assert any("SQL_ALCHEMY_CONN" in p for p in check_scaled_environment(sqlite))


def test_compose_runs_every_component_the_scaled_mode_runs() -> None:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    commands = {str(svc.get("command")) for svc in services.values()}
    assert set(SCALED_COMPONENTS) <= commands
    # the two Celery workers, by the node names hub up --scaled gives them
    workers = {str(svc["command"]): svc.get("hostname") for svc in services.values()
               if str(svc.get("command", "")).startswith("celery worker")}  # fmt: skip
    assert workers == {f"celery worker --celery-hostname {w}": w for w in CELERY_WORKERS}
    # the recognition API with two worker processes
    api = services["hub-api"]["command"]
    assert api[api.index("--workers") + 1] == "2"
