"""``hub mappings check``: schema and semantic errors, each with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mappings.check import check_file, check_text
from mappings.engine import MAPPINGS_DIR, STEP_FEEDS_DIR, mapping_files
from pipeline.mappings_cli import app

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
    shipped = len(mapping_files(MAPPINGS_DIR)) + len(mapping_files(STEP_FEEDS_DIR))
    # six department feeds and five case-step feeds (commerce, tax, public security, land, development and reform)
    assert shipped == 11 and f"{shipped} file(s) checked, 0 with problems" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("pool: commerce", "pool: [commerce]"), encoding="utf-8")
    res = runner.invoke(app, ["check", str(bad), str(MAPPINGS / "tax_taxpayers.yaml")])
    assert res.exit_code == 1
    assert f"{bad}:{line_of(GOOD, 'pool: commerce')}: schema:" in res.output


def _alias_bomb(levels: int) -> str:
    """A mapping file of ``levels`` anchors, each a list of ten aliases to the one before."""
    lines = ["department: x", "l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_refused() -> None:
    # 10**6 nodes expanded: the line-marking walk took seconds and hundreds of MB; 10**9 took > 3 GB
    problems = check_text(_alias_bomb(6), "bomb.yaml")
    assert [(p.line, p.message) for p in problems] == [
        (6, "aliases expand this document beyond 100,000 nodes (an alias bomb?)")
    ]
    assert str(problems[0]) == "bomb.yaml:6: aliases expand this document beyond 100,000 nodes (an alias bomb?)"


def test_yaml_self_alias_is_refused() -> None:
    problems = check_text("department: x\nfields: &f {name: *f}\n", "self.yaml")
    assert [(p.line, p.message) for p in problems] == [
        (2, "recursive alias: the node anchored &f contains an alias to itself")
    ]


def test_yaml_deep_nesting_is_refused() -> None:
    problems = check_text("department: x\nfields: " + "[" * 100_000 + "\n", "deep.yaml")
    assert [(p.line, p.message) for p in problems] == [(2, "nested deeper than 64 levels")]


def test_yaml_anchors_within_bounds_keep_their_line_marks() -> None:
    text = GOOD.replace(
        "  uscc: {from: uscc, normalizers: [empty_to_null, code]}",
        "  uscc: {from: uscc, normalizers: &codes [empty_to_null, code]}",
    ).replace(
        "  reg_no: {from: reg_no, normalizers: [empty_to_null, code]}", "  reg_no: {from: reg_no, normalizers: *codes}"
    )
    assert "*codes" in text and check_text(text, "anchors.yaml") == []
    broken = text.replace("  reg_no: {from: reg_no", "  reg_number: {from: reg_no")
    [problem] = [p for p in check_text(broken, "anchors.yaml") if "reg_number" in p.message]
    assert problem.line == line_of(broken, "reg_number")


def test_huge_mapping_file_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("department: x\n" + "# padding\n" * 120_000, encoding="utf-8")
    [problem] = check_file(big)
    assert (problem.line, problem.message) == (1, "larger than 1,048,576 bytes; refused")


def test_cli_check_reports_an_alias_bomb_with_file_and_line(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb(9), encoding="utf-8")
    res = CliRunner().invoke(app, ["check", str(bomb)])
    assert res.exit_code == 1
    assert f"{bomb}:6: aliases expand this document beyond 100,000 nodes" in res.output


# -- what validation and the identity step need of a mapping ------------------------------------

PERSONS = (MAPPINGS / "public_security_persons.yaml").read_text(encoding="utf-8")


def _suite_check(text: str, tmp_path: Path) -> list[str]:
    from pipeline.mapping_check import check_mapping

    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return [str(p) for p in check_mapping(path)]


def test_suite_required_columns_are_reported_with_file_and_line(tmp_path: Path) -> None:
    text = PERSONS.replace("  sex: {from: sex, normalizers: [sex]}\n", "").replace(
        "  region_code: {from: region_code, normalizers: [digits]}\n", ""
    )
    found = _suite_check(text, tmp_path)
    for column in ("sex", "region_code"):
        hit = [p for p in found if f"requires column {column!r}" in p]
        assert hit, found
        assert hit[0].startswith(f"{tmp_path / 'm.yaml'}:{line_of(text, 'fields:')}: ")
        assert "validation/suites/person.json" in hit[0]


def test_suite_allowed_values_are_reported(tmp_path: Path) -> None:
    # a department's own status words reach the canonical status: validation would quarantine them
    text = PERSONS.replace("{status: {table: person}}", "{status: {table: commerce_enterprise}}")
    found = _suite_check(text, tmp_path)
    hit = [p for p in found if "allows 'status' only ['alive', 'deceased', 'moved']" in p]
    assert hit and "'active'" in hit[0], found
    assert hit[0].split(":")[1] == str(line_of(text, "  status: {from"))
    passthrough = PERSONS.replace("normalizers: [{status: {table: person}}]", "normalizers: [trim]")
    assert any("passes source values through unchanged" in p for p in _suite_check(passthrough, tmp_path))
    mapped = PERSONS.replace("{status: {table: person}}", "{map: {values: {'1': alive, '2': deceased}}}")
    assert _suite_check(mapped, tmp_path) == []


def test_unknown_suite_and_suite_of_another_entity(tmp_path: Path) -> None:
    found = _suite_check(PERSONS.replace("expectation_suite: person", "expectation_suite: insured"), tmp_path)
    assert any("no expectation suite 'insured': expected validation/suites/insured.json" in p for p in found), found
    other = _suite_check(PERSONS.replace("expectation_suite: person", "expectation_suite: enterprise"), tmp_path)
    assert any("checks entity 'enterprise', this mapping maps entity 'person'" in p for p in other), other


def test_identity_kind_is_declared_and_must_fit() -> None:
    missing = check_text(PERSONS.replace("identity_kind: person\n", ""), "p.yaml")
    assert any("'identity_kind' is a required property" in p.message for p in missing)
    unknown = check_text(PERSONS.replace("identity_kind: person", "identity_kind: vehicle"), "p.yaml")
    assert any("is not one of ['person', 'enterprise', 'none']" in p.message for p in unknown)
    wrong = check_text(PERSONS.replace("identity_kind: person", "identity_kind: enterprise"), "p.yaml")
    messages = [p.message for p in wrong]
    assert any("identity_kind 'enterprise' does not fit entity 'person'" in m for m in messages), messages
    assert any("identifier kind 'resident_id' cannot name an enterprise" in m for m in messages), messages
    no_subject = check_text(PERSONS.replace("role: holder", "role: legal_rep"), "p.yaml")
    assert any("no identifier names the record's own identity" in p.message for p in no_subject)


def test_licence_type_problem_names_the_catalogue_file() -> None:
    problems = check_text(GOOD.replace('  - type_code: "1101"', '  - type_code: "9999"'), "c.yaml")
    hit = [p for p in problems if "9999" in p.message]
    assert hit and "e_license_store/catalogue.yaml" in hit[0].message and "1101" in hit[0].message
