"""The API, audit and push on PostgreSQL (what CI and the scaled deployment use)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from e_license_store.service import LicenseService
from e_license_store.signing import load_keyring, rotate
from e_license_store.store.local import LocalStore
from hub.db import make_engine, session_factory, session_scope
from hub.settings import get_settings
from recognition import audit
from recognition import delivery as dlv
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.consumers import add_consumer
from recognition.directory import LicenseDirectory
from tests.recognition.rec_helpers import USCC, Receiver, allow_destination, auth, issue_business


@pytest.mark.postgres
def test_api_audit_and_push_on_postgres(pg_hub_db_url: str, tmp_path: Path, receiver: Receiver) -> None:
    key_dir = tmp_path / "keys"
    rotate(key_dir)
    keyring = load_keyring(key_dir)
    store = LocalStore(tmp_path / "store")
    engine = make_engine(pg_hub_db_url)
    service = LicenseService(store, session_factory(engine), keyring)
    with session_scope(engine) as s:
        token = add_consumer(s, "dept", ["licenses:read:1101", "licenses:verify", "subscriptions:manage",
                                         "deliveries:read"])[1]  # fmt: skip
    allow_destination(engine, "dept", receiver.origin)
    app = create_app(get_settings(), engine=engine, directory=LicenseDirectory(store, keyring),
                     config=RecognitionSettings(api_key_cache_seconds=0))  # fmt: skip
    with TestClient(app) as client:
        res = client.post("/v1/subscriptions", headers=auth(token), json={
            "name": "pg", "event_types": ["license.issued", "license.revoked"], "license_types": ["1101"],
            "url": receiver.url})  # fmt: skip
        assert res.status_code == 201, res.text
        receiver.secret = res.json()["secret"]
        lid = issue_business(service, "ent-pg")
        service.revoke(lid, "cancelled")
        page = client.get(f"/v1/holders/{USCC}/licenses", headers=auth(token)).json()
        assert [(i["license_id"], i["status"]) for i in page["items"]] == [(lid, "revoked")]
        res = client.post("/v1/licenses/verify", json={"license_id": lid}, headers=auth(token))
        assert res.json()["revoked"] is True and res.json()["ok"] is False
        rep = dlv.run_once(engine, policy=dlv.DeliveryPolicy(concurrency=2))
        assert rep.delivered == 2
        assert [b["type"] for _, b in receiver.received] == ["license.issued", "license.revoked"]
        items = client.get("/v1/deliveries", headers=auth(token)).json()["items"]
        assert {d["status"] for d in items} == {"delivered"}
    report = audit.verify(engine)
    assert report.ok and report.checked == 6  # subscribe, read, verify, two deliveries, deliveries read
    engine.dispose()
