"""The operator console in a real browser, served by a real ``hub serve``: sign in with a named account,
see the quarantine (masked), replay a dead letter and see it delivered to a real webhook receiver, sign
out. Every page passes axe-core with no serious or critical violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from e_license_store.service import LicenseService
from hub.db import make_engine, session_scope
from hub.models import OutboxEvent
from recognition import console_accounts as accounts
from recognition import delivery as dlv
from recognition.consumers import add_consumer
from recognition.tables import Delivery
from tests.recognition.browser.browser_helpers import Served, Shots, assert_accessible
from tests.recognition.rec_helpers import Receiver, allow_destination, issue_business
from validation import quarantine as q

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
RESIDENT_ID = "330322198001011231"


def test_sign_in_see_quarantine_replay_a_dead_letter_see_it_delivered_sign_out(
    browser: Any, served_hub: Served, service: LicenseService, shots: Shots, hub_db_url: str, tmp_path: Path
) -> None:
    engine = make_engine(hub_db_url)
    receiver = Receiver()
    receiver.start()
    try:
        with session_scope(engine) as s:
            token = add_consumer(s, "tax_bureau", ["licenses:read:1101", "subscriptions:manage"])[1]
            accounts.add_user(s, "wang.li", "operator", PASSWORD)
            q.write(s, q.BatchRef("public_security", "persons", "staging/ps/1.parquet"), "manual__7", [
                q.QuarantinedRow("p-1", "v1", {"resident_id": RESIDENT_ID + "9", "name": "张三丰"},
                                 [q.Failure("invalid_resident_id", "expect_valid_resident_id", "resident_id")]),
            ])  # fmt: skip
        allow_destination(engine, "tax_bureau", receiver.origin)
        body = {"name": "tax push", "event_types": ["license.issued"], "license_types": ["1101"], "url": receiver.url}
        sub = httpx.post(f"{served_hub.base_url}/v1/subscriptions", json=body,
                         headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
        assert sub.status_code == 201, sub.text
        receiver.secret = str(sub.json()["secret"])
        lid = issue_business(service, "ent-dead", holder="91330322MA2C8XYZ3M")
        with engine.connect() as conn:
            key = conn.execute(select(OutboxEvent.idempotency_key).where(OutboxEvent.subject == lid)).scalar_one()
        receiver.fail_ids = {key}
        policy = dlv.DeliveryPolicy(max_attempts=1, backoff_base=1.0, backoff_max=1.0)
        dlv.run_once(engine, policy=policy)
        with engine.connect() as conn:
            dead_id = conn.execute(select(Delivery.id).where(Delivery.status == dlv.DEAD)).scalar_one()

        context = browser.new_context(locale="zh-CN")
        page = shots.watch(context.new_page())
        page.goto(f"{served_hub.base_url}/console")
        page.wait_for_url("**/console/login?lang=zh")
        shots.take(page, "console-login")
        assert_accessible(page)
        page.get_by_label("账号").fill("wang.li")
        page.get_by_label("密码").fill(PASSWORD)
        page.get_by_role("button", name="登录").click()
        page.wait_for_url("**/console?lang=zh")
        shots.take(page, "console-home")
        main = page.locator("main").inner_text()
        assert "当前用户：wang.li（运维人员）" in main and "invalid_resident_id" in main
        assert page.locator(f"[data-delivery='{dead_id}']").count() == 1
        assert_accessible(page)

        page.get_by_role("link", name="查看记录").click()
        page.wait_for_load_state()
        shots.take(page, "console-quarantine")
        assert "invalid_resident_id" in page.locator("main").inner_text()
        assert RESIDENT_ID not in page.content() and "张三丰" not in page.content()
        assert_accessible(page)
        page.go_back()

        # replay: queued again, then delivered by the push worker
        page.get_by_role("button", name=f"重新投递 {dead_id}").click()
        page.wait_for_url(f"**/console/deliveries/{dead_id}?replayed=1&lang=zh")
        shots.take(page, "console-replayed")
        assert page.locator("[data-delivery-status]").inner_text() == "待投递"
        assert_accessible(page)
        receiver.fail_ids = set()
        assert dlv.run_once(engine, policy=policy).delivered == 1
        page.reload()
        shots.take(page, "console-delivered")
        assert page.locator("[data-delivery-status]").inner_text() == "已送达"
        assert [msg for msg, _ in receiver.received] == [key]

        page.get_by_role("button", name="退出登录").click()
        page.wait_for_url("**/console/login?lang=zh")
        response = page.goto(f"{served_hub.base_url}/console")
        assert response is not None
        page.wait_for_url("**/console/login?lang=zh")  # signed out: the console asks for a sign-in again
        context.close()
    finally:
        receiver.stop()
        engine.dispose()
