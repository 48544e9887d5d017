"""The public case status page (/status): what the receipt's supervision code opens, what it shows and
never shows, "check the code" for a wrong check character, 404 for no such case — each answer audited."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cases.supervision_tables import CaseClock
from cases.tables import CaseRecord
from identifiers import supervision_code
from recognition.routers.pages import SECURITY_HEADERS
from recognition.status_page import RELEASED_FIELDS
from recognition.tables import AuditEntry
from tests.cases import world as w
from tests.cases.world import ADDRESS, P1, PHONE, World, auth, joint_registration

T0 = dt.datetime(2026, 12, 1, 1, 30, tzinfo=dt.UTC)  # 09:30 in Asia/Shanghai


@pytest.fixture()
def city(hub_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HUB_RATE_LIMIT_ADDRESS_RATE", "0")
    built = w.build(hub_db_url, tmp_path)
    yield built
    built.engine.dispose()


@pytest.fixture()
def api(city: World) -> Iterator[TestClient]:
    yield from w.client(city)


def _step(seq: int, kind: str, minutes: int) -> dict[str, Any]:
    return {"seq": seq, "step": kind, "occurred_at": (T0 + dt.timedelta(minutes=minutes)).isoformat()}


def open_case(city: World, api: TestClient) -> str:
    """A joint registration taken in at the window; commerce has accepted and approved it and issued its result."""
    res = api.post("/v1/cases", json=joint_registration(received_at=T0.isoformat()),
                   headers=auth(city.tokens["window"]))  # fmt: skip
    assert res.status_code == 201, res.text
    code = str(res.json()["code"])
    for seq, kind, minutes in ((1, "accepted", 10), (2, "approved", 20), (3, "result_issued", 30)):
        done = api.post(
            f"/v1/cases/{code}/steps", json=_step(seq, kind, minutes), headers=auth(city.tokens["commerce"])
        )
        assert done.status_code == 201, done.text
    return code


def _last_audit(city: World) -> AuditEntry:
    with city.sessions() as s:
        found = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
        s.expunge(found)
        return found


def test_the_page_shows_the_case_with_the_applicant_masked(city: World, api: TestClient) -> None:
    code = open_case(city, api)
    res = api.get(f"/status/{supervision_code.format(code)}")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    for name, value in SECURITY_HEADERS.items():
        assert res.headers[name] == value
    html = res.text
    assert '<html lang="zh-CN">' in html and "<script" not in html
    assert "企业设立登记（多证联办）" in html and supervision_code.format(code) in html
    assert 'data-case-status="in_progress"' in html and "办理中" in html
    assert "2026-12-01 09:30" in html  # received, in the hub's timezone
    # every department's stage with its steps and times; who holds it now
    assert "洞头区市场监督管理局 · 企业设立登记" in html and 'data-state="concluded"' in html
    assert "2026-12-01 09:50" in html and "准予许可" in html and "出证" in html
    assert "国家税务总局温州市洞头区税务局" in html and 'data-state="open"' in html
    held = html.split("data-held-by>")[1].split("</dd>")[0]
    assert "国家税务总局温州市洞头区税务局" in held and "温州市公安局洞头区分局" in held
    assert "洞头区市场监督管理局" not in held
    # the applicant as the masking policy shows a person's name; nothing else personal, no invented lights
    assert "陈**" in html
    for value in (P1, "陈海生", PHONE, ADDRESS, "海滨路8号", "海霞科技"):
        assert value not in html, value
    # the lights as e-supervision keeps them: the case's own running clock; commerce's ended (none shown)
    with city.sessions() as s:
        case_id = s.scalars(select(CaseRecord.id).where(CaseRecord.code == code)).one()
        clocks = {c.department: c for c in s.scalars(select(CaseClock).where(CaseClock.case_id == case_id))}
    overall = clocks["*"]
    assert overall.state == "running"
    light = html.split("data-case-light>")[1].split("</dd>")[0]
    assert f'data-light="{overall.light}"' in light
    assert f"承诺时限 {overall.promised_limit} 个工作日，已用 {overall.used} 个工作日" in light
    assert html.count("data-light=") == 1  # commerce's clock ended, tax's and public security's not started

    entry = _last_audit(city)
    assert (entry.action, entry.consumer, entry.subject, entry.outcome) == ("status_page", "anonymous", code, "ok")
    assert entry.fields == RELEASED_FIELDS and entry.detail["status"] == "in_progress" and entry.detail["client"]
    assert entry.detail["lights"] == {"*": overall.light}

    # English by Accept-Language or the switch; the code may be typed loosely
    en = api.get(f"/status/{code.lower()}", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    assert '<html lang="en">' in en and "In progress" in en and "Result issued" in en and "陈**" in en
    assert api.get(f"/status/{code}?lang=en").text == en
    assert f'href="/status/{supervision_code.format(code)}?lang=zh"' in en


def test_a_wrong_check_character_says_check_the_code(city: World, api: TestClient) -> None:
    code = open_case(city, api)
    wrong = code[:-1] + ("1" if code[-1] != "1" else "2")
    swapped = code[:14] + code[15] + code[14] + code[16:] if code[14] != code[15] else None
    for typed in filter(None, (wrong, swapped)):
        res = api.get(f"/status/{typed}")
        assert res.status_code == 400
        assert "请核对" in res.text and "校验位不符" in res.text and "未找到" not in res.text
        assert 'id="supervision-code"' in res.text  # the form to type it again
        entry = _last_audit(city)
        assert (entry.action, entry.outcome, entry.detail["code"]) == ("status_page", "refused", "check_character")
    en = api.get(f"/status/{wrong}?lang=en").text
    assert "Check the code" in en


def test_an_unknown_code_is_404_and_a_malformed_one_400(city: World, api: TestClient) -> None:
    unknown = supervision_code.generate("330322", dt.date(2026, 12, 1), rng=random.Random(21))
    res = api.get(f"/status/{unknown}")
    assert res.status_code == 404 and "未找到该办件" in res.text
    entry = _last_audit(city)
    assert (entry.action, entry.subject, entry.detail["code"]) == ("status_page", unknown, "unknown_case")
    for typed in ("12345", "330322202513017K3PQF", "x" * 200):
        bad = api.get(f"/status/{typed}")
        assert bad.status_code == 400 and "格式不正确" in bad.text, typed
        assert _last_audit(city).detail["code"] == "malformed_code"
    # a path the router does not know under /status is a page too (the trail audits it)
    nothing = api.get("/status/a/b")
    assert nothing.status_code == 404 and nothing.headers["content-type"].startswith("text/html")


def test_the_form_leads_to_the_page_without_javascript(city: World, api: TestClient) -> None:
    code = open_case(city, api)
    home = api.get("/status")
    assert home.status_code == 200 and 'action="/status"' in home.text and "<script" not in home.text
    sent = api.get("/status", params={"code": f" {supervision_code.format(code)} ", "lang": "en"},
                   follow_redirects=False)  # fmt: skip
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/status/{supervision_code.format(code)}?lang=en"
    assert api.get(sent.headers["location"]).status_code == 200


def test_the_console_lists_cases_lit_yellow_or_red(city: World, api: TestClient) -> None:
    """Operators and supervisors see the open clocks e-supervision lit yellow or red; stewards do not."""
    from sqlalchemy import update

    from hub.db import session_scope
    from recognition import console_accounts as accounts

    code = open_case(city, api)
    with session_scope(city.engine) as s:
        case_id = s.scalars(select(CaseRecord.id).where(CaseRecord.code == code)).one()
        s.execute(update(CaseClock).where(CaseClock.case_id == case_id, CaseClock.department == "*")
                  .values(light="red", overdue=2))  # fmt: skip
        accounts.add_user(s, "zhou.jian", "supervisor", "correct horse battery staple")
        accounts.add_user(s, "li.na", "steward", "correct horse battery staple")
    for name, sees in (("zhou.jian", True), ("li.na", False)):
        api.cookies.clear()
        form = api.get("/console/login").text
        csrf = form.split('name="csrf" value="')[1].split('"')[0]
        signed = api.post("/console/login", data={"name": name, "password": "correct horse battery staple",
                                                  "csrf": csrf}, follow_redirects=False)  # fmt: skip
        assert signed.status_code == 303
        html = api.get("/console").text
        assert (f'data-lit="{code}/*"' in html) is sees
        if sees:
            row = html.split(f'data-lit="{code}/*"')[1].split("</tr>")[0]
            assert 'data-light="red"' in row and "(+2)" in row and "企业设立登记（多证联办）" in row
