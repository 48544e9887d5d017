"""The supervision office's API: figures and escalations; a department acknowledges its own — audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cases import supervision
from recognition.tables import AuditEntry
from tests.cases import world as w
from tests.cases.test_supervision import _joint_case
from tests.cases.world import World, auth


@pytest.fixture()
def city(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_db_url: str) -> Iterator[World]:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    built = w.build(hub_db_url, tmp_path)
    yield built
    built.engine.dispose()


@pytest.fixture()
def api(city: World) -> Iterator[TestClient]:
    yield from w.client(city)


def _red(city: World) -> str:
    code = _joint_case(city)
    with city.sessions() as s:
        supervision.recompute_lights(s, today=dt.date(2026, 11, 18))
        s.commit()
    return code


def test_figures_for_the_supervision_office_only(city: World, api: TestClient) -> None:
    _red(city)
    q = {"since": "2026-11-01", "until": "2026-11-30", "by": "department"}
    res = api.get("/v1/cases/stats", params=q, headers=auth(city.tokens["supervision_office"]))
    assert res.status_code == 200, res.text
    rows = {r["key"]: r for r in res.json()["rows"]}
    assert rows["commerce"]["received"] == 1 and rows["commerce"]["overdue"] == 1
    denied = api.get("/v1/cases/stats", params=q, headers=auth(city.tokens["portal"]))
    assert denied.status_code == 403 and denied.json()["code"] == "missing_scope"
    bad = api.get("/v1/cases/stats", params={"since": "2026-11-30", "until": "2026-11-01"},
                  headers=auth(city.tokens["supervision_office"]))  # fmt: skip
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_period"


def test_escalations_listed_and_acknowledged_by_their_department_only(city: World, api: TestClient) -> None:
    code = _red(city)
    office = api.get("/v1/cases/escalations", headers=auth(city.tokens["supervision_office"])).json()
    assert [(e["code"], e["department"], e["overdue"]) for e in office] == [(code, "commerce", 1)]
    assert api.get("/v1/cases/escalations", headers=auth(city.tokens["tax"])).json() == []
    eid = office[0]["id"]
    path = f"/v1/cases/escalations/{eid}/acknowledgement"
    assert api.post(path, json={}, headers=auth(city.tokens["tax"])).status_code == 404
    assert api.post(path, json={}, headers=auth(city.tokens["supervision_office"])).status_code == 403
    done = api.post(path, json={"note": "已加快办理"}, headers=auth(city.tokens["commerce"]))
    assert done.status_code == 200 and done.json()["acknowledged_by"] == "commerce"
    again = api.post(path, json={"note": "再次"}, headers=auth(city.tokens["commerce"]))
    assert again.json()["acknowledged_at"] == done.json()["acknowledged_at"]  # idempotent
    assert api.get("/v1/cases/escalations", headers=auth(city.tokens["commerce"])).json() == []
    with city.sessions() as s:
        actions = [a.action for a in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
    assert actions.count("escalation_acknowledged") == 2 and "escalation_list" in actions


def test_metrics_show_open_cases_by_light_from_the_tasks_count(city: World, api: TestClient) -> None:
    _red(city)  # the task counted: commerce red, the case green, tax and the seal filing waiting (green)
    text = api.get("/metrics", headers=auth(city.tokens["monitor"])).text
    assert 'hub_cases_open{department="commerce",light="red"} 1.0' in text
    assert 'hub_cases_open{department="*",light="green"} 1.0' in text
    assert 'hub_cases_open{department="tax",light="green"} 1.0' in text
    assert 'hub_cases_open{department="commerce",light="yellow"} 0.0' in text
