"""``hub up`` (一键启动): Airflow standalone, the mutual-recognition API and the sandboxes together.

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
) -> None:
    """Airflow standalone + the API + the sandboxes, until Ctrl-C (make up)."""
    from hub.airflow_env import VENV_BIN, airflow_environment, airflow_state_dir
    from hub.db import migrate
    from hub.settings import get_settings
    from rigs.airflow_runner import migrate_airflow
    from rigs.connections import state_connections
    from rigs.demo import _DEFAULT_TAX_PASSWORD, _sandbox_cli, load_state

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
