"""``hub demo``: bring up the department sandboxes, check each through its protocol, run the main job.

After the sandbox check, the hub's main job runs through Airflow's real scheduler
(:func:`rigs.demo_job.run_demo`): every exchange DAG, then the push DAG woken by the
Assets, and a summary per department. ``--no-pipeline`` stops after the check.

The sandboxes start through ``hub sandbox up`` (a separate process: the hub never imports
``sandbox/``), then :func:`check_sandboxes` reaches every department the way a connector
does — SOAP (zeep) to tax, SQL to public security, ODBC (pyodbc) to commerce, XSD validation
of land packages — and the demo prints what it found before the main job runs. After the main
job, the story of two applications (:mod:`rigs.demo_story`): the joint registration whose
recognised licences stand in for paper, and the project approval that reads the land-use
pre-review opinion; their timelines are printed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from hub.odbcenv import ensure_odbc_env
from hub.settings import get_settings

# Piped output (CI logs, `make demo | tee`) gets a width the summary table fits in.
console = Console(width=None if sys.stdout.isatty() else 132)

#: The sandbox's documented default (sandbox/CONTRACT.md); override with HUB_SANDBOX_TAX_PASSWORD.
_DEFAULT_TAX_PASSWORD = "sandbox-secret"  # noqa: S105


@dataclass(frozen=True)
class SandboxCheck:
    """One department sandbox checked through its real protocol."""

    department: str
    protocol: str
    endpoint: str
    records: int
    ok: bool
    detail: str = ""


def state_path(home: Path | None = None) -> Path:
    """Where ``hub sandbox up`` records ports and URLs."""
    return (home or get_settings().home) / "sandbox" / "state.json"


def load_state(home: Path | None = None) -> dict[str, Any]:
    return dict(json.loads(state_path(home).read_text()))


def _tax(state: Mapping[str, Any]) -> tuple[int, str]:
    import zeep  # noqa: PLC0415 - zeep, ~0.3 s; `hub --help` loads this module
    from zeep.transports import Transport  # noqa: PLC0415 - zeep, as above
    from zeep.wsse.username import UsernameToken  # noqa: PLC0415 - zeep, as above

    tax = state["tax"]
    user = os.environ.get("HUB_SANDBOX_TAX_USER", tax.get("username", "hub"))
    password = os.environ.get("HUB_SANDBOX_TAX_PASSWORD", _DEFAULT_TAX_PASSWORD)
    client = zeep.Client(tax["wsdl_url"], wsse=UsernameToken(user, password), transport=Transport(timeout=10))
    total, token = 0, None
    while True:
        page = client.service.ListChangedTaxpayers(since=dt.datetime(1970, 1, 1), page_token=token, page_size=1000)
        total += len(page.taxpayers.Taxpayer) if page.taxpayers else 0
        token = page.next_page_token
        if not token:
            return total, "ListChangedTaxpayers paged through"


def _public_security(state: Mapping[str, Any]) -> tuple[int, str]:
    import sqlalchemy as sa  # noqa: PLC0415 - SQLAlchemy, ~0.2 s; `hub --help` loads this module

    ps = state["public_security"]
    engine = sa.create_engine(ps["sqlalchemy_url"], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            n = conn.execute(sa.text(f"SELECT COUNT(*) FROM {ps['table']}")).scalar()
            latest = conn.execute(sa.text(f"SELECT MAX(updated_at) FROM {ps['table']}")).scalar()
    finally:
        engine.dispose()
    return int(n or 0), f"latest change {latest}"


def _commerce(state: Mapping[str, Any]) -> tuple[int, str]:
    ensure_odbc_env()
    import pyodbc  # noqa: PLC0415 - unixODBC reads ODBCSYSINI when pyodbc loads: after ensure_odbc_env

    conn = pyodbc.connect(state["commerce"]["odbc_connection_string"], timeout=10)
    try:
        cur = conn.cursor()
        n = cur.execute("SELECT COUNT(*) FROM enterprise_registry").fetchone()[0]
        no_uscc = cur.execute("SELECT COUNT(*) FROM enterprise_registry WHERE uscc IS NULL").fetchone()[0]
        driver = conn.getinfo(pyodbc.SQL_DRIVER_NAME)
    finally:
        conn.close()
    return int(n), f"driver {driver}; {no_uscc} old records without USCC"


def _land(state: Mapping[str, Any]) -> tuple[int, str]:
    from lxml import etree  # noqa: PLC0415 - lxml, ~0.07 s; `hub --help` loads this module

    land = state["land"]
    schema = etree.XMLSchema(etree.parse(land["xsd_path"]))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    packages = sorted(Path(land["outbox_dir"]).glob("*.xml"))
    records, invalid, encodings = 0, 0, set()
    for path in packages:
        doc = etree.parse(str(path), parser)
        encodings.add(doc.docinfo.encoding)
        if not schema.validate(doc):
            invalid += 1
            continue
        records += len(doc.getroot())
    if invalid or not packages:
        raise ValueError(f"{invalid} of {len(packages)} packages fail the XSD")
    return records, f"{len(packages)} packages valid ({', '.join(sorted(encodings))})"


_CHECKS: list[tuple[str, str, Callable[[Mapping[str, Any]], tuple[int, str]], Callable[[Mapping[str, Any]], str]]] = [
    ("tax 税务", "SOAP 1.1 (zeep, WS-Security)", _tax, lambda s: s["tax"]["wsdl_url"]),
    ("public security 公安", "SQL", _public_security, lambda s: _masked(s["public_security"]["sqlalchemy_url"])),
    (
        "commerce 市场监管",
        "SQL over ODBC (pyodbc)",
        _commerce,
        lambda s: _odbc_endpoint(s["commerce"]["odbc_connection_string"]),
    ),
    ("land 自然资源", "XML packages + XSD (lxml)", _land, lambda s: s["land"]["outbox_dir"]),
]


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - SQLAlchemy, ~0.2 s; `hub --help` loads this module

    return make_url(url).render_as_string(hide_password=True)


def _odbc_endpoint(conn_str: str) -> str:
    parts = [p for p in conn_str.split(";") if p and not p.upper().startswith(("PWD=", "UID="))]
    return ";".join(parts)


def check_sandboxes(state: Mapping[str, Any]) -> list[SandboxCheck]:
    """Check each sandbox recorded in ``state`` (see :func:`load_state`) through its protocol."""
    results = []
    for department, protocol, check, endpoint in _CHECKS:
        where = endpoint(state)
        try:
            records, detail = check(state)
            results.append(SandboxCheck(department, protocol, where, records, records > 0, detail))
        except Exception as exc:
            results.append(SandboxCheck(department, protocol, where, 0, False, f"{type(exc).__name__}: {exc}"))
    return results


def checks_table(checks: list[SandboxCheck], title: str = "Department sandboxes") -> Table:
    table = Table(title=title)
    for col in ("department", "protocol", "endpoint", "records", "status", "detail"):
        table.add_column(col, overflow="fold")
    for c in checks:
        status = "[green]ok[/green]" if c.ok else "[red]FAIL[/red]"
        table.add_row(c.department, c.protocol, c.endpoint, str(c.records), status, c.detail)
    return table


def dirt_table(report: Mapping[str, Any]) -> Table:
    table = Table(title="Dirt in the source data (脏数据): profile vs realised")
    for col in ("kind", "profile", "realised", "applied / chances"):
        table.add_column(col)
    for kind, rate in sorted(report.get("realised", {}).items()):
        counts = report.get("counts", {}).get(kind, {})
        table.add_row(
            kind,
            f"{report['profile'][kind]:.2%}",
            f"{rate:.2%}",
            f"{counts.get('applied', 0)} / {counts.get('chances', 0)}",
        )
    return table


def _sandbox_cli(*args: str) -> int:
    """Run ``hub sandbox ...`` in its own process (the sandbox CLI module directly: faster start)."""
    return subprocess.call([sys.executable, "-m", "rigs.sandbox_cli", *args])


def demo(
    seed: int = typer.Option(2016, help="Seed of the generated city."),
    persons: int = typer.Option(2000, help="Residents to generate."),
    enterprises: int = typer.Option(500, help="Enterprises to generate."),
    properties: int = typer.Option(800, help="Real-estate units to generate."),
    keep: bool = typer.Option(False, help="Leave the sandboxes running afterwards."),
    pipeline: bool = typer.Option(True, help="Run the main job through Airflow after the check."),
    scaled: bool = typer.Option(
        False, "--scaled", help="Run the main job on the scaled mode (CeleryExecutor, two workers, PostgreSQL, Redis)."
    ),
) -> None:
    """Bring up the four department sandboxes, check each through its protocol, run the main job via Airflow."""
    scaled_config = None
    if scaled and pipeline:
        from rigs.scaled import ScaledConfigError, use_scaled_state  # noqa: PLC0415 - `hub --help`

        try:  # the broker and PostgreSQL are checked before any sandbox starts
            scaled_config, created = use_scaled_state(role="demo")
        except ScaledConfigError as exc:
            typer.echo(f"hub demo --scaled: {exc}", err=True)
            raise typer.Exit(1) from None
        for name in created:
            console.print(f"created PostgreSQL database {name}")
    rc = _sandbox_cli(
        "up", "--backend", "embedded", "--seed", str(seed), "--persons", str(persons),
        "--enterprises", str(enterprises), "--properties", str(properties),
    )  # fmt: skip
    if rc != 0:
        console.print("[red]sandboxes failed to start[/red]")
        raise typer.Exit(rc)
    pipeline_ok = False
    try:
        state = load_state()
        checks = check_sandboxes(state)
        console.print(checks_table(checks))
        report_path = Path(state["data_dir"]) / "dirt_report.json"
        if report_path.exists():
            console.print(dirt_table(json.loads(report_path.read_text())))
        counts = state.get("counts", {})
        console.print(
            "records per department: "
            + ", ".join(f"{k} {counts[k]}" for k in ("taxpayers", "person_registry", "enterprise_registry",
                                                     "property_rights", "approval_results") if k in counts)
        )  # fmt: skip
        if pipeline and all(c.ok for c in checks):
            from rigs.connections import state_connections  # noqa: PLC0415 - SQLAlchemy; `hub --help` loads this module
            from rigs.demo_job import run_demo  # noqa: PLC0415 - Airflow; `hub --help`

            password = os.environ.get("HUB_SANDBOX_TAX_PASSWORD", _DEFAULT_TAX_PASSWORD)
            connections = state_connections(state, password)
            pipeline_ok = run_demo(connections, console, tax_wsdl=state["tax"]["wsdl_url"], scaled=scaled_config)
            if pipeline_ok:
                from rigs.demo_story import run_story  # noqa: PLC0415 - the case repository; `hub --help`

                pipeline_ok = run_story(state, connections, console)
    finally:
        if not keep:
            _sandbox_cli("down")
    failed = [c.department for c in checks if not c.ok]
    if failed:
        console.print(f"[red]not answering: {', '.join(failed)}[/red]")
        raise typer.Exit(1)
    console.print(f"[green]all {len(checks)} department sandboxes answer through their protocols[/green]")
    if pipeline and not pipeline_ok:
        console.print("[red]the main job did not complete cleanly (see above and var/airflow/logs)[/red]")
        raise typer.Exit(1)
