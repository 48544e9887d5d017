"""Push throughput: outbox events → signed webhooks to a local receiver, at least once, in order per holder.

Writes N events for many holders to the outbox, subscribes a receiver running in its own
process (uvicorn), and runs the delivery worker until every delivery is confirmed. Prints
the hub's deliveries/s beside the receiver's own count of messages and distinct
``webhook-id`` s (signatures checked by the receiver), and the rate of bare signed POSTs
from the same sender at the same concurrency (the transport's ceiling).

Target: ≥ 500 deliveries/s. ``--smoke``: 300 events, no target.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

TARGET = 500.0
SECRET_ENV = "HUB_BENCH_WEBHOOK_SECRET"

# -- the receiver (runs in its own process: ``uvicorn bench.bench_push:receiver_app``) ------------------
_seen: set[str] = set()
_count = {"received": 0, "bad_signature": 0}


async def receiver_app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    """A minimal ASGI webhook receiver: verifies the signature, counts messages and distinct ids."""
    from connectors.webhook import WebhookVerificationError, verify

    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "GET":
        payload = json.dumps({**_count, "unique": len(_seen)}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})
        return
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    try:
        verify(os.environ[SECRET_ENV], headers, body)
    except WebhookVerificationError:
        _count["bad_signature"] += 1
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    _count["received"] += 1
    _seen.add(headers["webhook-id"])
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _counts(port: int) -> dict[str, int]:
    import httpx

    result: dict[str, int] = httpx.get(f"http://127.0.0.1:{port}/count", timeout=5).json()
    return result


def _wait_up(port: int) -> None:
    import httpx

    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            _counts(port)
            return
        except httpx.HTTPError:
            time.sleep(0.1)  # polling with a deadline
    raise RuntimeError("receiver did not start")


def write_events(url: str, n: int, holders: int) -> None:
    from sqlalchemy import insert

    from hub.db import make_engine
    from hub.models import OutboxEvent, utcnow

    engine = make_engine(url)
    now = utcnow()
    rows = [
        {
            "event_type": "license.issued" if i < holders else "license.amended",
            "subject": f"1101-113303220025678912-{i % holders:013d}",
            "holder_code": f"91330322{i % holders:010d}",
            "region_code": "330322",
            "license_type_code": "1101",
            "payload": {
                "license_id": f"1101-113303220025678912-{i % holders:013d}",
                "version": i // holders + 1,
                "holder_code": f"91330322{i % holders:010d}",
                "holder_kind": "enterprise",
                "status": "valid",
            },
            "idempotency_key": f"bench:{i}",
            "created_at": now,
        }
        for i in range(n)
    ]
    with engine.begin() as conn:
        for start in range(0, n, 5000):
            conn.execute(insert(OutboxEvent), rows[start : start + 5000])
    engine.dispose()


def bare_posts(port: int, secret: str, n: int, concurrency: int) -> float:
    """The peer: the same signed POSTs with the same sender and threads, no database, no bookkeeping."""
    from connectors.egress import DestinationPolicy
    from connectors.webhook import WebhookSender

    sender = WebhookSender(max_connections=concurrency)
    body = json.dumps({"type": "license.issued", "data": {"x": 1}}).encode()
    url = f"http://127.0.0.1:{port}/hook"
    policy = DestinationPolicy.declared(url)  # the loopback receiver, as an operator declares it
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda i: sender.send(url, secret, f"bare:{i}", body, policy=policy).ok, range(n)))
    elapsed = time.perf_counter() - started
    sender.close()
    assert all(results)
    return n / elapsed


def run(events: int, holders: int, concurrency: int) -> dict[str, Any]:
    """The figures: ``events`` outbox events delivered to a webhook receiver (rate, delivered, failed, dead),
    what the receiver counted (received, distinct webhook-ids, bad signatures), the peer's bare signed
    POSTs per second, and the audit chain's verification."""
    from connectors.webhook import generate_secret
    from hub.db import make_engine, migrate, session_scope
    from recognition import audit
    from recognition import delivery as dlv
    from recognition import subscriptions as subs_mod

    work = Path(tempfile.mkdtemp(prefix="bench_push_"))
    url = f"sqlite:///{work / 'hub.db'}"
    migrate(url)
    secret = generate_secret()
    os.environ[SECRET_ENV] = secret
    port = _free_port()
    repo = Path(__file__).resolve().parent.parent
    receiver = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.bench_push:receiver_app", "--port", str(port), "--log-level",
         "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools"],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    try:
        _wait_up(port)
        engine = make_engine(url)
        with session_scope(engine) as s:
            sub = subs_mod.create(s, name="bench receiver", event_types=["license.issued", "license.amended"],
                                  url=f"http://127.0.0.1:{port}/hook", from_event_id=0)  # fmt: skip
            sub.secret, sub.secret_env = None, SECRET_ENV
        write_events(url, events, holders)
        policy = dlv.DeliveryPolicy(max_attempts=8, backoff_base=0.5, batch_size=2000, concurrency=concurrency)
        stop = threading.Event()
        total = dlv.RunReport()
        started = time.perf_counter()
        deadline = started + 600

        def on_round(rep: dlv.RunReport) -> None:
            nonlocal total
            total = total + rep
            if total.delivered >= events or time.perf_counter() > deadline:
                stop.set()

        dlv.run_loop(engine, policy=policy, stop=stop, idle_wait=0.05, on_round=on_round)
        elapsed = time.perf_counter() - started
        counts = _counts(port)
        bare = bare_posts(port, secret, min(events, 5000), concurrency)
        report = audit.verify(engine)
        engine.dispose()
    finally:
        receiver.terminate()
        receiver.wait(timeout=30)
    rate = total.delivered / elapsed
    ok = total.delivered == events and counts["unique"] == events and counts["bad_signature"] == 0 and report.ok
    return {
        "events": events,
        "holders": holders,
        "concurrency": concurrency,
        "rate": rate,
        "delivered": total.delivered,
        "failed": total.failed,
        "dead": total.dead,
        "received": counts["received"],
        "unique": counts["unique"],
        "bad_signature": counts["bad_signature"],
        "bare_rate": bare,
        "bare_posts": min(events, 5000),
        "audit_ok": report.ok,
        "audit_checked": report.checked,
        "ok": ok,
        "met": ok and rate >= TARGET,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_push")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--holders", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.holders = 300, 60
    f = run(args.events, args.holders, args.concurrency)
    rate = f["rate"]
    print(f"events: {args.events:,}  holders: {args.holders:,}  sender threads: {args.concurrency}")
    print(f"{'':40}{'per second':>12}{'count':>10}")
    print(f"{'hub deliveries (outbox → webhook)':40}{rate:>12,.0f}{f['delivered']:>10,}")
    print(f"{'receiver: messages received':40}{'':>12}{f['received']:>10,}")
    print(f"{'receiver: distinct webhook-ids':40}{'':>12}{f['unique']:>10,}")
    print(f"{'bare signed POSTs, same sender (peer)':40}{f['bare_rate']:>12,.0f}{f['bare_posts']:>10,}")
    print(f"failed attempts: {f['failed']}, dead letters: {f['dead']}, bad signatures: {f['bad_signature']}, "
          f"audit chain ok: {f['audit_ok']} ({f['audit_checked']:,} entries)")  # fmt: skip
    if args.smoke:
        return 0 if f["ok"] else 1
    print(f"target ≥ {TARGET:,.0f} deliveries/s: {'met' if rate >= TARGET else 'MISSED'}")
    return 0 if f["met"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
