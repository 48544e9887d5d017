"""API keys with an expiry and a source-address binding: stored, listed, changed, refused with stable codes."""

from __future__ import annotations

import datetime as dt
import json
from ipaddress import ip_address

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hub.db import make_engine, session_scope
from hub.settings import get_settings
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.consumers import (
    ConsumerError,
    add_consumer,
    authenticate,
    identify,
    parse_expiry,
    rotate_key,
    set_key_limits,
)
from recognition.consumers_cli import app as consumers_app
from recognition.directory import LicenseDirectory
from tests.recognition.rec_helpers import USCC, World, auth

PATH = f"/v1/holders/{USCC}/licenses"


def _app(world: World) -> FastAPI:
    return create_app(
        get_settings(), engine=world.engine, directory=LicenseDirectory(world.store, world.keyring),
        config=RecognitionSettings(api_key_cache_seconds=300.0), audit_process=False,
    )  # fmt: skip


def test_expired_key_is_refused(world: World) -> None:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with session_scope(world.engine) as s:
        token = add_consumer(s, "portal", ["licenses:read:*"], expires_at=expires)[1]
    app = _app(world)
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get(PATH, headers=auth(token)).status_code == 200
        # the key is cached for 300 s; one second past its expiry the cached entry no longer serves
        app.state.ctx.gate.clock = lambda: expires.timestamp() + 1
        refused = c.get(PATH, headers=auth(token))
    assert refused.status_code == 401
    assert refused.json()["code"] == "key_expired" and "invalid_token" in refused.headers["www-authenticate"]
    assert token in app.state.ctx._keys  # refused although cached
    with session_scope(world.engine) as s:
        assert authenticate(s, token, now=expires - dt.timedelta(seconds=1)) is not None
        assert authenticate(s, token, now=expires) is None
        assert identify(s, token) is not None  # known, not revoked: the API tells "expired" apart


def test_key_bound_to_source_refuses_other_address(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    with session_scope(world.engine) as s:
        token = add_consumer(s, "tax_bureau", ["licenses:read:*"], sources=["10.1.2.0/24", "10.9.9.9"])[1]
    monkeypatch.setenv("HUB_TRUSTED_PROXIES", "172.16.0.1")
    app = _app(world)
    key = auth(token)
    for address, headers, status in [
        ("10.1.2.7", key, 200),
        ("10.9.9.9", key, 200),
        ("10.1.3.1", key, 403),
        ("::ffff:10.1.2.8", key, 200),  # IPv4 on a dual-stack socket
        ("172.16.0.1", {**key, "X-Forwarded-For": "10.9.9.9"}, 200),  # behind the trusted proxy
        ("172.16.0.1", {**key, "X-Forwarded-For": "192.0.2.1"}, 403),
        ("192.0.2.1", {**key, "X-Forwarded-For": "10.9.9.9"}, 403),  # a claim from an untrusted peer
    ]:
        with TestClient(app, raise_server_exceptions=False, client=(address, 5000)) as c:
            res = c.get(PATH, headers=headers)
        assert res.status_code == status, (address, headers)
        if status == 403:
            assert res.json()["code"] == "source_not_allowed"
    with session_scope(world.engine) as s:
        assert authenticate(s, token, address=ip_address("10.1.2.9")) is not None
        assert authenticate(s, token, address=ip_address("10.1.3.9")) is None
        assert authenticate(s, token, address=None) is None


def test_rotation_keeps_the_binding_and_takes_a_new_expiry(hub_db_url: str) -> None:
    engine = make_engine(hub_db_url)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    with session_scope(engine) as s:
        add_consumer(s, "portal", ["licenses:read:*"], sources=["10.1.2.0/24"], expires_at=soon)
        new = rotate_key(s, "portal", expires_at=later)
        moved = rotate_key(s, "portal", sources=["10.2.0.0/16"], keep_old=True)
    with session_scope(engine) as s:
        p = identify(s, new)
        assert p is not None and [str(n) for n in p.sources] == ["10.1.2.0/24"] and p.expires_at == later
        q = identify(s, moved)
        assert q is not None and [str(n) for n in q.sources] == ["10.2.0.0/16"] and q.expires_at is None
        with pytest.raises(ConsumerError, match="already past"):
            rotate_key(s, "portal", expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        with pytest.raises(ConsumerError, match="host bits"):
            set_key_limits(s, "portal", sources=["10.1.2.5/24"])
        changed = set_key_limits(s, "portal", sources=[], expires_at=None)
        assert len(changed) == 2 and all(k.sources is None and k.expires_at is None for k in changed)
    engine.dispose()


def test_expiry_is_the_end_of_the_day_where_the_hub_serves() -> None:
    at = parse_expiry("2027-06-30", "Asia/Shanghai")
    assert at == dt.datetime(2027, 6, 30, 16, 0, tzinfo=dt.UTC)  # 2027-07-01 00:00 in Shanghai
    with pytest.raises(ConsumerError):
        parse_expiry("30/06/2027", "Asia/Shanghai")


def test_consumers_cli_sets_lists_and_changes_expiry_sources_and_rate(hub_db_url: str) -> None:
    runner = CliRunner()
    add = ["add", "tax_bureau", "--scope", "licenses:read:1101", "--expires", "2099-06-30",
           "--source", "10.1.2.0/24", "--source", "10.9.9.9", "--rate-limit", "5"]  # fmt: skip
    res = runner.invoke(consumers_app, add)
    assert res.exit_code == 0, res.output
    (listed,) = [json.loads(line) for line in runner.invoke(consumers_app, ["list"]).stdout.splitlines()]
    assert listed["rate_limit"] == 5.0 and listed["burst"] is None
    (key,) = listed["keys"]
    assert key["expires_at"] == "2099-06-30T16:00:00+00:00" and key["expired"] is False
    assert key["sources"] == ["10.1.2.0/24", "10.9.9.9/32"]

    shown = json.loads(runner.invoke(consumers_app, ["limits", "tax_bureau"]).stdout)
    assert shown["keys"][0]["sources"] == ["10.1.2.0/24", "10.9.9.9/32"]
    res = runner.invoke(consumers_app, ["limits", "tax_bureau", "--rate-limit", "0", "--any-source", "--no-expiry"])
    out = json.loads(res.stdout)
    assert out["rate_limit"] == 0.0 and out["keys"][0]["sources"] == [] and out["keys"][0]["expires_at"] is None
    res = runner.invoke(consumers_app, ["limits", "tax_bureau", "--default-rate", "--source", "192.0.2.0/24"])
    out = json.loads(res.stdout)
    assert out["rate_limit"] is None and out["keys"][0]["sources"] == ["192.0.2.0/24"]
    res = runner.invoke(consumers_app, ["rotate", "tax_bureau", "--expires", "2100-01-01"])
    assert res.exit_code == 0, res.output
    (listed,) = [json.loads(line) for line in runner.invoke(consumers_app, ["list"]).stdout.splitlines()]
    assert [(k["revoked"], k["sources"], k["expires_at"]) for k in listed["keys"]] == [
        (True, ["192.0.2.0/24"], None), (False, ["192.0.2.0/24"], "2100-01-01T16:00:00+00:00")]  # fmt: skip

    assert runner.invoke(consumers_app, ["limits", "tax_bureau", "--source", "10.1.2.5/24"]).exit_code == 1
    assert runner.invoke(consumers_app, ["limits", "tax_bureau", "--expires", "2001-01-01"]).exit_code == 1
    assert runner.invoke(consumers_app, ["limits", "tax_bureau", "--rate-limit", "-1"]).exit_code == 1
    assert runner.invoke(consumers_app, ["limits", "tax_bureau", "--source", "x", "--any-source"]).exit_code == 1
    assert runner.invoke(consumers_app, ["add", "x", "-s", "licenses:verify", "--source", "nonsense"]).exit_code == 1
