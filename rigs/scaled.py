"""The scaled mode without containers (规模化部署): CeleryExecutor, two workers, PostgreSQL and Redis.

``docker-compose.yml`` describes the scaled deployment in containers; ``hub up --scaled`` and the tests
run the same parts here as processes: Airflow's api-server, scheduler, dag-processor and triggerer, and
two Celery workers with distinct node names, against a PostgreSQL metadata database and a Redis broker,
the hub's state on PostgreSQL (``HUB_DB_URL``). The configuration names are compose's:
``AIRFLOW__CORE__EXECUTOR``, ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``, ``AIRFLOW__CELERY__BROKER_URL``,
``AIRFLOW__CELERY__RESULT_BACKEND``, ``AIRFLOW__CORE__EXECUTION_API_SERVER_URL``,
``AIRFLOW__API_AUTH__JWT_SECRET`` ...

What remote workers need is checked before anything starts (:func:`check_scaled_environment`,
:func:`check_services`): the executor, PostgreSQL for both databases, an Execution API URL the
api-server actually serves (tasks on a worker report to it), one JWT secret, fernet key and API
secret key for every process (the scheduler signs the task tokens the api-server verifies), and a
broker and database servers that answer — a broker on a dead port fails in seconds with its URL in
the message, where Celery would otherwise retry for ever.

The servers are shared on this machine, so each installation keeps to its own: PostgreSQL databases
named after the checkout (:func:`default_config`), a Redis database number and a key prefix for every
Celery key (kombu's ``global_keyprefix``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
import redis
from sqlalchemy.engine import make_url

from e_license_store.store import open_store
from hub.airflow_env import VENV_BIN
from hub.db import get_engine
from hub.db import migrate as migrate_hub
from hub.settings import REPO_ROOT, reset_settings
from pipeline.staging import open_stager
from rigs.airflow_runner import AirflowProcesses, AirflowRunError, free_port, start_airflow

#: the Celery workers' node names (``--celery-hostname``); task instances record ``celery@NAME``
CELERY_WORKERS = ("hub-worker-1", "hub-worker-2")
#: every Airflow component the scaled mode runs besides the workers
SCALED_COMPONENTS = ("dag-processor", "scheduler", "triggerer", "api-server")
#: the shared secrets: one value for every process of an installation
SHARED_SECRETS = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY")
HOSTNAME_CALLABLE = "hub.airflow_env.task_hostname"
KEY_PREFIX_OPTION = "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX"
DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
#: Redis database of ``hub up --scaled`` on this machine's shared server (compose's Celery keeps 0, its
#: API rate limits 1)
DEFAULT_REDIS_DB = 2


class ScaledConfigError(RuntimeError):
    """The scaled mode cannot start as configured; the message says what to set."""


@dataclass(frozen=True)
class ScaledConfig:
    """Where the scaled mode keeps its state and its queue."""

    airflow_db_url: str  # Airflow's metadata database (PostgreSQL)
    hub_db_url: str  # the hub's state (PostgreSQL): HUB_DB_URL
    broker_url: str  # Celery's broker (Redis)
    key_prefix: str = ""  # every Celery key in the broker starts with it ("" for none)
    workers: tuple[str, ...] = CELERY_WORKERS
    worker_concurrency: int = 1  # task slots per worker


def installation_token(root: Path = REPO_ROOT) -> str:
    """A short name of this checkout, so two checkouts on one machine get databases of their own.

    >>> installation_token(Path("/opt/hub")) == installation_token(Path("/opt/hub"))
    True
    >>> len(installation_token(Path("/opt/hub")))
    8
    """
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]


def default_config(env: Mapping[str, str], root: Path = REPO_ROOT, *, role: str = "") -> tuple[ScaledConfig, list[str]]:
    """The configuration from the environment, defaulting to this machine's servers.

    Returns it with the PostgreSQL databases to create (those the environment did not name). ``role``
    (``"demo"``) gives Airflow a metadata database and broker keys apart from ``hub up --scaled``'s, so
    neither's workers take the other's tasks nor resume its runs; the hub's state is the same.

    >>> config, create = default_config({}, Path("/opt/hub"))
    >>> config.broker_url, create == [config.airflow_db_url, config.hub_db_url]
    ('redis://127.0.0.1:6379/2', True)
    >>> default_config({"HUB_DB_URL": "postgresql+psycopg://hub@db/hub"}, Path("/opt/hub"))[0].hub_db_url
    'postgresql+psycopg://hub@db/hub'
    >>> demo = default_config({}, Path("/opt/hub"), role="demo")[0]
    >>> demo.hub_db_url == config.hub_db_url, demo.airflow_db_url == config.airflow_db_url, demo.key_prefix[-6:]
    (True, False, '_demo:')
    """
    token = installation_token(root)
    server = make_url(DEFAULT_SERVER)
    create: list[str] = []

    def database(name: str, given: str) -> str:
        if given.startswith("postgresql"):
            return given
        url = server.set(database=name).render_as_string(hide_password=False)
        create.append(url)
        return url

    own = f"hub_scaled_{token}" + (f"_{role}" if role else "")
    airflow_db = database(f"{own}_airflow", env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""))
    hub_db = database(f"hub_scaled_{token}", env.get("HUB_DB_URL", ""))
    broker = env.get("AIRFLOW__CELERY__BROKER_URL") or f"redis://127.0.0.1:6379/{DEFAULT_REDIS_DB}"
    prefix = env.get(KEY_PREFIX_OPTION, f"{own}:")
    return ScaledConfig(airflow_db_url=airflow_db, hub_db_url=hub_db, broker_url=broker, key_prefix=prefix), create


def celery_environment(config: ScaledConfig) -> dict[str, str]:
    """The variables that turn the embedded configuration (airflow.cfg) into the scaled one."""
    env = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": config.broker_url,
        # task states on the metadata database, as compose has it (Celery's SQLAlchemy backend)
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{config.airflow_db_url}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(config.worker_concurrency),
        # task_instance.hostname names the Celery worker, not only the machine both workers share
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
        "HUB_DB_URL": config.hub_db_url,
    }
    if config.key_prefix:
        env[KEY_PREFIX_OPTION] = config.key_prefix
    return env


def own_config(airflow_db_url: str, hub_db_url: str, broker_url: str, key_prefix: str) -> ScaledConfig:
    """The scaled mode on databases and broker keys of a run's own, its workers named for it.

    The workers' node names end with the key prefix's last part, so two runs on the shared broker
    (tests, the benchmark) never share a node name.

    >>> own_config("postgresql://a", "postgresql://h", "redis://r/3", "hubcelery_1a2b:").workers
    ('hub-worker-1-1a2b', 'hub-worker-2-1a2b')
    """
    token = key_prefix.rstrip(":").rsplit("_", 1)[-1]
    return ScaledConfig(
        airflow_db_url=airflow_db_url,
        hub_db_url=hub_db_url,
        broker_url=broker_url,
        key_prefix=key_prefix,
        workers=tuple(f"{worker}-{token}" for worker in CELERY_WORKERS),
    )


def check_scaled_environment(env: Mapping[str, str]) -> list[str]:
    """What keeps remote workers from running tasks in ``env`` (empty when nothing does).

    >>> check_scaled_environment({"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"})[0]
    'AIRFLOW__CORE__EXECUTOR is LocalExecutor, not CeleryExecutor'
    """
    problems: list[str] = []
    executor = env.get("AIRFLOW__CORE__EXECUTOR", "")
    if executor != "CeleryExecutor":
        problems.append(f"AIRFLOW__CORE__EXECUTOR is {executor or 'unset'}, not CeleryExecutor")
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "HUB_DB_URL"):
        if not env.get(key, "").startswith("postgresql"):
            problems.append(f"{key} must name a PostgreSQL database (workers on other hosts share it)")
    if not urlparse(env.get("AIRFLOW__CELERY__BROKER_URL", "")).scheme.startswith("redis"):
        problems.append("AIRFLOW__CELERY__BROKER_URL must name a Redis broker (redis://HOST:PORT/DB)")
    execution = urlparse(env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", ""))
    if execution.scheme not in ("http", "https") or not execution.path.rstrip("/").endswith("/execution"):
        problems.append(
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL must be the api-server's http(s)://HOST:PORT/execution/ "
            "(tasks on the workers report to it)"
        )
    elif env.get("AIRFLOW__API__PORT") and execution.port != int(env["AIRFLOW__API__PORT"]):
        problems.append(
            f"AIRFLOW__CORE__EXECUTION_API_SERVER_URL names port {execution.port}, the api-server listens on "
            f"{env['AIRFLOW__API__PORT']} (AIRFLOW__API__PORT)"
        )
    for key in SHARED_SECRETS:
        if not env.get(key):
            problems.append(f"{key} is unset: every Airflow process must share one value")
    return problems


def _masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True) if "://" in url else url


def check_services(config: ScaledConfig, *, timeout: float = 3) -> None:
    """The broker and the PostgreSQL servers answer, within ``timeout`` seconds each; else a clear error."""
    client = redis.Redis.from_url(config.broker_url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ScaledConfigError(
            f"the Celery broker {config.broker_url} does not answer ({exc}); start Redis there or set "
            "AIRFLOW__CELERY__BROKER_URL to one that runs"
        ) from exc
    finally:
        client.close()
    for key, url in (("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", config.airflow_db_url), ("HUB_DB_URL", config.hub_db_url)):
        u = make_url(url)
        try:
            psycopg.connect(
                host=u.host or "127.0.0.1",
                port=u.port or 5432,
                user=u.username,
                password=u.password,
                dbname="postgres",
                connect_timeout=max(1, int(timeout)),
            ).close()
        except psycopg.Error as exc:
            raise ScaledConfigError(f"PostgreSQL of {key} ({_masked(url)}) does not answer: {exc}") from exc


def ensure_postgres_database(url: str) -> bool:
    """Create the database ``url`` names on its server unless it exists; True when it was created."""
    u = make_url(url)
    with psycopg.connect(
        host=u.host, port=u.port or 5432, user=u.username, password=u.password, dbname="postgres", autocommit=True
    ) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (u.database,)).fetchone():
            return False
        admin.execute(f'CREATE DATABASE "{u.database}"')
    return True


def use_scaled_state(role: str = "") -> tuple[ScaledConfig, list[str]]:
    """Resolve the configuration, check its servers, create its databases, and point this process at the hub's.

    Returns the configuration and the names of the databases created. Raises :class:`ScaledConfigError`
    (nothing created) when the broker or PostgreSQL does not answer. ``HUB_DB_URL`` is set in this
    process's environment, which every child inherits.
    """
    config, to_create = default_config(os.environ, role=role)
    check_services(config)
    created = [url.rsplit("/", 1)[-1] for url in to_create if ensure_postgres_database(url)]
    os.environ["HUB_DB_URL"] = config.hub_db_url
    reset_settings()
    get_engine.cache_clear()
    return config, created


def _raise_on_problems(env: Mapping[str, str]) -> None:
    problems = check_scaled_environment(env)
    if problems:
        raise ScaledConfigError("the scaled mode cannot start:\n  " + "\n  ".join(problems))


def start_scaled(
    state_dir: Path,
    config: ScaledConfig,
    *,
    connections: Mapping[str, Mapping[str, Any]] | None = None,
    extra_env: Mapping[str, str] | None = None,
    migrate: bool = True,
    api_port: int | None = None,
) -> AirflowProcesses:
    """Airflow on CeleryExecutor: api-server, scheduler, dag-processor, triggerer and ``config.workers``.

    The services are checked first, then the environment the processes will get; any problem raises
    :class:`ScaledConfigError` before a process starts. The S3 buckets ``extra_env`` names (``HUB_STORE_URL``,
    ``HUB_STAGING_URL``) are created first.
    """
    check_services(config)
    prepare_buckets(extra_env or {})
    return start_airflow(
        state_dir,
        sql_alchemy_conn=config.airflow_db_url,
        connections=connections,
        extra_env={**(extra_env or {}), **celery_environment(config)},
        components=SCALED_COMPONENTS,
        celery_workers=config.workers,
        migrate=migrate,
        check_env=_raise_on_problems,
        api_port=api_port,
    )


def start_scaled_hub(
    state_dir: Path,
    config: ScaledConfig,
    s3: S3Server,
    *,
    connections: Mapping[str, Mapping[str, Any]] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> AirflowProcesses:
    """The hub on the scaled mode for a main job: its PostgreSQL state migrated, licences and staged
    Parquet on ``s3``, Airflow on CeleryExecutor (:func:`start_scaled`) with ``extra_env`` besides."""
    migrate_hub(config.hub_db_url)
    return start_scaled(state_dir, config, connections=connections, extra_env={**(extra_env or {}), **s3.env()})


@dataclass
class S3Server:
    """moto's S3 server as a process: what the licences and staged Parquet go to when no MinIO is named.

    moto keeps objects in memory and checks no credentials (README "Honest notes"); its objects end
    with the process.
    """

    proc: subprocess.Popen[bytes]
    endpoint: str  # host:port
    _log: Any = field(default=None, repr=False)

    def env(self) -> dict[str, str]:
        """The hub's store and staging variables for this server (compose's names; MinIO's buckets)."""
        return {
            "HUB_STORE_URL": f"minio://{self.endpoint}/hub-licenses",
            "HUB_STAGING_URL": f"minio://{self.endpoint}/hub-staging",
            "HUB_STORE_ACCESS_KEY": "hub",
            "HUB_STORE_SECRET_KEY": "hub-secret",
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_s3_server(log: Path, timeout: float = 60) -> S3Server:
    """Start moto's S3 service (:mod:`rigs.s3_server`) on a free loopback port and wait until it answers."""
    log.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    fh = open(log, "ab")  # noqa: SIM115 - closed by S3Server.stop()
    proc = subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "rigs.s3_server", "127.0.0.1", str(port)],
        cwd=REPO_ROOT,
        stdout=fh,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = S3Server(proc, f"127.0.0.1:{port}", fh)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            server.stop()
            raise AirflowRunError(f"moto's S3 server exited with {proc.returncode}; see {log}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.2)
    server.stop()
    raise AirflowRunError(f"moto's S3 server not listening on {port} after {timeout}s; see {log}")


def prepare_buckets(env: Mapping[str, str]) -> None:
    """Create the licence bucket (object lock, default retention) and the staging bucket once, before any task.

    The store and the stager create their buckets on first use; done here, two workers' first tasks
    do not race to create the same bucket.
    """
    saved = {k: os.environ.get(k) for k in ("HUB_STORE_ACCESS_KEY", "HUB_STORE_SECRET_KEY")}
    os.environ.update({k: env[k] for k in saved if k in env})
    try:
        if env.get("HUB_STORE_URL", "").startswith(("minio://", "minios://")):
            open_store(env["HUB_STORE_URL"])
        if env.get("HUB_STAGING_URL", "").startswith(("minio://", "minios://")):
            open_stager(env["HUB_STAGING_URL"])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
