"""The ``hub`` command. Each part contributes its own sub-command group.

A part exposes a ``typer.Typer`` named ``app`` in its ``cli`` module; the table below
says under which name it appears. Parts are imported lazily so ``hub --help`` stays fast
and one part's missing optional dependency never breaks the others.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys

import typer
from rich.console import Console

from hub.odbcenv import ensure_odbc_env
from hub.settings import get_settings

console = Console()

app = typer.Typer(
    name="hub",
    help="Data-exchange hub for one-window government services (一窗受理、一网通办).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

#: (group name, module holding ``app``, help)
GROUPS: list[tuple[str, str, str]] = [
    ("sandbox", "rigs.sandbox_cli", "Department sandboxes: up, down, status."),
    # state and reset join the group from the pipeline (they need its ledger and the audit log)
    ("connectors", "pipeline.positions_cli", "Department connectors: list, check, read, state, reset."),
    ("connector", "connectors.scaffold", "Scaffold a new connector protocol: new."),
    ("mappings", "pipeline.mappings_cli", "Department mappings: check, preview."),
    # review joins the group from recognition (a decision moves licences: a room above identity)
    (
        "identity",
        "recognition.identity_review_cli",
        "Identifiers and the master index: normalize, lookup, matching train, review.",
    ),
    ("validation", "validation.cli", "Data-quality suites and quarantine."),
    ("licenses", "e_license_store.cli", "The e-licence repository: list, get, verify, reindex."),
    ("consumers", "recognition.consumers_cli", "API consumers, their keys, limits and allowed push destinations."),
    ("cases", "cases.cli", "The case repository (办件库): intake, show, list, steps; catalogue check."),
    ("calendar", "cases.calendar_cli", "Statutory working days (法定工作日): workday, add, years."),
    ("audit", "recognition.audit_cli", "The audit log: verify, head, archive."),
    ("console", "recognition.console_cli", "The operator console: its named accounts (users add, list, ...)."),
    ("lineage", "recognition.lineage_cli", "Where a licence field or golden attribute came from: licence, identity."),
]

#: single commands contributed by parts: (module, function name, command name)
COMMANDS: list[tuple[str, str, str]] = [
    ("pipeline.api", "serve", "serve"),
    ("pipeline.status_cli", "status", "status"),
    ("recognition.delivery_cli", "deliver", "deliver"),
    ("rigs.demo", "demo", "demo"),
    ("rigs.up", "up", "up"),
    ("rigs.run_feed", "run", "run"),
]


@app.callback()
def _root() -> None:
    """Data-exchange hub for one-window government services (一窗受理、一网通办)."""


@app.command()
def migrate() -> None:
    """Create or upgrade the hub's state database (HUB_DB_URL) to the latest schema."""
    from hub.db import migrate as run_migrate  # noqa: PLC0415 - ORM ~0.5 s; `hub --help`

    run_migrate()
    console.print(f"[green]migrated[/green] {_masked_url(get_settings().resolved_db_url())}")


def _masked_url(url: str) -> str:
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - SQLAlchemy, ~0.2 s; `hub --help` loads this module

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _has_module(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _register(invoked: str | None = None) -> None:
    """Add the parts' commands. When a command is named, only its part is imported, so
    ``hub identity normalize`` does not pay for importing Airflow, GX and FastAPI."""
    known = {name for name, _, _ in GROUPS} | {name for _, _, name in COMMANDS} | {"migrate"}
    only = invoked if invoked in known else None
    for name, module, help_text in GROUPS:
        if (only is None or only == name) and _has_module(module):
            app.add_typer(importlib.import_module(module).app, name=name, help=help_text)
    for module, func, name in COMMANDS:
        if (only is None or only == name) and _has_module(module):
            app.command(name=name)(getattr(importlib.import_module(module), func))


def main() -> None:
    logging.basicConfig(level=os.environ.get("HUB_LOG_LEVEL", "WARNING"))
    ensure_odbc_env()
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    _register(args[0] if args else None)
    app()


if __name__ == "__main__":
    main()
