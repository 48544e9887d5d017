"""The access matrix: every consumer × every endpoint × licence types, asserted; plus 401s and purposes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from recognition.scopes import ScopeSet
from recognition.tables import AuditEntry
from tests.recognition.rec_helpers import CONSUMERS, USCC, World, allow_destination, auth

TYPES = {"business": "1101", "tax": "1102", "property": "2101", "approval": "3101"}
#: the licence types the enterprise USCC holds in the test world
USCC_TYPES = {"1101", "1102", "3101"}


def _audit_count(world: World) -> int:
    with world.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def _expect_read(scopes: ScopeSet, type_code: str) -> tuple[int, str | None]:
    if scopes.can_read_type(type_code):
        return 200, None
    return 403, ("licenses:read:*" if not scopes.can_read_any else f"licenses:read:{type_code}")


def _cases(world: World, name: str) -> list[tuple[str, str, dict[str, object] | None, int, str | None]]:
    """(method, path, json body, expected status, expected missing scope) for one consumer."""
    scopes = ScopeSet.parse(CONSUMERS[name])
    out: list[tuple[str, str, dict[str, object] | None, int, str | None]] = []
    out.append(
        (
            "GET",
            f"/v1/holders/{USCC}/licenses",
            None,
            200 if scopes.can_read_any else 403,
            None if scopes.can_read_any else "licenses:read:*",
        )
    )
    for type_code in TYPES.values():
        ok = scopes.can_read_type(type_code)
        out.append(
            (
                "GET",
                f"/v1/holders/{USCC}/licenses?type={type_code}",
                None,
                200 if ok else 403,
                None if ok else f"licenses:read:{type_code}",
            )
        )
    for key, type_code in TYPES.items():
        lid = world.licenses[key]
        status, missing = _expect_read(scopes, type_code)
        out.append(("GET", f"/v1/licenses/{lid}", None, status, missing))
        if status == 200 and not scopes.has("licenses:file"):
            status, missing = 403, "licenses:file"
        out.append(("GET", f"/v1/licenses/{lid}/file", None, status, missing))
        # verifying a licence reports its status: it needs its type's read scope too
        if not scopes.has("licenses:verify"):
            status, missing = 403, "licenses:verify"
        else:
            status, missing = _expect_read(scopes, type_code)
        out.append(("POST", "/v1/licenses/verify", {"license_id": lid}, status, missing))
    if not scopes.has("recognitions:read"):
        out.append(("GET", f"/v1/holders/{USCC}/recognitions", None, 403, "recognitions:read"))
    elif not scopes.can_read_any:
        out.append(("GET", f"/v1/holders/{USCC}/recognitions", None, 403, "licenses:read:*"))
    else:
        out.append(("GET", f"/v1/holders/{USCC}/recognitions", None, 200, None))
    manage = scopes.has("subscriptions:manage")
    out.append(("GET", "/v1/subscriptions", None, 200 if manage else 403, None if manage else "subscriptions:manage"))
    body = {"name": "n", "event_types": ["license.issued"], "license_types": ["1101"], "url": "http://127.0.0.1:9/h"}
    if not manage:
        out.append(("POST", "/v1/subscriptions", body, 403, "subscriptions:manage"))
    else:
        ok = scopes.can_read_type("1101")
        out.append(("POST", "/v1/subscriptions", body, 201 if ok else 403, None if ok else "licenses:read:1101"))
    deliveries = scopes.has("deliveries:read")
    out.append(("GET", "/v1/deliveries", None, 200 if deliveries else 403, None if deliveries else "deliveries:read"))
    return out


@pytest.mark.parametrize("name", sorted(CONSUMERS))
def test_access_matrix(world: World, client: TestClient, tokens: dict[str, str], name: str) -> None:
    scopes = ScopeSet.parse(CONSUMERS[name])
    allow_destination(world.engine, name, "http://127.0.0.1:9/")  # where the matrix's subscriptions point
    for method, path, body, status, missing in _cases(world, name):
        before = _audit_count(world)
        res = client.request(method, path, json=body, headers=auth(tokens[name]))
        assert res.status_code == status, (name, method, path, res.status_code, res.text)
        # the read, or the refusal, is in the audit log by the time the answer arrives
        assert _audit_count(world) == before + 1, (name, path)
        if status == 403:
            problem = res.json()
            assert res.headers["content-type"].startswith("application/problem+json")
            assert problem["code"] == "missing_scope" and problem["missing_scope"] == missing, (path, problem)
            assert missing in problem["detail"]
            with world.sessions() as s:
                last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
            assert (last.consumer, last.outcome, last.detail["code"]) == (name, "refused", "missing_scope")
        if status == 200 and path.startswith(f"/v1/holders/{USCC}/licenses"):
            types = {item["license_type_code"] for item in res.json()["items"]}
            wanted = {t for t in USCC_TYPES if scopes.can_read_type(t) and ("type=" not in path or path.endswith(t))}
            assert types == wanted, (name, path, types)
        if status == 200 and path.endswith("/recognitions"):
            types = {item["type_code"] for item in res.json()["items"]}
            assert types == {t for t in USCC_TYPES if scopes.can_read_type(t)}, (name, types)


def test_no_key_or_bad_key_is_401_everywhere(world: World, client: TestClient, tokens: dict[str, str]) -> None:
    lid = world.licenses["business"]
    endpoints = [
        ("GET", f"/v1/holders/{USCC}/licenses"), ("GET", f"/v1/licenses/{lid}"), ("GET", f"/v1/licenses/{lid}/file"),
        ("POST", "/v1/licenses/verify"), ("GET", f"/v1/holders/{USCC}/recognitions"), ("GET", "/v1/subscriptions"),
        ("POST", "/v1/subscriptions"), ("DELETE", "/v1/subscriptions/s1"), ("GET", "/v1/deliveries"),
    ]  # fmt: skip
    bad = tokens["portal"][:-2] + "zz"
    for method, path in endpoints:
        for headers in ({}, {"Authorization": "Bearer " + bad}, {"Authorization": "Basic abc"}):
            res = client.request(method, path, headers=headers, json={"license_id": lid})
            assert res.status_code == 401, (method, path, headers, res.text)
            assert res.json()["code"] == "unauthorized"
            assert res.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_refused(world: World, client: TestClient, tokens: dict[str, str]) -> None:
    from hub.db import session_scope
    from recognition.consumers import revoke

    assert client.get(f"/v1/holders/{USCC}/licenses", headers=auth(tokens["portal"])).status_code == 200
    with session_scope(world.engine) as s:
        revoke(s, "portal")
    res = client.get(f"/v1/holders/{USCC}/licenses", headers=auth(tokens["portal"]))
    assert res.status_code == 401


def test_purpose_must_be_granted_and_is_audited(world: World, client: TestClient, tokens: dict[str, str]) -> None:
    res = client.get(f"/v1/holders/{USCC}/licenses", headers=auth(tokens["tax_bureau"], "marketing"))
    assert res.status_code == 403 and res.json()["missing_scope"] == "purpose:marketing"
    res = client.get(f"/v1/holders/{USCC}/licenses", headers=auth(tokens["tax_bureau"], "tax_registration"))
    assert res.status_code == 200
    with world.sessions() as s:
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert last.consumer == "tax_bureau" and last.purpose == "tax_registration" and last.action == "read"
    assert last.subject == USCC and set(last.detail["licenses"]) == {
        world.licenses["business"],
        world.licenses["approval"],
    }
