"""``/v1/identity/review``: scope ``identity:review``; both sides masked unless ``personal:read``; a decision
moves the licence to the right holder as a new signed version (seen in ``/v1/holders/{code}/licenses``),
is in the audit chain and the outbox; four eyes on merges; refusals are problem details, audited.
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from e_license_store.service import LicenseService
from hub.db import make_engine, session_scope
from hub.models import OutboxEvent
from hub.settings import get_settings
from recognition import audit
from recognition import delivery as dlv
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.consumers import add_consumer
from recognition.directory import LicenseDirectory
from recognition.tables import AuditEntry
from tests.recognition.rec_helpers import Receiver, allow_destination, auth
from tests.recognition.review_helpers import CANDIDATE, DAMAGED, NAME, RUNNER_UP, licence_env, seed_review

KEYS = {
    "steward_a": ["identity:review"],
    "steward_b": ["identity:review", "personal:read"],
    "reader": ["licenses:read:*"],
    "nobody": ["licenses:read:2101"],
    "registry": ["identities:read", "subscriptions:manage"],
}


class Api:
    def __init__(self, url: str, service: LicenseService) -> None:
        self.engine = make_engine(url)
        self.service = service
        with session_scope(self.engine) as s:
            self.tokens = {name: add_consumer(s, name, scopes)[1] for name, scopes in KEYS.items()}
        app = create_app(get_settings(), engine=self.engine, directory=LicenseDirectory(service.store, service.signer),
                         config=RecognitionSettings(api_key_cache_seconds=0.0))  # fmt: skip
        self.client = TestClient(app, raise_server_exceptions=False)

    def get(self, who: str, path: str) -> Any:
        return self.client.get(path, headers=auth(self.tokens[who]))

    def post(self, who: str, path: str, body: dict[str, Any]) -> Any:
        return self.client.post(path, json=body, headers=auth(self.tokens[who]))

    def holder(self, code: str) -> dict[str, int]:
        answer = self.get("reader", f"/v1/holders/{code}/licenses")
        assert answer.status_code == 200, answer.text
        return {i["license_id"]: i["version"] for i in answer.json()["items"]}

    def audit_entries(self) -> list[AuditEntry]:
        with session_scope(self.engine) as s:
            rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
            s.expunge_all()
        return rows

    def events(self, event_type: str) -> list[str]:
        with session_scope(self.engine) as s:
            return list(s.scalars(select(OutboxEvent.idempotency_key).where(OutboxEvent.event_type == event_type)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def api(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.setenv("HUB_RATE_LIMIT_KEY_RATE", "0")
    monkeypatch.setenv("HUB_RATE_LIMIT_ADDRESS_RATE", "0")
    url = request.getfixturevalue("hub_db_url" if request.param == "sqlite" else "pg_hub_db_url")
    found = Api(url, licence_env(tmp_path, monkeypatch))
    with found.client:
        yield found
    found.engine.dispose()


def test_list_show_accept_split_through_the_api(api: Api) -> None:
    review_id, licence = seed_review(api.engine, api.service)
    refused = api.get("nobody", "/v1/identity/review")
    assert refused.status_code == 403 and refused.json()["code"] == "missing_scope"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert api.audit_entries()[-1].outcome == "refused" and api.audit_entries()[-1].consumer == "nobody"

    listed = api.get("steward_a", "/v1/identity/review").json()
    (item,) = listed["items"]
    assert item["id"] == review_id and item["age_seconds"] >= 0 and item["candidate"] == "330322********1234"
    assert listed["next_offset"] is None

    masked = api.get("steward_a", f"/v1/identity/review/{review_id}").json()
    assert [c["code"] for c in masked["candidates"]] == ["330322********1234", "330322********1242"]
    assert masked["candidates"][0]["name"] == "张**" and NAME not in str(masked) and CANDIDATE not in str(masked)
    assert masked["incoming"]["details"]["resident_id"] == "330322********1230"
    unmasked = api.get("steward_b", f"/v1/identity/review/{review_id}").json()
    assert unmasked["candidates"][0]["code"] == CANDIDATE and unmasked["candidates"][0]["name"] == NAME
    assert unmasked["incoming"]["licences"][0]["holder"] == DAMAGED
    assert api.get("steward_a", "/v1/identity/review/999999").json()["code"] == "review_not_found"

    no_reason = api.post("steward_a", f"/v1/identity/review/{review_id}/accept", {"reason": "   "})
    assert no_reason.status_code == 422 and no_reason.json()["code"] == "reason_required"
    other = api.post("steward_a", f"/v1/identity/review/{review_id}/accept",
                     {"reason": "x", "candidate": "110105194912310021"})  # fmt: skip
    assert other.status_code == 422 and other.json()["code"] == "not_a_candidate"

    accepted = api.post("steward_a", f"/v1/identity/review/{review_id}/accept", {"reason": "same person"})
    assert accepted.status_code == 200, accepted.text
    out = accepted.json()
    assert out["decision"] == "linked" and out["actor"] == "consumer:steward_a"
    assert out["licences"] == [{"license_id": licence, "holder": "330322********1234", "version": 2, "skipped": None}]
    assert api.holder(CANDIDATE) == {licence: 2}
    entry = [e for e in api.audit_entries() if e.action == "identity_review"][-1]
    assert (
        entry.consumer == "steward_a" and entry.detail["decision"] == "linked" and entry.detail["licences"] == [licence]
    )
    assert audit.verify(api.engine).ok
    assert api.events("identity.merged") and not any(CANDIDATE in k for k in api.events("identity.merged"))

    again = api.post("steward_b", f"/v1/identity/review/{review_id}/accept", {"reason": "twice"})
    assert again.status_code == 409 and again.json()["code"] == "review_not_open"
    split = api.post("steward_b", f"/v1/identity/review/{review_id}/split", {"reason": "not the same person"})
    assert split.status_code == 200 and split.json()["into_code"] is None
    assert api.holder(DAMAGED) == {licence: 3} and licence not in api.holder(CANDIDATE)
    assert len(api.events("identity.split")) == 1
    decided = api.get("steward_a", f"/v1/identity/review/{review_id}?").json()
    assert [d["decision"] for d in decided["decisions"]] == ["linked", "split"]
    assert api.get("steward_a", "/v1/identity/review?status=rejected").json()["items"][0]["id"] == review_id


def test_a_merge_through_the_api_needs_a_second_steward(api: Api) -> None:
    review_id, licence = seed_review(api.engine, api.service, "k7", linked_to=RUNNER_UP)
    path = f"/v1/identity/review/{review_id}/accept"
    first = api.post("steward_a", path, {"reason": "one person"})
    assert first.status_code == 200 and first.json()["awaiting_second_steward"] is True
    same = api.post("steward_a", path, {"reason": "approve my own"})
    assert same.status_code == 403 and same.json()["code"] == "second_steward_required"
    refusal = api.audit_entries()[-1]
    assert refusal.outcome == "refused" and refusal.detail["code"] == "second_steward_required"
    assert api.holder(RUNNER_UP) == {licence: 1}
    approved = api.post("steward_b", path, {"reason": "checked"})
    assert approved.status_code == 200 and approved.json()["decision"] == "merged"
    assert approved.json()["licences"][0]["version"] == 2
    assert api.holder(CANDIDATE) == {licence: 2}
    assert len(api.events("identity.merged")) == 1


def test_identity_events_of_decisions_reach_a_subscriber_masked(api: Api) -> None:
    receiver = Receiver()
    receiver.start()
    try:
        allow_destination(api.engine, "registry", receiver.origin)
        body = {"name": "identity feed", "event_types": ["identity.merged", "identity.split"], "url": receiver.url}
        sub = api.post("registry", "/v1/subscriptions", body)
        assert sub.status_code == 201, sub.text
        receiver.secret = str(sub.json()["secret"])
        review_id, _ = seed_review(api.engine, api.service, "k9")
        assert api.post("steward_a", f"/v1/identity/review/{review_id}/accept", {"reason": "same"}).status_code == 200
        assert api.post("steward_b", f"/v1/identity/review/{review_id}/split", {"reason": "not"}).status_code == 200
        assert dlv.run_once(api.engine).delivered == 2
        got = receiver.unique_in_order()
        assert [b["type"] for _, b in got] == ["identity.merged", "identity.split"]
        for key, event in got:
            assert CANDIDATE not in key and CANDIDATE not in str(event)  # no personal data, ids and keys included
            assert event["data"]["canonical_code"] == "330322********1234"  # type: ignore[index]
    finally:
        receiver.stop()


ENT_CANDIDATE, ENT_RUNNER_UP = "91330322MA2TWYN00G", "91330322MA2TWYN19D"
ENT_NAME, ENT_REP, ENT_ADDRESS = "温州瓯江精密机械有限公司", "欧阳明轩", "浙江省温州市洞头区北岙街道海霞路8号"


def test_an_enterprise_item_is_listed_and_shown_its_personal_data_masked(api: Api) -> None:
    """An enterprise waiting in the queue (what resolve's enterprise matching enqueues): its name and code
    shown to every steward, its legal representative's name and address only with ``personal:read``."""
    import pandas as pd

    from identity.matching import REVIEW
    from identity.matching_review import enqueue_reviews
    from identity.tables import IdentityEnterprise

    with session_scope(api.engine) as s:
        for code in (ENT_CANDIDATE, ENT_RUNNER_UP):
            s.add(IdentityEnterprise(uscc=code, org_code=code[8:17], name=ENT_NAME, address=ENT_ADDRESS,
                                     region_code="330322", stored_attributes={"legal_rep_name": ENT_REP}))  # fmt: skip
        s.flush()
        decisions = pd.DataFrame({
            "incoming_key": ["e1"], "canonical_code": [ENT_CANDIDATE], "match_probability": [0.9],
            "decision": [REVIEW], "runner_up_code": [ENT_RUNNER_UP], "runner_up_probability": [0.88],
        })  # fmt: skip
        incoming = pd.DataFrame({
            "incoming_key": ["e1"], "name": [ENT_NAME], "code": [ENT_CANDIDATE[:17] + "0"],
            "legal_rep_name": [ENT_REP], "address": [ENT_ADDRESS], "region_code": ["330322"],
        })  # fmt: skip
        assert enqueue_reviews(s, decisions, department="market", dataset="inspections", incoming=incoming,
                               entity_kind="enterprise")  # fmt: skip
    (item,) = api.get("steward_a", "/v1/identity/review").json()["items"]
    assert item["entity_kind"] == "enterprise" and item["candidate"] == ENT_CANDIDATE
    masked = api.get("steward_a", f"/v1/identity/review/{item['id']}").json()
    assert masked["incoming"]["details"]["name"] == ENT_NAME
    assert masked["incoming"]["details"]["code"] == ENT_CANDIDATE[:17] + "0"
    assert [c["code"] for c in masked["candidates"]] == [ENT_CANDIDATE, ENT_RUNNER_UP]
    assert {c["name"] for c in masked["candidates"]} == {ENT_NAME}
    assert ENT_REP not in str(masked) and ENT_ADDRESS not in str(masked)
    assert masked["candidates"][0]["legal_rep_name"] == "欧***"
    unmasked = api.get("steward_b", f"/v1/identity/review/{item['id']}").json()
    assert unmasked["candidates"][0]["legal_rep_name"] == ENT_REP
    assert unmasked["candidates"][0]["address"] == ENT_ADDRESS
