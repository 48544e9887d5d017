"""Dispatch (分办) on SQLite and PostgreSQL: an accepted case goes to each department in the item's
order (commerce first, then tax and public security together), pushed through the delivery worker
to that department's subscription only, at least once and in order per case; a dead letter holds
back that case's later events and no other case's; replay delivers them in order."""

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
from hub.db import session_scope
from hub.models import OutboxEvent
from recognition import delivery as dlv
from recognition import delivery_ops
from recognition import subscriptions as subs_mod
from recognition.tables import Consumer, Delivery
from tests.cases.world import P1, World, auth, joint_registration
from tests.recognition.rec_helpers import Receiver, allow_destination

DEPARTMENTS = ("commerce", "tax", "public_security")
POLICY = dlv.DeliveryPolicy(max_attempts=2, backoff_base=1.0, backoff_max=5.0, concurrency=4)


@pytest.fixture()
def receivers(city: World, api: TestClient) -> Iterator[dict[str, Receiver]]:
    """Each department's approval system listening for its dispatches (a real webhook endpoint)."""
    out = {}
    for department in DEPARTMENTS:
        r = Receiver()
        r.start()
        allow_destination(city.engine, department, r.origin)
        body = {"name": f"{department} approvals", "event_types": ["case.dispatched", "case.recalled"], "url": r.url}
        res = api.post("/v1/subscriptions", headers=auth(city.tokens[department]), json=body)
        assert res.status_code == 201, res.text
        r.secret = str(res.json()["secret"])
        out[department] = r
    yield out
    for r in out.values():
        r.stop()


def _drain(city: World, minutes: float = 0) -> dlv.RunReport:
    total = dlv.RunReport()
    for _ in range(20):
        rep = dlv.run_once(city.engine, policy=POLICY, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes))
        total = total + rep
        if rep.attempted == 0 and rep.fanned_out == 0:
            break
    return total


def _got(r: Receiver) -> list[tuple[str, str, str]]:
    return [(str(b["type"]), str(b["data"]["code"]), str(b["data"]["department"])) for _, b in r.unique_in_order()]  # type: ignore[index]


def _take(api: TestClient, city: World) -> str:
    res = api.post("/v1/cases", json=joint_registration(), headers=auth(city.tokens["window"]))
    assert res.status_code == 201, res.text
    return str(res.json()["code"])


def _step(api: TestClient, city: World, code: str, department: str, seq: int, kind: str) -> dict[str, Any]:
    body = {"seq": seq, "step": kind, "occurred_at": dt.datetime.now(dt.UTC).isoformat()}
    if department == "window":
        body["department"] = "window"
    res = api.post(f"/v1/cases/{code}/steps", headers=auth(city.tokens[department]), json=body)
    assert res.status_code == 201, res.text
    return body


def test_each_department_gets_its_dispatch_in_the_items_order(
    city: World, api: TestClient, receivers: dict[str, Receiver]
) -> None:
    code = _take(api, city)
    _drain(city)
    assert _got(receivers["commerce"]) == [("case.dispatched", code, "commerce")]
    assert _got(receivers["tax"]) == [] and _got(receivers["public_security"]) == []  # they wait for commerce
    ((_, body),) = receivers["commerce"].unique_in_order()
    data: dict[str, Any] = body["data"]  # type: ignore[assignment]
    premises = next(m for m in data["materials"] if m["code"] == "M04")
    assert premises["license_id"] == city.licences["p1_property"] and premises["authorisation"].startswith("AU")
    assert P1 not in str(body) and data["applicant_ref"].startswith("ref_")

    for seq, kind in enumerate(("accepted", "approved", "result_issued"), start=1):
        last = _step(api, city, code, "commerce", seq, kind)
    _drain(city)
    assert _got(receivers["tax"]) == [("case.dispatched", code, "tax")]
    assert _got(receivers["public_security"]) == [("case.dispatched", code, "public_security")]
    assert len(receivers["commerce"].unique_in_order()) == 1  # nobody gets another department's dispatch
    with city.sessions() as s:
        rows = {d.department: d for d in s.scalars(select(CaseDispatch))}
        assert {d: r.status for d, r in rows.items()} == dict.fromkeys(DEPARTMENTS, "dispatched")
        assert all(r.dispatched_at is not None for r in rows.values())
        # only the addressed department's subscription was even queued
        assert s.query(Delivery).count() == 3
    # resending a step changes nothing: no second dispatch
    again = api.post(f"/v1/cases/{code}/steps", headers=auth(city.tokens["commerce"]), json=last)
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert _drain(city).attempted == 0


def test_a_dead_letter_holds_back_its_case_only_and_replay_delivers_in_order(
    city: World, api: TestClient, receivers: dict[str, Receiver]
) -> None:
    commerce = receivers["commerce"]
    first = _take(api, city)
    with city.sessions() as s:
        key = s.scalars(select(OutboxEvent.idempotency_key).where(OutboxEvent.event_type == "case.dispatched")).one()
    commerce.fail_ids = {key}  # commerce's system refuses the first case's dispatch
    _drain(city, minutes=10)
    _step(api, city, first, "window", 3, "withdrawn")  # then the window withdraws that case
    second = _take(api, city)
    _drain(city, minutes=20)
    assert _got(commerce) == [("case.dispatched", second, "commerce")]  # the other case was not held
    with city.sessions() as s:
        states = {(d.event_type, d.holder_key): d.status for d in s.scalars(select(Delivery))}
    assert states[("case.dispatched", f"case:{first}")] == "dead"
    assert states[("case.recalled", f"case:{first}")] == "pending"  # held behind its case's dead letter

    commerce.fail_ids = set()
    with session_scope(city.engine) as s:
        dead = s.scalars(select(Delivery.id).where(Delivery.status == "dead")).one()
        delivery_ops.replay(s, dead)
    _drain(city, minutes=30)
    assert _got(commerce) == [
        ("case.dispatched", second, "commerce"),
        ("case.dispatched", first, "commerce"),
        ("case.recalled", first, "commerce"),
    ]


def test_case_events_reach_only_department_keys_with_the_steps_scope(city: World, api: TestClient) -> None:
    portal = api.post("/v1/subscriptions", headers=auth(city.tokens["portal"]), json={
        "name": "portal", "event_types": ["case.dispatched"], "url": "https://portal.example/hook"})  # fmt: skip
    assert (portal.status_code, portal.json()["code"]) == (403, "missing_scope")
    bad = api.post("/v1/subscriptions", headers=auth(city.tokens["commerce"]), json={
        "name": "x", "event_types": ["case.step"], "url": "https://commerce.example/hook"})  # fmt: skip
    assert bad.status_code == 422


def test_tax_receives_its_dispatch_through_the_soap_notice_operation(
    city: World, api: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox.faults import FaultFile
    from sandbox.tax.server import TaxServer
    from sandbox.tax.store import TaxStore
    from sandbox.tax.wsgi import Credentials

    monkeypatch.setenv("HUB_TEST_TAX_PASSWORD", "pw-123")
    store = TaxStore(tmp_path / "tax.db")
    store.create()
    server = TaxServer(store, FaultFile(tmp_path / "faults.json"), Credentials("hub", "pw-123")).start()
    try:
        allow_destination(city.engine, "tax", f"http://127.0.0.1:{server.port}/")
        with session_scope(city.engine) as s:
            tax_id = s.scalars(select(Consumer.id).where(Consumer.name == "tax")).one()
            sub = subs_mod.create(s, name="tax approvals", event_types=["case.dispatched"], url=server.wsdl_url,
                                  channel="soap", consumer_id=tax_id)  # fmt: skip
            sub.secret_env = "HUB_TEST_TAX_PASSWORD"
        code = _take(api, city)
        for seq, kind in enumerate(("accepted", "approved", "result_issued"), start=1):
            _step(api, city, code, "commerce", seq, kind)
        report = _drain(city)
        assert report.delivered == 1 and report.failed == 0
        (notice,) = store.notices()
        assert notice["event_type"] == "case.dispatched" and notice["license_id"] == code  # the subject
        carried = json.loads(notice["payload_json"])
        assert carried["data"]["department"] == "tax" and carried["data"]["code"] == code
        assert P1 not in notice["payload_json"]
    finally:
        server.stop()
