"""The identity review queue of the console in a real browser, served by a real ``hub serve``: a data
steward signs in, opens the queue from the console's home, sees both sides masked, accepts the link with
a reason and sees the item decided — and the record's licence held by the identity it joined, as a new
signed version. Every page passes axe-core with no serious or critical violation."""

from __future__ import annotations

from typing import Any

import pytest

from e_license_store.index import get_license
from e_license_store.service import LicenseService
from hub.db import make_engine, session_scope
from recognition import console_accounts as accounts
from tests.recognition.browser.browser_helpers import Served, Shots, assert_accessible
from tests.recognition.review_helpers import ADDRESS, CANDIDATE, NAME, seed_review

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"


def test_a_steward_accepts_a_review_item_and_sees_it_decided(
    browser: Any, served_hub: Served, service: LicenseService, shots: Shots, hub_db_url: str
) -> None:
    engine = make_engine(hub_db_url)
    try:
        review_id, licence = seed_review(engine, service, "k1")
        with session_scope(engine) as s:
            accounts.add_user(s, "li.na", "steward", PASSWORD)

        context = browser.new_context(locale="zh-CN")
        page = shots.watch(context.new_page())
        page.goto(f"{served_hub.base_url}/console/login")
        page.get_by_label("账号").fill("li.na")
        page.get_by_label("密码").fill(PASSWORD)
        page.get_by_role("button", name="登录").click()
        page.wait_for_url("**/console?lang=zh")
        assert "当前用户：li.na（数据管理员）" in page.locator("main").inner_text()

        page.get_by_role("link", name="身份复核队列（等待最久的在前）").click()
        page.wait_for_url("**/console/review?lang=zh")
        shots.take(page, "console-review-list")
        assert page.locator(f"[data-review='{review_id}']").count() == 1
        assert_accessible(page)

        page.get_by_role("link", name=f"复核 {review_id}").click()
        page.wait_for_url(f"**/console/review/{review_id}?lang=zh")
        shots.take(page, "console-review-item")
        html = page.content()
        assert "张**" in html and all(secret not in html for secret in (CANDIDATE, NAME, ADDRESS))
        assert page.locator("[data-review-status]").inner_text() == "待复核"
        assert_accessible(page)

        page.locator("#accept-reason").fill("出生日期和地址一致，身份证号码末位录入错误")
        page.get_by_role("button", name="确认关联").click()
        page.wait_for_url(f"**/console/review/{review_id}?done=linked&lang=zh")
        shots.take(page, "console-review-decided")
        assert page.locator("[data-review-status]").inner_text() == "已关联"
        assert "决定已执行" in page.get_by_role("status").first.inner_text()
        assert page.locator("[data-decision='linked']").count() == 1
        assert_accessible(page)
        with session_scope(engine) as s:
            row = get_license(s, licence)
            assert row is not None and row.holder_code == CANDIDATE and row.version == 2
        context.close()
    finally:
        engine.dispose()
