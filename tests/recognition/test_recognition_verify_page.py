"""The public verification page (/verify): what a QR code opens, what it shows and never shows,
the upload form, and every refusal as a page with its status — each answer audited."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from e_license_store import identifier, verify_link
from e_license_store.model import LicenseDraft, object_key, parse_envelope
from e_license_store.render import ensure_file, qr_payload, render_copy_pdf, render_pdf
from mappings.canonical.models import HolderKind
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.directory import LicenseDirectory
from recognition.routers.pages import SECURITY_HEADERS
from recognition.tables import AuditEntry
from recognition.verify_page import RELEASED_FIELDS
from tests.conftest import require
from tests.recognition.rec_helpers import RESIDENT_ID, World, issue_business, source_ref

PERSON_NAME = "李小龙"
LOCATION = "浙江省温州市洞头区北岙街道海滨路8号"


def _entries(world: World, n: int) -> list[AuditEntry]:
    with world.sessions() as s:
        return list(reversed(list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(n)))))


def _path(url: str) -> str:
    return url[len(verify_link.base_url()) :]


def _assert_nothing_personal(html: str, licence_number: str | None = None) -> None:
    for value in (RESIDENT_ID, PERSON_NAME, LOCATION, "海滨路8号", "张三丰", "中心路12号"):
        assert value not in html, value
    if licence_number:
        assert licence_number not in html


def test_the_qr_code_of_every_licence_pdf_is_the_public_page_with_its_token(world: World) -> None:
    lid = world.licenses["property"]
    url = qr_payload(lid, 1)
    assert url == verify_link.url(lid, 1) == f"http://127.0.0.1:8080/verify/{lid}?v=1&t={verify_link.token(lid, 1)}"
    assert verify_link.token(lid, 1) != verify_link.token(lid, 2)
    key = Path(world.engine.url.database or "").parent / "home" / "secrets" / "verify.key"
    assert key.exists() and key.stat().st_mode & 0o777 == 0o600


def test_the_page_shows_status_and_facts_with_the_holder_masked(world: World, client: TestClient) -> None:
    lid = world.licenses["property"]
    rendered, _ = ensure_file(lid, store=world.store, sessions=world.sessions, keyring=world.keyring)
    res = client.get(_path(qr_payload(lid, 1)))
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    for name, value in SECURITY_HEADERS.items():
        assert res.headers[name] == value
    html = res.text
    assert '<html lang="zh-CN">' in html and 'data-status="valid"' in html and "有效" in html
    assert "不动产权证书" in html and "李**" in html and "自然人" in html
    assert "2016-05-04" in html and "第 1 版（当前版本）" in html and "验证通过（SM2" in html
    assert rendered.file_sha256 in html and "<script" not in html
    _assert_nothing_personal(html, "浙(2016)洞头区不动产权第0001234号")
    [entry] = _entries(world, 1)
    assert (entry.action, entry.consumer, entry.subject, entry.outcome) == ("verify_page", "anonymous", lid, "ok")
    assert entry.fields == RELEASED_FIELDS and entry.resource == f"GET /verify/{lid}"
    assert entry.detail["by"] == "link" and entry.detail["status"] == "valid" and entry.detail["client"]
    assert verify_link.token(lid, 1) not in str(entry.detail) + entry.resource  # the token is not logged
    # English by Accept-Language, or by the switch; the switch keeps the link
    en = client.get(_path(qr_payload(lid, 1)), headers={"Accept-Language": "en-US,en;q=0.9"}).text
    assert '<html lang="en">' in en and "Valid" in en and "Version 1 (current)" in en
    assert client.get(_path(qr_payload(lid, 1)) + "&lang=en").text == en
    assert f"/verify/{lid}?v=1&amp;t={verify_link.token(lid, 1)}&amp;lang=zh" in en


def test_an_enterprise_is_named_and_a_sole_proprietor_masked(world: World, client: TestClient) -> None:
    html = client.get(_path(qr_payload(world.licenses["business"], 1))).text
    assert "温州洞头海景餐饮有限公司" in html and "营业执照" in html
    sole = issue_business(world.service, "ent-sole", holder="92330322MA2C8XYD8X", name="洞头区张三丰小吃店")
    html = client.get(_path(qr_payload(sole, 1))).text
    assert "洞********" in html and "张三丰" not in html and "个体工商户" in html
    assert "92330322MA2C8XYD8X" not in html  # no holder code of any kind


def test_revoked_superseded_suspended_and_expired(world: World, client: TestClient) -> None:
    lid = world.licenses["business"]
    world.service.suspend(lid, "检查")
    html = client.get(_path(qr_payload(lid, 1))).text
    assert 'data-status="suspended"' in html and "已暂停" in html and "已由第 2 版取代" in html
    world.service.revoke(lid, "吊销")
    old = client.get(_path(qr_payload(lid, 1))).text
    assert 'data-status="revoked"' in old and "已撤销" in old and 'data-current="no"' in old
    current = client.get(_path(qr_payload(lid, 3))).text
    assert "已撤销" in current and "第 3 版（当前版本）" in current
    expired = world.service.issue(
        LicenseDraft(
            license_type_code="1101", license_number="330322000099999", holder_name="温州过期测试有限公司",
            holder_code="91330322MA2C8XYZ9Q", holder_kind=HolderKind.enterprise, issuer_code="113303220025678912",
            issue_date=dt.date(2015, 1, 1), valid_until=dt.date(2020, 1, 1),
            surface={"enterprise_name": "温州过期测试有限公司"},
        ),
        source_ref("ent-expired"),
    ).license_id  # fmt: skip
    html = client.get(_path(qr_payload(expired, 1))).text
    assert 'data-status="expired"' in html and "已过期" in html and "2015-01-01 至 2020-01-01" in html


def test_a_guessed_id_without_its_token_reveals_nothing(world: World, client: TestClient) -> None:
    lid = world.licenses["property"]
    unknown = identifier.make_license_id("1101", "330322", "commerce", "nowhere", "nothing")
    cases = {
        "no_token": f"/verify/{lid}?v=1",
        "bad_token": f"/verify/{lid}?v=1&t={'A' * 22}",
        "other_version_token": f"/verify/{lid}?v=1&t={verify_link.token(lid, 2)}",
        "other_licence_token": f"/verify/{lid}?v=1&t={verify_link.token(world.licenses['tax'], 1)}",
        "unknown_with_its_token": _path(verify_link.url(unknown, 1)),
        "version_not_issued": _path(verify_link.url(lid, 7)),
        "malformed_id": f"/verify/{RESIDENT_ID}?v=1&t={verify_link.token(RESIDENT_ID, 1)}",
        "malformed_version": f"/verify/{lid}?v=x&t={verify_link.token(lid, 1)}",
        "no_version": f"/verify/{lid}",
    }
    bodies = set()
    for name, path in cases.items():
        res = client.get(path)
        assert res.status_code == 404, name
        assert "未找到核验信息" in res.text and "不动产" not in res.text and "李**" not in res.text, name
        _assert_nothing_personal(res.text)
        bodies.add(res.text)
    assert len(bodies) == 1  # the same page whatever was wrong
    entries = _entries(world, len(cases))
    assert [e.outcome for e in entries] == ["refused"] * len(cases)
    assert [e.detail["code"] for e in entries] == [
        "bad_token", "bad_token", "bad_token", "bad_token", "unknown_licence", "unknown_version", "malformed_id",
        "malformed_version", "malformed_version",
    ]  # fmt: skip
    assert all(e.detail["status"] == 404 for e in entries)
    assert RESIDENT_ID not in " ".join(e.resource + str(e.subject) for e in entries)


def test_upload_of_the_original_shows_its_page(world: World, client: TestClient) -> None:
    lid = world.licenses["property"]
    _, pdf = ensure_file(lid, store=world.store, sessions=world.sessions, keyring=world.keyring)
    res = client.post("/verify", files={"file": ("licence.pdf", pdf, "application/pdf")})
    assert res.status_code == 200 and "与平台签发的第 1 版完全一致" in res.text and "有效" in res.text
    _assert_nothing_personal(res.text)
    [entry] = _entries(world, 1)
    assert (entry.action, entry.subject, entry.outcome, entry.detail["by"]) == ("verify_page_file", lid, "ok", "file")


def test_uploads_that_fail_are_pages_with_their_status(world: World, client: TestClient, tmp_path: Path) -> None:
    lid = world.licenses["property"]
    _, pdf = ensure_file(lid, store=world.store, sessions=world.sessions, keyring=world.keyring)
    tampered = pdf.replace(b"/Author", b"/Authox", 1)
    assert tampered != pdf
    document = parse_envelope(world.store.get(object_key(lid, 1))).document
    key_id = parse_envelope(world.store.get(object_key(lid, 1))).signature.key_id
    with pytest.MonkeyPatch.context() as mp:  # the same licence, its QR code pointing elsewhere
        mp.setenv("HUB_VERIFY_BASE_URL", "https://verify.example.net")
        elsewhere = render_pdf(document, key_id)
    assert elsewhere != pdf and b"hub-license:" + lid.encode() in elsewhere
    copy = render_copy_pdf(document, holder_name="李**", holder_code="330322********1231", surface={})
    cases = [
        ("tampered", {"file": ("l.pdf", tampered, "application/pdf")}, 422, "未通过核验", "not_genuine"),
        ("elsewhere", {"file": ("l.pdf", elsewhere, "application/pdf")}, 422, "未通过核验", "not_genuine"),
        ("copy", {"file": ("c.pdf", copy, "application/pdf")}, 422, "脱敏副本", "masked_copy"),
        ("not a pdf", {"file": ("l.pdf", b"GIF89a....", "application/pdf")}, 415, "PDF 格式", "not_a_pdf"),
        ("empty name", {"file": ("", b"", "application/pdf")}, 400, "请选择", "file_missing"),
        ("no file", {"other": ("x.txt", b"x", "text/plain")}, 400, "请选择", "file_missing"),
    ]
    for name, files, status, words, code in cases:
        res = client.post("/verify", files=files)
        assert res.status_code == status, name
        assert words in res.text and res.headers["content-type"].startswith("text/html"), name
        assert "不动产权证书" not in res.text and "李**" not in res.text, name  # nothing of the named licence
        [entry] = _entries(world, 1)
        assert (entry.action, entry.outcome, entry.detail["code"], entry.subject) == (
            "verify_page_file", "refused", code, None
        ), name  # fmt: skip
    res = client.post("/verify", content=b'{"license_id": "x"}', headers={"Content-Type": "application/json"})
    assert res.status_code == 415 and "PDF" in res.text
    # over the body limit: refused from Content-Length before the form is read, still a page
    big = b"%PDF-" + b"0" * (10 * 1024 * 1024 + 70 * 1024)
    res = client.post("/verify", files={"file": ("big.pdf", big, "application/pdf")})
    assert res.status_code == 413 and "文件过大" in res.text and res.headers["content-type"].startswith("text/html")
    [entry] = _entries(world, 1)
    assert entry.outcome == "refused" and entry.detail["code"] == "payload_too_large"


def test_rate_limited_per_address_as_a_page(world: World) -> None:
    from hub.settings import get_settings

    config = RecognitionSettings(
        api_key_cache_seconds=0.0, rate_limit_address_rate=0.001, rate_limit_address_burst=2,
        rate_limit_url="memory://",
    )  # fmt: skip
    app = create_app(get_settings(), engine=world.engine, directory=LicenseDirectory(world.store, world.keyring),
                     config=config, audit_process=False)  # fmt: skip
    path = _path(qr_payload(world.licenses["business"], 1))
    with TestClient(app) as tc:
        assert [tc.get(path).status_code for _ in range(2)] == [200, 200]
        res = tc.get(path + "&lang=en")
    assert res.status_code == 429 and "Too many requests" in res.text and int(res.headers["retry-after"]) > 0
    [entry] = _entries(world, 1)
    assert entry.outcome == "refused" and entry.detail["code"] == "rate_limited" and entry.detail["status"] == 429


def test_other_methods_and_paths_under_verify_are_pages(world: World, client: TestClient) -> None:
    lid = world.licenses["business"]
    res = client.put(f"/verify/{lid}")
    assert res.status_code == 405 and "不支持的操作" in res.text
    res = client.get(f"/verify/{lid}/more")
    assert res.status_code == 404 and "未找到核验信息" in res.text
    home = client.get("/verify", headers={"Accept-Language": "en"})
    assert home.status_code == 200 and 'enctype="multipart/form-data"' in home.text and "Verify a licence" in home.text
    css = client.get("/static/pages/hub.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_the_masked_copy_carries_the_same_qr_code(world: World, tmp_path: Path) -> None:
    require(all(shutil.which(t) for t in ("pdftoppm", "zbarimg")), "poppler-utils and zbar-tools (make installs them)")
    lid = world.licenses["property"]
    document = parse_envelope(world.store.get(object_key(lid, 1))).document
    copy = render_copy_pdf(document, holder_name="李**", holder_code="330322********1231", surface={})
    (tmp_path / "c.pdf").write_bytes(copy)
    subprocess.run(["pdftoppm", "-r", "110", "-png", "-singlefile", str(tmp_path / "c.pdf"), str(tmp_path / "c")],
                   check=True)  # fmt: skip
    decoded = subprocess.run(["zbarimg", "-q", "--raw", str(tmp_path / "c.png")], capture_output=True, check=True)
    assert decoded.stdout.decode().strip() == verify_link.url(lid, 1)


def test_api_docs_load_nothing_from_outside(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets and all(a.startswith("/") for a in assets), (page, assets)
        assert "fonts.googleapis" not in html and "cdn" not in html.lower()
        for asset in assets:
            if asset.startswith("/static/docs/"):
                assert client.get(asset).status_code == 200, asset
    assert client.get("/static/docs/../../etc/passwd").status_code == 404
    assert client.get("/static/docs/nope.js").status_code == 404


def test_hub_licenses_get_prints_the_url_its_qr_code_carries(world: World) -> None:
    from typer.testing import CliRunner

    from e_license_store.cli import app as licenses_cli
    from hub.settings import reset_settings

    reset_settings()  # HUB_STORE_URL was set after the settings were first read
    lid = world.licenses["tax"]
    res = CliRunner().invoke(licenses_cli, ["get", lid])
    assert res.exit_code == 0, res.output
    assert f'"verification_url": "{qr_payload(lid, 1)}"' in res.output


def test_the_link_key_comes_from_the_environment_when_set(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    lid = world.licenses["tax"]
    before = verify_link.token(lid, 1)
    monkeypatch.setenv("HUB_VERIFY_KEY", "ab" * 32)
    assert verify_link.token(lid, 1) != before and verify_link.verify_key() == bytes.fromhex("ab" * 32)
