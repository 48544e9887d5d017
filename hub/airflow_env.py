"""The environment Airflow runs in for the hub (Airflow 编排环境).

``AIRFLOW_HOME`` defaults to the repository, so Airflow reads the top-level ``airflow.cfg``.
Secrets Airflow needs (fernet key, JWT secret, API secret key) are generated once per
installation into ``$AIRFLOW_HOME/var/airflow/secrets.json`` (mode 600) and handed to every
Airflow process as ``AIRFLOW__…`` variables: all processes of one installation must share
them (the scheduler signs task tokens the api-server verifies), and they never live in code.

Python entry points call :func:`ensure_airflow_env` before importing Airflow; process
launchers build a complete environment with :func:`airflow_environment`. Both set where the
OpenLineage provider sends its events (:func:`openlineage_env`).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hub.odbcenv import ODBC_DIR
from hub.settings import REPO_ROOT

VENV_BIN = REPO_ROOT / ".venv" / "bin"


def airflow_home() -> Path:
    """``$AIRFLOW_HOME`` if set, else the repository."""
    return Path(os.environ.get("AIRFLOW_HOME") or REPO_ROOT)


def airflow_state_dir(home: Path | None = None) -> Path:
    """Where Airflow's files live (database, logs, generated passwords): ``var/airflow``."""
    return (home or airflow_home()) / "var" / "airflow"


def load_or_create_secrets(state_dir: Path) -> dict[str, str]:
    """The installation's Airflow secrets, created on first use (file readable by the owner only)."""
    path = state_dir / "secrets.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    from cryptography.fernet import Fernet  # noqa: PLC0415 - only the first start generates a key

    state_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "fernet_key": Fernet.generate_key().decode(),
        "jwt_secret": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "api_secret_key": secrets.token_urlsafe(32),
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
    return data


def secret_env(state_dir: Path) -> dict[str, str]:
    s = load_or_create_secrets(state_dir)
    return {
        "AIRFLOW__CORE__FERNET_KEY": s["fernet_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": s["jwt_secret"],
        "AIRFLOW__API__SECRET_KEY": s["api_secret_key"],
    }


def task_hostname() -> str:
    """The host a task ran on, as Airflow records it (``[core] hostname_callable`` of the scaled mode).

    Inside a Celery worker it is the worker's node name (``celery@NAME``, from ``airflow celery worker
    --celery-hostname NAME``), so two workers on one machine stay apart in ``task_instance.hostname``;
    anywhere else (scheduler, api-server, LocalExecutor) the machine's name, as Airflow's default gives.
    """
    try:
        from celery import current_task  # noqa: PLC0415 - only the scaled mode installs a Celery worker
    except ImportError:  # pragma: no cover - the Celery provider is in the lock
        return socket.getfqdn()
    request = getattr(current_task, "request", None) if current_task else None
    hostname = getattr(request, "hostname", None)
    return str(hostname) if hostname else socket.getfqdn()


def openlineage_env(env: Mapping[str, str], state_dir: Path) -> dict[str, str]:
    """Where Airflow's OpenLineage provider sends the events of every task and DAG run.

    ``HUB_OPENLINEAGE_URL`` set: an HTTP endpoint such as Marquez (``HUB_OPENLINEAGE_ENDPOINT``,
    default ``api/v1/lineage``); else ``HUB_OPENLINEAGE_FILE``: ``console`` logs them, any other value
    is the file they are appended to, one JSON event per line (default
    ``var/airflow/openlineage/events.jsonl``). ``AIRFLOW__OPENLINEAGE__TRANSPORT`` set by the
    operator wins; ``AIRFLOW__OPENLINEAGE__DISABLED=true`` turns the events off.

    >>> openlineage_env({"HUB_OPENLINEAGE_URL": "http://marquez:5000"}, Path("/x"))["AIRFLOW__OPENLINEAGE__TRANSPORT"]
    '{"type": "http", "url": "http://marquez:5000", "endpoint": "api/v1/lineage"}'
    >>> openlineage_env({"HUB_OPENLINEAGE_FILE": "console"}, Path("/x"))["AIRFLOW__OPENLINEAGE__TRANSPORT"]
    '{"type": "console"}'
    """
    url = env.get("HUB_OPENLINEAGE_URL")
    target = env.get("HUB_OPENLINEAGE_FILE") or str(state_dir / "openlineage" / "events.jsonl")
    transport: dict[str, Any]
    if url:
        transport = {"type": "http", "url": url, "endpoint": env.get("HUB_OPENLINEAGE_ENDPOINT", "api/v1/lineage")}
    elif target == "console":
        transport = {"type": "console"}
    else:
        transport = {"type": "file", "log_file_path": target, "append": True}
    return {"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport), "AIRFLOW__OPENLINEAGE__NAMESPACE": "hub"}


def _ensure_openlineage_dir(env: Mapping[str, str]) -> None:
    transport = json.loads(env.get("AIRFLOW__OPENLINEAGE__TRANSPORT") or "{}")
    if transport.get("type") == "file" and "://" not in str(transport.get("log_file_path", "://")):
        Path(transport["log_file_path"]).parent.mkdir(parents=True, exist_ok=True)


def ensure_airflow_env() -> None:
    """Set Airflow's variables in this process unless already set (call before importing Airflow)."""
    os.environ.setdefault("AIRFLOW_HOME", str(REPO_ROOT))
    state = airflow_state_dir()
    for key, value in {**secret_env(state), **openlineage_env(os.environ, state)}.items():
        os.environ.setdefault(key, value)
    _ensure_openlineage_dir(os.environ)


def connection_uri_env(conn_id: str, conn: Mapping[str, Any]) -> tuple[str, str]:
    """``AIRFLOW_CONN_<ID>`` in Airflow's JSON form for one Connection.

    >>> connection_uri_env("commerce_odbc", {"conn_type": "odbc", "host": "127.0.0.1"})
    ('AIRFLOW_CONN_COMMERCE_ODBC', '{"conn_type": "odbc", "host": "127.0.0.1"}')
    """
    return f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(dict(conn), ensure_ascii=False)


def airflow_environment(
    state_dir: Path | None = None,
    *,
    api_port: int | None = None,
    sql_alchemy_conn: str | None = None,
    connections: Mapping[str, Mapping[str, Any]] | None = None,
    base: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A complete environment for Airflow subprocesses of the hub.

    ``state_dir`` moves Airflow's database and logs away from ``var/airflow`` (tests, benches);
    ``api_port`` moves the api-server (and the Execution API URL tasks call) to a free port;
    ``sql_alchemy_conn`` points Airflow at another metadata database (PostgreSQL in CI);
    ``connections`` become ``AIRFLOW_CONN_<ID>`` variables.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("AIRFLOW_HOME", str(REPO_ROOT))
    home = Path(env["AIRFLOW_HOME"])
    state = state_dir or airflow_state_dir(home)
    state.mkdir(parents=True, exist_ok=True)
    for key, value in {**secret_env(state), **openlineage_env(env, state)}.items():
        env.setdefault(key, value)
    _ensure_openlineage_dir(env)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("ODBCSYSINI", str(ODBC_DIR))
    env.setdefault("ODBCINI", str(ODBC_DIR / "odbc.ini"))
    if state_dir is not None:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{state / 'airflow.db'}"
        env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] = str(state / "logs")
        env["AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY"] = str(state / "logs" / "dag_processor")
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(state / "passwords.json.generated")
    if sql_alchemy_conn:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = sql_alchemy_conn
        if sql_alchemy_conn.startswith("postgresql+psycopg://"):
            # psycopg 3 speaks async too; Airflow would otherwise derive an asyncpg URL (not installed)
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = sql_alchemy_conn
    if api_port is not None:
        env["AIRFLOW__API__PORT"] = str(api_port)
        env["AIRFLOW__API__BASE_URL"] = f"http://127.0.0.1:{api_port}"
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://127.0.0.1:{api_port}/execution/"
    for conn_id, conn in (connections or {}).items():
        key, value = connection_uri_env(conn_id, conn)
        env[key] = value
    env.update(extra or {})
    return env
