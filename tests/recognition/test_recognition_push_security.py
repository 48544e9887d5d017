"""Push security: event identifiers carry no personal data, every event is released by a scope (at
subscribe time and again on every delivery), subscriptions go only to allowed destinations and
carry no credentials, and a consumer sees a delivery's error only as the receiver's answer."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from hub.db import session_scope
from hub.masking import mask_resident_id
from hub.models import OutboxEvent
from hub.pseudonyms import is_opaque_ref
from identity.merge import merge
from identity.resolve import resolve_batch
from recognition import consumers, consumers_cli, delivery_ops
from recognition import delivery as dlv
from recognition import subscriptions as subs_mod
from recognition.tables import AuditEntry, Delivery, Subscription
from tests.recognition.rec_helpers import Receiver, World, allow_destination, auth, issue_business

P1 = "330322198001011236"
P2 = "330322198502020026"
P3 = "33032219900303003X"
IDENTITY_EVENTS = ["identity.merged", "identity.split"]
REGISTRY_SCOPES = ["identities:read", "subscriptions:manage", "deliveries:read"]


def _registry(world: World, name: str = "civil_registry", scopes: list[str] | None = None) -> str:
    with session_scope(world.engine) as s:
        return consumers.add_consumer(s, name, scopes or REGISTRY_SCOPES)[1]


def _subscribe(client: TestClient, token: str, url: str, event_types: list[str], **extra: object) -> dict[str, object]:
    res = client.post("/v1/subscriptions", headers=auth(token),
                      json={"name": "push", "event_types": event_types, "url": url, **extra})  # fmt: skip
    assert res.status_code == 201, res.text
    out: dict[str, object] = res.json()
    return out


def _merge_two_persons(world: World) -> None:
    """Two person identities, then a steward's merge: two ``identity.merged`` events in the outbox."""
    batch = pd.DataFrame([
        {"_source_key": "a", "_source_version": "1", "resident_id": P1, "name": "李小龙"},
        {"_source_key": "b", "_source_version": "1", "resident_id": P2, "name": "李晓龙"},
        {"_source_key": "c", "_source_version": "1", "resident_id": P2[:6] + P2[8:17], "name": "李晓龙"},
    ])  # fmt: skip
    with session_scope(world.engine) as s:
        resolve_batch(s, batch, "person", "public_security", "persons")
    with session_scope(world.engine) as s:
        merge(s, "person", P2, P1, actor="steward-1", reason="same person")


def _drain(world: World) -> dlv.RunReport:
    total = dlv.RunReport()
    for _ in range(10):
        rep = dlv.run_once(world.engine, policy=dlv.DeliveryPolicy(max_attempts=3, concurrency=2))
        total = total + rep
        if rep.attempted == 0 and rep.fanned_out == 0 and rep.skipped == 0:
            break
    return total


def _leaks(text: str) -> list[str]:
    legacy = P2[:6] + P2[8:17]
    return [code for code in (P1, P2, P3, legacy) if code in text]


def test_identity_merged_event_carries_no_resident_id(
    world: World, client: TestClient, tokens: dict[str, str], receiver: Receiver
) -> None:
    token = _registry(world)
    allow_destination(world.engine, "civil_registry", receiver.origin)
    sub = _subscribe(client, token, receiver.url, IDENTITY_EVENTS)
    receiver.secret = str(sub["secret"])
    _merge_two_persons(world)

    assert _drain(world).delivered == 2
    assert len(receiver.received) == 2
    for msg_id, body in receiver.received:
        # the subject is an opaque reference; the key names it or the steward's merge record
        assert is_opaque_ref(str(body["subject"]))
        assert msg_id == body["idempotency_key"] and not _leaks(msg_id)
        # the payload still names the identity, masked for a consumer without personal:read
        data = body["data"]
        assert isinstance(data, dict) and data["canonical_code"] in (mask_resident_id(P1), mask_resident_id(P2))
        assert not _leaks(json.dumps(body, ensure_ascii=False))
    listed = client.get("/v1/deliveries", headers=auth(token))
    assert listed.status_code == 200 and len(listed.json()["items"]) == 2 and not _leaks(listed.text)
    operator = client.get("/v1/deliveries", headers=auth(tokens["admin"]))
    assert not _leaks(operator.text)
    with world.sessions() as s:
        delivers = [e for e in s.scalars(select(AuditEntry)) if e.action == "deliver"]
        rows = list(s.scalars(select(Delivery)))
    assert len(delivers) == 2
    assert not _leaks(json.dumps([(e.subject, e.detail) for e in delivers]))
    assert not _leaks(" ".join(d.idempotency_key for d in rows))


def test_licence_scoped_consumer_cannot_subscribe_to_identity_events(
    world: World, client: TestClient, tokens: dict[str, str]
) -> None:
    """The tax bureau reads licence types 1101 and 3101: identity events are not released to it."""
    allow_destination(world.engine, "tax_bureau", "https://hooks.tax.example/")
    body = {"name": "ids", "event_types": ["license.issued", "identity.merged"], "license_types": ["1101"],
            "url": "https://hooks.tax.example/in"}  # fmt: skip
    res = client.post("/v1/subscriptions", json=body, headers=auth(tokens["tax_bureau"]))
    assert res.status_code == 403 and res.json()["missing_scope"] == "identities:read"
    # no licence-type filter: every type's events, so licenses:read:* is needed
    res = client.post("/v1/subscriptions", headers=auth(tokens["tax_bureau"]),
                      json={**body, "event_types": ["license.issued"], "license_types": None})  # fmt: skip
    assert res.status_code == 403 and res.json()["missing_scope"] == "licenses:read:*"
    with world.sessions() as s:
        refused = [e for e in s.scalars(select(AuditEntry)) if e.action == "subscribe"]
        assert [e.outcome for e in refused] == ["refused", "refused"]  # the refusals leave a trace
        assert s.scalars(select(Subscription)).first() is None


def test_licence_type_filter_does_not_let_untyped_events_through() -> None:
    sub = Subscription(id="s1", name="n", event_types=["license.*", "identity.merged"], license_types=["1101"],
                       regions=None, start_event_id=0)  # fmt: skip

    def event(event_type: str, license_type: str | None) -> OutboxEvent:
        return OutboxEvent(id=1, event_type=event_type, subject="x", payload={}, idempotency_key="k",
                           license_type_code=license_type)  # fmt: skip

    assert subs_mod.matches(sub, event("license.issued", "1101"))
    assert not subs_mod.matches(sub, event("license.issued", None))
    assert not subs_mod.matches(sub, event("license.issued", "2101"))
    # identity events are not licence events: the scopes decide who gets them, not this filter
    assert subs_mod.matches(sub, event("identity.merged", None))


def test_withdrawn_scope_skips_delivery_with_a_recorded_reason(
    world: World, client: TestClient, tokens: dict[str, str], receiver: Receiver
) -> None:
    token = _registry(world)
    allow_destination(world.engine, "civil_registry", receiver.origin)
    allow_destination(world.engine, "tax_bureau", receiver.origin)
    receiver.secret = None  # two subscriptions, two secrets: this receiver does not check signatures
    _subscribe(client, token, receiver.url, IDENTITY_EVENTS)
    _subscribe(client, tokens["tax_bureau"], receiver.url, ["license.issued"], license_types=["1101"])
    with session_scope(world.engine) as s:
        consumers.set_scopes(s, "civil_registry", ["subscriptions:manage", "deliveries:read"])
        consumers.set_scopes(s, "tax_bureau", ["licenses:read:3101", "subscriptions:manage", "deliveries:read"])
    _merge_two_persons(world)
    issue_business(world.service, "ent-withdrawn")

    report = _drain(world)
    assert report.skipped == 3 and report.attempted == 0 and receiver.received == []
    items = client.get("/v1/deliveries", headers=auth(token)).json()["items"]
    assert {(d["status"], d["last_error"]) for d in items} == {
        ("skipped", "not released: the consumer lacks identities:read")
    }
    items = client.get("/v1/deliveries", headers=auth(tokens["tax_bureau"])).json()["items"]
    assert [(d["status"], d["last_error"]) for d in items] == [
        ("skipped", "not released: the consumer lacks licenses:read:1101")
    ]
    with world.sessions() as s:
        audited = [e for e in s.scalars(select(AuditEntry)) if e.action == "deliver"]
    assert [e.outcome for e in audited] == ["skipped"] * 3
    # a revoked consumer receives nothing either
    with session_scope(world.engine) as s:
        consumers.set_scopes(s, "civil_registry", REGISTRY_SCOPES)
        consumers.revoke(s, "civil_registry")
    _merge_again(world)
    assert _drain(world).skipped == 1 and receiver.received == []
    with world.sessions() as s:
        last = s.scalars(select(Delivery).order_by(Delivery.id.desc())).first()
    assert last is not None and (last.status, last.last_error) == ("skipped", dlv.CONSUMER_REVOKED)


def _merge_again(world: World) -> None:
    """One more identity event: a third person merged into the survivor."""
    with session_scope(world.engine) as s:
        resolve_batch(s, pd.DataFrame([{"_source_key": "d", "_source_version": "1", "resident_id": P3}]),
                      "person", "public_security", "persons")  # fmt: skip
    with session_scope(world.engine) as s:
        merge(s, "person", P3, P1, actor="steward-3")


def test_subscription_to_private_address_is_refused(world: World, client: TestClient, tokens: dict[str, str]) -> None:
    allow_destination(world.engine, "tax_bureau", "https://hooks.tax.example/")
    token = tokens["tax_bureau"]
    refused = [
        "http://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::1]/hook",
        "https://0.0.0.0/hook",
        "https://127.0.0.1/hook",
        "http://hooks.tax.example/hook",  # plain http: the entry allows https only
        "https://hooks.tax.example:8443/hook",  # another port
        "https://hooks.tax.example.attacker.test/hook",
    ]
    body = {"name": "n", "event_types": ["license.issued"], "license_types": ["1101"]}
    for url in refused:
        res = client.post("/v1/subscriptions", json={**body, "url": url}, headers=auth(token))
        assert res.status_code == 403, (url, res.text)
        assert res.json()["code"] == "destination_not_allowed"
    assert client.post("/v1/subscriptions", json={**body, "url": "https://hooks.tax.example/in"},
                       headers=auth(token)).status_code == 201  # fmt: skip
    # an address the operator names is allowed, exactly that one (scheme, port)
    allow_destination(world.engine, "tax_bureau", "http://10.0.0.5:8080/")
    assert client.post("/v1/subscriptions", json={**body, "url": "http://10.0.0.5:8080/hook"},
                       headers=auth(token)).status_code == 201  # fmt: skip
    assert client.post("/v1/subscriptions", json={**body, "url": "http://10.0.0.5/hook"},
                       headers=auth(token)).status_code == 403  # fmt: skip
    # another consumer's allowed destinations are not this one's
    assert client.post("/v1/subscriptions", json={**body, "url": "https://hooks.tax.example/in"},
                       headers=auth(tokens["operator"])).json()["code"] == "destination_not_allowed"  # fmt: skip
    with world.sessions() as s:
        outcomes = [e.outcome for e in s.scalars(select(AuditEntry)) if e.action == "subscribe"]
    assert outcomes.count("refused") == len(refused) + 2 and outcomes.count("ok") == 2


def test_subscription_url_with_credentials_is_refused(
    world: World, client: TestClient, tokens: dict[str, str], tmp_path: object
) -> None:
    allow_destination(world.engine, "tax_bureau", "https://hooks.tax.example/")
    body = {"name": "n", "event_types": ["license.issued"], "license_types": ["1101"],
            "url": "https://tax:s3cret@hooks.tax.example/in"}  # fmt: skip
    res = client.post("/v1/subscriptions", json=body, headers=auth(tokens["tax_bureau"]))
    assert res.status_code == 422 and res.json()["code"] == "validation_error" and "s3cret" not in res.text
    with session_scope(world.engine) as s, pytest.raises(subs_mod.SubscriptionError):
        subs_mod.create(s, name="n", event_types=["license.issued"], url="https://a:b@hooks.tax.example/in")
    with pytest.raises(ValueError, match="credentials"):
        subs_mod.YamlSubscription(id="tax-in", name="n", event_types=["license.issued"],
                                  url="https://a:b@hooks.tax.example/in")  # fmt: skip
    # a row stored before the upgrade is shown without its credentials, and nothing is pushed to it
    with session_scope(world.engine) as s:
        latest = max(e.id for e in s.scalars(select(OutboxEvent)))
        s.add(Subscription(id="legacy", name="old", consumer_id=None, origin="api", event_types=["license.issued"],
                           channel="webhook", target_url="https://tax:s3cret@hooks.tax.example/in",
                           secret="whsec_" + "A" * 44, start_event_id=latest))  # fmt: skip
    listed = client.get("/v1/subscriptions", headers=auth(tokens["operator"]))
    assert "s3cret" not in listed.text and "https://***@hooks.tax.example/in" in listed.text
    issue_business(world.service, "ent-creds")
    _drain(world)
    with world.sessions() as s:
        [d] = list(s.scalars(select(Delivery).where(Delivery.subscription_id == "legacy")))
    assert d.status == "pending" and (d.last_error or "").startswith("destination refused: credentials")


def test_last_error_shows_only_http_status_to_consumer(
    world: World, client: TestClient, tokens: dict[str, str], receiver: Receiver
) -> None:
    allow_destination(world.engine, "tax_bureau", receiver.origin)
    token = tokens["tax_bureau"]
    sub = _subscribe(client, token, receiver.url, ["license.issued", "license.amended"], license_types=["1101"])
    receiver.secret = str(sub["secret"])
    lid = issue_business(world.service, "ent-errors")
    with world.sessions() as s:
        [key] = [e.idempotency_key for e in s.scalars(select(OutboxEvent).where(OutboxEvent.subject == lid))]
    receiver.fail_ids = {key}
    dlv.run_once(world.engine, policy=dlv.DeliveryPolicy(concurrency=1))
    [item] = client.get("/v1/deliveries", headers=auth(token)).json()["items"]
    assert item["last_error"] == "HTTP 500"

    receiver.stop()  # nothing listens on the port: "Connection refused" must not reach the consumer
    with session_scope(world.engine) as s:
        delivery_ops.replay(s, int(item["id"]))
    dlv.run_once(world.engine, policy=dlv.DeliveryPolicy(concurrency=1))
    [item] = client.get("/v1/deliveries", headers=auth(token)).json()["items"]
    assert item["last_error"] == "connection failed"
    full = client.get("/v1/deliveries", headers=auth(tokens["admin"])).json()["items"]
    assert "refused" in full[0]["last_error"].lower() and full[0]["last_error"] != "connection failed"
    with world.sessions() as s:  # operators keep the whole reason in the audit log
        errors = [e.detail["error"] for e in s.scalars(select(AuditEntry)) if e.action == "deliver"]
    assert errors[0] == "HTTP 500" and "refused" in errors[-1].lower()


def test_allow_destination_cli(world: World, tokens: dict[str, str]) -> None:
    runner = CliRunner()
    res = runner.invoke(consumers_cli.app, ["allow-destination", "tax_bureau", "hooks.tax.example"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"consumer": "tax_bureau", "allowed": "https://hooks.tax.example:443/",
                                      "reach": "public"}  # fmt: skip
    res = runner.invoke(
        consumers_cli.app, ["allow-destination", "tax_bureau", "http://10.1.2.3:8080/soap", "--private"]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(consumers_cli.app, ["destinations", "tax_bureau"])
    assert [json.loads(line)["destination"] for line in res.stdout.splitlines()] == [
        "http://10.1.2.3:8080/soap", "https://hooks.tax.example:443/"
    ]  # fmt: skip
    assert runner.invoke(consumers_cli.app, ["allow-destination", "tax_bureau", "ftp://x.example"]).exit_code == 1
    assert runner.invoke(consumers_cli.app, ["allow-destination", "tax_bureau", "https://u:p@x.example"]).exit_code == 1
    assert runner.invoke(consumers_cli.app, ["allow-destination", "nobody_known", "x.example"]).exit_code == 1
    res = runner.invoke(consumers_cli.app, ["remove-destination", "tax_bureau", "hooks.tax.example"])
    assert res.exit_code == 0, res.output
    assert runner.invoke(consumers_cli.app, ["remove-destination", "tax_bureau", "hooks.tax.example"]).exit_code == 1
    res = runner.invoke(consumers_cli.app, ["destinations"])
    assert [json.loads(line)["destination"] for line in res.stdout.splitlines()] == ["http://10.1.2.3:8080/soap"]
