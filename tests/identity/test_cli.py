"""``hub identity normalize`` through the real command."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from identity.cli import app

runner = CliRunner()


def test_normalize_args_one_json_per_line() -> None:
    result = runner.invoke(app, ["normalize", "11010519491231002x", "D2143569-X", "110105491231002"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["kind"] for r in rows] == ["resident_id", "org_code", "ambiguous"]
    assert set(rows[0]) == {"input", "kind", "canonical", "valid", "reason"}
    assert rows[0]["canonical"] == "11010519491231002X" and rows[0]["valid"] is True
    assert rows[1]["canonical"] == "D2143569X"
    assert {c["kind"] for c in rows[2]["candidates"]} == {"resident_id_15", "reg_no"}


def test_normalize_as_kind_and_stdin() -> None:
    result = runner.invoke(app, ["normalize", "--as", "resident_id_15"], input="110105491231002\n\n")
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in result.output.splitlines()]
    assert row == {
        "input": "110105491231002",
        "kind": "resident_id_15",
        "canonical": "11010519491231002X",
        "valid": True,
        "reason": None,
    }


def test_normalize_rejects_unknown_kind() -> None:
    result = runner.invoke(app, ["normalize", "--as", "passport", "123"])
    assert result.exit_code != 0
