"""From the licence PDF to the page, in a real browser: the QR code read off the rendered PDF opens the
public verification page served by a real ``hub serve``; revoked, it says so; a tampered PDF uploaded
through the page's form fails; a guessed id without its token shows nothing. Every page passes axe-core
with no serious or critical violation, and reads on a phone-sized screen without sideways scrolling."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from e_license_store.model import LicenseDraft
from e_license_store.render import ensure_file
from e_license_store.service import LicenseService
from mappings.canonical.models import HolderKind, SourceRef
from tests.conftest import require
from tests.recognition.browser.browser_helpers import PHONE, Served, Shots, assert_accessible, assert_fits_a_phone

pytestmark = pytest.mark.slow

RESIDENT_ID = "330322198001011231"
HOLDER = "李小龙"
LOCATION = "浙江省温州市洞头区北岙街道海滨路8号"
NUMBER = "浙(2016)洞头区不动产权第0001234号"


def _issue_property(service: LicenseService) -> str:
    draft = LicenseDraft(
        license_type_code="2101", license_number=NUMBER, holder_name=HOLDER, holder_code=RESIDENT_ID,
        holder_kind=HolderKind.person, issuer_code="113303220025670000", issue_date=dt.date(2016, 5, 4),
        surface={"unit_no": "330322001001GB00001F00010001", "location": LOCATION},
    )  # fmt: skip
    source = SourceRef(department="land", dataset="ds", source_key="unit-1", source_version="v1", run_id="run-1")
    return service.issue(draft, source).license_id


def _qr_of(pdf: bytes, work: Path) -> str:
    """The QR code of a PDF as a phone reads it: the page rasterised (pdftoppm), the code decoded (zbarimg)."""
    (work / "licence.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", str(work / "licence.pdf"), str(work / "page")],
                   check=True)  # fmt: skip
    out = subprocess.run(["zbarimg", "-q", "--raw", str(work / "page.png")], capture_output=True, check=True)
    return out.stdout.decode().strip()


def _assert_nothing_personal(page: Any) -> None:
    html = page.content()
    for value in (RESIDENT_ID, HOLDER, LOCATION, "海滨路8号", NUMBER):
        assert value not in html, value


def test_scan_the_qr_code_open_the_page_revoke_upload_and_guess(
    browser: Any, served_hub: Served, service: LicenseService, shots: Shots, tmp_path: Path
) -> None:
    require(all(shutil.which(t) for t in ("pdftoppm", "zbarimg")), "poppler-utils and zbar-tools (make installs them)")
    lid = _issue_property(service)
    _, pdf = ensure_file(lid, store=service.store, sessions=service.session_factory, keyring=service.signer)
    url = _qr_of(pdf, tmp_path)
    assert url.startswith(f"{served_hub.base_url}/verify/{lid}?v=1&t=")

    context = browser.new_context(locale="zh-CN", **PHONE)
    page = shots.watch(context.new_page())
    # scanned: the page, in Chinese, says the licence is valid, with its holder masked
    response = page.goto(url)
    assert response is not None and response.status == 200
    shots.take(page, "valid")
    assert page.locator("h1").inner_text() == "电子证照核验"
    assert page.locator("[data-status]").inner_text() == "有效"
    body = page.locator("main").inner_text()
    assert "不动产权证书" in body and "李**" in body and "第 1 版（当前版本）" in body and "验证通过" in body
    _assert_nothing_personal(page)
    assert_fits_a_phone(page)
    assert_accessible(page)

    # revoked by its department: the same QR code now says so
    service.revoke(lid, "依法注销")
    response = page.reload()
    assert response is not None and response.status == 200
    shots.take(page, "revoked")
    assert page.locator("[data-status]").inner_text() == "已撤销"
    assert "已由第 2 版取代" in page.locator("main").inner_text()
    assert_accessible(page)

    # a tampered PDF uploaded through the page's form fails, and says nothing of the licence it names
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(pdf.replace(b"/Author", b"/Authox", 1))
    page.set_input_files("#licence-file", str(tampered))
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="核验文件").click()
    assert answer.value.status == 422
    page.wait_for_load_state()
    shots.take(page, "tampered-upload")
    assert "文件未通过核验" in page.locator("main").inner_text()
    assert "不动产权证书" not in page.content()
    assert_accessible(page)

    # the original uploaded: it is the very file issued (and the licence is revoked)
    original = tmp_path / "original.pdf"
    original.write_bytes(pdf)
    page.set_input_files("#licence-file", str(original))
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="核验文件").click()
    assert answer.value.status == 200
    page.wait_for_load_state()
    shots.take(page, "original-upload")
    assert "完全一致" in page.locator("main").inner_text() and page.locator("[data-status]").inner_text() == "已撤销"

    # a guessed id, without its token: nothing
    response = page.goto(f"{served_hub.base_url}/verify/{lid}?v=1")
    assert response is not None and response.status == 404
    shots.take(page, "guessed")
    assert "未找到核验信息" in page.locator("main").inner_text()
    assert "不动产权证书" not in page.content() and "已撤销" not in page.content()
    assert_accessible(page)

    # the English switch, and the home page with the form
    page.goto(url)
    page.get_by_role("link", name="English").click()
    page.wait_for_load_state()
    shots.take(page, "english")
    assert page.locator("[data-status]").inner_text() == "Revoked"
    assert page.evaluate("document.documentElement.lang") == "en"
    assert_accessible(page)
    page.goto(f"{served_hub.base_url}/verify")
    shots.take(page, "home")
    assert_fits_a_phone(page)
    assert_accessible(page)
    context.close()


def test_api_docs_render_without_the_internet(browser: Any, served_hub: Served, shots: Shots) -> None:
    """``/docs`` and ``/redoc`` draw the API from vendored bundles: every request stays on the hub."""
    context = browser.new_context()
    page = shots.watch(context.new_page())
    outside: list[str] = []
    # blob: and data: URLs are the page's own (ReDoc's worker); anything else must be the hub
    page.on("request", lambda r: None if r.url.startswith((served_hub.base_url, "blob:", "data:"))
            else outside.append(r.url))  # fmt: skip
    page.goto(f"{served_hub.base_url}/docs")
    page.locator(".swagger-ui .info .title").wait_for()
    shots.take(page, "swagger")
    assert "mutual-recognition API" in page.locator(".swagger-ui .info .title").inner_text()
    page.goto(f"{served_hub.base_url}/redoc")
    page.locator("redoc h1, [role=main] h1").first.wait_for()
    shots.take(page, "redoc")
    assert not outside, outside
    context.close()
