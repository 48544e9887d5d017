"""Push delivery: a subscriber down for a while gets every event once back, deduplicated, in order per
holder; a dead letter holds back that holder's later events until replayed or skipped; SOAP push."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from hub.db import session_scope
from hub.models import OutboxEvent
from recognition import audit, delivery_ops
from recognition import delivery as dlv
from recognition import subscriptions as subs_mod
from recognition.tables import Delivery
from tests.recognition.rec_helpers import USCC, Receiver, World, allow_destination, auth, issue_business

HOLDERS = ["91330322MA2C8XYZ3M", "91330322MA2C8XYZ4N", "91330322MA2C8XYZ5P"]


def _later(minutes: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)


def _subscribe(client: TestClient, token: str, url: str, **extra: object) -> dict[str, object]:
    """Subscribe (the caller allowed the destination for the consumer first)."""
    body = {"name": "tax push", "event_types": ["license.issued", "license.amended", "license.revoked"],
            "license_types": ["1101"], "url": url, **extra}  # fmt: skip
    res = client.post("/v1/subscriptions", json=body, headers=auth(token))
    assert res.status_code == 201, res.text
    out: dict[str, object] = res.json()
    return out


def _events_by_holder(world: World, after: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    with world.sessions() as s:
        for e in s.scalars(select(OutboxEvent).where(OutboxEvent.id > after).order_by(OutboxEvent.id)):
            if e.license_type_code == "1101":
                out[e.holder_code or ""].append(e.idempotency_key)
    return out


def _drain(world: World, policy: dlv.DeliveryPolicy, minutes: float, rounds: int = 20) -> dlv.RunReport:
    total = dlv.RunReport()
    for _ in range(rounds):
        rep = dlv.run_once(world.engine, policy=policy, now=_later(minutes))
        total = total + rep
        if rep.attempted == 0 and rep.fanned_out == 0:
            break
    return total


def test_subscriber_down_then_back_gets_every_event_in_order(
    world: World, client: TestClient, tokens: dict[str, str], receiver: Receiver
) -> None:
    with world.sessions() as s:
        start = int(s.scalar(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()).limit(1)) or 0)
    allow_destination(world.engine, "tax_bureau", receiver.origin)
    sub = _subscribe(client, tokens["tax_bureau"], receiver.url)
    receiver.secret = str(sub["secret"])
    policy = dlv.DeliveryPolicy(max_attempts=20, backoff_base=1.0, backoff_max=30.0, concurrency=4)

    ids = {h: issue_business(world.service, f"ent-1{i}", holder=h) for i, h in enumerate(HOLDERS)}
    first = dlv.run_once(world.engine, policy=policy)
    assert first.delivered == 3 and len(receiver.received) == 3

    receiver.stop()  # the department's endpoint goes down
    for i, h in enumerate(HOLDERS):
        world.service.amend(ids[h], {"surface": {"business_scope": f"餐饮服务{i}"}}, reason="scope changed")
    world.service.revoke(ids[HOLDERS[0]], "cancelled")
    down = dlv.run_once(world.engine, policy=policy)
    assert down.attempted == 3 and down.failed == 3 and down.delivered == 0  # one head per holder, none sent
    assert dlv.run_once(world.engine, policy=policy).attempted == 0  # backing off: nothing due yet
    issue_business(world.service, "ent-19", holder=HOLDERS[1], name="第二家店")
    again = dlv.run_once(world.engine, policy=policy, now=_later(1))
    assert again.failed >= 3 and again.delivered == 0

    receiver.start()  # back on the same port
    total = _drain(world, policy, minutes=60)
    assert total.dead == 0 and receiver.bad_signatures == 0
    with world.sessions() as s:
        statuses = {d.status for d in s.scalars(select(Delivery))}
    assert statuses == {"delivered"}

    # at least once: a replay re-sends with the same idempotency keys; the receiver deduplicates
    with session_scope(world.engine) as s:
        n = delivery_ops.replay_range(s, _later(-60), _later(1), include_delivered=True)
    assert n == 8
    _drain(world, policy, minutes=120)
    assert len(receiver.received) == 16

    expected = _events_by_holder(world, start)
    got: dict[str, list[str]] = defaultdict(list)
    for msg_id, body in receiver.unique_in_order():
        assert msg_id == body["idempotency_key"]
        data = body["data"]
        assert isinstance(data, dict)
        got[str(data["holder_code"])].append(msg_id)
    assert dict(got) == dict(expected)
    assert sum(len(v) for v in got.values()) == 8
    # every delivery attempt is in the audit log, and the chain holds
    report = audit.verify(world.engine)
    assert report.ok
    with world.sessions() as s:
        from recognition.tables import AuditEntry

        delivers = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "deliver")))
    assert {e.outcome for e in delivers} == {"delivered", "retry"}


def test_dead_letter_holds_back_the_holder_until_replayed_or_skipped(
    world: World, client: TestClient, tokens: dict[str, str], receiver: Receiver
) -> None:
    allow_destination(world.engine, "tax_bureau", receiver.origin)
    sub = _subscribe(client, tokens["tax_bureau"], receiver.url)
    receiver.secret = str(sub["secret"])
    policy = dlv.DeliveryPolicy(max_attempts=2, backoff_base=1.0, backoff_max=5.0, concurrency=4)
    a, b, c = HOLDERS
    la = issue_business(world.service, "ent-a", holder=a)
    lc = issue_business(world.service, "ent-c", holder=c)
    with world.sessions() as s:
        keys = {e.subject: e.idempotency_key for e in s.scalars(select(OutboxEvent))}
    receiver.fail_ids = {keys[la], keys[lc]}
    world.service.amend(la, {"surface": {"business_scope": "零售"}})
    world.service.revoke(la, "cancelled")
    world.service.amend(lc, {"surface": {"business_scope": "批发"}})
    issue_business(world.service, "ent-b", holder=b)

    _drain(world, policy, minutes=10)
    deliveries = client.get("/v1/deliveries?limit=200", headers=auth(tokens["tax_bureau"])).json()["items"]
    by_status: dict[str, list[dict[str, object]]] = defaultdict(list)
    for d in deliveries:
        by_status[str(d["status"])].append(d)
    assert len(by_status["dead"]) == 2 and len(by_status["held"]) == 3 and len(by_status["delivered"]) == 1
    dead_a = next(d for d in by_status["dead"] if d["idempotency_key"] == keys[la])
    dead_c = next(d for d in by_status["dead"] if d["idempotency_key"] == keys[lc])
    assert all(d["held_back"] and d["held_by"] in (dead_a["id"], dead_c["id"]) for d in by_status["held"])
    held = client.get("/v1/deliveries?status=held", headers=auth(tokens["tax_bureau"])).json()["items"]
    assert len(held) == 3
    # the receiver got only holder b's event: nothing of a or c overtook their dead letters
    assert [json.dumps(body["data"]["holder_code"]) for _, body in receiver.received] == [json.dumps(b)]
    # another consumer sees none of these deliveries
    assert client.get("/v1/deliveries", headers=auth(tokens["operator"])).json()["items"]
    assert client.get("/v1/deliveries", headers=auth(tokens["portal"])).status_code == 403

    receiver.fail_ids = set()
    with session_scope(world.engine) as s:
        delivery_ops.replay(s, int(str(dead_a["id"])))
        delivery_ops.skip(s, int(str(dead_c["id"])))
    _drain(world, policy, minutes=20)
    got = [(body["data"]["holder_code"], body["type"]) for _, body in receiver.received]
    assert sorted(got[1:]) == sorted(
        [(a, "license.issued"), (a, "license.amended"), (a, "license.revoked"), (c, "license.amended")]
    )
    a_order = [t for h, t in got if h == a]
    assert a_order == ["license.issued", "license.amended", "license.revoked"]
    assert (c, "license.issued") not in got  # skipped, never sent
    after = client.get("/v1/deliveries?status=held", headers=auth(tokens["tax_bureau"])).json()["items"]
    assert after == []

    # a deleted subscription gets nothing more, not even what was pending
    receiver.fail_ids = {"never"}
    lb = issue_business(world.service, "ent-b2", holder=b)
    with session_scope(world.engine) as s:
        assert dlv.fan_out(s) == (1, 1)
    assert client.delete(f"/v1/subscriptions/{sub['id']}", headers=auth(tokens["tax_bureau"])).status_code == 204
    before = len(receiver.received)
    assert _drain(world, policy, minutes=30).attempted == 0 and len(receiver.received) == before
    skipped = client.get("/v1/deliveries?status=skipped", headers=auth(tokens["operator"])).json()["items"]
    assert lb and any(d["last_error"] == "subscription deleted" for d in skipped)


def test_subscription_filters_and_yaml(
    world: World, client: TestClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    yaml_file = tmp_path / "subs.yaml"
    yaml_file.write_text(
        "subscriptions:\n"
        "  - id: land-approvals\n    name: 国土 预审\n    event_types: [approval.issued]\n"
        "    regions: ['330322']\n    channel: webhook\n    url: http://127.0.0.1:9/x\n"
        "    secret_env: HUB_TEST_SECRET\n",
        encoding="utf-8",
    )
    with session_scope(world.engine) as s:
        assert subs_mod.sync_yaml(s, yaml_file) == {"added": 1, "updated": 0, "removed": 0}
        assert subs_mod.sync_yaml(s, yaml_file) == {"added": 0, "updated": 0, "removed": 0}
    res = client.get("/v1/subscriptions", headers=auth(tokens["operator"]))
    assert [x["id"] for x in res.json()["items"]] == ["land-approvals"]
    assert client.get("/v1/subscriptions", headers=auth(tokens["tax_bureau"])).json()["items"] == []
    allow_destination(world.engine, "tax_bureau", "http://127.0.0.1:9/")
    sub = _subscribe(client, tokens["tax_bureau"], "http://127.0.0.1:9/y", regions=["11"])
    with session_scope(world.engine) as s:
        e_match = OutboxEvent(id=10_001, event_type="license.issued", subject="L", payload={}, idempotency_key="k1",
                              license_type_code="1101", region_code="110105", holder_code=USCC)  # fmt: skip
        e_region = OutboxEvent(id=10_002, event_type="license.issued", subject="L", payload={}, idempotency_key="k2",
                               license_type_code="1101", region_code="330322")  # fmt: skip
        e_type = OutboxEvent(id=10_003, event_type="license.issued", subject="L", payload={}, idempotency_key="k3",
                             license_type_code="2101", region_code="110105")  # fmt: skip
        row = s.get(subs_mod.Subscription, str(sub["id"]))
        assert row is not None
        assert subs_mod.matches(row, e_match) and not subs_mod.matches(row, e_region)
        assert not subs_mod.matches(row, e_type)
    res = client.delete(f"/v1/subscriptions/{sub['id']}", headers=auth(tokens["tax_bureau"]))
    assert res.status_code == 204
    assert client.delete(f"/v1/subscriptions/{sub['id']}", headers=auth(tokens["tax_bureau"])).status_code == 404
    yaml_file.write_text("subscriptions: []\n", encoding="utf-8")
    with session_scope(world.engine) as s:
        assert subs_mod.sync_yaml(s, yaml_file)["removed"] == 1
    # the shipped file parses
    assert isinstance(subs_mod.load_yaml(Path(subs_mod.__file__).with_name("subscriptions.yaml")), list)


def test_soap_push_to_the_tax_sandbox(world: World, tmp_path: Path, monkeypatch: object) -> None:
    import pytest

    from sandbox.faults import FaultFile
    from sandbox.tax.server import TaxServer
    from sandbox.tax.store import TaxStore
    from sandbox.tax.wsgi import Credentials

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("HUB_TEST_TAX_PASSWORD", "pw-123")
    store = TaxStore(tmp_path / "tax.db")
    store.create()
    server = TaxServer(store, FaultFile(tmp_path / "faults.json"), Credentials("hub", "pw-123")).start()
    try:
        with session_scope(world.engine) as s:
            sub = subs_mod.create(s, name="tax soap", event_types=["license.issued", "license.revoked"],
                                  url=server.wsdl_url, channel="soap", license_types=["1101"])  # fmt: skip
            sub.secret_env = "HUB_TEST_TAX_PASSWORD"
        lid = issue_business(world.service, "ent-soap", holder=HOLDERS[0])
        world.service.revoke(lid, "cancelled")
        policy = dlv.DeliveryPolicy(max_attempts=3, concurrency=1)
        rep = _drain(world, policy, minutes=1)
        assert rep.delivered == 2 and rep.failed == 0
        with session_scope(world.engine) as s:
            assert delivery_ops.replay_range(s, _later(-5), _later(5), include_delivered=True) == 2
        _drain(world, policy, minutes=2)
        notices = store.notices()
        assert [(n["event_type"], n["license_id"]) for n in notices] == [
            ("license.issued", lid),
            ("license.revoked", lid),
        ]  # deduplicated by idempotency key on the department's side
        assert notices[0]["holder_code"] == HOLDERS[0]
        # a wrong password is a SOAP fault; it is retried and then dead-lettered, not lost
        monkeypatch.setenv("HUB_TEST_TAX_PASSWORD", "wrong")
        issue_business(world.service, "ent-soap-2", holder=HOLDERS[1])
        rep = _drain(world, dlv.DeliveryPolicy(max_attempts=2, backoff_base=1, concurrency=1), minutes=30)
        assert rep.dead == 1
    finally:
        server.stop()


def test_deliver_task_and_cli_for_airflow_and_operators(
    world: World, client: TestClient, tokens: dict[str, str], receiver: Receiver, tmp_path: Path,
    monkeypatch: object,
) -> None:  # fmt: skip
    import pytest
    from typer.testing import CliRunner

    from recognition.delivery_cli import deliver

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    empty = tmp_path / "subs.yaml"
    empty.write_text("subscriptions: []\n", encoding="utf-8")
    monkeypatch.setenv("HUB_SUBSCRIPTIONS_FILE", str(empty))
    allow_destination(world.engine, "tax_bureau", receiver.origin)
    sub = _subscribe(client, tokens["tax_bureau"], receiver.url)
    receiver.secret = str(sub["secret"])
    issue_business(world.service, "ent-task", holder=HOLDERS[2])
    counts = dlv.deliver_task()
    assert counts["delivered"] == 1 and len(receiver.received) == 1

    import typer

    cli = typer.Typer()
    cli.command()(deliver)
    runner = CliRunner()
    with world.sessions() as s:
        [d] = list(s.scalars(select(Delivery)))
    res = runner.invoke(cli, ["--replay", str(d.id)])
    assert res.exit_code == 0 and json.loads(res.stdout) == {"replayed": [d.id]}
    res = runner.invoke(cli, [])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[-1])["delivered"] == 1
    ids = [m for m, _ in receiver.received]
    assert len(ids) == 2 and ids[0] == ids[1]  # the replay carried the same idempotency key


def _deliver_cli() -> typer.Typer:
    from recognition.delivery_cli import deliver

    cli = typer.Typer()
    cli.command()(deliver)
    return cli


@pytest.mark.parametrize("option", ["--replay", "--skip"])
def test_deliver_replay_or_skip_of_an_unknown_delivery_is_a_clear_error(world: World, option: str) -> None:
    res = CliRunner().invoke(_deliver_cli(), [option, "99999"])
    assert res.exit_code == 1
    assert res.output == "error: no delivery 99999; nothing was changed\n"


def test_deliver_replay_since_an_unparseable_time_is_a_usage_error(world: World) -> None:
    res = CliRunner().invoke(_deliver_cli(), ["--replay-since", "yesterday"])
    assert res.exit_code == 2
    assert res.output == (
        "error: --replay-since: 'yesterday' is not an ISO 8601 time (e.g. 2026-11-01T09:00:00+08:00)\n"
    )
    res = CliRunner().invoke(_deliver_cli(), ["--replay-since", "2026-11-01", "--replay-until", "now"])
    assert res.exit_code == 2 and "error: --replay-until: 'now' is not an ISO 8601 time" in res.output


def test_deliver_with_one_unknown_id_changes_nothing(
    world: World, client: TestClient, tokens: dict[str, str], receiver: Receiver, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    empty = tmp_path / "subs.yaml"
    empty.write_text("subscriptions: []\n", encoding="utf-8")
    monkeypatch.setenv("HUB_SUBSCRIPTIONS_FILE", str(empty))
    allow_destination(world.engine, "tax_bureau", receiver.origin)
    receiver.secret = str(_subscribe(client, tokens["tax_bureau"], receiver.url)["secret"])
    issue_business(world.service, "ent-unknown-id", holder=HOLDERS[2])
    assert dlv.deliver_task()["delivered"] == 1
    with world.sessions() as s:
        [d] = list(s.scalars(select(Delivery)))
    res = CliRunner().invoke(_deliver_cli(), ["--replay", str(d.id), "--skip", "99999"])
    assert res.exit_code == 1 and res.output == "error: no delivery 99999; nothing was changed\n"
    with world.sessions() as s:
        assert s.get(Delivery, d.id).status == "delivered"  # the replay was rolled back with the failed skip
