"""Property: no case endpoint, with any scopes short of ``personal:read``, releases personal data.

Hypothesis generates applications — applicants who are persons, sole proprietors (个体工商户) or
enterprises, agents, sellers, delivery addresses, phones, and resident ids and phones hidden in
the subject, the reasons of a refusal, a department's note and the reasons of its correction
request — and keys with scope sets drawn from every case scope and the licence scopes, bound to
a department or not, never with ``personal:read``. The intake answer, the step answer, the
timeline, the applicant's list of cases, every problem answer, the outbox, the audit log and the
log lines must not contain any generated personal value whole.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from hub.db import make_engine, migrate, session_scope
from hub.settings import get_settings
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.consumers import add_consumer
from recognition.directory import LicenseDirectory
from tests.cases.world import resident_id, uscc

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐"
GIVEN = "伟芳娜秀敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华建国文辉"
STREETS = ("中心路", "人民路", "海霞路", "环岛西路", "学院路")
SCOPE_ATOMS = sorted({
    "cases:read", "cases:write", "cases:steps:land", "cases:steps:tax", "licenses:read:*", "recognitions:read",
    "fields:*", "licenses:file", "metrics:read", "purpose:service_portal",
})  # fmt: skip


@dataclass
class Application:
    body: dict[str, Any]
    applicant: str
    secrets: list[str] = field(default_factory=list)
    note: str = ""
    reason: str = ""


def _person(draw: st.DrawFn) -> tuple[str, str]:
    region = draw(st.sampled_from(["330322", "330302", "110105", "440106"]))
    born = draw(st.dates(__import__("datetime").date(1930, 1, 1), __import__("datetime").date(2005, 12, 31)))
    code = resident_id(f"{region}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}")
    name = draw(st.sampled_from(SURNAMES)) + "".join(draw(st.lists(st.sampled_from(GIVEN), min_size=1, max_size=2)))
    return code, name


def _phone(draw: st.DrawFn) -> str:
    return f"1{draw(st.sampled_from('3589'))}{draw(st.integers(0, 10**9 - 1)):09d}"


@st.composite
def applications(draw: st.DrawFn) -> Application:
    secrets: list[str] = []
    kind = draw(st.sampled_from(["person", "sole", "enterprise"]))
    person, person_name = _person(draw)
    phone = _phone(draw)
    address = f"浙江省温州市洞头区{draw(st.sampled_from(STREETS))}{draw(st.integers(1, 999))}号"
    org = "".join(draw(st.lists(st.sampled_from("0123456789ABCDEFGH"), min_size=8, max_size=8)))
    if kind == "person":
        code, name = person, person_name
        secrets += [person, person_name]
    elif kind == "sole":
        code, name = uscc("330322", org, prefix="92"), f"洞头区{person_name}小吃店"
        secrets += [person_name, name]
    else:
        code, name = uscc("330322", org), "温州洞头海景餐饮有限公司"
    secrets += [phone, address]
    seller, seller_name = _person(draw)
    agent, agent_name = _person(draw)
    agent_phone = _phone(draw)
    secrets += [seller, seller_name, agent, agent_name, agent_phone]
    hidden = draw(st.sampled_from([person, phone, agent]))
    body: dict[str, Any] = {
        "item_code": "QR00401000",
        "applicant": {"code": code, "name": name, "phone": phone, "address": address},
        "agent": {"code": agent, "name": agent_name, "phone": agent_phone, "authorisation": f"委托书（{hidden}）"},
        "parties": [{"role": "transferor", "code": seller, "name": seller_name}],
        "delivery": {"method": "post", "address": address},
        "subject": f"{name}购买{address}房产，联系电话{phone}",
        "materials": [
            {"code": c, "provided": "paper"}
            for c in draw(st.sets(st.sampled_from(["M01", "M03", "M04", "M05", "M06"])))
        ],
    }
    if draw(st.booleans()):
        body["outcome"] = "not_accepted"
        body["reasons"] = [f"申请人{person}材料与身份证不符，电话{phone}"]
    note = f"经办人核对{draw(st.sampled_from([person, agent]))}，回电{phone}"
    reason = f"转让方身份证{seller}已过期"  # free text: ids and phones are found by shape, names are not
    return Application(body, code, sorted({s for s in secrets if len(s) >= 2}), note, reason)


@dataclass
class Hub:
    root: Path
    engine: Any
    client: TestClient
    made: int = 0


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    root = Path(tempfile.mkdtemp(prefix="case_privacy_"))
    url = f"sqlite:///{root / 'hub.db'}"
    migrate(url)
    engine = make_engine(url)
    config = RecognitionSettings(api_key_cache_seconds=0)
    app = create_app(
        get_settings(), engine=engine, directory=LicenseDirectory(), config=config, audit_process=False,
    )  # fmt: skip
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Hub(root, engine, client)
    engine.dispose()
    shutil.rmtree(root, ignore_errors=True)


def _key(hub: Hub, name: str, scopes: set[str], department: str | None) -> dict[str, str]:
    with session_scope(hub.engine) as session:
        token = add_consumer(session, name, sorted(scopes), department=department)[1]
    return {"Authorization": f"Bearer {token}"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])  # fmt: skip
@given(
    app_=applications(),
    scope_sets=st.lists(st.sets(st.sampled_from(SCOPE_ATOMS), max_size=6), min_size=1, max_size=3),
    departments=st.lists(st.sampled_from([None, "tax", "land"]), min_size=3, max_size=3),
)
def test_no_case_endpoint_releases_personal_data_without_personal_read(
    hub: Hub, app_: Application, scope_sets: list[set[str]], departments: list[str | None],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    hub.made += 1
    c = hub.client
    texts: list[str] = []
    # the front desk's key without personal:read takes the application in
    writer = _key(hub, f"w{hub.made}", {"cases:write", "cases:read"}, None)
    res = c.post("/v1/cases", json=app_.body, headers=writer)
    texts.append(res.text)
    assert res.status_code == 201, res.text
    code = res.json()["code"]
    # the tax department reports a note and a correction request naming people
    tax = _key(hub, f"t{hub.made}", {"cases:steps:tax", "cases:read"}, "tax")
    at = res.json()["received_at"]
    for body in (
        {"seq": 1, "step": "accepted", "occurred_at": at, "note": app_.note},
        {"seq": 2, "step": "correction_requested", "occurred_at": at, "note": app_.note,
         "missing": [{"code": "M04", "name": "转让方身份证明", "reason": app_.reason}]},
    ):  # fmt: skip
        texts.append(c.post(f"/v1/cases/{code}/steps", json=body, headers=tax).text)
    keys = [
        _key(hub, f"r{hub.made}-{i}", scopes | {"cases:read"} if i == 0 else scopes, departments[i])
        for i, scopes in enumerate(scope_sets)
    ]  # fmt: skip
    for h in [writer, tax, *keys]:
        texts.append(c.get(f"/v1/cases/{code}", headers=h).text)
        texts.append(c.get(f"/v1/holders/{app_.applicant}/cases", headers=h).text)
        texts.append(c.get(f"/v1/holders/{app_.applicant[:-1]}/cases", headers=h).text)  # a damaged code
        review = {"department": "land", "seq": 9, "step": "in_review", "occurred_at": at, "note": app_.note}
        texts.append(c.post(f"/v1/cases/{code}/steps", headers=h, json=review).text)
    with hub.engine.connect() as conn:
        stored = [
            json.dumps([str(v) for v in r], ensure_ascii=False)
            for table in ("recognition_audit", "outbox_event")
            for r in conn.execute(text(f"SELECT * FROM {table}"))
        ]
    everything = "\n".join(texts + stored + [caplog.text])
    for secret in app_.secrets:
        assert secret not in everything, secret
