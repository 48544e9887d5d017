"""``hub run MAPPING``: one feed end to end through the DAG's task bodies, counts per step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from hub.db import get_engine, session_scope
from identity.tables import IdentityPerson
from rigs.run_feed import run
from tests.pipeline.test_rerun_carries_over import _edit, mapping_dir, sandboxes  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.odbc]

PERSONS = "public_security_persons"


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(run)
    return app


def _persons() -> int:
    with session_scope(get_engine()) as s:
        return int(s.scalar(select(func.count()).select_from(IdentityPerson)) or 0)


def _line(output: str, step: str) -> str:
    return next(line for line in output.splitlines() if line.strip().startswith(step + " "))


def test_hub_run_tries_a_feed_with_a_limit_then_reads_on(sandboxes: Any, mapping_dir: Path) -> None:  # noqa: F811
    runner = CliRunner()
    first = runner.invoke(_cli(), [PERSONS, "--limit", "50"])
    assert first.exit_code == 0, first.output
    assert "pulled 50 row(s) from the source" in _line(first.output, "extract")
    validate = _line(first.output, "validate")
    accepted = int(validate.split("accepted ")[1].split(" ")[0])
    resolve = _line(first.output, "resolve")
    # a record that creates its identity is counted once, as new, not also as linked
    assert f"{_persons()} new identities, 0 records linked" in resolve, resolve
    assert 0 < _persons() <= accepted
    # every accepted resident with an id gets a resident identity card (居民身份证, 1201)
    publish = _line(first.output, "publish")
    assert "licence types 1201" in publish, publish
    issued = int(publish.split("issued ")[1].split(",")[0])
    assert 0 < issued <= accepted

    rest = runner.invoke(_cli(), [PERSONS])
    assert rest.exit_code == 0, rest.output
    pulled = int(_line(rest.output, "extract").split("pulled ")[1].split(" ")[0])
    assert pulled == sandboxes.prepared.person_registry.count() - 50


def test_hub_run_refuses_a_broken_mapping_and_runs_nothing(sandboxes: Any, mapping_dir: Path) -> None:  # noqa: F811
    _edit(mapping_dir / f"{PERSONS}.yaml", "  sex: {from: sex, normalizers: [sex]}\n", "")
    _edit(mapping_dir / f"{PERSONS}.yaml", "      sex: sex\n", "")  # the card's surface names it too
    res = CliRunner().invoke(_cli(), [PERSONS])
    assert res.exit_code == 1
    assert "requires column 'sex'" in res.output and "nothing was run" in res.output
    assert _persons() == 0
    xml = CliRunner().invoke(_cli(), ["land_property_rights", "--limit", "5"])
    assert xml.exit_code == 2 and "XML feed" in xml.output
    unknown = CliRunner().invoke(_cli(), ["health_clinics"])
    assert unknown.exit_code == 2 and "no mapping named 'health_clinics'" in unknown.output


def test_hub_run_through_airflow_dags_test(sandboxes: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    # Airflow's own database for this test; the DAG files, mappings and Connections are the hub's
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path / 'airflow.db'}")
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(tmp_path / "logs"))
    monkeypatch.setenv("HUB_DAG_SCHEDULES", "off")
    res = CliRunner().invoke(_cli(), [PERSONS, "--airflow", "--limit", "30"])
    assert res.exit_code == 0, res.output
    assert "pulled 30 row(s) from the source" in _line(res.output, "extract")
    assert "new identities" in _line(res.output, "resolve")
    assert _persons() > 0


def test_new_exchange_dags_start_paused_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from mappings.engine import load_all
    from pipeline.factory import build_exchange_dag

    mapping = load_all()[PERSONS]
    monkeypatch.delenv("HUB_EXCHANGE_DAGS_PAUSED", raising=False)
    assert build_exchange_dag(mapping).is_paused_upon_creation is True
    monkeypatch.setenv("HUB_EXCHANGE_DAGS_PAUSED", "off")
    assert build_exchange_dag(mapping).is_paused_upon_creation is False
