"""The demo's main job (演示主作业): sandboxes → Airflow's real scheduler → summary per department.

``hub demo`` calls :func:`run_demo` after its sandbox check. Airflow runs from the embedded
configuration with its own database under ``var/airflow/demo`` (``make up`` keeps another, with
the schedules on, so neither resumes the other's runs); the exchange DAGs are triggered, the
push DAG follows on its own, and the run ledger becomes the table.
Running it again processes only what changed in the sandboxes (nothing, on an unchanged seed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console
from rich.table import Table

from hub.airflow_env import airflow_state_dir
from hub.db import get_engine, migrate, session_scope
from hub.settings import get_settings
from mappings.engine import load_all
from pipeline.summary import COLUMNS, DepartmentSummary, summarize
from recognition.subscriptions import sync_yaml
from rigs.airflow_runner import start_airflow
from rigs.main_job import run_main_job
from rigs.scaled import start_s3_server, start_scaled

if TYPE_CHECKING:
    from rigs.scaled import ScaledConfig

TITLES = {
    "pulled": "pulled",
    "carried_over": "carried\nover",
    "accepted": "accepted",
    "quarantined": "quarantined",
    "identities_created": "identities\ncreated",
    "identities_linked": "linked to\nknown identities",
    "linked_by_code": "linked\nby code",
    "linked_by_match": "linked\nby match",
    "sent_to_review": "sent to\nreview",
    "provisional": "provisional\nidentities",
    "licenses_issued": "licences\nissued",
    "licenses_changed": "licences\nchanged",
    "notices_pushed": "notices\npushed",
}


def summary_table(rows: Sequence[DepartmentSummary], title: str = "main job, per department") -> Table:
    table = Table(title=title)
    table.add_column("department")
    for col in COLUMNS[1:]:
        table.add_column(TITLES[col], justify="right")
    for r in rows:
        table.add_row(*r.as_row())
    if rows:
        total = DepartmentSummary("total")
        for col in COLUMNS[1:]:
            setattr(total, col, sum(getattr(r, col) for r in rows))
        table.add_row(*total.as_row(), style="bold")
    return table


def subscribe_tax(tax_wsdl: str, home: Path) -> None:
    """The demo's one subscriber: the tax bureau gets business-licence events by SOAP (订阅)."""
    path = home / "demo_subscriptions.yaml"
    sub = {
        "id": "demo-tax-business-licences",
        "name": "税务局 营业执照变更通知 (demo)",
        "event_types": ["license.issued", "license.amended", "license.revoked"],
        "license_types": ["1101"],
        "channel": "soap",
        "url": tax_wsdl,
        "secret_env": "HUB_SANDBOX_TAX_PASSWORD",
    }
    path.write_text(yaml.safe_dump({"subscriptions": [sub]}, allow_unicode=True), encoding="utf-8")
    with session_scope(get_engine()) as session:
        sync_yaml(session, path)


def _month(console: Console) -> None:
    """The back-dated month of cases on the hub database the main job filled (:mod:`rigs.demo_month`)."""
    from e_license_store.service import default_service  # noqa: PLC0415 - the store and keys, after the job
    from rigs.demo_month import MonthReplayed, print_month, run_month  # noqa: PLC0415 - cases and the SMS sandbox

    try:
        report = run_month(get_engine(), default_service(), get_settings().home)
    except MonthReplayed as exc:
        console.print(f"back-dated month: {exc}; [bold]make clean[/bold] to start over")
        return
    print_month(report, console)


def run_demo(
    connections: Mapping[str, Mapping[str, Any]],
    console: Console,
    *,
    state_dir: Path | None = None,
    timeout: float = 1200,
    tax_wsdl: str | None = None,
    scaled: ScaledConfig | None = None,
) -> bool:
    """Run the main job through Airflow against running sandboxes (their Connections); print the summary.

    ``scaled`` runs it on the scaled mode (:func:`rigs.scaled.start_scaled`: CeleryExecutor, two workers,
    PostgreSQL, Redis, an S3 server) instead of the embedded LocalExecutor.
    True when every DAG succeeded and every department's counts reconcile.
    """
    settings = get_settings()
    migrate()  # the hub's state database at HUB_DB_URL, idempotent
    # Its own Airflow database: ``hub up`` (schedules on) must not leave runs the demo then resumes.
    state = state_dir or airflow_state_dir() / ("scaled-demo" if scaled else "demo")
    names = sorted(load_all())
    parts = "scheduler, dag-processor, api-server" + (", triggerer, two Celery workers" if scaled else "")
    console.print(f"[bold]starting Airflow[/bold] ({parts}; state in {state})…")
    env = {"HUB_HOME": str(settings.home), "HUB_DB_URL": settings.resolved_db_url(), "HUB_DAG_SCHEDULES": "off"}
    if tax_wsdl:
        subscribe_tax(tax_wsdl, settings.home)
        env["HUB_SANDBOX_TAX_PASSWORD"] = str(connections["tax_soap"].get("password", ""))
    started = dt.datetime.now(dt.UTC)
    with contextlib.ExitStack() as stack:
        if scaled is None:
            af = stack.enter_context(start_airflow(state, connections=connections, extra_env=env, migrate=True))
        else:
            if not os.environ.get("HUB_STORE_URL"):  # no MinIO named: moto's S3 server, as in hub up --scaled
                env.update(stack.enter_context(start_s3_server(state / "logs" / "s3.log")).env())
            af = stack.enter_context(start_scaled(state, scaled, connections=connections, extra_env=env))
            console.print(f"CeleryExecutor, workers {', '.join(f'celery@{w}' for w in scaled.workers)}")
        console.print(f"triggering {len(names)} exchange DAGs: {', '.join(names)}")
        result = run_main_job(af, names, timeout=timeout)
    for name, state_ in sorted(result.states.items()):
        colour = "green" if state_ == "success" else "red"
        console.print(f"  hub_exchange_{name}: [{colour}]{state_}[/{colour}]")
    console.print(f"  hub_push (woken by Assets): {[r['state'] for r in result.push_runs] or 'not run'}")
    rows = summarize(result.run_ids.values(), since=started)
    console.print(summary_table(rows, title=f"main job in {result.seconds:.0f}s, per department"))
    if result.ok and not any(r.pulled or r.carried_over for r in rows):
        console.print(
            "Nothing was pulled: the sandboxes have not changed since the last run (every feed is "
            "incremental, from its watermark), so nothing was linked, issued or pushed again. "
            "To start over from empty: [bold]make clean[/bold], then [bold]make demo[/bold]."
        )
    if result.ok:
        _month(console)
    bad = [r.department for r in rows if not r.reconciled]
    if bad:
        console.print(f"[red]counts do not reconcile for {bad}[/red]")
    console.print(
        "Open the Airflow UI: [bold]make up[/bold] → http://localhost:8081 (user admin, password in "
        f"{state / 'simple_auth_manager_passwords.json.generated'}); "
        "the API: http://127.0.0.1:8080/docs (hub serve, keys: hub consumers add …); a licence's QR code "
        "opens http://127.0.0.1:8080/verify/… (HUB_VERIFY_BASE_URL)."
    )
    return result.ok and not bad
