"""The identity review queue in the console: a steward lists (oldest first), sees both sides masked, and
accepts, rejects or splits with a reason and the session's CSRF token through recognition.identity_review; the
licence moves to the right holder; refusals (no CSRF, no reason, a role without the right, the same
steward approving a merge) are audited; Chinese first, English by Accept-Language."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from e_license_store.index import get_license
from hub.db import make_engine, session_scope
from hub.settings import get_settings
from recognition import console_accounts as accounts
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.directory import LicenseDirectory
from recognition.tables import AuditEntry, ReviewDecision
from tests.recognition.review_helpers import ADDRESS, CANDIDATE, NAME, RUNNER_UP, licence_env, seed_review

PASSWORD = "correct horse battery staple"


class Console:
    def __init__(self, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.engine = make_engine(url)
        self.service = licence_env(tmp_path, monkeypatch)
        with session_scope(self.engine) as s:
            for name, role in (("li.na", "steward"), ("zhao.min", "steward"), ("wang.li", "operator")):
                accounts.add_user(s, name, role, PASSWORD)
        app = create_app(get_settings(), engine=self.engine,
                         directory=LicenseDirectory(self.service.store, self.service.signer),
                         config=RecognitionSettings(api_key_cache_seconds=0.0))  # fmt: skip
        self.client = TestClient(app, raise_server_exceptions=False)

    def sign_in(self, name: str) -> None:
        self.client.cookies.clear()
        form = self.client.get("/console/login")
        answer = self.client.post("/console/login", data={"name": name, "password": PASSWORD, "csrf": _csrf(form.text)},
                                  follow_redirects=False)  # fmt: skip
        assert answer.status_code == 303, answer.text

    def last_audit(self) -> AuditEntry:
        with session_scope(self.engine) as s:
            row = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
            s.expunge(row)
        return row


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


@pytest.fixture()
def console(hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    monkeypatch.setenv("HUB_RATE_LIMIT_ADDRESS_RATE", "0")
    found = Console(hub_db_url, tmp_path, monkeypatch)
    with found.client:
        yield found
    found.engine.dispose()


def _decide(console: Console, review_id: int, verb: str, data: dict[str, str], csrf: bool = True) -> Any:
    page = console.client.get(f"/console/review/{review_id}")
    body = {**data, **({"csrf": _csrf(page.text)} if csrf else {})}
    return console.client.post(f"/console/review/{review_id}/{verb}", data=body, follow_redirects=False)


def test_a_steward_accepts_in_the_console(console: Console) -> None:
    first, licence = seed_review(console.engine, console.service, "k1")
    second, _ = seed_review(console.engine, console.service, "k2")
    console.sign_in("li.na")
    home = console.client.get("/console")
    assert "身份复核队列" in home.text and 'href="/console/review?lang=zh"' in home.text
    listed = console.client.get("/console/review")
    assert listed.status_code == 200 and "等待最久的在前" in listed.text
    assert listed.text.index(f'data-review="{first}"') < listed.text.index(f'data-review="{second}"')
    assert CANDIDATE not in listed.text and "330322********1234" in listed.text
    item = console.client.get(f"/console/review/{first}")
    assert item.status_code == 200
    for secret in (CANDIDATE, RUNNER_UP, NAME, ADDRESS):
        assert secret not in item.text
    assert "张**" in item.text and "确认关联" in item.text and "驳回" in item.text
    assert console.last_audit().consumer == "console:li.na" and console.last_audit().action == "console_review_item"
    english = console.client.get(f"/console/review/{first}", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Candidate identities (masked)" in english.text and "Accept link" in english.text

    no_csrf = _decide(console, first, "accept", {"candidate": "1", "reason": "same"}, csrf=False)
    assert no_csrf.status_code == 403 and console.last_audit().outcome == "refused"
    no_reason = _decide(console, first, "accept", {"candidate": "1", "reason": " "})
    assert no_reason.status_code == 422 and "请填写理由" in no_reason.text
    refusal = console.last_audit()
    assert refusal.outcome == "refused" and refusal.detail["code"] == "reason_required"

    done = _decide(console, first, "accept", {"candidate": "1", "reason": "出生日期和地址一致"})
    assert done.status_code == 303 and done.headers["location"] == f"/console/review/{first}?done=linked&lang=zh"
    shown = console.client.get(done.headers["location"])
    assert 'data-review-status="linked"' in shown.text and "已关联到候选身份" in shown.text
    entry = console.last_audit()
    assert entry.action == "console_review_item"
    with session_scope(console.engine) as s:
        decided = s.scalars(select(AuditEntry).where(AuditEntry.action == "console_review_accept")).all()
        assert decided[-1].outcome == "ok" and decided[-1].detail["licences"] == [licence]
        row = get_license(s, licence)
        assert row is not None and row.holder_code == CANDIDATE and row.version == 2
        (decision,) = s.scalars(select(ReviewDecision)).all()
        assert decision.actor == "console:li.na" and decision.reason == "出生日期和地址一致"

    rejected = _decide(console, second, "reject", {"reason": "不是同一人"})
    assert rejected.status_code == 303 and "done=rejected" in rejected.headers["location"]
    nothing = _decide(console, second, "split", {"reason": "撤销"})
    assert nothing.status_code == 409 and "该事项没有可撤销的关联" in nothing.text

    split = _decide(console, first, "split", {"reason": "核实后不是同一人"})
    assert split.status_code == 303 and "done=split" in split.headers["location"]
    with session_scope(console.engine) as s:
        row = get_license(s, licence)
        assert row is not None and row.holder_code != CANDIDATE and row.version == 3


def test_roles_and_four_eyes_in_the_console(console: Console) -> None:
    review_id, licence = seed_review(console.engine, console.service, "k3", linked_to=RUNNER_UP)
    console.sign_in("wang.li")  # an operator does not review
    assert console.client.get("/console/review").status_code == 403
    console.sign_in("li.na")
    asked = _decide(console, review_id, "accept", {"candidate": "1", "reason": "同一人"})
    assert asked.status_code == 303 and "done=merge_requested" in asked.headers["location"]
    assert "须由另一位数据管理员批准" in console.client.get(asked.headers["location"]).text
    again = _decide(console, review_id, "accept", {"candidate": "1", "reason": "批准"})
    assert again.status_code == 403 and "不能批准自己的申请" in again.text
    assert console.last_audit().detail["code"] == "second_steward_required"
    console.sign_in("zhao.min")
    approved = _decide(console, review_id, "accept", {"candidate": "1", "reason": "核实无误"})
    assert approved.status_code == 303 and "done=merged" in approved.headers["location"]
    with session_scope(console.engine) as s:
        row = get_license(s, licence)
        assert row is not None and row.holder_code == CANDIDATE
