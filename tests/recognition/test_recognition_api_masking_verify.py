"""Masking of personal data, field release, verification by id and by file, recognitions, problems."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from e_license_store.model import LicenseDraft
from hub.models import local_today
from hub.settings import reset_settings
from mappings.canonical.models import HolderKind
from tests.recognition.rec_helpers import RESIDENT_ID, USCC, World, auth, source_ref


def test_person_data_masked_unless_scope_grants_it(world: World, client: TestClient, tokens: dict[str, str]) -> None:
    lid = world.licenses["property"]
    res = client.get(f"/v1/holders/{RESIDENT_ID}/licenses", headers=auth(tokens["portal"]))
    page = res.json()
    assert res.status_code == 200 and page["masked"] is True
    assert page["holder"]["presented"] == "330322********1231" and page["holder"]["canonical"] == "330322********1231"
    [item] = page["items"]
    assert item["license_id"] == lid and item["holder_code"] == "330322********1231" and item["holder_name"] == "李**"
    assert RESIDENT_ID not in res.text and "李小龙" not in res.text

    detail = client.get(f"/v1/licenses/{lid}", headers=auth(tokens["portal"])).json()
    assert detail["surface"] == {} and detail["withheld_fields"] == ["location", "unit_no"]
    assert detail["holder_code"] == "330322********1231" and detail["masked"] is True

    full = client.get(f"/v1/licenses/{lid}", headers=auth(tokens["land_bureau"])).json()
    assert full["holder_code"] == RESIDENT_ID and full["holder_name"] == "李小龙" and full["masked"] is False
    assert full["surface"]["location"] == "浙江省温州市洞头区北岙街道海滨路8号" and full["withheld_fields"] == []


def test_fields_released_per_scope_and_personal_fields_masked(
    world: World, client: TestClient, tokens: dict[str, str]
) -> None:
    detail = client.get(f"/v1/licenses/{world.licenses['business']}", headers=auth(tokens["tax_bureau"])).json()
    assert detail["surface"] == {"enterprise_name": "温州洞头海景餐饮有限公司", "legal_rep_name": "张**"}
    assert detail["withheld_fields"] == ["address"]
    assert detail["holder_code"] == USCC  # an enterprise's code is not personal data


def test_audit_holds_masked_personal_data_only(world: World, client: TestClient, tokens: dict[str, str]) -> None:
    for name in ("portal", "land_bureau"):
        client.get(f"/v1/holders/{RESIDENT_ID}/licenses", headers=auth(tokens[name]))
        client.get(f"/v1/licenses/{world.licenses['property']}", headers=auth(tokens[name]))
    with world.engine.connect() as conn:
        rows = [" ".join(str(v) for v in r) for r in conn.execute(text("SELECT * FROM recognition_audit"))]
    assert len(rows) == 4
    dump = "\n".join(rows)
    assert RESIDENT_ID not in dump and "李小龙" not in dump and "海滨路8号" not in dump
    assert "330322********1231" in dump


def test_verify_by_id_and_by_file_and_revocation(world: World, client: TestClient, tokens: dict[str, str]) -> None:
    lid = world.licenses["business"]
    res = client.post("/v1/licenses/verify", json={"license_id": lid}, headers=auth(tokens["verifier"]))
    body = res.json()
    assert res.status_code == 200 and body["ok"] is True and body["signature_ok"] and body["hash_ok"]

    file = client.get(f"/v1/licenses/{lid}/file", headers=auth(tokens["admin"]))
    assert file.status_code == 200 and file.headers["content-disposition"].startswith("attachment")
    assert file.headers["x-hub-rendering"] == "original"
    res = client.post(
        "/v1/licenses/verify", files={"file": ("l.json", file.content, "application/json")},
        headers=auth(tokens["verifier"]),
    )  # fmt: skip
    assert res.status_code == 200 and res.json()["ok"] is True, res.text

    doc = json.loads(file.content)
    tampered = file.content.replace("温州洞头海景餐饮有限公司".encode(), "温州洞头海景酒店有限公司".encode(), 1)
    assert tampered != file.content and doc
    res = client.post(
        "/v1/licenses/verify",
        files={"file": ("l.json", tampered, "application/json")},
        headers=auth(tokens["verifier"]),
    )
    assert res.status_code == 200 and res.json()["ok"] is False and res.json()["problems"]

    world.service.revoke(lid, "licence withdrawn by the registry")
    res = client.post(
        "/v1/licenses/verify", files={"file": ("l.json", file.content, "application/json")},
        headers=auth(tokens["verifier"]),
    )  # fmt: skip
    out = res.json()
    assert out["ok"] is False and out["revoked"] is True and out["status"] == "revoked"
    res = client.post("/v1/licenses/verify", json={"license_id": "NOPE"}, headers=auth(tokens["verifier"]))
    assert res.status_code == 404 and res.json()["code"] == "not_found"
    res = client.post(
        "/v1/licenses/verify", content=b"x", headers={**auth(tokens["verifier"]), "content-type": "text/plain"}
    )
    assert res.status_code == 415 and res.json()["code"] == "unsupported_media_type"


def test_recognitions_across_departments(world: World, client: TestClient, tokens: dict[str, str]) -> None:
    res = client.get(f"/v1/holders/{USCC.lower()}/recognitions", headers=auth(tokens["portal"]))
    assert res.status_code == 200, res.text
    page = res.json()
    assert page["holder"]["canonical"] == USCC and page["holder"]["resolved_via"] == "normalized"
    by_type = {i["type_code"]: i for i in page["items"]}
    assert set(by_type) == {"1101", "1102", "3101"}
    assert by_type["3101"]["kind"] == "approval" and by_type["3101"]["source_department"] == "land"
    assert by_type["1101"]["kind"] == "license" and by_type["1101"]["source_department"] == "commerce"
    assert by_type["1102"]["source_department"] == "tax"
    assert all(i["verification"]["ok"] and i["status"] == "valid" for i in page["items"])
    world.service.suspend(world.licenses["tax"], "audit pending")
    page = client.get(f"/v1/holders/{USCC}/recognitions", headers=auth(tokens["portal"])).json()
    assert {i["type_code"] for i in page["items"]} == {"1101", "3101"}  # only current, valid results


def test_filters_pagination_and_problems(world: World, client: TestClient, tokens: dict[str, str]) -> None:
    h = auth(tokens["portal"])
    page = client.get(f"/v1/holders/{USCC}/licenses?limit=2", headers=h).json()
    assert len(page["items"]) == 2 and page["next_offset"] == 2
    rest = client.get(f"/v1/holders/{USCC}/licenses?limit=2&offset=2", headers=h).json()
    assert len(rest["items"]) == 1 and rest["next_offset"] is None
    ids = [i["license_id"] for i in page["items"] + rest["items"]]
    assert len(set(ids)) == 3
    world.service.revoke(world.licenses["tax"], "cancelled")
    revoked = client.get(f"/v1/holders/{USCC}/licenses?status=revoked", headers=h).json()["items"]
    assert [i["license_id"] for i in revoked] == [world.licenses["tax"]]
    old = client.get(f"/v1/holders/{USCC}/licenses?valid_on=2016-05-10", headers=h).json()["items"]
    assert {i["license_type_code"] for i in old} == {"1101"}  # tax registration and approval came later
    res = client.get(f"/v1/holders/{USCC}/licenses?limit=0", headers=h)
    assert res.status_code == 422 and res.json()["code"] == "validation_error"
    assert res.headers["content-type"].startswith("application/problem+json")
    res = client.get("/v1/licenses/UNKNOWN", headers=h)
    assert res.status_code == 404 and res.json()["code"] == "not_found"
    assert client.get("/v1/nothing", headers=h).json()["code"] == "not_found"


def test_health_metrics_openapi(client: TestClient, tokens: dict[str, str]) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
    client.get(f"/v1/holders/{USCC}/licenses", headers=auth(tokens["portal"]))
    assert client.get("/metrics").status_code == 401  # metrics:read, like any other read
    assert client.get("/metrics", headers=auth(tokens["portal"])).json()["missing_scope"] == "metrics:read"
    metrics = client.get("/metrics", headers=auth(tokens["monitor"])).text
    assert 'hub_api_requests_total{method="GET",route="/v1/holders/{code}/licenses",status="200"} 1.0' in metrics
    assert USCC not in metrics
    doc = client.get("/openapi.json").json()
    paths = ["/v1/holders/{code}/licenses", "/v1/licenses/{license_id}", "/v1/licenses/{license_id}/file"]
    paths += ["/v1/licenses/verify", "/v1/holders/{code}/recognitions", "/v1/subscriptions", "/v1/deliveries"]
    for path in paths:
        assert path in doc["paths"], path
    assert "Problem" in doc["components"]["schemas"]


def test_fast_lookup_agrees_with_the_licence_index(world: World) -> None:
    import datetime as dt

    from e_license_store.index import licenses_by_holder
    from recognition.directory import fast_licenses_by_holder

    world.service.revoke(world.licenses["tax"], "cancelled")
    filters: list[dict[str, object]] = [
        {}, {"type_codes": ["1101"]}, {"type_codes": ["1101", "1102", "3101"]}, {"status": "revoked"},
        {"status": "valid"}, {"valid_on": dt.date(2016, 5, 10)}, {"valid_on": dt.date.today(), "status": "valid"},
        {"limit": 1, "offset": 1}, {"limit": 2, "offset": 0, "type_codes": ["1101", "3101"]},
    ]  # fmt: skip
    with world.sessions() as s:
        for code in (USCC, RESIDENT_ID, "NOBODY"):
            for f in filters:
                assert fast_licenses_by_holder(s.connection(), code, **f) == licenses_by_holder(s, code, **f), f  # type: ignore[arg-type]


def test_legacy_holder_code_resolves_through_the_master_index(
    world: World, client: TestClient, tokens: dict[str, str]
) -> None:
    from hub.db import session_scope
    from identity.tables import IdentityCrosswalk, IdentityEnterprise

    legacy_reg_no = "330322000012346"  # the enterprise's old 15-digit registration number (注册号)
    with session_scope(world.engine) as s:
        s.add(IdentityEnterprise(uscc=USCC, org_code=USCC[8:17], name="温州洞头海景餐饮有限公司"))
        s.add(IdentityCrosswalk(legacy_code=legacy_reg_no, code_kind="reg_no", canonical_code=USCC,
                                entity_kind="enterprise", source="commerce", method="registry"))  # fmt: skip
    res = client.get(f"/v1/holders/{legacy_reg_no}/recognitions", headers=auth(tokens["tax_bureau"]))
    page = res.json()
    assert res.status_code == 200 and page["holder"]["canonical"] == USCC
    assert page["holder"]["resolved_via"] == "master_index"
    assert {i["type_code"] for i in page["items"]} == {"1101", "3101"}
    res = client.get(f"/v1/holders/{legacy_reg_no}/licenses", headers=auth(tokens["portal"]))
    assert {i["license_type_code"] for i in res.json()["items"]} == {"1101", "1102", "3101"}


def test_recognitions_default_to_today_where_the_hub_serves(
    world: World, client: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result issued today in the departments' timezone counts today, whatever the host's
    date: here a zone 14 hours ahead of UTC, whose date is the host's tomorrow most of the day."""
    monkeypatch.setenv("HUB_SOURCE_TIMEZONE", "Etc/GMT-14")
    reset_settings()
    try:
        today = local_today()
        lid = world.service.issue(
            LicenseDraft(
                license_type_code="3101",
                license_number="洞自然资预〔2026〕1号",
                holder_name="温州洞头海景餐饮有限公司",
                holder_code=USCC,
                holder_kind=HolderKind.enterprise,
                issuer_code="113303220025671111",
                issue_date=today,
                surface={"project_name": "海景餐厅二期", "conclusion": "approved"},
            ),
            source_ref("appr-today", "land"),
        ).license_id
        page = client.get(f"/v1/holders/{USCC}/recognitions", headers=auth(tokens["portal"])).json()
        assert page["as_of"] == today.isoformat()
        assert lid in {i["license_id"] for i in page["items"]}
    finally:
        monkeypatch.delenv("HUB_SOURCE_TIMEZONE")
        reset_settings()


def test_verify_upload_of_deeply_nested_json_is_not_a_server_error(
    world: World, client: TestClient, tokens: dict[str, str]
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    res = client.post(
        "/v1/licenses/verify", files={"file": ("l.json", deep, "application/json")}, headers=auth(tokens["verifier"])
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["ok"] is False and body["well_formed"] is False
    assert body["problems"] == ["malformed: not a licence: JSON nested 100000 levels deep (at most 32)"]
