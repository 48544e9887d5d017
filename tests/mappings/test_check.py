"""``hub mappings check``: schema and semantic errors, each with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mappings.check import check_file, check_text
from mappings.cli import app

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
GOOD = (MAPPINGS / "commerce_enterprises.yaml").read_text(encoding="utf-8")


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_shipped_mappings_are_clean() -> None:
    for path in sorted(MAPPINGS.glob("*.yaml")):
        assert check_file(path) == [], path


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ("quarantine_threshold: 0.10", "quarantine_threshold: 1.5", "quarantine_threshold", "greater than the maximum"),
        ("  protocol: sql", "  protocol: ftp", "protocol: ftp", "is not one of"),
        ("  conn_id: commerce_registry\n", "", "source:", "'conn_id' is a required property"),
        (
            "[fullwidth_to_halfwidth, trim, simplify], required: true",
            "[fullwidth, trim], required: true",
            "ent_name",
            "unknown normaliser 'fullwidth'",
        ),
        ("  enterprise_type: {from", "  enterprise_kind: {from", "enterprise_kind", "unknown canonical field"),
        ("entity: enterprise", "entity: company", "entity: company", "unknown entity 'company'"),
        (
            "{status: {table: commerce_enterprise}}",
            "{status: {table: commerce}}",
            "table: commerce}",
            "unknown status table",
        ),
        ("{status: {table: commerce_enterprise}}", "status", "status: {from", "needs parameter 'table'"),
        ('  - type_code: "1101"', '  - type_code: "9999"', "9999", "not in the e-licence catalogue"),
        ("    holder_name: name", "    holder_name: enterprise_name", "holder_name: enterprise_name", "unmapped field"),
        (
            "  - {field: uscc, kind: uscc, role: holder}",
            "  - {field: uscc, kind: passport, role: holder}",
            "passport",
            "is not one of",
        ),
    ],
)
def test_broken_file_reported_with_its_line(old: str, new: str, needle: str, message: str) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    problems = check_text(text, "commerce_enterprises.yaml")
    assert problems, "the broken file passed"
    hits = [p for p in problems if message in p.message]
    assert hits, [str(p) for p in problems]
    assert hits[0].line == line_of(text, needle)
    assert str(hits[0]).startswith(f"commerce_enterprises.yaml:{hits[0].line}: ")


def test_duplicate_keys_and_bad_yaml_have_lines() -> None:
    text = GOOD + "pool: again\n"
    problems = check_text(text, "f.yaml")
    assert [p.line for p in problems if "duplicate key 'pool'" in p.message] == [len(text.splitlines())]
    broken = check_text("department: x\n  bad: [\n", "g.yaml")
    assert len(broken) == 1 and broken[0].line == 2 and "not valid YAML" in broken[0].message


def test_unmapped_required_field_is_reported() -> None:
    tax = (MAPPINGS / "tax_taxpayers.yaml").read_text(encoding="utf-8")
    text = tax.replace(
        "  taxpayer_code: {from: taxpayer_code, normalizers: [empty_to_null, code], required: true}\n", ""
    )
    messages = [p.message for p in check_text(text, "tax.yaml")]
    assert any("required canonical field 'taxpayer_code'" in m for m in messages)


def test_cli_check_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["check"])
    assert ok.exit_code == 0, ok.output
    assert "5 file(s) checked, 0 with problems" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("pool: commerce", "pool: [commerce]"), encoding="utf-8")
    res = runner.invoke(app, ["check", str(bad), str(MAPPINGS / "tax_taxpayers.yaml")])
    assert res.exit_code == 1
    assert f"{bad}:{line_of(GOOD, 'pool: commerce')}: schema:" in res.output
