"""``hub up`` (一键启动): Airflow standalone, the mutual-recognition API and the sandboxes together.

``hub up --scaled`` runs the scaled mode instead (:mod:`rigs.scaled`): CeleryExecutor with two Celery
workers, Airflow's metadata and the hub's state on PostgreSQL, Redis as the broker, as processes.

Long-running: the four department sandboxes (embedded: SQLite files, the tax SOAP service in
this process), ``airflow standalone`` (api-server with the UI, scheduler, dag-processor,
triggerer) with the sandboxes as Airflow Connections, and ``hub serve``. Ctrl-C stops all of
them; each child runs in its own process group and only those groups are signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.console import Console

from hub.airflow_env import VENV_BIN, airflow_environment, airflow_state_dir
from hub.settings import get_settings
from rigs.demo import _DEFAULT_TAX_PASSWORD, _sandbox_cli, load_state

console = Console()


def _spawn(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "ab")  # noqa: SIM115 - closed by the caller on shutdown
    proc = subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, fh


def _stop(procs: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def up(
    airflow_port: Annotated[int, typer.Option(help="Airflow UI / API port")] = 8081,
    api_port: Annotated[int, typer.Option(help="Mutual-recognition API and public pages port (hub serve's)")] = 8080,
    seed: Annotated[int, typer.Option(help="Sandbox data seed")] = 2016,
    schedules: Annotated[bool, typer.Option(help="Let the exchange DAGs run on their schedules")] = True,
    scaled: Annotated[
        bool,
        typer.Option(
            "--scaled",
            help="CeleryExecutor with two workers, PostgreSQL and Redis (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, "
            "HUB_DB_URL, AIRFLOW__CELERY__BROKER_URL; default: this machine's servers) (make scaled)",
        ),
    ] = False,
) -> None:
    """Airflow standalone + the API + the sandboxes, until Ctrl-C (make up); --scaled: the scaled mode."""
    if scaled:
        up_scaled(airflow_port=airflow_port, api_port=api_port, seed=seed, schedules=schedules)
        return
    from hub.db import migrate  # noqa: PLC0415 - SQLAlchemy and the ORM, ~0.5 s; `hub --help` loads this module
    from rigs.airflow_runner import migrate_airflow  # noqa: PLC0415 - SQLAlchemy; `hub --help` loads this module
    from rigs.connections import state_connections  # noqa: PLC0415 - SQLAlchemy; `hub --help` loads this module

    home = get_settings().home
    state = airflow_state_dir()
    migrate()
    # The sandboxes run as their own processes (``hub sandbox up``): the hub never imports them.
    if _sandbox_cli("up", "--backend", "embedded", "--seed", str(seed)) != 0:
        console.print("[red]sandboxes failed to start[/red]")
        raise typer.Exit(1)
    sandbox_state = load_state()
    tax_password = os.environ.get("HUB_SANDBOX_TAX_PASSWORD", _DEFAULT_TAX_PASSWORD)
    try:
        env = airflow_environment(
            api_port=airflow_port,
            connections=state_connections(sandbox_state, tax_password),
            extra={"HUB_DAG_SCHEDULES": "on" if schedules else "off"},
        )
        # the QR codes of the licences rendered meanwhile (by Airflow's tasks) open this API's /verify pages
        env.setdefault("HUB_VERIFY_BASE_URL", f"http://127.0.0.1:{api_port}")
        console.print("[bold]preparing Airflow[/bold] (db migrate, per-department pools)…")
        migrate_airflow(env)
        # SIGTERM (systemd, timeout, docker stop) ends the children like Ctrl-C does
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        procs: list[subprocess.Popen[bytes]] = []
        logs: list[IO[bytes]] = []
        try:
            for args, log in (
                ([str(VENV_BIN / "airflow"), "standalone"], state / "logs" / "standalone.log"),
                ([str(VENV_BIN / "hub"), "serve", "--port", str(api_port)], home / "logs" / "api.log"),
            ):
                proc, fh = _spawn(args, env, log)
                procs.append(proc)
                logs.append(fh)
            passwords = state / "simple_auth_manager_passwords.json.generated"
            console.print(f"[green]Airflow UI[/green]   http://localhost:{airflow_port}  (user admin)")
            console.print(f"             password in {passwords}")
            console.print(f"[green]hub API[/green]      http://127.0.0.1:{api_port}/docs  (keys: hub consumers add …)")
            verify_page = f"{env['HUB_VERIFY_BASE_URL']}/verify"
            console.print(f"[green]verification[/green] {verify_page}  (what licence QR codes open)")
            console.print(
                f"[green]sandboxes[/green]    tax WSDL {sandbox_state['tax']['wsdl_url']}; "
                f"data in {sandbox_state.get('data_dir')}"
            )
            console.print(f"logs: {state / 'logs'}  —  Ctrl-C stops everything")
            while all(p.poll() is None for p in procs):
                time.sleep(1)
            dead = [p.args for p in procs if p.poll() is not None]
            console.print(f"[red]stopped:[/red] {dead} exited; see the logs")
        except KeyboardInterrupt:
            console.print("stopping…")
        finally:
            _stop(procs)
            for fh in logs:
                fh.close()
    finally:
        _sandbox_cli("down")


def up_scaled(*, airflow_port: int, api_port: int, seed: int, schedules: bool) -> None:
    """The scaled mode as processes until Ctrl-C: Airflow on CeleryExecutor with two workers, the API, the sandboxes.

    The broker and the database servers are checked before anything starts; the databases this
    checkout keeps on the shared PostgreSQL are created when missing.
    """
    from hub.db import migrate  # noqa: PLC0415 - SQLAlchemy and the ORM, ~0.5 s; `hub --help` loads this module
    from rigs.airflow_runner import AirflowRunError  # noqa: PLC0415 - SQLAlchemy; `hub --help` loads this module
    from rigs.connections import state_connections  # noqa: PLC0415 - SQLAlchemy; `hub --help` loads this module
    from rigs.scaled import (  # noqa: PLC0415 - SQLAlchemy, psycopg, redis, pandas; `hub --help` loads this module
        S3Server,
        ScaledConfigError,
        start_s3_server,
        start_scaled,
        use_scaled_state,
    )

    try:
        config, created = use_scaled_state()
    except ScaledConfigError as exc:
        typer.echo(f"hub up --scaled: {exc}", err=True)
        raise typer.Exit(1) from None
    for name in created:
        console.print(f"created PostgreSQL database {name}")
    migrate()
    home = get_settings().home
    if _sandbox_cli("up", "--backend", "embedded", "--seed", str(seed)) != 0:
        console.print("[red]sandboxes failed to start[/red]")
        raise typer.Exit(1)
    sandbox_state = load_state()
    tax_password = os.environ.get("HUB_SANDBOX_TAX_PASSWORD", _DEFAULT_TAX_PASSWORD)
    extra = {
        "HUB_DAG_SCHEDULES": "on" if schedules else "off",
        "HUB_VERIFY_BASE_URL": os.environ.get("HUB_VERIFY_BASE_URL", f"http://127.0.0.1:{api_port}"),
    }
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    serve: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []
    af = None
    s3: S3Server | None = None
    try:
        if not os.environ.get("HUB_STORE_URL"):
            # no MinIO named: the S3 server the tests use (moto: in memory, no credentials checked)
            s3 = start_s3_server(home / "logs" / "s3.log")
            extra.update(s3.env())
        console.print("[bold]starting the scaled mode[/bold] (db migrate, pools, then the components)…")
        af = start_scaled(
            airflow_state_dir() / "scaled",
            config,
            connections=state_connections(sandbox_state, tax_password),
            extra_env=extra,
            api_port=airflow_port,
        )
        api = [str(VENV_BIN / "hub"), "serve", "--port", str(api_port), "--workers", "2"]
        proc, fh = _spawn(api, {**af.env, **extra}, home / "logs" / "api.log")
        serve.append(proc)
        logs.append(fh)
        console.print(f"[green]Airflow UI[/green]   {af.api_url}  (user admin)")
        console.print(f"             password in {af.env['AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE']}")
        console.print(f"[green]workers[/green]      {', '.join(f'celery@{w}' for w in config.workers)}")
        console.print(f"[green]hub API[/green]      http://127.0.0.1:{api_port}/docs  (two worker processes)")
        store = extra.get("HUB_STORE_URL") or os.environ["HUB_STORE_URL"]
        console.print(f"[green]licences[/green]     {store}" + (" (moto's S3 server, in memory)" if s3 else ""))
        console.print(f"logs: {af.state_dir / 'logs'}  —  Ctrl-C stops everything")
        while serve[0].poll() is None:
            af.check_alive()
            time.sleep(1)
        console.print(f"[red]stopped:[/red] hub serve exited; see {home / 'logs' / 'api.log'}")
    except (ScaledConfigError, AirflowRunError) as exc:
        typer.echo(f"hub up --scaled: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        _stop(serve)
        for fh in logs:
            fh.close()
        if af is not None:
            af.stop()
        if s3 is not None:
            s3.stop()
        _sandbox_cli("down")
