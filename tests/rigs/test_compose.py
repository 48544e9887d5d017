"""docker-compose.yml (the scaled deployment) offers everything the code expects.

No Docker engine runs here, so the file is parsed and checked against expectations derived
from the code: the hub's settings and environment variables, airflow.cfg's embedded-only
values, the Connections the mapping files name, the Airflow components of the official file.
"""

from __future__ import annotations

import configparser
import re
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from hub.settings import REPO_ROOT, Settings

COMPOSE = REPO_ROOT / "docker-compose.yml"
RUNTIME_PACKAGES = [
    "hub",
    "connectors",
    "mappings",
    "identity",
    "validation",
    "e_license_store",
    "recognition",
    "pipeline",
    "rigs",
]
#: the rigs that only tests or the sandboxes read
NOT_RUNTIME = ("rigs/testing.py", "rigs/fixtures.py", "rigs/sandbox_cli.py")
ENV_READ = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["'](HUB_[A-Z0-9_]+)["']""")
AIRFLOW_COMPONENTS = {"api-server", "scheduler", "dag-processor", "triggerer"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> str:
    cmd = service.get("command") or ""
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def _airflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if "AIRFLOW_HOME" in _env(svc)}


def _hub_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services running the hub image (Airflow components, the API, the sandboxes)."""
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def _env_vars_read_by(packages: list[str], *, exclude: tuple[str, ...] = ()) -> set[str]:
    found: set[str] = set()
    for pkg in packages:
        for path in (REPO_ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(REPO_ROOT).as_posix()
            if rel.startswith(exclude) or "/migrations/" in rel:
                continue
            found |= set(ENV_READ.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_airflow_component_of_the_official_file_is_there(compose: dict[str, Any]) -> None:
    commands = {_command(svc) for svc in _airflow_services(compose).values()}
    assert commands >= AIRFLOW_COMPONENTS
    assert any(c.startswith("celery worker") for c in commands)
    init = _command(compose["services"]["airflow-init"])
    assert "airflow db migrate" in init and "hub migrate" in init
    for name in ("postgres", "redis", "minio", "minio-init", "hub-api"):
        assert name in compose["services"], name


def test_hub_settings_are_set_for_every_hub_service(compose: dict[str, Any]) -> None:
    wanted = {f"HUB_{name.upper()}" for name in Settings.model_fields}
    wanted |= _env_vars_read_by(RUNTIME_PACKAGES, exclude=NOT_RUNTIME)
    assert {"HUB_DB_URL", "HUB_STORE_URL"} <= wanted
    for name, svc in _hub_services(compose).items():
        missing = wanted - set(_env(svc))
        assert not missing, f"{name} lacks {sorted(missing)}"
        env = _env(svc)
        assert env["HUB_DB_URL"].startswith("postgresql"), name
        assert env["HUB_STORE_URL"].startswith("minio://minio:9000/"), name
        assert env["ODBCSYSINI"].endswith("/etc/odbc"), name


def test_sandbox_variables_reach_the_sandboxes(compose: dict[str, Any]) -> None:
    # the sandboxes and their CLI (rigs/sandbox_cli.py); rigs/fixtures.py reads test sizes only
    others = tuple(f"rigs/{p.name}" for p in (REPO_ROOT / "rigs").glob("*.py") if p.name != "sandbox_cli.py")
    wanted = _env_vars_read_by(["sandbox"]) | _env_vars_read_by(["rigs"], exclude=others)
    sandboxes = [svc for name, svc in compose["services"].items() if name.startswith("sandbox") and "build" in svc]
    assert sandboxes
    provided = set().union(*(set(_env(svc)) for svc in sandboxes))
    assert wanted <= provided, sorted(wanted - provided)


def test_embedded_only_airflow_settings_are_overridden(compose: dict[str, Any]) -> None:
    """Whatever airflow.cfg points at SQLite or localhost must be replaced for the scaled deployment."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO_ROOT / "airflow.cfg")
    embedded = {
        f"AIRFLOW__{section.upper()}__{key.upper()}"
        for section in cfg.sections()
        for key, value in cfg[section].items()
        if "sqlite" in value or "localhost:" in value or key == "executor"
    }
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in embedded
    for name, svc in _airflow_services(compose).items():
        env = _env(svc)
        assert embedded - {"AIRFLOW__API__BASE_URL"} <= set(env), f"{name}: {sorted(embedded - set(env))}"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
        assert urlparse(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
        api_port = env["AIRFLOW__API__PORT"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://airflow-apiserver:{api_port}/execution/"
        # one secret set for all components: the scheduler signs task tokens the api-server verifies
        for secret in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY"):
            assert env[secret].startswith("${"), f"{name}: {secret} must come from the environment"
    api = compose["services"]["airflow-apiserver"]
    assert f"{_env(api)['AIRFLOW__API__PORT']}:{_env(api)['AIRFLOW__API__PORT']}" in api["ports"]


def test_every_connection_a_mapping_names_is_defined(compose: dict[str, Any]) -> None:
    conn_ids: set[str] = set()
    mappings = REPO_ROOT / "mappings"  # the case-step feeds' too (mappings/case_steps/)
    for path in sorted([*mappings.glob("*.yaml"), *mappings.glob("case_steps/*.yaml")]):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        conn_id = (doc.get("source") or {}).get("conn_id")
        if conn_id:
            conn_ids.add(conn_id)
    for name, svc in _airflow_services(compose).items():
        env = _env(svc)
        missing = {c for c in conn_ids if f"AIRFLOW_CONN_{c.upper()}" not in env}
        assert not missing, f"{name} lacks Connections {sorted(missing)}"
        for key, value in env.items():
            if key.startswith("AIRFLOW_CONN_"):
                assert yaml.safe_load(value).get("conn_type"), key  # JSON form parses, names its type


def test_ports_volumes_and_bind_mounts(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes") or []:
            src = vol.split(":", 1)[0]
            if src.startswith("."):
                assert (REPO_ROOT / src).exists(), f"{name}: bind mount {src} missing from the repository"
            else:
                assert src in declared, f"{name}: volume {src} not declared"
    api = compose["services"]["hub-api"]
    port = _command(api).split("--port", 1)[1].split()[0]
    assert f"{port}:{port}" in api["ports"]
    assert "9000:9000" in compose["services"]["minio"]["ports"]


def test_minio_init_makes_the_store_bucket_versioned_and_locked(compose: dict[str, Any]) -> None:
    script = _command(compose["services"]["minio-init"])
    for name, svc in _hub_services(compose).items():
        bucket = _env(svc)["HUB_STORE_URL"].rstrip("/").rsplit("/", 1)[1]
        assert f"--with-lock hub/{bucket}" in script, name
        assert f"version enable hub/{bucket}" in script, name
        staging = _env(svc).get("HUB_STAGING_URL")
        if staging:
            assert f"mb --ignore-existing hub/{staging.rstrip('/').rsplit('/', 1)[1]}" in script


def test_dockerfile_matches_the_installed_airflow_and_the_compose_home(compose: dict[str, Any]) -> None:
    from importlib.metadata import version

    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"^FROM apache/airflow:([0-9.]+)-python3\.11", dockerfile, re.M)
    assert base and base.group(1) == version("apache-airflow")
    home = _env(compose["services"]["airflow-scheduler"])["AIRFLOW_HOME"]
    assert f"AIRFLOW_HOME={home}" in dockerfile
    assert _env(compose["services"]["airflow-scheduler"])["AIRFLOW__CORE__DAGS_FOLDER"] == f"{home}/dags"
    for pkg in ("unixodbc", "odbc-postgresql", "odbc-mariadb", "tdsodbc"):
        assert pkg in dockerfile


def test_init_job_modules_exist(compose: dict[str, Any]) -> None:
    import importlib.util

    init = _command(compose["services"]["airflow-init"])
    for module in re.findall(r"python -m ([\w.]+)", init):
        assert importlib.util.find_spec(module) is not None, module


def test_subscription_secrets_reach_the_push_workers(compose: dict[str, Any]) -> None:
    path = REPO_ROOT / "recognition" / "subscriptions.yaml"
    if not path.exists():
        pytest.skip("no subscriptions declared yet")
    subs = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("subscriptions") or []
    names = {s["secret_env"] for s in subs if s.get("secret_env")} | {"HUB_SANDBOX_TAX_PASSWORD"}
    for name, svc in _airflow_services(compose).items():
        assert names <= set(_env(svc)), f"{name}: {sorted(names - set(_env(svc)))}"
