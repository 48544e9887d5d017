"""Regression tests of the outside probe of the API: each finding, re-run, gets its answer.

Named after the findings: files and fields masked by the kind of their values, refusals
audited with their reason, existence not revealed, seals checked on every read, bodies
limited, invisible characters and ids in paths handled, metrics behind a scope.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from e_license_store.identifier import make_license_id
from e_license_store.model import LicenseDraft, object_key
from e_license_store.render import ensure_file
from hub.db import session_scope
from mappings.canonical.models import HolderKind
from recognition.consumers import add_consumer
from recognition.tables import AuditEntry
from tests.recognition.rec_helpers import RESIDENT_ID, USCC, World, auth, source_ref

NAME, ADDRESS = "李小龙", "浙江省温州市洞头区北岙街道海滨路8号"
CO_OWNERS = "李小龙、王美丽共同共有"


def _last_entries(world: World, n: int) -> list[AuditEntry]:
    with world.sessions() as s:
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(n)))
    return rows[::-1]


def _pdftotext(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "f.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True)
    return out.stdout.decode()


@pytest.fixture()
def co_owned(world: World) -> str:
    """A property certificate with co-owners named in its share statement (共有情况)."""
    return world.service.issue(
        LicenseDraft(
            license_type_code="2101", license_number="浙(2020)洞头区不动产权第0009999号", holder_name=NAME,
            holder_code=RESIDENT_ID, holder_kind=HolderKind.person, issuer_code="113303220025670000",
            issue_date=dt.date(2020, 3, 1),
            surface={"unit_no": "330322001001GB00001F00020002", "location": ADDRESS, "share": CO_OWNERS},
        ),
        source_ref("unit-2", "land"),
    ).license_id  # fmt: skip


@pytest.fixture()
def wide(world: World) -> str:
    """A key that reads every field of every type, masked (no personal:read)."""
    with session_scope(world.engine) as session:
        return add_consumer(session, "wide", ["licenses:read:*", "fields:*", "licenses:file", "licenses:verify"])[1]


def _assert_nothing_personal(text: str) -> None:
    for value in (RESIDENT_ID, NAME, ADDRESS, "王美丽", "海滨路8号"):
        assert value not in text, value


def test_file_without_personal_scopes_is_a_masked_copy_of_the_json_document(
    world: World, client: TestClient, tokens: dict[str, str], co_owned: str
) -> None:
    res = client.get(f"/v1/licenses/{co_owned}/file", headers=auth(tokens["portal"]))
    assert res.status_code == 200 and res.headers["x-hub-rendering"] == "copy"
    _assert_nothing_personal(res.content.decode())
    copy = res.json()
    assert copy["format"] == "hub.e-license.copy.v1" and "副本" in copy["notice"]
    assert copy["copy_of"]["license_id"] == co_owned and copy["copy_of"]["version"] == 1
    assert copy["license"]["holder_code"] == "330322********1231" and copy["license"]["holder_name"] == "李**"
    assert copy["license"]["surface"] == {}  # the portal has no fields: scope
    assert copy["withheld_fields"] == ["location", "share", "unit_no"]
    assert co_owned in copy["verification_url"]
    # the copy is not the original: presented for verification, it says so
    res = client.post("/v1/licenses/verify", files={"file": ("c.json", res.content, "application/json")},
                      headers=auth(tokens["portal"]))  # fmt: skip
    assert res.status_code == 200 and res.json()["ok"] is False


def test_file_without_personal_scopes_is_a_masked_copy_of_the_pdf(
    world: World, client: TestClient, tokens: dict[str, str], co_owned: str, wide: str, tmp_path: Path
) -> None:
    ensure_file(co_owned, store=world.store, sessions=world.sessions, keyring=world.keyring)
    res = client.get(f"/v1/licenses/{co_owned}/file", headers=auth(wide))
    assert res.status_code == 200 and res.headers["content-type"] == "application/pdf"
    assert res.headers["x-hub-rendering"] == "copy"
    text = _pdftotext(res.content, tmp_path)
    _assert_nothing_personal(text)
    assert "副本" in text and co_owned in text
    assert "330322********1231" in text and "李**、王**共同共有" in text and "浙江省温州市******" in text
    verdict = client.post("/v1/licenses/verify", files={"file": ("c.pdf", res.content, "application/pdf")},
                          headers=auth(wide)).json()  # fmt: skip
    assert verdict["ok"] is False and "副本" in verdict["problems"][0] and verdict["license_id"] == co_owned
    # the original, to a key entitled to everything, is the sealed PDF: it verifies
    original = client.get(f"/v1/licenses/{co_owned}/file", headers=auth(tokens["admin"]))
    assert original.headers["x-hub-rendering"] == "original"
    assert NAME in _pdftotext(original.content, tmp_path)
    verdict = client.post("/v1/licenses/verify", files={"file": ("o.pdf", original.content, "application/pdf")},
                          headers=auth(tokens["admin"])).json()  # fmt: skip
    assert verdict["ok"] is True


def test_location_and_share_are_masked_by_kind_with_fields_star(client: TestClient, wide: str, co_owned: str) -> None:
    detail = client.get(f"/v1/licenses/{co_owned}", headers=auth(wide)).json()
    assert detail["masked"] is True
    assert detail["surface"]["location"] == "浙江省温州市******"
    assert detail["surface"]["share"] == "李**、王**共同共有"
    assert detail["surface"]["unit_no"] == "330322001001GB00001F00020002"  # not personal data
    _assert_nothing_personal(json.dumps(detail, ensure_ascii=False))


def test_sole_proprietor_name_is_masked_like_a_persons(world: World, client: TestClient, wide: str) -> None:
    from tests.recognition.rec_helpers import issue_business

    lid = issue_business(world.service, "ent-sole", holder="92330322MA2C8XYD8X", name="洞头区张三丰小吃店")
    detail = client.get(f"/v1/licenses/{lid}", headers=auth(wide)).json()
    assert detail["holder_name"] == "洞********" and detail["surface"]["enterprise_name"] == "洞********"
    assert detail["holder_code"] == "92330322MA2C8XYD8X"  # a USCC is no person's id
    enterprise = client.get(f"/v1/licenses/{world.licenses['business']}", headers=auth(wide)).json()
    assert enterprise["holder_name"] == "温州洞头海景餐饮有限公司"


def test_refusals_are_audited_with_their_reason(world: World, client: TestClient, tokens: dict[str, str]) -> None:
    lid = world.licenses["business"]
    cases = [
        ("GET", f"/v1/licenses/{lid}", {}, None, 401, "unauthorized"),
        ("GET", f"/v1/licenses/{lid}", {"Authorization": "Bearer hub_kdeadbeef0000_nope"}, None, 401, "unauthorized"),
        ("GET", f"/v1/licenses/{lid}", auth(tokens["nobody"]), None, 403, "missing_scope"),
        ("GET", "/v1/licenses/1101-330322-0000000000000", auth(tokens["portal"]), None, 404, "not_found"),
        ("DELETE", f"/v1/licenses/{lid}", auth(tokens["portal"]), None, 405, "method_not_allowed"),
        ("POST", "/v1/licenses/verify", {**auth(tokens["portal"]), "content-type": "text/plain"}, b"x", 415,
         "unsupported_media_type"),
        ("GET", f"/v1/holders/{USCC}/licenses?limit=0", auth(tokens["portal"]), None, 422, "validation_error"),
        ("GET", f"/v1/nowhere/{RESIDENT_ID}", auth(tokens["portal"]), None, 404, "not_found"),
    ]  # fmt: skip
    for method, path, headers, body, status, code in cases:
        res = client.request(method, path, headers=headers, content=body)
        assert (res.status_code, res.json()["code"]) == (status, code), (path, res.text)
        [entry] = _last_entries(world, 1)
        assert entry.outcome == "refused" and entry.action == "refuse", path
        assert entry.detail["code"] == code and entry.detail["status"] == status, path
        assert entry.detail["client"] == "testclient"
        assert RESIDENT_ID not in entry.resource and RESIDENT_ID not in json.dumps(entry.detail)
    # the refused caller is named when it authenticated; a bad key by the id it presented
    res = client.get(f"/v1/licenses/{lid}", headers=auth(tokens["nobody"]))
    assert _last_entries(world, 1)[0].consumer == "nobody"
    client.get(f"/v1/licenses/{lid}", headers={"Authorization": "Bearer hub_kdeadbeef0000_nope"})
    entry = _last_entries(world, 1)[0]
    assert (entry.consumer, entry.key_id) == ("anonymous", "kdeadbeef0000")
    assert res.status_code == 403


def test_licence_outside_the_callers_types_answers_as_a_missing_one(
    world: World, client: TestClient, tokens: dict[str, str]
) -> None:
    """A department's key cannot tell a licence of another type from none (no enumeration)."""
    prop = world.licenses["property"]  # 2101; tax_bureau reads 1101 and 3101
    made_up = make_license_id("2101", "113303220025670000", "land", "ds", "no-such-unit")  # well formed, absent
    a = client.get(f"/v1/licenses/{prop}", headers=auth(tokens["tax_bureau"]))
    b = client.get(f"/v1/licenses/{made_up}", headers=auth(tokens["tax_bureau"]))
    assert a.status_code == b.status_code == 403
    assert {k: v for k, v in a.json().items() if k != "instance"} == {
        k: v for k, v in b.json().items() if k != "instance"
    }
    # verification by id is a read of the licence's status: the same rule
    res = client.post("/v1/licenses/verify", json={"license_id": prop}, headers=auth(tokens["verifier"]))
    assert res.status_code == 403 and res.json()["missing_scope"] == "licenses:read:2101"


def _rewrite(world: World, key: str, data: bytes) -> None:
    path = world.store.root / "objects" / key
    os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
    path.write_bytes(data)


@pytest.fixture()
def tampered(world: World) -> Iterator[str]:
    """The business licence's stored envelope rewritten: a name changed, the seal left as it was."""
    lid = world.licenses["business"]
    key = object_key(lid, 1)
    original = world.store.get(key)
    _rewrite(world, key, original.replace("张三丰".encode(), "张四丰".encode()))
    yield lid


def test_rewritten_object_is_never_served(
    world: World, client: TestClient, tokens: dict[str, str], tampered: str, caplog: pytest.LogCaptureFixture
) -> None:
    for path in (f"/v1/licenses/{tampered}", f"/v1/licenses/{tampered}/file"):
        res = client.get(path, headers=auth(tokens["admin"]))
        assert res.status_code == 503 and res.json()["code"] == "integrity_check_failed", path
        assert "张四丰" not in res.text
        [entry] = _last_entries(world, 1)
        assert entry.outcome == "integrity_failure" and entry.subject == tampered
    assert any("integrity check failed" in r.getMessage() for r in caplog.records if r.name == "hub.alerts")
    metrics = client.get("/metrics", headers=auth(tokens["monitor"])).text
    assert "hub_license_integrity_failures_total 2.0" in metrics
    # the holder's other results still answer; the altered one says it failed
    page = client.get(f"/v1/holders/{USCC}/recognitions", headers=auth(tokens["portal"]))
    assert page.status_code == 200
    by_id = {i["license_id"]: i["verification"] for i in page.json()["items"]}
    assert by_id[tampered]["ok"] is False and by_id[world.licenses["approval"]]["ok"] is True


def test_verdict_is_not_kept_for_rewritten_bytes(world: World, client: TestClient, tokens: dict[str, str]) -> None:
    """A verified object rewritten later is checked again (the verdict is keyed by its bytes)."""
    lid = world.licenses["business"]
    assert client.get(f"/v1/licenses/{lid}", headers=auth(tokens["admin"])).status_code == 200
    key = object_key(lid, 1)
    _rewrite(world, key, world.store.get(key).replace("张三丰".encode(), "张四丰".encode()))
    assert client.get(f"/v1/licenses/{lid}", headers=auth(tokens["admin"])).status_code == 503


def test_oversized_bodies_are_refused_without_being_read(
    world: World, client: TestClient, tokens: dict[str, str]
) -> None:
    h = {**auth(tokens["portal"]), "content-type": "application/json"}
    # declared too large: refused before a byte is read
    res = client.post("/v1/licenses/verify", headers={**h, "content-length": str(300 * 1024 * 1024)}, content=b"{}")
    assert res.status_code == 413 and res.json()["code"] == "payload_too_large"
    assert _last_entries(world, 1)[0].detail["code"] == "payload_too_large"

    # streamed (chunked, no length): reading stops at the limit
    def chunks() -> Iterator[bytes]:
        yield b'{"license_id": "'
        for _ in range(2048):
            yield b"A" * 1024
        yield b'"}'

    res = client.post("/v1/licenses/verify", headers=h, content=chunks())
    assert res.status_code == 413 and res.json()["code"] == "payload_too_large"
    # a multipart upload over 10 MiB is stopped the same way
    big = b"%PDF" + b"0" * (11 * 1024 * 1024)
    res = client.post("/v1/licenses/verify", files={"file": ("x.pdf", big, "application/pdf")},
                      headers=auth(tokens["portal"]))  # fmt: skip
    assert res.status_code == 413


def test_invisible_characters_in_holder_codes_are_removed(
    world: World, client: TestClient, tokens: dict[str, str]
) -> None:
    hidden = "3303\u200b2219800101\u202e1231\u2060"
    res = client.get(f"/v1/holders/{hidden}/licenses", headers=auth(tokens["portal"]))
    assert res.status_code == 200
    page = res.json()
    assert page["holder"]["canonical"] == "330322********1231"
    assert [i["license_id"] for i in page["items"]] == [world.licenses["property"]]
    [entry] = _last_entries(world, 1)
    assert entry.subject == "330322********1231" and "1980" not in entry.resource


def test_problem_instance_does_not_echo_resident_ids(client: TestClient, tokens: dict[str, str]) -> None:
    res = client.get(f"/v1/holders/{RESIDENT_ID}/licenses?limit=0", headers=auth(tokens["portal"]))
    assert res.status_code == 422 and RESIDENT_ID not in res.text
    assert res.json()["instance"] == "/v1/holders/330322********1231/licenses"
    res = client.get(f"/v1/licenses/{RESIDENT_ID}", headers=auth(tokens["portal"]))
    assert res.status_code == 404 and RESIDENT_ID not in res.text


def test_metrics_need_the_metrics_scope(client: TestClient, tokens: dict[str, str]) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=auth(tokens["admin"])).status_code == 403
    res = client.get("/metrics", headers=auth(tokens["monitor"]))
    assert res.status_code == 200 and "hub_api_requests_total" in res.text


def test_object_the_hub_did_not_write_is_refused_even_with_a_valid_seal(
    world: World, client: TestClient, tokens: dict[str, str]
) -> None:
    """The business licence's object replaced by the property certificate's (sealed, but not what was written)."""
    lid, other = world.licenses["business"], world.licenses["property"]
    _rewrite(world, object_key(lid, 1), world.store.get(object_key(other, 1)))
    res = client.get(f"/v1/licenses/{lid}", headers=auth(tokens["admin"]))
    assert res.status_code == 503 and res.json()["code"] == "integrity_check_failed"


def test_rows_without_a_recorded_object_hash_verify_the_seal(
    world: World, client: TestClient, tokens: dict[str, str]
) -> None:
    """Rows rebuilt from the store (``hub licenses reindex``) carry no hash: reads check the seal itself."""
    from e_license_store.tables import LicenseIndexEntry

    lid = world.licenses["business"]
    with session_scope(world.engine) as s:
        entry = s.get(LicenseIndexEntry, lid)
        assert entry is not None and entry.object_sha256 is not None  # recorded when issued
        entry.object_sha256 = None
    assert client.get(f"/v1/licenses/{lid}", headers=auth(tokens["admin"])).status_code == 200
    key = object_key(lid, 1)
    _rewrite(world, key, world.store.get(key).replace("张三丰".encode(), "张四丰".encode()))
    res = client.get(f"/v1/licenses/{lid}", headers=auth(tokens["admin"]))
    assert res.status_code == 503 and "张四丰" not in res.text
