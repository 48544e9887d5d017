"""A real run of an exchange DAG (``airflow dags test``) emits the OpenLineage provider's events.

The provider's listener runs in the task processes and writes to the file transport the hub's
Airflow environment configures (:func:`hub.airflow_env.openlineage_env`); the test reads the
file: a START and a COMPLETE per task instance, every dataset named, row counts equal to the
run ledger's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from hub.airflow_env import openlineage_env
from hub.db import get_engine, session_scope
from identity.tables import IdentityEnterprise
from pipeline.tables import PipelineStep
from rigs.run_feed import run
from tests.pipeline.test_rerun_carries_over import sandboxes  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.odbc, pytest.mark.airflow]

FEED = "commerce_enterprises"
STEPS = ("extract", "map", "validate", "resolve", "publish")
DATASETS = {
    "extract": ({"odbc://commerce_registry/enterprise_registry"},
                {"hub://staging/commerce_enterprises/extracted", "hub://quarantine/commerce_enterprises"}),
    "map": ({"hub://staging/commerce_enterprises/extracted"}, {"hub://canonical/enterprise"}),
    "validate": ({"hub://canonical/enterprise"},
                 {"hub://staging/commerce_enterprises/accepted", "hub://quarantine/commerce_enterprises"}),
    "resolve": ({"hub://staging/commerce_enterprises/accepted"},
                {"hub://identity/enterprise", "hub://staging/commerce_enterprises/resolved"}),
    "publish": ({"hub://staging/commerce_enterprises/resolved"}, {"hub://licences/store"}),
}  # fmt: skip


def _names(datasets: list[dict[str, Any]]) -> set[str]:
    return {f"{d['namespace']}/{d['name']}" for d in datasets}


def _rows(dataset: dict[str, Any], kind: str) -> int:
    return int(dataset[f"{kind}Facets"][f"{kind}Statistics"]["rowCount"])


def test_a_dag_run_emits_start_and_complete_per_task_with_datasets_and_counts(
    sandboxes: Any,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events_file = tmp_path / "openlineage" / "events.jsonl"
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path / 'airflow.db'}")
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(tmp_path / "logs"))
    monkeypatch.setenv("HUB_DAG_SCHEDULES", "off")
    monkeypatch.setenv("HUB_OPENLINEAGE_FILE", str(events_file))
    # what the hub's Airflow environment derives from HUB_OPENLINEAGE_FILE (this process set its own earlier)
    for key, value in openlineage_env({"HUB_OPENLINEAGE_FILE": str(events_file)}, tmp_path).items():
        monkeypatch.setenv(key, value)
    events_file.parent.mkdir(parents=True)

    app = typer.Typer()
    app.command()(run)
    res = CliRunner().invoke(app, [FEED, "--airflow", "--limit", "30"])
    assert res.exit_code == 0, res.output

    events = [json.loads(line) for line in events_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    tasks = [e for e in events if e["job"]["name"].startswith(f"hub_exchange_{FEED}.")]
    by_state: dict[tuple[str, str], dict[str, Any]] = {}
    for e in tasks:
        by_state[(e["job"]["name"].rsplit(".", 1)[1], e["eventType"])] = e
    assert {k for k in by_state} == {(s, t) for s in STEPS for t in ("START", "COMPLETE")}, sorted(by_state)
    assert len(tasks) == 2 * len(STEPS)  # one START and one COMPLETE per task instance
    assert all(e["job"]["namespace"] == "hub" for e in tasks)
    for step, (inputs, outputs) in DATASETS.items():
        for state in ("START", "COMPLETE"):
            e = by_state[(step, state)]
            assert _names(e["inputs"]) == inputs and _names(e["outputs"]) == outputs, (step, state, e)
        # START and COMPLETE of one task instance share its run id
        assert by_state[(step, "START")]["run"]["runId"] == by_state[(step, "COMPLETE")]["run"]["runId"]
    # a DAG-run event as well (the provider's own, per DAG run)
    assert any(e["job"]["name"] == f"hub_exchange_{FEED}" and e["eventType"] == "COMPLETE" for e in events)

    run_id = by_state[("extract", "COMPLETE")]["run"]["facets"]["airflow"]["dagRun"]["run_id"]
    with session_scope(get_engine()) as s:
        ledger = {r.step: r for r in s.scalars(select(PipelineStep).where(
            PipelineStep.run_id == run_id, PipelineStep.mapping == FEED))}  # fmt: skip
        s.expunge_all()
    assert set(ledger) == set(STEPS)

    def done(step: str) -> dict[str, Any]:
        return by_state[(step, "COMPLETE")]

    def output(step: str, uri: str) -> dict[str, Any]:
        return next(d for d in done(step)["outputs"] if f"{d['namespace']}/{d['name']}" == uri)

    extract, validate = ledger["extract"], ledger["validate"]
    assert extract.pulled == 30
    assert _rows(done("extract")["inputs"][0], "input") == 30
    assert _rows(output("extract", "hub://staging/commerce_enterprises/extracted"), "output") == extract.accepted
    assert _rows(output("validate", "hub://staging/commerce_enterprises/accepted"), "output") == validate.accepted
    assert _rows(output("validate", "hub://quarantine/commerce_enterprises"), "output") == validate.quarantined
    assert validate.accepted + validate.quarantined == ledger["map"].pulled
    assert _rows(output("resolve", "hub://identity/enterprise"), "output") == ledger["resolve"].accepted
    publish = ledger["publish"]
    assert publish.licenses_issued > 0
    assert (
        _rows(output("publish", "hub://licences/store"), "output") == publish.licenses_issued + publish.licenses_changed
    )
    facet = done("validate")["run"]["facets"]["hub_step"]
    assert facet["counts"]["quarantined"] == validate.quarantined and facet["step"] == "validate"
    # schemas: the canonical entity's fields, the source columns the mapping reads
    canonical = output("map", "hub://canonical/enterprise")["facets"]["schema"]["fields"]
    assert {"uscc", "name", "status"} <= {f["name"] for f in canonical}
    source_schema = done("extract")["inputs"][0]["facets"]["schema"]["fields"]
    assert "ent_id" in {f["name"] for f in source_schema}
    # no record leaves the hub in an event: names and counts only
    text = events_file.read_text(encoding="utf-8")
    with session_scope(get_engine()) as s:
        enterprises = s.execute(select(IdentityEnterprise.uscc, IdentityEnterprise.name)).all()
    assert enterprises
    assert not [v for row in enterprises for v in row if v and v in text]
