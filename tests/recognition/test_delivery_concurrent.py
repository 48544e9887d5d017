"""Two delivery workers at once against one PostgreSQL database: no event is delivered twice per
idempotency key, and none is lost.

The overlaps are forced, not hoped for: worker A stops inside its fan-out transaction until
PostgreSQL shows worker B blocked behind it; then A stops inside its pushes (the receiver holds
A's requests) while B runs a whole round. A real local webhook receiver counts what arrives by
the ``webhook-id`` header (the idempotency key).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.db import make_engine, session_scope
from hub.outbox import emit_many
from recognition import audit
from recognition import delivery as dlv
from recognition import subscriptions as subs_mod
from recognition.consumers import add_consumer
from recognition.tables import Delivery
from tests.recognition.rec_helpers import allow_destination

WAIT_SECONDS = 60
EVENTS = 12
POLICY = dlv.DeliveryPolicy(concurrency=4, max_attempts=3, backoff_base=0.0, backoff_max=0.0)


class GatedReceiver:
    """A webhook receiver on a local port: counts every POST by ``webhook-id``; while ``gate``
    is clear it holds each request open (the sender waits for its answer)."""

    def __init__(self) -> None:
        self.arrived: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.arrived[self.headers.get("webhook-id", "")] += 1
                receiver.gate.wait(WAIT_SECONDS)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def total(self) -> int:
        with self.lock:
            return sum(self.arrived.values())

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def gated() -> Iterator[GatedReceiver]:
    r = GatedReceiver()
    yield r
    r.close()


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


def _blocked_backends(engine: Engine) -> int:
    with engine.connect() as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        return int(conn.scalar(sa.text(query)) or 0)


def _emit(engine: Engine, first: int) -> list[str]:
    keys = [f"evt-conc-{i:03d}" for i in range(first, first + EVENTS)]
    events = [
        {"event_type": "license.issued", "subject": f"lic-{k}", "payload": {"license_type_code": "1101"},
         "idempotency_key": k, "holder_code": f"9133032200000{i:05d}", "license_type_code": "1101"}
        for i, k in enumerate(keys, start=first)
    ]  # fmt: skip
    with session_scope(engine) as s:
        emit_many(s, events)
    return keys


def _run(engine: Engine, outcome: dict[str, Any], name: str) -> None:
    try:
        outcome[name] = dlv.run_once(engine, policy=POLICY)
    except BaseException as exc:
        outcome[f"{name}_error"] = exc


def _drain(engine: Engine) -> None:
    for _ in range(10):
        rep = dlv.run_once(engine, policy=POLICY)
        if rep.attempted == 0 and rep.fanned_out == 0:
            return


@pytest.mark.postgres
def test_two_delivery_workers_at_once_deliver_each_key_once(
    pg_hub_db_url: str, gated: GatedReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    engines = [make_engine(pg_hub_db_url) for _ in range(3)]  # worker A, worker B, the observer
    a, b, observer = engines
    with session_scope(observer) as s:
        consumer = add_consumer(s, "dept", ["licenses:read:1101"])[0]
    allow_destination(observer, "dept", gated.url.removesuffix("hook"))
    with session_scope(observer) as s:
        subs_mod.create(s, name="conc", event_types=["license.issued"], url=gated.url, license_types=["1101"],
                        consumer_id=consumer.id)  # fmt: skip
    threads: list[threading.Thread] = []
    try:
        # 1. fan-out at once: A holds its fan-out transaction open until B is seen waiting behind it
        keys = _emit(observer, 0)
        fanned, release_a = threading.Event(), threading.Event()
        original = dlv.fan_out

        def fan_out_then_hold(session: Session, **kw: Any) -> tuple[int, int]:
            out = original(session, **kw)
            if threading.current_thread().name == "worker-a":
                fanned.set()
                release_a.wait(WAIT_SECONDS)
            return out

        monkeypatch.setattr(dlv, "fan_out", fan_out_then_hold)
        outcome: dict[str, Any] = {}
        threads = [threading.Thread(target=_run, args=(a, outcome, "a"), name="worker-a")]
        threads[0].start()
        assert fanned.wait(WAIT_SECONDS)
        threads.append(threading.Thread(target=_run, args=(b, outcome, "b"), name="worker-b"))
        threads[1].start()
        _until(lambda: _blocked_backends(observer) >= 1, "worker B's fan-out blocked behind worker A's")
        release_a.set()
        for t in threads:
            t.join(WAIT_SECONDS)
        assert "a_error" not in outcome and "b_error" not in outcome, outcome
        assert outcome["a"].created + outcome["b"].created == EVENTS
        monkeypatch.setattr(dlv, "fan_out", original)
        _drain(a)
        assert gated.arrived == Counter(keys)

        # 2. pushes at once: A's requests are held open by the receiver while B runs a whole round
        gated.gate.clear()
        more = _emit(observer, EVENTS)
        outcome = {}
        threads = [threading.Thread(target=_run, args=(a, outcome, "a"), name="worker-a")]
        threads[0].start()
        _until(lambda: gated.total() > EVENTS, "worker A pushing")
        threads.append(threading.Thread(target=_run, args=(b, outcome, "b"), name="worker-b"))
        threads[1].start()
        # B either finishes its round or sends something A is already sending (held like A's)
        _until(lambda: not threads[1].is_alive() or gated.total() > EVENTS + POLICY.concurrency, "worker B's round")
        gated.gate.set()
        for t in threads:
            t.join(WAIT_SECONDS)
        assert "a_error" not in outcome and "b_error" not in outcome, outcome
        _drain(b)
        assert gated.arrived == Counter(keys + more)  # every key once: none twice, none lost
        with observer.connect() as conn:
            statuses = conn.execute(sa.select(Delivery.status, sa.func.count()).group_by(Delivery.status)).all()
        assert [tuple(r) for r in statuses] == [(dlv.DELIVERED, 2 * EVENTS)]
        report = audit.verify(observer)
        assert report.ok, report.problems
    finally:
        for t in threads:
            t.join(WAIT_SECONDS)
        for engine in engines:
            engine.dispose()
