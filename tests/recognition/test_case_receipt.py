"""The receipt (受理回执): a PDF whose QR code, read as a phone reads it (pdftoppm, zbarimg), opens the
case's public status page; personal data masked by the reader's scope; the same from the shell."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from cases.cli import app as cases_app
from recognition.tables import AuditEntry
from tests.cases import world as w
from tests.cases.world import ADDRESS, AGENT, NAMES, P1, PHONE, World, auth, joint_registration
from tests.conftest import require

BASE = "https://zw.example.gov.cn/hub"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def city(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("HUB_VERIFY_BASE_URL", BASE + "/")
    yield from w.on_database(request, tmp_path, monkeypatch)


@pytest.fixture()
def api(city: World) -> Iterator[TestClient]:
    yield from w.client(city)


def _read(pdf: bytes, work: Path) -> tuple[str, str]:
    """The QR code as a phone reads it, and the page's text."""
    require(all(shutil.which(t) for t in ("pdftoppm", "zbarimg", "pdftotext")), "poppler-utils and zbar-tools")
    (work / "receipt.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", str(work / "receipt.pdf"), str(work / "page")],
                   check=True)  # fmt: skip
    qr = subprocess.run(["zbarimg", "-q", "--raw", str(work / "page.png")], capture_output=True, check=True)
    text = subprocess.run(["pdftotext", "-layout", str(work / "receipt.pdf"), "-"], capture_output=True, check=True)
    return qr.stdout.decode().strip(), text.stdout.decode()


def _intake(api: TestClient, city: World) -> dict[str, object]:
    agent = {"code": AGENT, "name": NAMES[AGENT], "phone": PHONE, "authorisation": "WT-2026-17"}
    res = api.post("/v1/cases", headers=auth(city.tokens["window"]), json=joint_registration(
        agent=agent, delivery={"method": "post", "address": ADDRESS}))  # fmt: skip
    assert res.status_code == 201, res.text
    body: dict[str, object] = res.json()
    return body


def test_the_receipt_carries_the_code_and_a_qr_code_to_the_status_page(
    city: World, api: TestClient, tmp_path: Path
) -> None:
    case = _intake(api, city)
    code, printed = str(case["code"]), str(case["printed_code"])
    res = api.get(f"/v1/cases/{printed}/receipt", headers=auth(city.tokens["portal"]))
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == "application/pdf" and res.content.startswith(b"%PDF")
    qr, text = _read(res.content, tmp_path)
    assert qr == f"{BASE}/status/{code}"
    assert "受理回执" in text and printed in text and "免提交（电子证照）" in text and "受理" in text
    # the portal's key has no personal:read: nobody's id, name, phone or address on the page
    for value in (P1, AGENT, NAMES[P1], NAMES[AGENT], PHONE, ADDRESS):
        assert value not in text, value
    with city.sessions() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "case_receipt")).one()
    assert entry.subject == code and "masked" in entry.fields

    unmasked = api.get(f"/v1/cases/{code}/receipt", headers=auth(city.tokens["window"]))
    _, full = _read(unmasked.content, tmp_path)
    assert NAMES[P1] in full and P1 in full and "含个人信息" in full
    # the same case read the same way prints the same bytes
    assert api.get(f"/v1/cases/{code}/receipt", headers=auth(city.tokens["portal"])).content == res.content


def test_the_receipt_from_the_shell_and_its_refusals(city: World, api: TestClient, tmp_path: Path) -> None:
    case = _intake(api, city)
    out = tmp_path / "r.pdf"
    done = CliRunner().invoke(cases_app, ["receipt", str(case["code"]), "--out", str(out)])
    assert done.exit_code == 0, done.output
    qr, text = _read(out.read_bytes(), tmp_path)
    assert qr == f"{BASE}/status/{case['code']}" and NAMES[P1] not in text
    missing = CliRunner().invoke(cases_app, ["receipt", "330322-20261204-2X4G48"])
    assert missing.exit_code == 1 and "invalid_supervision_code" in missing.output
    # a department not taking part gets the same answer as for no case; no key, no receipt
    land = api.get(f"/v1/cases/{case['code']}/receipt", headers=auth(city.tokens["land"]))
    assert (land.status_code, land.json()["code"]) == (404, "not_found")
    assert land.headers["content-type"].startswith("application/problem+json")
    nobody = api.get(f"/v1/cases/{case['code']}/receipt", headers=auth(city.tokens["nobody"]))
    assert (nobody.status_code, nobody.json()["code"]) == (403, "missing_scope")
    bad = api.get("/v1/cases/NOT-A-CODE/receipt", headers=auth(city.tokens["portal"]))
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_supervision_code")
    with city.sessions() as s:
        refused = sorted(d["code"] for d in s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "refuse")))
    assert refused == ["invalid_supervision_code", "missing_scope", "not_found"]
