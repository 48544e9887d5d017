"""The service-item catalogue (事项库): the sandbox city's items, and every problem reported at its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cases.catalogue import CATALOGUE_PATH, CatalogueError, check_file, load_catalogue
from cases.cli import app
from e_license_store.catalogue import load_catalogue as licence_types


def test_the_packaged_catalogue_has_no_problem() -> None:
    assert check_file(CATALOGUE_PATH) == []


def test_joint_registration_issues_three_licences_commerce_first_then_tax_and_seals_in_parallel() -> None:
    item = load_catalogue().item("XK00101001")
    assert item.lead == "commerce" and item.item_type == "XK"
    assert set(item.yields) == {"1101", "1102", "1103"}  # 营业执照, 税务登记证, 印章备案证明
    assert item.stage("commerce").after == ()  # type: ignore[union-attr]
    assert item.stage("tax").after == item.stage("public_security").after == ("commerce",)  # type: ignore[union-attr]
    assert licence_types()["1103"].issuer_department == "public_security"
    premises = item.material("M04")
    assert premises is not None and premises.license_type == "2101" and premises.commitment
    assert {m.code for m in item.materials if m.minor} == {"M05", "M06"}
    assert item.promised_days <= item.statutory_days


def test_project_approval_reads_the_land_pre_review_opinion_instead_of_paper() -> None:
    item = load_catalogue().item("XK00501000")
    assert item.lead == "development_reform" and item.yields == ("3201",)
    opinion = item.material("M02")
    assert opinion is not None and opinion.form == "licence" and opinion.license_type == "3101"
    assert licence_types()["3101"].issuer_department == "land"


def test_property_transfer_has_the_tax_step_before_registration_and_the_seller_as_a_party() -> None:
    item = load_catalogue().item("QR00401000")
    assert [s.department for s in item.stages] == ["tax", "land"] and item.stage("land").after == ("tax",)  # type: ignore[union-attr]
    assert item.unknown_applicant == "provisional" and item.party("transferor") is not None
    certificate = item.material("M02")
    assert certificate is not None and certificate.holder == "transferor" and certificate.license_type == "2101"


def test_single_department_items_and_the_codes_structure() -> None:
    catalogue = load_catalogue()
    single = [i for i in catalogue.items.values() if len(i.stages) == 1]
    assert {i.lead for i in single} >= {"commerce", "tax", "land", "public_security", "development_reform"}
    for item in catalogue.items.values():
        assert item.code[:2] in ("XK", "QR", "QT", "GG") and item.code[2:].isdigit() and len(item.code) == 10
        org = catalogue.departments[item.lead].authority_code[8:17]
        assert item.implementation_code == f"{item.code}4330322{org}"  # county level (4), 洞头区, the lead organ


BROKEN = """\
version: 1
region_code: "330322"
departments:
  commerce: {name: 市场监管局, authority_code: "113303220025678958"}
  tax: {name: 税务局, authority_code: "113303220025678959"}  # <- bad authority code
  window: {name: 窗口, authority_code: "11330322002567334J"}  # <- window
items:
  - code: XK00101001
    name: 联办
    lead: land  # <- lead without a stage
    applicant_kinds: [person]
    statutory_days: 10
    promised_days: 12  # <- promise over the statute
    stages:
      - department: commerce
        name: 设立
        statutory_days: 5
        promised_days: 1
        after: [tax]
        yields: ["1102"]  # <- yields
      - {department: tax, name: 税务, statutory_days: 5, promised_days: 1, after: [commerce]}
      - {department: police, name: 印章, statutory_days: 5, promised_days: 1, after: [nobody]}  # <- department
    materials:
      - {code: M01, name: 住所, form: licence, license_type: "9999"}  # <- licence type
      - {code: M02, name: 执照, form: licence, license_type: "1101", holder: seller}  # <- holder
      - {code: M02, name: 重复, form: paper}  # <- repeated material
  - code: XK00101001  # <- repeated item
    name: 再来
    lead: commerce
    applicant_kinds: [enterprise]
    statutory_days: 5
    promised_days: 1
    stages:
      - {department: commerce, name: 设立, statutory_days: 5, promised_days: 1}
    materials:
      - {code: M01, name: 证书, form: licence, license_type: "1101", holder: applicant}
"""


def _line(text: str, marker: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if f"# <- {marker}" in line)


def test_semantic_problems_are_reported_at_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    problems = check_file(path)
    found = {(p.line, p.message.split(":")[0].split(" ")[0]) for p in problems}
    by_line = {p.line: p.message for p in problems}
    expected = {
        "bad authority code": "authority_code is not a valid",
        "window": "'window' is the front desk's name",
        "lead without a stage": "lead department 'land' has no stage",
        "promise over the statute": "promised_days exceeds statutory_days",
        "yields": "licence type 1102 is issued by tax, not commerce",
        "department": "unknown department 'police'",
        "licence type": "licence type '9999' is not in the e-licence catalogue",
        "holder": "holder 'seller' is neither the applicant nor a party",
        "repeated material": "material code M02 repeated",
        "repeated item": "item code XK00101001 also at items[0]",
    }
    for marker, message in expected.items():
        line = _line(BROKEN, marker)
        assert any(p.line == line and message in p.message for p in problems), (marker, line, by_line)
    stages_line = BROKEN.splitlines().index("    stages:") + 1
    assert any(p.line == stages_line and "run in a circle" in p.message for p in problems)
    assert any(p.line == _line(BROKEN, "department") and "after 'nobody'" in p.message for p in problems)
    assert all(str(p).startswith(f"{path}:{p.line}: ") for p in problems) and found
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    assert caught.value.problems == problems


def test_schema_problems_carry_their_line(tmp_path: Path) -> None:
    text = CATALOGUE_PATH.read_text(encoding="utf-8").replace("- code: XK00501000", "- code: XK5010", 1)
    text = text.replace("unknown_applicant: provisional", "unknown_applicant: maybe", 1)
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    problems = check_file(path)
    lines = text.splitlines()
    code_line = next(n for n, line in enumerate(lines, 1) if "- code: XK5010" in line)
    rule_line = next(n for n, line in enumerate(lines, 1) if "unknown_applicant: maybe" in line)
    assert {(p.line, p.message.startswith("schema:")) for p in problems} == {(code_line, True), (rule_line, True)}
    assert any("does not match" in p.message for p in problems if p.line == code_line)


def test_yaml_errors_and_duplicate_keys_carry_their_line(tmp_path: Path) -> None:
    broken = tmp_path / "bad.yaml"
    broken.write_text("version: 1\nregion_code: [\n", encoding="utf-8")
    [problem] = check_file(broken)
    assert problem.file == str(broken) and problem.line >= 2
    dup = tmp_path / "dup.yaml"
    text = CATALOGUE_PATH.read_text(encoding="utf-8").replace("version: 1\n", "version: 1\nversion: 1\n", 1)
    dup.write_text(text, encoding="utf-8")
    second = text.splitlines().index("version: 1", text.splitlines().index("version: 1") + 1) + 1
    assert any(p.line == second and "duplicate key 'version'" in p.message for p in check_file(dup))


def test_cli_check_reports_file_and_line_and_fails(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["catalogue", "check"])
    assert ok.exit_code == 0 and "1 file(s) checked, 0 problem(s)" in ok.output
    path = tmp_path / "catalogue.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    bad = runner.invoke(app, ["catalogue", "check", str(path)])
    assert bad.exit_code == 1
    assert f"{path}:{_line(BROKEN, 'department')}: unknown department 'police'" in bad.output


def test_every_licence_type_is_issued_by_its_departments_real_authority() -> None:
    departments = load_catalogue().departments
    for ltype in licence_types().values():
        assert ltype.issuer_code == departments[ltype.issuer_department].authority_code, ltype.type_code
