"""The SMS gateway simulator: the token, the registered signature and templates, mainland mobile
numbers and every parameter a template names; one message per out_id; faults on demand."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cases.catalogue import load_catalogue
from sandbox.sms import DOWN, ERROR, PATH, TIMEOUT, Registration, SmsGatewayServer, start_gateway

TOKEN = "tok-sandbox"


@pytest.fixture()
def gateway(tmp_path: Path) -> Iterator[SmsGatewayServer]:
    server = start_gateway(tmp_path, token=TOKEN)
    yield server
    server.stop()


def message(**changes: Any) -> dict[str, Any]:
    templates = load_catalogue().notices
    assert templates is not None
    body = {
        "phone_numbers": "13805771234", "sign_name": templates.signature,
        "template_code": templates.template("posted").template_code, "out_id": "case.notice:X:posted:3",
        "template_param": {"name": "李小龙", "item": "开具纳税证明", "code": "330322-20261201-7K3PQ0",
                           "carrier": "中国邮政EMS", "tracking": "1187654321098"},
    }  # fmt: skip
    body.update(changes)
    return body


def post(gateway: SmsGatewayServer, body: dict[str, Any], token: str = TOKEN, timeout: float = 5) -> httpx.Response:
    return httpx.post(gateway.url, json=body, headers={"authorization": f"Bearer {token}"}, timeout=timeout)


def test_a_registered_message_is_sent_once_per_out_id_with_its_text(gateway: SmsGatewayServer) -> None:
    first = post(gateway, message())
    assert first.status_code == 200 and first.json()["code"] == "OK" and first.json()["duplicate"] is False
    again = post(gateway, message())
    assert again.json() == {**first.json(), "duplicate": True}
    (sent,) = gateway.gateway.store.messages()
    assert sent.text == (
        "【洞头政务服务】李小龙您好，您申请的开具纳税证明（办件编码330322-20261201-7K3PQ0）的办理结果已由中国邮政EMS寄出，"
        "运单号1187654321098。"
    )
    assert gateway.gateway.store.outcomes() == {"sent": 1, "duplicate": 1}


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"sign_name": "某某公司"}, "isv.SMS_SIGNATURE_ILLEGAL"),
        ({"template_code": "SMS_999999"}, "isv.SMS_TEMPLATE_ILLEGAL"),
        ({"phone_numbers": "0577-88881234"}, "isv.MOBILE_NUMBER_ILLEGAL"),
        ({"template_param": {"name": "李小龙", "item": "x", "code": "y"}}, "isv.TEMPLATE_MISSING_PARAMETERS"),
    ],
)
def test_what_a_gateway_refuses_is_not_sent(gateway: SmsGatewayServer, changes: dict[str, Any], code: str) -> None:
    answer = post(gateway, message(**changes))
    assert (answer.status_code, answer.json()["code"]) == (200, code)
    assert gateway.gateway.store.messages() == []


def test_a_wrong_token_or_no_message_is_refused(gateway: SmsGatewayServer) -> None:
    assert post(gateway, message(), token="tok-wrong").status_code == 401
    bad = httpx.post(gateway.url, content=b"{", headers={"authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert (bad.status_code, bad.json()["code"]) == (400, "isv.INVALID_PARAMETERS")
    assert gateway.gateway.store.messages() == []


def test_faults_on_demand(gateway: SmsGatewayServer) -> None:
    faults = gateway.gateway.faults
    faults.set(ERROR, remaining=1)
    assert post(gateway, message()).status_code == 500
    faults.set(DOWN, remaining=1)
    with pytest.raises(httpx.RemoteProtocolError):
        post(gateway, message())
    assert gateway.gateway.store.messages() == []
    faults.set(TIMEOUT, remaining=1, delay_seconds=1.0)
    with pytest.raises(httpx.ReadTimeout):
        post(gateway, message(), timeout=0.3)
    assert len(gateway.gateway.store.messages()) == 1  # sent; only its answer came too late
    assert post(gateway, message()).json()["duplicate"] is True  # the faults were used up
    faults.set(ERROR)  # until cleared
    assert [post(gateway, message()).status_code for _ in range(2)] == [500, 500]
    faults.clear()
    assert post(gateway, message()).status_code == 200


def test_the_gateway_registers_the_catalogue_s_texts() -> None:
    templates = load_catalogue().notices
    assert templates is not None
    registered = Registration.from_catalogue()
    assert registered.signature == templates.signature
    assert registered.templates == {t.template_code: t.text for t in templates.by_kind.values()}
    params = {"name": "李小龙", "item": "开具纳税证明", "code": "330322-20261201-7K3PQ0", "days": "1"}
    accepted = templates.template("accepted")
    assert registered.render(accepted.template_code, params) == accepted.render(params)


def test_started_as_its_own_process_it_announces_its_port_and_takes_messages(tmp_path: Path) -> None:
    """``python -m sandbox.sms --port-file`` (as a starter or a container runs it): the port file holds the
    port it took, and the gateway there checks its token and records a message."""
    port_file = tmp_path / "sms.port"
    env = {**os.environ, "HUB_SANDBOX_SMS_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.sms", "--db", str(tmp_path / "sms.db"),
         "--faults", str(tmp_path / "faults.json"), "--port-file", str(port_file)], env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{int(port_file.read_text())}{PATH}"
        assert not (tmp_path / "sms.tmp").exists()
        refused = httpx.post(url, json=message(), headers={"authorization": "Bearer wrong"}, timeout=10)
        sent = httpx.post(url, json=message(), headers={"authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert refused.status_code == 401 and sent.status_code == 200 and sent.json()["code"] == "OK"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
