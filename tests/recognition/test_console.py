"""The operator console (/console): named accounts with roles, sessions in the hub database, CSRF tokens on
every form; feeds from the run ledger, quarantine by feed and reason (masked), dead letters replayed
through the delivery service and then delivered, the outbox backlog — every answer audited by name."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, update
from typer.testing import CliRunner

from hub.db import session_scope
from hub.models import OutboxEvent
from pipeline.factory import exchange_dag_id
from pipeline.tables import PipelineStep
from recognition import console_accounts as accounts
from recognition import console_data
from recognition import delivery as dlv
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.console_cli import app
from recognition.directory import LicenseDirectory
from recognition.tables import AuditEntry, ConsoleSession, Delivery
from tests.recognition.rec_helpers import Receiver, World, allow_destination, auth, issue_business
from validation import quarantine as q

PASSWORD = "correct horse battery staple"
RESIDENT_ID = "330322198001011231"


@pytest.fixture()
def people(world: World) -> None:
    with session_scope(world.engine) as s:
        accounts.add_user(s, "wang.li", "operator", PASSWORD)
        accounts.add_user(s, "li.na", "steward", PASSWORD)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def sign_in(client: TestClient, name: str = "wang.li", password: str = PASSWORD) -> Any:
    form = client.get("/console/login")
    assert form.status_code == 200
    return client.post("/console/login", data={"name": name, "password": password, "csrf": _csrf(form.text)},
                       follow_redirects=False)  # fmt: skip


def _audit(world: World, n: int = 1) -> list[AuditEntry]:
    with world.sessions() as s:
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(n)))
        for r in rows:
            s.expunge(r)
        return rows


def _dead_letter(world: World, client: TestClient, tokens: dict[str, str], receiver: Receiver) -> int:
    """A licence event the subscriber refused until the delivery was dead-lettered."""
    allow_destination(world.engine, "tax_bureau", receiver.origin)
    body = {"name": "tax push", "event_types": ["license.issued"], "license_types": ["1101"], "url": receiver.url}
    sub = client.post("/v1/subscriptions", json=body, headers=auth(tokens["tax_bureau"]))
    assert sub.status_code == 201, sub.text
    receiver.secret = str(sub.json()["secret"])
    lid = issue_business(world.service, "ent-dead", holder="91330322MA2C8XYZ3M")
    with world.sessions() as s:
        key = s.scalars(select(OutboxEvent.idempotency_key).where(OutboxEvent.subject == lid)).one()
    receiver.fail_ids = {key}
    dlv.run_once(world.engine, policy=dlv.DeliveryPolicy(max_attempts=1, backoff_base=1.0, backoff_max=1.0))
    with world.sessions() as s:
        dead = s.scalars(select(Delivery).where(Delivery.idempotency_key == key)).one()
        assert dead.status == dlv.DEAD
        return dead.id


def _feeds_and_quarantine(world: World) -> None:
    now = dt.datetime.now(dt.UTC)
    with session_scope(world.engine) as s:
        s.add_all([
            PipelineStep(run_id="manual__1", mapping="commerce_enterprises", step="extract", department="commerce",
                         pulled=120, finished_at=now - dt.timedelta(hours=2)),
            PipelineStep(run_id="manual__2", mapping="commerce_enterprises", step="extract", department="commerce",
                         pulled=200, finished_at=now - dt.timedelta(minutes=5)),
            PipelineStep(run_id="manual__2", mapping="commerce_enterprises", step="validate", department="commerce",
                         accepted=190, quarantined=10, finished_at=now - dt.timedelta(minutes=4)),
            PipelineStep(run_id="manual__2", mapping="commerce_enterprises", step="publish", department="commerce",
                         licenses_issued=7, licenses_changed=2, finished_at=now - dt.timedelta(minutes=3)),
        ])  # fmt: skip
        batch = q.BatchRef("public_security", "persons", "staging/ps/1.parquet")
        rows = [
            q.QuarantinedRow("p-1", "v1", {"resident_id": RESIDENT_ID + "9", "name": "张三丰", "phone": "13857712345"},
                             [q.Failure("invalid_resident_id", "expect_valid_resident_id", "resident_id")]),
            q.QuarantinedRow("p-2", "v1", {"resident_id": None, "name": "李四"},
                             [q.Failure("missing_required_field", "expect_not_null", "resident_id")]),
        ]  # fmt: skip
        q.write(s, batch, "manual__7", rows)


def test_sign_in_see_feeds_quarantine_replay_a_dead_letter_see_it_delivered_sign_out(
    world: World, client: TestClient, tokens: dict[str, str], receiver: Receiver, people: None
) -> None:
    dead_id = _dead_letter(world, client, tokens, receiver)
    _feeds_and_quarantine(world)

    # not signed in: the console sends to the sign-in form
    first = client.get("/console", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/console/login?lang=zh"
    signed = sign_in(client)
    assert signed.status_code == 303 and signed.headers["location"] == "/console?lang=zh"
    cookie = next(h for h in signed.headers.get_list("set-cookie") if h.startswith("hub_console="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/console", "max-age=1800"} <= flags
    [entry] = _audit(world)
    assert (entry.action, entry.consumer, entry.outcome) == ("console_sign_in", "console:wang.li", "ok")
    with world.sessions() as s:  # only a digest of the cookie is kept
        token = cookie.split(";")[0].split("=", 1)[1]
        assert s.get(ConsoleSession, accounts.token_digest(token)) is not None
        assert token not in str(s.execute(select(ConsoleSession.token_sha256)).all())

    home = client.get("/console")
    assert home.status_code == 200 and "<script" not in home.text
    html = home.text
    assert 'data-feed="commerce_enterprises"' in html and "manual__2" in html and "manual__1" not in html
    assert ">200<" in html and ">190<" in html and ">10<" in html and "7/2" in html
    assert f'href="http://localhost:8081/dags/{exchange_dag_id("commerce_enterprises")}/runs/manual__2"' in html
    assert 'data-quarantine="public_security/persons/invalid_resident_id"' in html
    assert f'data-delivery="{dead_id}"' in html and 'data-backlog="dead">1<' in html
    assert _audit(world)[0].consumer == "console:wang.li" and _audit(world)[0].action == "console_view"

    records = client.get("/console/quarantine", params={"department": "public_security"})
    assert records.status_code == 200
    assert RESIDENT_ID not in records.text and "张三丰" not in records.text and "13857712345" not in records.text
    assert "invalid_resident_id" in records.text and "missing_required_field" in records.text

    # a replay without the form's token is refused and changes nothing
    refused = client.post(f"/console/deliveries/{dead_id}/replay", data={}, follow_redirects=False)
    assert refused.status_code == 403 and "校验令牌" in refused.text
    [entry] = _audit(world)
    assert (entry.action, entry.outcome, entry.detail["code"]) == ("console_replay", "refused", "csrf_token_missing")
    assert entry.consumer == "console:wang.li"
    wrong = client.post(f"/console/deliveries/{dead_id}/replay", data={"csrf": "x" * 43}, follow_redirects=False)
    assert wrong.status_code == 403 and _audit(world)[0].detail["code"] == "csrf_token_mismatch"
    with world.sessions() as s:
        assert s.get(Delivery, dead_id).status == dlv.DEAD  # type: ignore[union-attr]

    # replayed through the form: queued again, then delivered by the push worker
    replayed = client.post(f"/console/deliveries/{dead_id}/replay", data={"csrf": _csrf(html)}, follow_redirects=False)
    assert replayed.status_code == 303
    [entry] = _audit(world)
    assert (entry.action, entry.consumer, entry.subject) == ("console_replay", "console:wang.li", str(dead_id))
    assert (entry.detail["status"], entry.detail["before"]) == ("pending", "dead") and entry.detail["client"]
    page = client.get(replayed.headers["location"])
    assert 'data-delivery-status="pending"' in page.text and "已重新排队" in page.text
    receiver.fail_ids = set()
    report = dlv.run_once(world.engine, policy=dlv.DeliveryPolicy(max_attempts=1, backoff_base=1.0, backoff_max=1.0))
    assert report.delivered == 1 and len(receiver.received) == 1
    assert 'data-delivery-status="delivered"' in client.get(f"/console/deliveries/{dead_id}").text

    # signed out: the session ends in the database, the old cookie opens nothing
    out = client.post("/console/logout", data={"csrf": _csrf(html)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/console/login?lang=zh"
    assert _audit(world)[0].action == "console_sign_out"
    client.cookies.set("hub_console", token, path="/console")
    again = client.get("/console", follow_redirects=False)
    assert again.status_code == 401 and _audit(world)[0].detail["code"] == "session_ended"


def test_bad_input_wrong_password_expired_session_roles_and_api_keys(
    world: World, client: TestClient, tokens: dict[str, str], people: None
) -> None:
    wrong = sign_in(client, password="not the password")
    assert wrong.status_code == 401 and "账号或密码不正确" in wrong.text and "hub_console=" not in str(wrong.headers)
    [entry] = _audit(world)
    assert (entry.action, entry.consumer, entry.outcome) == ("console_sign_in", "anonymous", "refused")
    assert entry.detail["code"] == "wrong_name_or_password" and PASSWORD not in str(entry.detail)
    assert sign_in(client, name="nobody.here").status_code == 401
    # the login form's token must match its cookie
    client.get("/console/login")
    forged = client.post("/console/login", data={"name": "wang.li", "password": PASSWORD, "csrf": "forged"},
                         follow_redirects=False)  # fmt: skip
    assert forged.status_code == 403 and _audit(world)[0].detail["code"] == "csrf_token_mismatch"

    # a steward sees feeds and quarantine, and may not replay
    assert sign_in(client, name="li.na").status_code == 303
    home = client.get("/console")
    assert home.status_code == 200 and "dead-heading" not in home.text and "quarantine-heading" in home.text
    denied = client.post("/console/deliveries/1/replay", data={"csrf": _csrf(home.text)}, follow_redirects=False)
    assert denied.status_code == 403 and _audit(world)[0].detail["code"] == "role_not_allowed"
    assert client.get("/console/deliveries/1").status_code == 403

    # the session expires: 401 and the cookie is cleared
    with session_scope(world.engine) as s:
        s.execute(update(ConsoleSession).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    expired = client.get("/console", follow_redirects=False)
    assert expired.status_code == 401 and "登录已过期" in expired.text
    assert 'hub_console=""' in expired.headers["set-cookie"] or "Max-Age=0" in expired.headers["set-cookie"]
    assert _audit(world)[0].detail["code"] == "session_expired"

    # API keys are for programs: a known key 403, an unknown one 401, both audited
    keyed = client.get("/console", headers=auth(tokens["operator"]))
    assert keyed.status_code == 403 and "接口密钥" in keyed.text
    [entry] = _audit(world)
    assert (entry.detail["code"], entry.consumer) == ("api_key_not_for_console", "operator")
    assert client.get("/console", headers=auth("hub_kbogus_x")).status_code == 401
    assert _audit(world)[0].detail["code"] == "unknown_key"
    # an unknown delivery, a path that does not exist: pages, not JSON
    missing = client.get("/console/nothing-here")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")


def test_a_session_started_in_one_process_is_seen_by_another(world: World, client: TestClient, people: None) -> None:
    """Sessions live in the hub database: a second app (another API process) knows the cookie."""
    assert sign_in(client).status_code == 303
    other_app = create_app(engine=world.engine, directory=LicenseDirectory(world.store, world.keyring),
                           config=RecognitionSettings(api_key_cache_seconds=0.0), audit_process=False)  # fmt: skip
    with TestClient(other_app) as other:
        other.cookies = client.cookies
        assert other.get("/console", follow_redirects=False).status_code == 200


def test_accounts_passwords_and_the_cli(world: World) -> None:
    stored = accounts.hash_password(PASSWORD)
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    assert accounts.verify_password(PASSWORD, stored) and not accounts.verify_password(PASSWORD + "x", stored)
    assert not accounts.verify_password(PASSWORD, "md5$abc")
    with session_scope(world.engine) as s:
        for name, role, password, why in (("Bad Name", "operator", PASSWORD, "a name"),
                                          ("zhao.yi", "admin", PASSWORD, "role"),
                                          ("zhao.yi", "operator", "short", "12 characters")):  # fmt: skip
            with pytest.raises(accounts.AccountError, match=why):
                accounts.add_user(s, name, role, password)
    runner = CliRunner()
    added = runner.invoke(app, ["users", "add", "zhao.yi", "--role", "supervisor"], input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    again = runner.invoke(app, ["users", "add", "zhao.yi", "--role", "operator"], input=PASSWORD + "\n")
    assert again.exit_code == 1 and "already" in again.output
    listed = runner.invoke(app, ["users", "list"])
    assert '"name": "zhao.yi"' in listed.output and "scrypt" not in listed.output
    with session_scope(world.engine) as s:
        user = accounts.authenticate(s, "zhao.yi", PASSWORD)
        assert user is not None and user.role == "supervisor"
        token, _ = accounts.start_session(s, user)
    assert runner.invoke(app, ["users", "disable", "zhao.yi"]).exit_code == 0
    with session_scope(world.engine) as s:
        assert accounts.authenticate(s, "zhao.yi", PASSWORD) is None
        assert accounts.find_session(s, token)[0] == "ended"
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "console_account")).all()
        assert [e.resource for e in entries] == ["hub console users add", "hub console users disable"]
        assert all(e.consumer.startswith("operator:") for e in entries)


def test_the_console_reads_the_ledger_as_the_pipeline_writes_it() -> None:
    """The run ledger's table and the DAG ids, as the console reads them, are the pipeline's."""
    ledger = {c.name for c in inspect(PipelineStep).columns}
    assert {c.name for c in console_data.LEDGER.columns} <= ledger
    assert console_data.LEDGER.name == PipelineStep.__tablename__
    assert console_data.exchange_dag_id("land_property_rights") == exchange_dag_id("land_property_rights")
