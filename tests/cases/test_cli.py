"""``hub cases intake|show|list|steps`` and ``hub consumers add --department``, on a real hub database."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cases.cli import app
from cases.tables import CaseStep
from recognition.consumers_cli import app as consumers_app
from recognition.tables import Consumer
from tests.cases import world as w
from tests.cases.world import P1, World, joint_registration


@pytest.fixture()
def city(hub_db_url: str, tmp_path: Path) -> Iterator[World]:
    built = w.build(hub_db_url, tmp_path)
    yield built
    built.engine.dispose()


def _json(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_intake_show_list_and_steps(city: World, tmp_path: Path) -> None:
    runner = CliRunner()
    application = tmp_path / "intake.json"
    received = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    application.write_text(json.dumps(joint_registration(received_at=received.isoformat())), encoding="utf-8")
    taken = runner.invoke(app, ["intake", str(application), "--idempotency-key", "cli-1"])
    assert taken.exit_code == 0, taken.output
    case = _json(taken.output)[0]
    code = str(case["code"])
    assert case["intake_outcome"] == "accepted" and P1 not in taken.output  # masked by default
    assert case["timeline"][0]["actor"].startswith("operator:")  # type: ignore[index]
    again = runner.invoke(app, ["intake", str(application), "--idempotency-key", "cli-1"])
    assert _json(again.output)[0]["code"] == code and _json(again.output)[0]["replayed"] is True

    shown = runner.invoke(app, ["show", case["printed_code"], "--unmasked"])  # type: ignore[list-item]
    assert shown.exit_code == 0 and _json(shown.output)[0]["applicant"]["code"] == P1  # type: ignore[index]
    listed = runner.invoke(app, ["list", P1])
    assert [c["code"] for c in _json(listed.output)] == [code]

    steps = tmp_path / "commerce.jsonl"
    at = received + dt.timedelta(minutes=30)
    steps.write_text(
        "\n".join(json.dumps({"seq": n, "step": s, "occurred_at": (at + dt.timedelta(minutes=n)).isoformat()})
                  for n, s in ((2, "approved"), (1, "accepted"))),
        encoding="utf-8",
    )  # fmt: skip
    recorded = runner.invoke(app, ["steps", code, "--record", str(steps), "--department", "commerce"])
    assert recorded.exit_code == 0, recorded.output
    log = _json(recorded.output)
    assert [(s["department"], s["step"]) for s in log][-2:] == [("commerce", "accepted"), ("commerce", "approved")]
    assert log[-2]["arrived_out_of_order"] is True and log[-1]["impossible"] is None
    # the same file again changes nothing
    assert runner.invoke(app, ["steps", code, "--record", str(steps), "--department", "commerce"]).exit_code == 0
    with city.sessions() as s:
        assert len(s.scalars(select(CaseStep)).all()) == 4


def test_refusals_exit_1_with_their_code_and_usage_errors_exit_2(city: World, tmp_path: Path) -> None:
    runner = CliRunner()
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps(joint_registration(item_code="XK99999000")), encoding="utf-8")
    res = runner.invoke(app, ["intake", str(unknown)])
    assert res.exit_code == 1 and "error: unknown_item:" in res.output
    not_json = tmp_path / "bad.json"
    not_json.write_text('{"item_code": 1}', encoding="utf-8")
    assert runner.invoke(app, ["intake", str(not_json)]).exit_code == 2
    assert runner.invoke(app, ["intake", str(tmp_path / "missing.json")]).exit_code == 2
    res = runner.invoke(app, ["show", "330322-20261204-2X4G48"])
    assert res.exit_code == 1 and "invalid_supervision_code" in res.output
    res = runner.invoke(app, ["list", P1[:-1]])
    assert res.exit_code == 1 and "invalid_code" in res.output and P1[:-1] not in res.output
    assert city.counts()["case_record"] == 0


def test_consumers_are_bound_to_a_department_of_the_catalogue(city: World) -> None:
    runner = CliRunner()
    res = runner.invoke(consumers_app, ["add", "tax_approvals", "--scope", "cases:steps:tax", "--department", "tax"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["department"] == "tax"
    bad = runner.invoke(consumers_app, ["add", "x", "--scope", "cases:read", "--department", "customs"])
    assert bad.exit_code == 1 and "unknown department 'customs'" in bad.output
    listed = [json.loads(line) for line in runner.invoke(consumers_app, ["list"]).output.splitlines()]
    assert {c["consumer"]: c["department"] for c in listed}["tax_approvals"] == "tax"
    with city.sessions() as s:
        assert s.scalar(select(Consumer.department).where(Consumer.name == "tax_approvals")) == "tax"
        assert s.scalar(select(Consumer.department).where(Consumer.name == "portal")) is None


def test_authorisations_are_listed_and_revoked_from_the_shell(city: World, tmp_path: Path) -> None:
    runner = CliRunner()
    application = tmp_path / "intake.json"
    application.write_text(json.dumps(joint_registration()), encoding="utf-8")
    code = str(_json(runner.invoke(app, ["intake", str(application)]).output)[0]["code"])
    listed = runner.invoke(app, ["authorisations", code])
    assert listed.exit_code == 0, listed.output
    (granted,) = _json(listed.output)
    assert granted["state"] == "in_force" and granted["licences"][0]["license_id"] == city.licences["p1_property"]  # type: ignore[index]
    ref = str(granted["ref"])
    revoked = runner.invoke(app, ["revoke-authorisation", code, ref, "--reason", "申请人撤回"])
    assert revoked.exit_code == 0, revoked.output
    assert _json(revoked.output)[0]["state"] == "revoked"
    again = runner.invoke(app, ["revoke-authorisation", code, ref, "--reason", "again"])
    assert again.exit_code == 1 and "authorisation_revoked" in again.output
    unknown = runner.invoke(app, ["revoke-authorisation", code, "AU000000000000", "--reason", "x"])
    assert unknown.exit_code == 1 and "authorisation_not_found" in unknown.output
    assert runner.invoke(app, ["revoke-authorisation", code, ref, "--reason", ""]).exit_code == 2
    assert _json(runner.invoke(app, ["authorisations", code]).output)[0]["state"] == "revoked"
