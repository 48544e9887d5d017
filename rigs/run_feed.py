"""``hub run MAPPING [--limit N] [--airflow]``: try one feed end to end (试运行一个交换作业).

The same task bodies as the feed's exchange DAG (:mod:`pipeline.steps`), in order, on the
Connection the mapping names: extract → map → validate → resolve → publish. The mapping is
checked first (as ``hub mappings check`` does) and the hub's database migrated; each step's
counts are printed from the run ledger as it finishes. ``--airflow`` runs the DAG itself
through ``airflow dags test`` (Airflow's database migrated and the pools created first), which
runs a paused DAG too: try a feed before unpausing it.

A step that fails leaves the batches it staged; the next run of the feed (``hub run`` again
or the DAG) carries them through first. Do not run it beside the feed's own running DAG.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from sqlalchemy import select

from hub.airflow_env import VENV_BIN, airflow_environment
from hub.db import get_engine, migrate, session_scope
from hub.settings import REPO_ROOT
from pipeline.tables import PipelineStep

# `hub --help` loads this module (the `run` command), so the pipeline, Airflow and the mappings are
# imported inside the commands (`noqa: PLC0415 - hub --help`).

STEPS = ("extract", "map", "validate", "resolve", "publish")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def describe(step: PipelineStep, mapping: Any = None) -> str:
    """One line saying what a step did, in the words of that step (from its ledger row).

    >>> row = PipelineStep(step="resolve", identities_created=198, identities_linked=2)
    >>> describe(row)
    '198 new identities, 2 records linked to identities already in the index'
    """
    s = step
    if s.step == "extract":
        return (
            f"pulled {s.pulled} row(s) from the source, carried over {s.carried_over or 0} staged by earlier "
            f"runs, {s.quarantined} refused by the connector"
        )
    if s.step == "map":
        return f"mapped {s.accepted} of {s.pulled}, {s.quarantined} rejected (no key, required field empty, duplicate)"
    if s.step == "validate":
        return f"accepted {s.accepted} of {s.pulled}, quarantined {s.quarantined}"
    if s.step == "resolve":
        matched = (
            f"; {s.linked_by_code or 0} by code, {s.linked_by_match or 0} by match, "
            f"{s.sent_to_review or 0} sent to review, {s.provisional or 0} provisional"
            if s.linked_by_match or s.sent_to_review or s.provisional
            else ""
        )
        return (
            f"{s.identities_created} new identities, {s.identities_linked} records linked to identities "
            f"already in the index{matched}"
        )
    if s.step == "publish":
        types = ", ".join(lic.type_code for lic in mapping.licenses) if mapping is not None else ""
        yields = f"licence types {types}" if types else "this mapping yields no licences"
        return (
            f"{s.pulled} record(s), {s.accepted} yielding a licence ({yields}): issued {s.licenses_issued}, "
            f"changed {s.licenses_changed}"
        )
    if s.step == "take_steps":
        return f"{s.pulled} step(s): {s.accepted} in the step log (new or already there), {s.quarantined} refused"
    return str(s.step)


def _ledger(run_id: str, mapping: str) -> dict[str, PipelineStep]:
    with session_scope(get_engine()) as session:
        rows = session.scalars(
            select(PipelineStep).where(PipelineStep.run_id == run_id, PipelineStep.mapping == mapping)
        ).all()
        session.expunge_all()
    return {r.step: r for r in rows}


def _print_step(step: str, row: PipelineStep | None, mapping: Any) -> None:
    if row is None:
        out.print(f"  {step:<9} -")
        return
    out.print(f"  {step:<9} {describe(row, mapping)}  [dim]{row.seconds:.1f}s[/dim]")


def run_direct(name: str, run_id: str, *, limit: int | None = None) -> bool:
    """The task bodies in order, each step's counts printed as it finishes; ``False`` if one failed."""
    from pipeline import steps  # noqa: PLC0415 - ~1 s; `hub --help`

    mapping = steps.load_mapping(name)
    calls: list[tuple[str, Callable[[Any], Any]]] = [
        ("extract", lambda _: steps.extract(name, run_id, limit=limit)),
        ("map", lambda prev: steps.map_batches(name, prev, run_id)),
        ("validate", lambda prev: steps.validate(name, prev, run_id)),
        ("resolve", lambda prev: steps.resolve(name, prev, run_id)),
        ("publish", lambda prev: steps.publish(name, prev, run_id)),
    ]
    if mapping.entity == "case_step":  # a department's case steps end in the step log
        from pipeline.case_feed import take_steps  # noqa: PLC0415 - the case repository; `hub --help`

        calls[3:] = [("take_steps", lambda prev: take_steps(name, prev, run_id))]
    previous: Any = None
    for step, call in calls:
        try:
            previous = call(previous)
        except Exception as exc:
            _print_step(step, _ledger(run_id, name).get(step), mapping)
            err.print(f"[red]{step} failed[/red]: {type(exc).__name__}: {exc}", markup=True)
            err.print(
                "The batches this run staged are kept: fix the cause and run again, they are carried through first."
            )
            return False
        _print_step(step, _ledger(run_id, name).get(step), mapping)
    return True


def run_airflow(name: str, *, limit: int | None = None) -> bool:
    """``airflow dags test`` of the feed's exchange DAG, then its ledger's counts."""
    from pipeline import steps  # noqa: PLC0415 - ~1 s; `hub --help`
    from pipeline.factory import exchange_dag_id  # noqa: PLC0415 - Airflow; `hub --help`
    from rigs.airflow_runner import migrate_airflow  # noqa: PLC0415 - ~0.1 s; --airflow only

    mapping = steps.load_mapping(name)
    env = airflow_environment()
    out.print("[dim]airflow db migrate, pools …[/dim]")
    migrate_airflow(env)
    started = dt.datetime.now(dt.UTC)
    args = [str(VENV_BIN / "airflow"), "dags", "test", exchange_dag_id(name)]
    if limit is not None:
        args += ["--conf", json.dumps({"limit": limit})]
    out.print(f"[dim]{' '.join(args[1:])}[/dim]")
    proc = subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    run_id = _latest_run(name, started)
    rows = _ledger(run_id, name) if run_id else {}
    for step in STEPS:
        _print_step(step, rows.get(step), mapping)
    if proc.returncode != 0 or len(rows) < len(STEPS):
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        err.print(f"[red]the DAG run failed[/red] (airflow dags test exited {proc.returncode}):\n{tail}", markup=True)
        return False
    return True


def _latest_run(name: str, since: dt.datetime) -> str | None:
    with session_scope(get_engine()) as session:
        return session.scalar(
            select(PipelineStep.run_id)
            .where(PipelineStep.mapping == name, PipelineStep.step == "extract", PipelineStep.finished_at >= since)
            .order_by(PipelineStep.finished_at.desc())
            .limit(1)
        )


def run(
    mapping: str = typer.Argument(..., help="A mapping's name: mappings/<MAPPING>.yaml (department_dataset)."),
    limit: int | None = typer.Option(
        None, "--limit", "-n", min=1, help="Read at most N rows from the source (SQL and SOAP feeds)."
    ),
    airflow: bool = typer.Option(False, "--airflow", help="Run the exchange DAG through `airflow dags test`."),
) -> None:
    """Run one feed end to end (extract → map → validate → resolve → publish) on its configured
    Connection and print the counts of every step. Exit 1 when the mapping has problems or a step
    fails, 2 for a mapping that does not exist or --limit on an XML feed."""
    from mappings.engine import MAPPINGS_DIR, mapping_files  # noqa: PLC0415 - ~0.4 s; `hub --help`
    from pipeline.mapping_check import check_mapping  # noqa: PLC0415 - as above

    path = MAPPINGS_DIR / f"{mapping}.yaml"
    if not path.exists():
        known = ", ".join(p.stem for p in mapping_files(MAPPINGS_DIR))
        err.print(f"error: no mapping named {mapping!r} (mappings/{mapping}.yaml); known: {known}")
        raise typer.Exit(2)
    problems = check_mapping(path)
    if problems:
        for p in problems:
            err.print(str(p), markup=False)
        err.print(f"error: mappings/{mapping}.yaml has {len(problems)} problem(s); nothing was run")
        raise typer.Exit(1)
    from pipeline import steps  # noqa: PLC0415 - ~1 s; `hub --help`

    if limit is not None and steps.load_mapping(mapping).spec.protocol == "xml":
        err.print("error: --limit does not apply to an XML feed: a package is read, acknowledged and archived whole")
        raise typer.Exit(2)
    migrate()
    if airflow:
        ok = run_airflow(mapping, limit=limit)
    else:
        run_id = f"hub_run__{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%fZ')}"
        out.print(f"{mapping}: run {run_id}" + (f" (at most {limit} rows)" if limit else ""))
        ok = run_direct(mapping, run_id, limit=limit)
    if ok:
        out.print(
            "[green]done[/green]: `hub identity lookup CODE` shows a record's identity, "
            "`hub validation quarantine` what was quarantined"
        )
    sys.stdout.flush()
    if not ok:
        raise typer.Exit(1)
