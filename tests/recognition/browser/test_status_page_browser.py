"""The case status page in a real browser: the supervision code typed into the form opens the case's
progress served by a real ``hub serve``; a mistyped code says "check the code"; an unknown one is not
found; the English switch. Every page passes axe-core with no serious or critical violation and reads on
a phone-sized screen without sideways scrolling."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from e_license_store.service import LicenseService
from identifiers import supervision_code
from tests.cases import world as w
from tests.recognition.browser.browser_helpers import PHONE, Served, Shots, assert_accessible, assert_fits_a_phone

pytestmark = pytest.mark.slow


def test_type_the_code_see_the_progress_mistype_it_and_switch_language(
    browser: Any, served_hub: Served, service: LicenseService, shots: Shots, hub_db_url: str, tmp_path: Path
) -> None:
    city = w.build(hub_db_url, tmp_path / "city")
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    with httpx.Client(base_url=served_hub.base_url, timeout=30) as api:
        res = api.post("/v1/cases", json=w.joint_registration(received_at=t0.isoformat()),
                       headers=w.auth(city.tokens["window"]))  # fmt: skip
        assert res.status_code == 201, res.text
        code = res.json()["code"]
        for seq, kind, minutes in ((1, "accepted", 10), (2, "approved", 20)):
            step = {"seq": seq, "step": kind, "occurred_at": (t0 + dt.timedelta(minutes=minutes)).isoformat()}
            assert api.post(f"/v1/cases/{code}/steps", json=step,
                            headers=w.auth(city.tokens["commerce"])).status_code == 201  # fmt: skip
    printed = supervision_code.format(code)

    context = browser.new_context(locale="zh-CN", **PHONE)
    page = shots.watch(context.new_page())
    page.goto(f"{served_hub.base_url}/status")
    shots.take(page, "status-home")
    assert page.locator("h1").inner_text() == "办件进度查询"
    assert_fits_a_phone(page)
    assert_accessible(page)

    # the code as printed on the receipt, typed into the form
    page.get_by_label("统一服务监管码").fill(printed)
    page.get_by_role("button", name="查询进度").click()
    page.wait_for_url(f"**/status/{printed}?lang=zh")
    shots.take(page, "status-case")
    assert page.locator("[data-case-status]").inner_text() == "办理中"
    main = page.locator("main").inner_text()
    assert "企业设立登记（多证联办）" in main and "洞头区市场监督管理局" in main and "准予许可" in main
    assert page.locator("[data-department=commerce] [data-state]").inner_text() == "已批准"
    assert "陈**" in main and page.locator("[data-held-by]").inner_text() == "洞头区市场监督管理局"
    html = page.content()
    for value in (w.P1, "陈海生", w.PHONE, w.ADDRESS):
        assert value not in html, value
    assert_fits_a_phone(page)
    assert_accessible(page)

    # the English switch
    page.get_by_role("link", name="English").click()
    page.wait_for_load_state()
    shots.take(page, "status-english")
    assert page.locator("[data-case-status]").inner_text() == "In progress"
    assert page.evaluate("document.documentElement.lang") == "en"
    assert_accessible(page)

    # two characters swapped: "check the code", and the form to type it again
    swapped = next(code[:i] + code[i + 1] + code[i] + code[i + 2 :] for i in range(14, 18) if code[i] != code[i + 1])
    response = page.goto(f"{served_hub.base_url}/status/{swapped}")
    assert response is not None and response.status == 400
    shots.take(page, "status-check-the-code")
    assert "请核对" in page.locator("main").inner_text()
    assert "企业设立登记" not in page.content()
    assert_accessible(page)

    # a well-formed code of no case
    unknown = supervision_code.generate("330322", dt.date(2026, 12, 1), rng=random.Random(5))
    response = page.goto(f"{served_hub.base_url}/status/{unknown}")
    assert response is not None and response.status == 404
    shots.take(page, "status-unknown")
    assert "未找到该办件" in page.locator("main").inner_text()
    assert_accessible(page)
    context.close()
    city.engine.dispose()
