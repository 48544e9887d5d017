"""Once-only materials under the holder's authorisation (授权), on SQLite and PostgreSQL: without one
the material is requested as paper; with one the licence stands for it, a department reads it under
that authorisation (the audit entry names it) until it is revoked or ends; a licence revoked later
is flagged on every open case that relied on it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.models import OutboxEvent
from recognition import audit
from recognition.tables import AuditEntry
from tests.cases.world import ADDRESS, P1, World, auth, consent, joint_registration


def _take(api: TestClient, city: World, **extra: Any) -> dict[str, Any]:
    res = api.post("/v1/cases", json=joint_registration(**extra), headers=auth(city.tokens["window"]))
    assert res.status_code == 201, res.text
    body: dict[str, Any] = res.json()
    return body


def _material(case: dict[str, Any], code: str) -> dict[str, Any]:
    return next(m for m in case["materials"] if m["code"] == code)


def test_without_authorisation_the_licence_is_not_used_and_the_material_is_asked_on_paper(
    city: World, api: TestClient
) -> None:
    case = _take(api, city, authorisations=[])
    premises = _material(case, "M04")
    assert (premises["provision"], premises["license_id"], premises["authorisation"]) == ("missing", None, None)
    assert case["intake_outcome"] == "correction_required" and case["authorisations"] == []
    (missing,) = case["missing"]
    assert missing["code"] == "M04" and "authorisation" in missing["reason"]


def test_the_authorisation_is_recorded_shown_and_names_the_licence_found(city: World, api: TestClient) -> None:
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    case = _take(api, city, authorisations=[consent("M04", valid_until=until.isoformat(), reference="SQ-2026-001")])
    (granted,) = case["authorisations"]
    assert granted["ref"].startswith("AU") and granted["holder"] == "applicant" and granted["state"] == "in_force"
    assert granted["materials"] == ["M04"] and granted["purpose"] == "办理本事项"
    assert granted["licences"] == [{"material": "M04", "license_id": city.licences["p1_property"], "version": 1}]
    assert dt.datetime.fromisoformat(granted["valid_until"]) == until.replace(microsecond=until.microsecond)
    premises = _material(case, "M04")
    assert premises["authorisation"] == granted["ref"] and premises["licence_status"] == "valid"
    assert premises["flag"] is None and case["flags"] == []
    shown = api.get(f"/v1/cases/{case['code']}", headers=auth(city.tokens["portal"])).json()
    assert shown["authorisations"][0]["ref"] == granted["ref"]


def test_a_department_reads_the_licence_under_the_authorisation_until_it_is_revoked(
    city: World, api: TestClient
) -> None:
    case = _take(api, city)
    code, ref = case["code"], case["authorisations"][0]["ref"]
    commerce = auth(city.tokens["commerce"])
    read = api.get(f"/v1/cases/{code}/materials/M04/licence", headers=commerce)
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["authorisation"]["ref"] == ref and body["licence"]["license_id"] == city.licences["p1_property"]
    assert body["license_version"] == 1 and body["licence"]["masked"] is True
    assert body["licence"]["surface"]["unit_no"] == "330322001001GB00001F00010001"
    assert P1 not in read.text and ADDRESS not in read.text  # the holder and the location masked by kind
    with city.sessions() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "case_licence_read")).one()
    assert entry.subject == city.licences["p1_property"] and entry.consumer == "commerce"
    assert entry.detail["authorisation"] == ref and entry.detail["case"] == code and entry.detail["material"] == "M04"

    revoked = api.post(f"/v1/cases/{code}/authorisations/{ref}/revoke", json={"reason": "申请人撤回授权"},
                       headers=auth(city.tokens["window"]))  # fmt: skip
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["authorisation"]["state"] == "revoked"
    with city.sessions() as s:
        event = s.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "case.authorisation_revoked")).one()
    assert event.payload["ref"] == ref and P1 not in json.dumps(event.payload)
    before = city.counts()
    refused = api.get(f"/v1/cases/{code}/materials/M04/licence", headers=commerce)
    assert (refused.status_code, refused.json()["code"]) == (403, "authorisation_revoked")
    again = api.post(f"/v1/cases/{code}/authorisations/{ref}/revoke", json={"reason": "again"},
                     headers=auth(city.tokens["window"]))  # fmt: skip
    assert (again.status_code, again.json()["code"]) == (409, "authorisation_revoked")
    assert city.counts() == before
    shown = api.get(f"/v1/cases/{code}", headers=auth(city.tokens["window"])).json()
    assert shown["authorisations"][0]["state"] == "revoked"
    assert shown["authorisations"][0]["revocation_reason"] == "申请人撤回授权"
    with city.sessions() as s:
        refusals = [d["code"] for d in s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "refuse"))]
    assert sorted(refusals) == ["authorisation_revoked", "authorisation_revoked"]
    assert audit.verify(city.engine).ok


def test_an_authorisation_that_has_ended_no_longer_opens_the_licence(city: World, api: TestClient) -> None:
    now = dt.datetime.now(dt.UTC)
    case = _take(
        api, city, received_at=(now - dt.timedelta(hours=2)).isoformat(),
        authorisations=[consent("M04", valid_until=(now - dt.timedelta(hours=1)).isoformat())],
    )  # fmt: skip
    assert case["authorisations"][0]["state"] == "expired" and _material(case, "M04")["provision"] == "licence"
    res = api.get(f"/v1/cases/{case['code']}/materials/M04/licence", headers=auth(city.tokens["commerce"]))
    assert (res.status_code, res.json()["code"]) == (403, "authorisation_expired")


def test_a_licence_revoked_later_is_flagged_on_every_open_case_that_relied_on_it(city: World, api: TestClient) -> None:
    first, second, closed = _take(api, city), _take(api, city), _take(api, city)
    window = auth(city.tokens["window"])
    withdrawn = api.post(
        f"/v1/cases/{closed['code']}/steps",
        headers=window,
        json={
            "department": "window",
            "seq": 3,
            "step": "withdrawn",
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        },
    )
    assert withdrawn.status_code == 201, withdrawn.text
    city.service.revoke(city.licences["p1_property"], "登记错误，予以撤销")
    for case in (first, second):
        shown = api.get(f"/v1/cases/{case['code']}", headers=window).json()
        premises = _material(shown, "M04")
        assert (premises["licence_status"], premises["flag"]) == ("revoked", "licence_revoked")
        assert shown["flags"] == ["M04:licence_revoked"]
    shown = api.get(f"/v1/cases/{closed['code']}", headers=window).json()
    assert shown["status"] == "withdrawn" and shown["flags"] == []
    assert _material(shown, "M04")["licence_status"] == "revoked"
