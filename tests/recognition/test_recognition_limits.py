"""Rate limits through the API: per consumer, per client address before authentication, trusted proxies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hub.db import make_engine, session_scope
from hub.settings import get_settings
from recognition.app import create_app
from recognition.config import RecognitionSettings
from recognition.consumers import add_consumer
from recognition.directory import LicenseDirectory
from tests.recognition.rec_helpers import USCC, World, auth

ROOT = Path(__file__).resolve().parents[2]
PATH = f"/v1/holders/{USCC}/licenses"


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _settings(**limits: object) -> RecognitionSettings:
    base: dict[str, object] = {"api_key_cache_seconds": 300.0, "rate_limit_key_rate": 0, "rate_limit_address_rate": 0}
    return RecognitionSettings(**{**base, **limits})  # type: ignore[arg-type]


@contextmanager
def _app(world: World, config: RecognitionSettings, clock: Clock) -> Iterator[FastAPI]:
    app = create_app(get_settings(), engine=world.engine, directory=LicenseDirectory(world.store, world.keyring),
                     config=config, audit_process=False)  # fmt: skip
    app.state.ctx.gate.clock = clock
    yield app


def _client(app: FastAPI, address: str = "192.0.2.10") -> TestClient:
    return TestClient(app, raise_server_exceptions=False, client=(address, 40000))


def test_429_with_retry_after_when_key_exceeds_rate(world: World, tokens: dict[str, str]) -> None:
    clock = Clock()
    with _app(world, _settings(rate_limit_key_rate=1.0, rate_limit_key_burst=3), clock) as app, _client(app) as c:
        assert [c.get(PATH, headers=auth(tokens["portal"])).status_code for _ in range(3)] == [200, 200, 200]
        refused = c.get(PATH, headers=auth(tokens["portal"]))
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["code"] == "rate_limited" and refused.json()["status"] == 429
        assert c.get(PATH, headers=auth(tokens["admin"])).status_code == 200  # another consumer, its own counter
        clock.now += 1.0
        assert c.get(PATH, headers=auth(tokens["portal"])).status_code == 200
        assert c.get(PATH, headers=auth(tokens["portal"])).status_code == 429
        metrics = c.get("/metrics", headers=auth(tokens["monitor"])).text
    assert 'hub_api_throttled_total{limit="consumer"} 2.0' in metrics


def test_consumer_limit_replaces_the_default_and_zero_is_unthrottled(world: World) -> None:
    with session_scope(world.engine) as s:
        slow = add_consumer(s, "slow", ["licenses:read:*"], rate_limit=0.5, rate_burst=2)[1]
        free = add_consumer(s, "loadgen", ["licenses:read:*"], rate_limit=0)[1]
    clock = Clock()
    with _app(world, _settings(rate_limit_key_rate=100.0, rate_limit_key_burst=100), clock) as app, _client(app) as c:
        assert [c.get(PATH, headers=auth(slow)).status_code for _ in range(3)] == [200, 200, 429]
        assert c.get(PATH, headers=auth(slow)).headers["retry-after"] == "2"  # one request every 2 s
        assert {c.get(PATH, headers=auth(free)).status_code for _ in range(150)} == {200}


def test_flood_of_bad_keys_from_one_address_is_throttled(world: World, tokens: dict[str, str]) -> None:
    clock = Clock()
    config = _settings(rate_limit_address_rate=1.0, rate_limit_address_burst=5, rate_limit_trusted="198.51.100.0/24")
    bad = {"Authorization": "Bearer hub_kdeadbeef0000_nonsense"}
    with _app(world, config, clock) as app:
        with _client(app, "203.0.113.9") as flood:
            assert [flood.get(PATH, headers=bad).status_code for _ in range(5)] == [401] * 5
            refused = flood.get(PATH, headers=bad)
            assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
            assert flood.get(PATH, headers=auth(tokens["portal"])).status_code == 429  # a good key, same address
            assert flood.get("/healthz").status_code == 429  # before routing: every path counts
        with _client(app, "203.0.113.10") as other:
            assert other.get(PATH, headers=auth(tokens["portal"])).status_code == 200
        with _client(app, "198.51.100.7") as trusted:  # HUB_RATE_LIMIT_TRUSTED: never counted
            assert {trusted.get(PATH, headers=bad).status_code for _ in range(20)} == {401}


def test_forwarded_for_is_believed_only_from_trusted_proxies(world: World, tokens: dict[str, str]) -> None:
    clock = Clock()
    config = _settings(rate_limit_address_rate=1.0, rate_limit_address_burst=2, trusted_proxies="10.0.0.0/8")
    key = auth(tokens["portal"])
    with _app(world, config, clock) as app:
        with _client(app, "10.0.0.1") as proxy:
            client_a = {**key, "X-Forwarded-For": "203.0.113.5"}
            assert [proxy.get(PATH, headers=client_a).status_code for _ in range(3)] == [200, 200, 429]
            # another client behind the same proxy has its own counter; a spoofed entry left of it changes nothing
            client_b = {**key, "X-Forwarded-For": "203.0.113.5, 203.0.113.6"}
            assert [proxy.get(PATH, headers=client_b).status_code for _ in range(3)] == [200, 200, 429]
        with _client(app, "198.51.100.1") as direct:  # not a proxy: its header is ignored, its own address counts
            codes = [direct.get(PATH, headers={**key, "X-Forwarded-For": f"203.0.113.{i}"}).status_code
                     for i in range(20, 23)]  # fmt: skip
            assert codes == [200, 200, 429]


def test_unreachable_redis_closed_refuses_with_503(world: World, tokens: dict[str, str]) -> None:
    config = _settings(rate_limit_url="redis://127.0.0.1:9/0", rate_limit_on_backend_error="closed",
                       rate_limit_key_rate=10.0, rate_limit_key_burst=10)  # fmt: skip
    with _app(world, config, Clock()) as app, _client(app) as c:
        res = c.get(PATH, headers=auth(tokens["portal"]))
        assert res.status_code == 503 and res.json()["code"] == "rate_limit_unavailable"
        assert res.headers["retry-after"] == "1"


def test_unreachable_redis_local_keeps_limiting_per_process(world: World, tokens: dict[str, str]) -> None:
    config = _settings(rate_limit_url="redis://127.0.0.1:9/0", rate_limit_key_rate=1.0, rate_limit_key_burst=2)
    with _app(world, config, Clock()) as app, _client(app) as c:
        assert [c.get(PATH, headers=auth(tokens["portal"])).status_code for _ in range(3)] == [200, 200, 429]
        assert (
            "hub_rate_limit_backend_failures 1.0" in c.get("/metrics", headers=auth(tokens["monitor"])).text
        )  # tried again only after a second


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_two_workers_shares_one_consumer_counter(hub_db_url: str, tmp_path: Path) -> None:
    """`hub serve --workers 2`: 30 requests on new connections (spread over both workers) and a burst of 10
    with no refill: exactly 10 pass. Counters per process would let up to 20 through."""
    engine = make_engine(hub_db_url)
    with session_scope(engine) as s:
        token = add_consumer(s, "portal", ["licenses:read:*"], rate_limit=0.001, rate_burst=10)[1]
    engine.dispose()
    port = _free_port()
    env = {**os.environ, "HUB_DB_URL": hub_db_url, "HUB_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT),
           "HUB_RATE_LIMIT_ADDRESS_RATE": "0"}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "recognition.serve", "--port", str(port), "--workers", "2"], env=env, cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:  # polling with a deadline until both workers answer, not a fixed wait
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)
        codes = [
            httpx.get(f"http://127.0.0.1:{port}{PATH}", headers=auth(token), timeout=10).status_code for _ in range(30)
        ]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert codes.count(200) == 10 and codes.count(429) == 20, codes


@pytest.mark.redis
def test_429_when_key_exceeds_rate_on_redis_counters(
    world: World, tokens: dict[str, str], redis_prefix: tuple[str, str]
) -> None:
    import redis

    url, prefix = redis_prefix
    # Redis given time to answer on a loaded machine: no request falls back to this process's own counters
    config = _settings(rate_limit_url=url, rate_limit_prefix=prefix, rate_limit_key_rate=1.0, rate_limit_key_burst=2,
                       rate_limit_timeout=5.0)  # fmt: skip
    with _app(world, config, Clock()) as app, _client(app) as c:
        assert [c.get(PATH, headers=auth(tokens["portal"])).status_code for _ in range(3)] == [200, 200, 429]
    counters = redis.Redis.from_url(url).keys(prefix + "*")
    assert counters == [(prefix + "c:" + app.state.ctx.principal(tokens["portal"]).consumer_id).encode()]
