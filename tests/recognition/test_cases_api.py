"""``/v1/cases`` through the API on SQLite and PostgreSQL: intake, timeline, steps, department keys.

Everything runs for real: identities linked by the identity part, licences sealed and indexed by
the e-licence store, the audit log written and verified, events in the outbox.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cases.tables import CaseDispatch
from hub.models import OutboxEvent
from hub.pseudonyms import is_opaque_ref
from identifiers import supervision_code
from recognition import audit
from recognition.tables import AuditEntry
from tests.cases import world as w
from tests.cases.world import E1, E2, LEGACY_P2, P1, P2, P3, REG_E1, World, auth, consent, joint_registration


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def city(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    url = request.getfixturevalue("hub_db_url" if request.param == "sqlite" else "pg_hub_db_url")
    built = w.build(url, tmp_path)
    yield built
    built.engine.dispose()


@pytest.fixture()
def api(city: World) -> Iterator[TestClient]:
    yield from w.client(city)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def step(seq: int, kind: str, at: dt.datetime, **extra: Any) -> dict[str, Any]:
    return {"seq": seq, "step": kind, "occurred_at": at.isoformat(), **extra}


def test_intake_timeline_and_steps(city: World, api: TestClient) -> None:
    t0 = _now() - dt.timedelta(hours=2)  # the window reports its intake a little later: received then
    window = auth(city.tokens["window"], **{"Idempotency-Key": "desk-7/2026-12-04/0001"})
    intake = joint_registration(received_at=t0.isoformat())
    res = api.post("/v1/cases", json=intake, headers=window)
    assert res.status_code == 201, res.text
    case = res.json()
    code = case["code"]
    assert supervision_code.is_valid(code) and case["printed_code"] == supervision_code.format(code)
    assert code.startswith("330322") and case["intake_outcome"] == "accepted" and case["status"] == "in_progress"
    premises = next(m for m in case["materials"] if m["code"] == "M04")
    assert (premises["provision"], premises["found_by"]) == ("licence", "hub")  # 免提交: the hub holds it
    assert premises["license_id"] == city.licences["p1_property"] and premises["license_version"] == 1
    assert {s["department"]: s["state"] for s in case["stages"]} == {
        "commerce": "open", "tax": "waiting", "public_security": "waiting",
    }  # fmt: skip
    assert case["held_by"] == ["commerce"] and case["applicant"]["code"] == P1  # the window may see it
    assert [(s["department"], s["seq"], s["step"]) for s in case["timeline"]] == [
        ("window", 1, "received"), ("window", 2, "accepted"),
    ]  # fmt: skip
    before = city.counts()

    # a double click: the same case, nothing new
    again = api.post("/v1/cases", json=intake, headers=window)
    assert again.status_code == 200 and again.json()["code"] == code and again.json()["replayed"] is True
    assert again.headers["Idempotent-Replayed"] == "true" and city.counts() == before

    commerce = auth(city.tokens["commerce"])
    for seq, kind, minutes in ((1, "accepted", 1), (2, "approved", 2), (3, "result_issued", 3)):
        res = api.post(f"/v1/cases/{code}/steps", json=step(seq, kind, t0 + dt.timedelta(minutes=minutes)),
                       headers=commerce)  # fmt: skip
        assert res.status_code == 201, res.text
        assert res.json()["step"]["impossible"] is None
    assert res.json()["held_by"] == ["tax", "public_security"]  # commerce concluded: the parallel stages open
    after_commerce = city.counts()

    # a department resending a step changes nothing; the same number with other content is refused
    resent = api.post(f"/v1/cases/{code}/steps", json=step(2, "approved", t0 + dt.timedelta(minutes=2)),
                      headers=commerce)  # fmt: skip
    assert resent.status_code == 200 and resent.json()["replayed"] is True and city.counts() == after_commerce
    other = api.post(f"/v1/cases/{code}/steps", json=step(2, "rejected", t0 + dt.timedelta(minutes=2)),
                     headers=commerce)  # fmt: skip
    assert other.status_code == 409 and other.json()["code"] == "step_conflict" and city.counts() == after_commerce

    # tax's approval arrives before its acceptance: flagged until the acceptance, timed before it, arrives
    tax = auth(city.tokens["tax"])
    approved = api.post(f"/v1/cases/{code}/steps", json=step(2, "approved", t0 + dt.timedelta(minutes=6)),
                        headers=tax)  # fmt: skip
    assert approved.status_code == 201 and approved.json()["step"]["impossible"] == "before_accepted"
    accepted = api.post(f"/v1/cases/{code}/steps", json=step(1, "accepted", t0 + dt.timedelta(minutes=5)),
                        headers=tax)  # fmt: skip
    assert accepted.status_code == 201 and accepted.json()["step"]["arrived_out_of_order"] is True
    # public security reports its result before any decision, and the decision after it: impossible
    police = auth(city.tokens["public_security"])
    for seq, kind, minutes in ((1, "accepted", 4), (2, "result_issued", 7), (3, "approved", 8)):
        assert api.post(f"/v1/cases/{code}/steps", json=step(seq, kind, t0 + dt.timedelta(minutes=minutes)),
                        headers=police).status_code == 201  # fmt: skip

    timeline = api.get(f"/v1/cases/{code}", headers=auth(city.tokens["portal"]))
    assert timeline.status_code == 200
    body = timeline.json()
    placed = [(s["department"], s["step"], s["impossible"]) for s in body["timeline"]]
    assert placed == [
        ("window", "received", None), ("window", "accepted", None),
        ("commerce", "accepted", None), ("commerce", "approved", None), ("commerce", "result_issued", None),
        ("public_security", "accepted", None),
        ("tax", "accepted", None), ("tax", "approved", None),
        ("public_security", "result_issued", "result_before_decision"),
        ("public_security", "approved", "after_result"),
    ]  # fmt: skip
    assert [s["occurred_at"] for s in body["timeline"]] == sorted(s["occurred_at"] for s in body["timeline"])
    assert body["masked"] is True and body["applicant"]["code"] != P1 and body["applicant"]["name"] == "陈**"
    assert {s["department"]: s["state"] for s in body["stages"]}["tax"] == "approved"

    # every change announced through the outbox, without personal data in what identifies the events
    with city.sessions() as s:
        events = s.scalars(select(OutboxEvent).where(OutboxEvent.subject == code).order_by(OutboxEvent.id)).all()
        assert [e.event_type for e in events].count("case.received") == 1
        assert [e.event_type for e in events].count("case.step") == 10
        received = next(e for e in events if e.event_type == "case.received")
        assert is_opaque_ref(received.payload["applicant_ref"])
        text = json.dumps([(e.subject, e.idempotency_key, e.payload) for e in events], ensure_ascii=False)
        assert P1 not in text and "陈海生" not in text and w.PHONE not in text
        assert "case.step:" + code + ":tax:1" in {e.idempotency_key for e in events}
    # every read and write audited (refusals by the trail), the chain intact
    with city.sessions() as s:
        actions = s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)).all()
        assert actions.count("case_intake") == 2 and actions.count("case_step") == 9  # 8 steps and a resend
        assert actions.count("case_read") == 1 and actions.count("refuse") == 1
        assert P1 not in json.dumps([list(r) for r in s.execute(select(AuditEntry.subject, AuditEntry.detail))])
    assert audit.verify(city.engine).ok


def test_holder_lists_by_any_code_and_department_keys_see_their_cases(city: World, api: TestClient) -> None:
    window = auth(city.tokens["window"])
    joint = api.post("/v1/cases", json=joint_registration(), headers=window).json()["code"]
    # the enterprise applies for a project approval: the land bureau's opinion and its licence, no paper
    project = api.post("/v1/cases", headers=window, json={
        "item_code": "XK00501000", "applicant": {"code": REG_E1, "name": w.NAMES[E1]},
        "materials": [{"code": "M01", "provided": "upload"}, {"code": "M04", "provided": "paper"}],
        "authorisations": [consent("M02", "M03")],
    })  # fmt: skip
    assert project.status_code == 201, project.text
    recognised = {m["code"]: m for m in project.json()["materials"]}
    assert recognised["M02"]["license_id"] == city.licences["e1_preview"] and recognised["M02"]["found_by"] == "hub"
    assert recognised["M03"]["license_id"] == city.licences["e1_business"]
    assert project.json()["applicant"]["code"] == E1  # the old registration number resolved to the USCC
    # the seller's certificate is filed under her old 15-digit card: found through the cross-walk
    transfer = api.post("/v1/cases", headers=window, json={
        "item_code": "QR00401000", "applicant": {"code": P3, "name": w.NAMES[P3]},
        "parties": [{"role": "transferor", "code": P2, "name": w.NAMES[P2]}],
        "delivery": {"method": "post", "address": w.ADDRESS},
        "materials": [{"code": c, "provided": "paper"} for c in ("M01", "M03", "M04", "M05", "M06")],
        "authorisations": [consent("M02", holder="transferor")],
    })  # fmt: skip
    assert transfer.status_code == 201, transfer.text
    t = transfer.json()
    assert t["applicant"]["identity"] == "provisional"  # a buyer from elsewhere, as the item allows
    seller = next(m for m in t["materials"] if m["code"] == "M02")
    assert seller["license_id"] == city.licences["p2_property_legacy"] and seller["holder"] == "transferor"
    assert [s["department"] for s in t["stages"]] == ["tax", "land"] and t["held_by"] == ["tax"]

    portal = auth(city.tokens["portal"])
    by_reg = api.get(f"/v1/holders/{REG_E1}/cases", headers=portal).json()
    assert [i["code"] for i in by_reg["items"]] == [project.json()["code"]] and by_reg["holder"] == E1
    by_person = api.get(f"/v1/holders/{P1}/cases", headers=portal).json()
    assert [i["code"] for i in by_person["items"]] == [joint] and P1 not in json.dumps(by_person)
    assert api.get(f"/v1/holders/{LEGACY_P2}/cases", headers=portal).json()["items"] == []  # she sells, applies not
    assert api.get(f"/v1/holders/{E2}/cases", headers=portal).json()["items"] == []

    # a department's key sees the cases it has a stage in, and no other
    land = auth(city.tokens["land"])
    assert api.get(f"/v1/cases/{t['code']}", headers=land).status_code == 200
    hidden = api.get(f"/v1/cases/{joint}", headers=land)
    assert hidden.status_code == 404 and hidden.json()["code"] == "not_found"
    assert api.get(f"/v1/holders/{P1}/cases", headers=land).json()["items"] == []
    assert [i["code"] for i in api.get(f"/v1/holders/{P1}/cases", headers=auth(city.tokens["commerce"])).json()[
        "items"]] == [joint]  # fmt: skip
    # an unbound integration key with tax's step scope reports tax's steps
    bridge = api.post(f"/v1/cases/{t['code']}/steps", headers=auth(city.tokens["tax_bridge"]),
                      json=step(1, "accepted", _now(), department="tax"))  # fmt: skip
    assert bridge.status_code == 201 and bridge.json()["step"]["actor"] == "tax_bridge"


def test_window_outcomes_and_a_correction_listing_everything_at_once(city: World, api: TestClient) -> None:
    window = auth(city.tokens["window"])
    # nothing brought: everything missing, listed at once (一次性告知); the premises proof is found
    bare = api.post("/v1/cases", headers=window, json={
        "item_code": "XK00101001", "applicant": {"code": P1, "name": w.NAMES[P1]},
        "authorisations": [consent("M04")],
    })  # fmt: skip
    assert bare.status_code == 201
    case = bare.json()
    assert case["intake_outcome"] == "correction_required" and case["status"] == "awaiting_correction"
    assert [m["code"] for m in case["missing"]] == ["M01", "M02", "M03", "M05", "M06"]
    assert case["timeline"][1]["step"] == "correction_requested" and len(case["timeline"][1]["missing"]) == 5
    assert case["stages"] == [] and case["held_by"] == ["applicant"]
    code = case["code"]
    # the applicant comes back with part of it: asked again for the rest; then with the rest, accepted
    first = api.post(f"/v1/cases/{code}/steps", headers=window, json=step(
        3, "resumed", _now(), department="window",
        supplied=[{"code": "M01", "provided": "upload"}, {"code": "M02", "provided": "upload"}]))  # fmt: skip
    assert first.status_code == 201, first.text
    again = api.get(f"/v1/cases/{code}", headers=window).json()
    assert [m["code"] for m in again["missing"]] == ["M03", "M05", "M06"] and again["status"] == "awaiting_correction"
    assert again["timeline"][-1]["step"] == "correction_requested" and again["timeline"][-1]["actor"] == "hub"
    rest = api.post(f"/v1/cases/{code}/steps", headers=window, json=step(
        5, "resumed", _now(), department="window",
        supplied=[{"code": "M03", "provided": "paper"}, {"code": "M05", "provided": "promised",
                                                          "promised_by": "2030-01-10"},
                  {"code": "M06", "provided": "upload"}]))  # fmt: skip
    assert rest.status_code == 201, rest.text
    done = api.get(f"/v1/cases/{code}", headers=window).json()
    assert done["intake_outcome"] == "accepted_pending" and done["status"] == "in_progress"
    assert done["missing"] == [] and done["held_by"] == ["commerce"] and len(done["stages"]) == 3
    assert done["timeline"][-1]["step"] == "accepted" and done["timeline"][-1]["outcome"] == "accepted_pending"
    late = api.post(f"/v1/cases/{code}/steps", headers=window, json=step(
        7, "resumed", _now(), department="window", supplied=[{"code": "M01", "provided": "paper"}]))  # fmt: skip
    assert late.status_code == 409 and late.json()["code"] == "case_not_awaiting_correction"

    # 容缺受理 and 告知承诺制 at the first visit; 不予受理 with its reasons
    brought = [{"code": c, "provided": "upload"} for c in ("M01", "M02", "M06")] + [
        {"code": "M03", "provided": "paper"}
    ]
    pending = joint_registration(
        materials=[*brought, {"code": "M05", "provided": "promised", "promised_by": "2030-01-10"}]
    )
    assert api.post("/v1/cases", headers=window, json=pending).json()["intake_outcome"] == "accepted_pending"
    committed = api.post("/v1/cases", headers=window, json={
        "item_code": "XK00102000", "applicant": {"code": E1, "name": w.NAMES[E1]},
        "materials": [{"code": "M01", "provided": "upload"}, {"code": "M03", "provided": "commitment"}],
            "authorisations": [consent("M02")]})  # fmt: skip
    assert committed.json()["intake_outcome"] == "accepted_on_commitment", committed.text
    refused = api.post("/v1/cases", headers=window, json=joint_registration(
        outcome="not_accepted", reasons=["不属于本机关职权范围（经营场所不在本区）"]))  # fmt: skip
    r = refused.json()
    assert r["intake_outcome"] == "not_accepted" and r["status"] == "not_accepted" and r["stages"] == []
    assert r["reasons"] == ["不属于本机关职权范围（经营场所不在本区）"] and r["held_by"] == []
    with city.sessions() as s:
        assert s.scalar(select(CaseDispatch.id).where(CaseDispatch.department == "commerce").limit(1)) is not None


# (consumer, method, path, body) → (status, code); {code}: a case of the joint registration
BAD: list[tuple[str, str, str, Any, int, str]] = [
    ("window", "POST", "/v1/cases", joint_registration(item_code="XK99999000"), 422, "unknown_item"),
    ("window", "POST", "/v1/cases", joint_registration(applicant=P3), 422, "applicant_unknown"),
    ("window", "POST", "/v1/cases", joint_registration(applicant=P1[:-1] + ("0" if P1[-1] != "0" else "1")), 422,
     "invalid_code"),
    ("window", "POST", "/v1/cases", {"item_code": "XK00501000", "applicant": {"code": P1, "name": "陈海生"}}, 422,
     "applicant_kind_not_allowed"),
    ("window", "POST", "/v1/cases", {"item_code": "XK00501000", "applicant": {"code": E1, "name": "x"},
                                     "materials": [{"code": "M02", "license_id": "@e2_preview"}],
                                     "authorisations": [consent("M02")]}, 422,
     "material_not_owned"),
    ("window", "POST", "/v1/cases", {"item_code": "XK00501000", "applicant": {"code": E1, "name": "x"},
                                     "materials": [{"code": "M02", "license_id": "3101-NOSUCHLICENCE"}],
                                     "authorisations": [consent("M02")]}, 422,
     "material_not_owned"),
    ("window", "POST", "/v1/cases", {"item_code": "XK00501000", "applicant": {"code": E1, "name": "x"},
                                     "materials": [{"code": "M02", "license_id": "@e1_business"}],
                                     "authorisations": [consent("M02")]}, 422,
     "material_type_mismatch"),
    ("window", "POST", "/v1/cases", {"item_code": "XK00501000", "applicant": {"code": E1, "name": "x"},
                                     "materials": [{"code": "M02", "license_id": "@e1_preview_expired"}],
                                     "authorisations": [consent("M02")]}, 422,
     "material_licence_not_valid"),
    ("window", "POST", "/v1/cases", {"item_code": "QR00401000", "applicant": {"code": P3, "name": "x"}}, 422,
     "party_missing"),
    ("window", "POST", "/v1/cases", joint_registration(parties=[{"role": "seller", "code": P2, "name": "x"}]), 422,
     "unknown_party"),
    ("window", "POST", "/v1/cases", joint_registration(materials=[{"code": "M99", "provided": "paper"}]), 422,
     "unknown_material"),
    ("window", "POST", "/v1/cases", joint_registration(materials=[{"code": "M01", "provided": "promised",
                                                                    "promised_by": "2030-01-01"}]), 422,
     "material_not_deferrable"),
    ("window", "POST", "/v1/cases", joint_registration(materials=[{"code": "M03", "provided": "commitment"}]), 422,
     "commitment_not_allowed"),
    ("window", "POST", "/v1/cases", joint_registration(outcome="not_accepted", reasons=["  "]), 422,
     "reasons_required"),
    ("window", "POST", "/v1/cases", joint_registration(received_at="2099-01-01T00:00:00+08:00"), 422,
     "time_in_future"),
    ("window", "POST", "/v1/cases", joint_registration(item_code="XK00101001", subject="another"), 409,
     "idempotency_key_reused"),
    ("commerce_counter", "POST", "/v1/cases", {"item_code": "GG00201000", "applicant": {"code": P1, "name": "x"}},
     403, "item_not_led"),
    ("portal", "POST", "/v1/cases", joint_registration(), 403, "missing_scope"),
    ("portal", "GET", "/v1/cases/330322-20261204-2X4G48", None, 422, "invalid_supervision_code"),
    ("portal", "GET", "/v1/cases/NOT-A-CODE", None, 422, "invalid_supervision_code"),
    ("portal", "GET", "/v1/cases/@unknown", None, 404, "not_found"),
    ("portal", "GET", f"/v1/holders/{P1[:-1]}/cases", None, 422, "invalid_code"),
    ("land", "POST", "/v1/cases/{code}/steps", {"seq": 1, "step": "accepted", "occurred_at": "@now"}, 403,
     "not_dispatched"),
    ("commerce", "POST", "/v1/cases/{code}/steps", {"department": "tax", "seq": 1, "step": "accepted",
                                                    "occurred_at": "@now"}, 403, "wrong_department"),
    ("commerce_with_tax_scope", "POST", "/v1/cases/{code}/steps",
     {"department": "tax", "seq": 1, "step": "accepted", "occurred_at": "@now"}, 403, "wrong_department"),
    ("portal", "POST", "/v1/cases/{code}/steps", {"department": "tax", "seq": 1, "step": "accepted",
                                                  "occurred_at": "@now"}, 403, "missing_scope"),
    ("tax_bridge", "POST", "/v1/cases/{code}/steps", {"department": "customs", "seq": 1, "step": "accepted",
                                                      "occurred_at": "@now"}, 422, "unknown_department"),
    ("tax_bridge", "POST", "/v1/cases/{code}/steps", {"seq": 1, "step": "accepted", "occurred_at": "@now"}, 422,
     "unknown_department"),
    ("commerce", "POST", "/v1/cases/{code}/steps", {"seq": 1, "step": "received", "occurred_at": "@now"}, 422,
     "step_not_allowed"),
    ("commerce", "POST", "/v1/cases/{code}/steps", {"seq": 1, "step": "accepted",
                                                    "occurred_at": "2099-01-01T00:00:00+08:00"}, 422, "time_in_future"),
    ("commerce", "POST", "/v1/cases/{code}/steps", {"seq": 1, "step": "correction_requested", "occurred_at": "@now"},
     422, "missing_list_required"),
    ("commerce", "POST", "/v1/cases/{code}/steps", {"seq": 1, "step": "approved", "occurred_at": "@now"}, 409,
     "step_conflict"),
    ("commerce", "POST", "/v1/cases/{code}/steps", {"seq": 1, "step": "stamped", "occurred_at": "@now"}, 422,
     "validation_error"),
    ("commerce", "POST", "/v1/cases/@unknown/steps", {"seq": 1, "step": "accepted", "occurred_at": "@now"}, 404,
     "not_found"),
    ("window", "POST", "/v1/cases", {"item_code": "XK00501000", "applicant": {"code": E1, "name": "x"},
                                     "materials": [{"code": "M02", "license_id": "@e1_preview"}]}, 422,
     "authorisation_required"),
    ("window", "POST", "/v1/cases", joint_registration(authorisations=[consent("M04", holder="transferor")]), 422,
     "authorisation_holder_unknown"),
    ("window", "POST", "/v1/cases", joint_registration(authorisations=[consent("M04"), consent("M04")]), 422,
     "authorisation_repeated"),
    ("window", "POST", "/v1/cases", joint_registration(authorisations=[consent("M01")]), 422,
     "authorisation_material_invalid"),
    ("window", "POST", "/v1/cases", joint_registration(authorisations=[consent("M04", days=-1)]), 422,
     "authorisation_expired"),
    ("portal", "GET", "/v1/cases/{code}/materials/M04/licence", None, 403, "department_key_required"),
    ("commerce", "GET", "/v1/cases/{code}/materials/M99/licence", None, 404, "unknown_material"),
    ("commerce", "GET", "/v1/cases/{code}/materials/M01/licence", None, 409, "material_not_a_licence"),
    ("land", "GET", "/v1/cases/{code}/materials/M04/licence", None, 404, "not_found"),
    ("commerce", "GET", "/v1/cases/{code}/materials/4/licence", None, 422, "validation_error"),
    ("window", "POST", "/v1/cases/{code}/authorisations/AU000000000000/revoke", {"reason": "x"}, 404,
     "authorisation_not_found"),
    ("window", "POST", "/v1/cases/{code}/authorisations/{ref}/revoke",
     {"reason": "x", "revoked_at": "2099-01-01T00:00:00+08:00"}, 422, "time_in_future"),
    ("window", "POST", "/v1/cases/{code}/authorisations/{ref}/revoke",
     {"reason": "x", "revoked_at": "2020-01-01T00:00:00+08:00"}, 422, "authorisation_revoked_before_granted"),
    ("window", "POST", "/v1/cases/{code}/authorisations/{ref}/revoke", {}, 422, "validation_error"),
    ("portal", "POST", "/v1/cases/{code}/authorisations/{ref}/revoke", {"reason": "x"}, 403, "missing_scope"),
    ("window", "POST", "/v1/cases/{code}/steps", {"department": "window", "seq": 3, "step": "resumed",
                                                  "occurred_at": "@now", "supplied": [{"code": "M01",
                                                                                       "provided": "paper"}]},
     409, "case_not_awaiting_correction"),
]  # fmt: skip


def _resolve(value: Any, city: World, code: str, unknown: str, ref: str = "") -> Any:
    if isinstance(value, str):
        if value == "@now":
            return _now().isoformat()
        if value.startswith("@") and value[1:] in city.licences:
            return city.licences[value[1:]]
        return value.replace("{code}", code).replace("@unknown", unknown).replace("{ref}", ref)
    if isinstance(value, dict):
        return {k: _resolve(v, city, code, unknown, ref) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, city, code, unknown, ref) for v in value]
    return value


def _refusals(api: TestClient, city: World) -> dict[str, float]:
    text = api.get("/metrics", headers=auth(city.tokens["monitor"])).text
    out = {}
    for line in text.splitlines():
        if line.startswith("hub_cases_refusals_total{"):
            out[line.split('code="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
    return out


def test_every_bad_input_is_a_problem_with_its_code_writes_nothing_and_is_counted(city: World, api: TestClient) -> None:
    window = auth(city.tokens["window"], **{"Idempotency-Key": "double-click"})
    created = api.post("/v1/cases", json=joint_registration(), headers=window)
    code, ref = created.json()["code"], created.json()["authorisations"][0]["ref"]
    assert api.post(f"/v1/cases/{code}/steps", headers=auth(city.tokens["commerce"]),
                    json=step(1, "accepted", _now())).status_code == 201  # fmt: skip
    unknown = supervision_code.generate("330322", dt.date(2026, 12, 4))
    for consumer, method, path, body, status, problem in BAD:
        headers = auth(city.tokens[consumer])
        if problem == "idempotency_key_reused":
            headers = window
        before = city.counts()
        res = api.request(method, _resolve(path, city, code, unknown, ref),
                          json=_resolve(body, city, code, unknown, ref), headers=headers)  # fmt: skip
        assert (res.status_code, res.json().get("code")) == (status, problem), (consumer, path, body, res.text)
        assert res.headers["content-type"].startswith("application/problem+json")
        assert city.counts() == before, f"{problem} wrote something"
        assert P1 not in res.text and P3 not in res.text  # problem details name fields, never the codes
    counted = _refusals(api, city)
    case_codes = {p for *_, p in BAD if p not in ("missing_scope", "validation_error")}
    assert {c for c, n in counted.items() if n >= 1} == case_codes
    assert counted["material_not_owned"] == 2 and counted["wrong_department"] == 2
    with city.sessions() as s:  # every refusal audited with its code
        refused = [d.get("code") for d in s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "refuse"))]
    assert sorted(refused) == sorted(p for *_, p in BAD)


def test_openapi_conformance_of_the_case_operations(hub_db_url: str, tmp_path: Path) -> None:
    """Schemathesis over the case operations with a key that may use them all: no 5xx, every
    status, content type and body as documented."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    from hub.db import session_scope
    from hub.settings import get_settings
    from recognition.app import create_app
    from recognition.config import RecognitionSettings
    from recognition.consumers import add_consumer
    from recognition.directory import LicenseDirectory

    city = w.build(hub_db_url, tmp_path)
    with session_scope(city.engine) as s:
        token = add_consumer(s, "all_cases", ["cases:write", "cases:read", "cases:steps:tax", "personal:read"])[1]
    directory = LicenseDirectory(city.service.store, city.service.signer)
    app = create_app(
        get_settings(),
        engine=city.engine,
        directory=directory,
        config=RecognitionSettings(api_key_cache_seconds=0),
        audit_process=False,
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations() if "/cases" in r.ok().label]
    assert len(operations) == 11  # the evaluation (好差评) among them
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)  # fmt: skip
        def run(case: Any) -> None:
            statuses.append(case.call_and_validate(headers=auth(token), checks=checks).status_code)

        run()
    assert 422 in statuses and len(statuses) >= 40
    city.engine.dispose()
