"""The applicant's notices through the delivery worker to the sandbox SMS gateway: sent once per
idempotency key, retried through a gateway that is down, answers 500 or times out, dead-lettered and
replayed, never holding the case back; the gateway's log masks the number and the name."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cases import service
from cases.catalogue import load_catalogue
from connectors.sms import SmsSender
from connectors.webhook import generate_secret
from hub.db import session_scope
from hub.models import utcnow
from recognition import delivery as dlv
from recognition import delivery_ops
from recognition import subscriptions as subs_mod
from recognition.push import Pushers
from recognition.tables import Delivery
from sandbox.sms import DOWN, ERROR, TIMEOUT, SmsGatewayServer, start_gateway
from tests.cases import world as w
from tests.cases.test_notices import conclude, take_in
from tests.cases.world import World, joint_registration

TOKEN = "tok-sms-1"
POLICY = dlv.DeliveryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=1.0, concurrency=1)


@pytest.fixture()
def gateway(tmp_path: Path) -> Iterator[SmsGatewayServer]:
    server = start_gateway(tmp_path / "sms", token=TOKEN)
    yield server
    server.stop()


def subscribe(city: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, **extra: str) -> None:
    """The operators' declared SMS subscription (its token by environment variable), and others."""
    monkeypatch.setenv("HUB_TEST_SMS_TOKEN", TOKEN)
    monkeypatch.setenv("HUB_TEST_HOOK_SECRET", generate_secret())
    lines = ["subscriptions:",
             "  - {id: applicant-sms, name: 短信通知, event_types: [case.notice], channel: sms, "
             f"url: '{url}', secret_env: HUB_TEST_SMS_TOKEN}}"]  # fmt: skip
    lines += [f"  - {{id: {sid}, name: x, event_types: [case.notice], url: '{u}', secret_env: HUB_TEST_HOOK_SECRET}}"
              for sid, u in extra.items()]  # fmt: skip
    path = tmp_path / "subscriptions.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with session_scope(city.engine) as s:
        subs_mod.sync_yaml(s, path)


def drain(city: World, rounds: int = 12) -> dlv.RunReport:
    """Rounds of the worker, each an hour after the last (every backoff has run out)."""
    total = dlv.RunReport()
    pushers = Pushers(sms=SmsSender(read_timeout=0.5))
    try:
        for hour in range(1, rounds + 1):
            rep = dlv.run_once(city.engine, policy=POLICY, pushers=pushers, now=utcnow() + dt.timedelta(hours=hour))
            total = total + rep
            if rep.attempted == 0 and rep.fanned_out == 0:
                break
    finally:
        pushers.close()
    return total


def deliveries(city: World) -> list[tuple[str, str, int]]:
    with city.sessions() as s:
        rows = s.scalars(select(Delivery).where(Delivery.subscription_id == "applicant-sms").order_by(Delivery.id))
        return [(d.idempotency_key.rsplit(":", 1)[-1], d.status, d.attempts) for d in rows]


def status(city: World, code: str) -> str:
    with city.sessions() as s:
        return service.find_case(s, code).status


def test_the_gateway_sends_each_notice_once_with_its_registered_text(
    city: World, gateway: SmsGatewayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    subscribe(city, tmp_path, monkeypatch, gateway.url, portal_hook="http://127.0.0.1:9/hook")
    code = take_in(city, joint_registration())
    conclude(city, code)
    with caplog.at_level(logging.INFO, logger="sandbox.sms"):
        report = drain(city)
    assert report.delivered == 2
    store = gateway.gateway.store
    messages = store.messages()
    templates = load_catalogue().notices
    assert templates is not None
    printed = f"{code[:6]}-{code[6:14]}-{code[14:]}"
    assert [(m.out_id, m.phone, m.template_code, m.text) for m in messages] == [
        (f"case.notice:{code}:accepted", w.PHONE, templates.template("accepted").template_code,
         f"【洞头政务服务】陈海生您好，您申请的企业设立登记（多证联办）已受理，办件编码{printed}，承诺3个工作日内办结。"),
        (f"case.notice:{code}:concluded", w.PHONE, templates.template("concluded_pickup").template_code,
         f"【洞头政务服务】陈海生您好，您申请的企业设立登记（多证联办）（办件编码{printed}）已办结，请尽快前来领取。"),
    ]  # fmt: skip
    assert store.outcomes() == {"sent": 2}
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "sandbox.sms")
    assert "138****2345" in logged and "陈**" in logged
    assert w.PHONE not in logged and "陈海生" not in logged
    # a notice goes to the gateway only: a webhook declared for notices never gets one
    with city.sessions() as s:
        hook = list(s.scalars(select(Delivery).where(Delivery.subscription_id == "portal_hook",
                                                     Delivery.event_type == "case.notice")))  # fmt: skip
    assert hook and {d.status for d in hook} == {"skipped"}
    assert all(d.last_error and "SMS gateway only" in d.last_error for d in hook)
    # the worker running again sends nothing more
    assert drain(city).attempted == 0 and len(store.messages()) == 2


def test_a_gateway_answering_500_is_retried_dead_lettered_and_replayed_without_holding_the_case(
    city: World, gateway: SmsGatewayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscribe(city, tmp_path, monkeypatch, gateway.url)
    faults = gateway.gateway.faults
    faults.set(ERROR)
    code = take_in(city, joint_registration())
    drain(city)
    conclude(city, code)  # the case goes on while its notice cannot be sent
    assert status(city, code) == "concluded"
    drain(city)
    assert deliveries(city) == [("accepted", "dead", 3), ("concluded", "pending", 0)]  # held behind the dead letter
    assert gateway.gateway.store.messages() == [] and gateway.gateway.store.outcomes() == {ERROR: 3}
    faults.clear()
    with session_scope(city.engine) as s:
        dead = s.scalars(select(Delivery).where(Delivery.status == dlv.DEAD)).one()
        delivery_ops.replay(s, dead.id)
    drain(city)
    assert deliveries(city) == [("accepted", "delivered", 1), ("concluded", "delivered", 1)]
    assert [m.out_id.rsplit(":", 1)[-1] for m in gateway.gateway.store.messages()] == ["accepted", "concluded"]


@pytest.mark.parametrize("fault", [DOWN, TIMEOUT])
def test_a_gateway_down_or_timing_out_is_retried_and_sends_once(
    city: World, gateway: SmsGatewayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    subscribe(city, tmp_path, monkeypatch, gateway.url)
    gateway.gateway.faults.set(fault, remaining=2, delay_seconds=1.5)
    code = take_in(city, joint_registration())
    drain(city)
    assert deliveries(city) == [("accepted", "delivered", 3)]
    (message,) = gateway.gateway.store.messages()
    assert message.out_id == f"case.notice:{code}:accepted"
    outcomes: dict[str, Any] = gateway.gateway.store.outcomes()
    # timed out: sent at the first try, its answer lost; the retries are recognised by their out_id
    expected = {DOWN: 2, "sent": 1} if fault == DOWN else {TIMEOUT: 2, "sent": 1, "duplicate": 2}
    assert outcomes == expected
