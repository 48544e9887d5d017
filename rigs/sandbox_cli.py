"""``hub sandbox up|down|status``: the department sandboxes on this machine (模拟部门系统).

``up`` generates the city, loads every store and runs the tax SOAP service as a detached
process (pid file and state file under ``$HUB_HOME/sandbox/``); ``status`` checks each
sandbox through its real protocol; ``down`` stops the service. ``up`` and ``status`` can
run any number of times: ``up`` replaces what an earlier ``up`` left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from hub.settings import get_settings
from rigs.demo import check_sandboxes, checks_table
from rigs.testing import MARIADB_HOST, MARIADB_PORT, MARIADB_USER, PG_HOST, PG_PORT, PG_USER, TempDatabase
from sandbox.faults import FaultFile

if TYPE_CHECKING:
    from sandbox.runtime import Prepared

app = typer.Typer(no_args_is_help=True, help="Department sandboxes: up, down, status.")
console = Console()

PG_DB = os.environ.get("HUB_SANDBOX_PG_DB", "hub_sandbox_population")
MARIADB_DB = os.environ.get("HUB_SANDBOX_MARIADB_DB", "hub_sandbox_commerce")


def _root() -> Path:
    root = get_settings().home / "sandbox"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _state_file() -> Path:
    return _root() / "state.json"


def _pid_file() -> Path:
    return _root() / "tax.pid"


def _is_tax_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"sandbox.tax.server" in cmdline


def _stop_tax_server() -> bool:
    """Stop the detached tax service recorded in the pid file; True if one was running."""
    pid_file = _pid_file()
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().strip() or 0)
    stopped = False
    if pid and _is_tax_server(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _is_tax_server(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_tax_server(pid):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        stopped = True
    pid_file.unlink(missing_ok=True)
    return stopped


def _server_databases() -> tuple[Any, Any]:
    """The named sandbox databases on the shared servers (created when missing)."""
    import psycopg  # noqa: PLC0415 - ~0.3 s; --backend servers only; `hub --help` loads this module
    import pymysql  # noqa: PLC0415 - ~0.15 s; as above

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,)).fetchone():
            admin.execute(f'CREATE DATABASE "{PG_DB}"')
    conn = pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER, password="", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE IF NOT EXISTS `{MARIADB_DB}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
    finally:
        conn.close()
    return (
        TempDatabase("postgresql", PG_DB, PG_HOST, PG_PORT, PG_USER),
        TempDatabase("mariadb", MARIADB_DB, MARIADB_HOST, MARIADB_PORT, MARIADB_USER),
    )


def _spawn_tax_server(prepared: Prepared) -> tuple[int, int]:
    """Start the tax service as a detached process; wait (with a deadline) for its port."""
    port_file = _root() / "tax.port"
    port_file.unlink(missing_ok=True)
    log = open(_root() / "tax.log", "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.tax.server", "--db", str(prepared.tax_store.path),
         "--faults", str(prepared.faults_path), "--port-file", str(port_file)],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True, env=os.environ.copy(),
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"tax service did not start (see {_root() / 'tax.log'})")
        time.sleep(0.05)
    _pid_file().write_text(str(proc.pid))
    return proc.pid, int(port_file.read_text())


def _wait_for_wsdl(url: str, timeout: float = 20) -> None:
    import requests  # noqa: PLC0415 - ~0.1 s; `up` only; `hub --help` loads this module

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"tax WSDL not answering at {url}")
        time.sleep(0.1)


@app.command()
def up(
    seed: int = typer.Option(2016, help="Seed of the generated city."),
    persons: int = typer.Option(2000, help="Residents."),
    enterprises: int = typer.Option(500, help="Enterprises."),
    properties: int = typer.Option(800, help="Real-estate units."),
    backend: str = typer.Option("embedded", help="embedded (SQLite files) or servers (PostgreSQL + MariaDB)."),
    foreground: bool = typer.Option(False, help="Serve the tax service in this process until Ctrl-C."),
) -> None:
    """Generate the city, load the four department sandboxes and start the tax SOAP service."""
    # Heavy imports stay inside the commands so `status` and `down` start fast.
    from sandbox.generator import Sizes  # noqa: PLC0415 - the city generator, ~1 s; `hub --help` loads this module
    from sandbox.runtime import prepare  # noqa: PLC0415 - ~0.5 s; `hub --help` loads this module
    from sandbox.tax.server import TaxServer, default_credentials  # noqa: PLC0415 - `hub --help`

    _stop_tax_server()
    pg = mariadb = None
    if backend == "servers":
        pg, mariadb = _server_databases()
    with console.status("generating and loading the department sandboxes..."):
        prepared = prepare(get_settings().home, seed, Sizes(persons, enterprises, properties), backend, pg, mariadb)
    creds = default_credentials()
    if foreground:
        server = TaxServer(prepared.tax_store, FaultFile(prepared.faults_path), creds).start()
        _write_state(prepared, server.port, os.getpid())
        console.print(f"tax SOAP service on {server.wsdl_url} (Ctrl-C to stop)")
        try:
            server.thread.join()
        except KeyboardInterrupt:
            server.stop()
            _state_file().unlink(missing_ok=True)
        return
    pid, port = _spawn_tax_server(prepared)
    state = _write_state(prepared, port, pid)
    _wait_for_wsdl(state["tax"]["wsdl_url"])
    console.print(_endpoints_table(state))


def _write_state(prepared: Prepared, port: int, pid: int) -> dict[str, Any]:
    from sandbox.runtime import attach, summary  # noqa: PLC0415 - ~0.5 s; `hub --help` loads this module
    from sandbox.tax.server import default_credentials  # noqa: PLC0415 - as in `up`

    creds = default_credentials()
    state = summary(attach(prepared, port, creds.username, creds.password))
    state["tax"]["pid"] = pid
    _state_file().write_text(json.dumps(state, ensure_ascii=False, indent=2))
    return state


def _endpoints_table(state: dict[str, Any]) -> Table:
    table = Table(title=f"Department sandboxes up (seed {state['seed']}, {state['backend']})")
    table.add_column("department")
    table.add_column("endpoint", overflow="fold")
    table.add_row("tax 税务", state["tax"]["wsdl_url"])
    table.add_row("public security 公安", state["public_security"]["sqlalchemy_url"])
    table.add_row("commerce 市场监管", state["commerce"]["odbc_connection_string"])
    table.add_row("land 自然资源", state["land"]["outbox_dir"])
    table.add_row("ground truth", state["ground_truth_path"])
    return table


@app.command()
def down(
    drop_databases: bool = typer.Option(False, help="Also drop the servers backend's sandbox databases."),
) -> None:
    """Stop the tax SOAP service and forget the state (generated data stays on disk)."""
    stopped = _stop_tax_server()
    _state_file().unlink(missing_ok=True)
    console.print("tax service stopped" if stopped else "nothing was running")
    if drop_databases:
        _drop_server_databases()
        console.print(f"dropped databases {PG_DB} (PostgreSQL) and {MARIADB_DB} (MariaDB)")


def _drop_server_databases() -> None:
    import psycopg  # noqa: PLC0415 - ~0.3 s; --backend servers only; `hub --help` loads this module
    import pymysql  # noqa: PLC0415 - ~0.15 s; as above

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
    conn = pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER, password="", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{MARIADB_DB}`")
    finally:
        conn.close()


@app.command()
def status() -> None:
    """Check every sandbox through its real protocol (SOAP, SQL, ODBC, XML + XSD)."""
    if not _state_file().exists():
        console.print("[yellow]sandboxes are not up (run `hub sandbox up`)[/yellow]")
        raise typer.Exit(1)
    state = json.loads(_state_file().read_text())
    checks = check_sandboxes(state)
    console.print(checks_table(checks, title=f"Department sandboxes (seed {state['seed']}, {state['backend']})"))
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
