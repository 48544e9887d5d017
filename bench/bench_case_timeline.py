"""A case's timeline by its supervision code through the API (``GET /v1/cases/{code}``), audited, beside a
direct read of the same timeline in the database.

Target (the case-repository issue), on the embedded default (SQLite): p99 ≤ 25 ms at 16 connections
with 1,000,000 cases and 10,000,000 steps, load from ``wrk``, every answer audited. The API runs as
``hub serve`` runs it (its own processes, workers and audit process). The peer builds the same
answer in-process (``cases.views.case_out``: the case, its log placed on the timeline, stages,
clocks, materials), with no HTTP, no authentication and no audit.

    python -m bench case_timeline [--smoke] [--cases N] [--steps-per-case K] [--connections 8,16,32]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_api import WRK_SCRIPT, _free_port, _wait_http, run_wrk
from bench.bench_case_steps import DEPARTMENTS, STEPS, _ts, load_cases

TARGET_P99_MS = 25.0
TARGET_CONNECTIONS = 16


def load_steps(path: Path, codes: list[str], per_case: int) -> int:
    """``per_case`` logged steps of every case, written straight into the step log (the fixture, not the
    thing measured)."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    recorded = _ts(dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    total = 0
    batch: list[tuple[Any, ...]] = []
    for case_id, code in enumerate(codes, start=1):
        day = dt.datetime(int(code[6:10]), int(code[10:12]), int(code[12:14]), 1, tzinfo=dt.UTC)
        for k in range(per_case):
            seq = k // len(DEPARTMENTS) + 1
            at = _ts(day + dt.timedelta(hours=2 + 3 * seq, minutes=k))
            batch.append((case_id, DEPARTMENTS[k % len(DEPARTMENTS)], seq, STEPS[(seq - 1) % len(STEPS)], at,
                          recorded, "bench", None, "{}", 0, "0" * 64))  # fmt: skip
        if len(batch) >= 100_000:
            total += _write_steps(con, batch)
    total += _write_steps(con, batch)
    con.execute("ANALYZE")
    con.commit()
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    return total


def _write_steps(con: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> int:
    con.executemany(
        "INSERT INTO case_step (case_id, department, seq, step, occurred_at, recorded_at, actor, note, detail, "
        "arrived_out_of_order, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        batch,
    )
    n = len(batch)
    batch.clear()
    return n


def direct_reads(url: str, codes: list[str], seconds: float) -> tuple[float, float, int]:
    """The peer: the same answer built in-process; (reads/s, p99 ms, reads)."""
    from cases.service import find_case
    from cases.views import case_out
    from hub.db import make_engine, session_factory

    engine = make_engine(url)
    sessions = session_factory(engine)
    rng = random.Random(7)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        code = rng.choice(codes)
        t0 = time.perf_counter()
        with sessions() as s:
            out = case_out(s, find_case(s, code), personal=False)
        latencies.append(time.perf_counter() - t0)
        assert out.timeline, code
    engine.dispose()
    latencies.sort()
    return len(latencies) / sum(latencies), latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000, len(latencies)


def run(
    cases: int, per_case: int, *, seconds: int, levels: list[int], workers: int = 2, work: Path | None = None
) -> dict[str, Any]:
    """Fill the case repository under ``work`` (default: a new temporary directory), drive the API with
    wrk at each level, read directly; the figures."""
    from sqlalchemy import func, select

    from hub.db import make_engine, migrate, session_scope
    from recognition import audit
    from recognition.consumers import add_consumer
    from recognition.tables import AuditEntry

    work = work or Path(tempfile.mkdtemp(prefix="bench_case_timeline_"))
    db = work / "hub.db"
    url = f"sqlite:///{db}"
    migrate(url)
    started = time.perf_counter()
    codes = load_cases(db, cases)
    steps = load_steps(db, codes, per_case)
    load_s = time.perf_counter() - started
    rng = random.Random(11)
    sample = [rng.choice(codes) for _ in range(20_000)]
    codes_file = work / "codes.txt"
    codes_file.write_text("\n".join(sample) + "\n")
    engine = make_engine(url)
    with session_scope(engine) as s:
        token = add_consumer(s, f"bench-{os.getpid()}", ["cases:read"], rate_limit=0)[1]
    port = _free_port()
    env = {**os.environ, "HUB_DB_URL": url, "HUB_HOME": str(work), "HUB_API_KEY_CACHE_SECONDS": "5",
           "HUB_RATE_LIMIT_TRUSTED": "127.0.0.1/32"}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "recognition.serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    runs = []
    try:
        _wait_http(port)
        script = work / "timeline.lua"
        script.write_text(WRK_SCRIPT % {"codes": codes_file, "seed": 5, "token": token, "prefix": "/v1/cases/",
                                        "suffix": ""})  # fmt: skip
        for connections in levels:
            run_wrk(port, script, 1, connections)  # warm-up
            with engine.connect() as conn:
                before = int(conn.scalar(select(func.count()).select_from(AuditEntry)) or 0)
            rps, p99, requests, non2xx = run_wrk(port, script, seconds, connections)
            with engine.connect() as conn:
                after = int(conn.scalar(select(func.count()).select_from(AuditEntry)) or 0)
            runs.append({"connections": connections, "rps": rps, "p99_ms": p99, "requests": requests,
                         "non2xx": non2xx, "audited": after - before})  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    d_rps, d_p99, d_n = direct_reads(url, sample, max(1.0, seconds / 3))
    report = audit.verify(engine)
    engine.dispose()
    return {
        "cases": cases, "steps": steps, "load_s": load_s, "runs": runs, "direct_rps": d_rps, "direct_p99_ms": d_p99,
        "direct_reads": d_n, "audit_ok": report.ok, "audit_checked": report.checked,
    }  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench case_timeline")
    parser.add_argument("--smoke", action="store_true", help="tiny run; target not evaluated")
    parser.add_argument("--cases", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--steps-per-case", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", default="8,16,32")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    cases = args.cases or (2_000 if args.smoke else 1_000_000)
    seconds = 2 if args.smoke else args.seconds
    levels = [8] if args.smoke else [int(c) for c in args.connections.split(",") if c.strip()]
    f = run(cases, args.steps_per_case, seconds=seconds, levels=levels, workers=args.workers)
    load = os.getloadavg()
    print(f"{f['cases']:,} cases, {f['steps']:,} steps (loaded in {f['load_s']:.1f}s); API workers {args.workers}; "
          f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'':46}{'requests/s':>12}{'p99 ms':>10}{'requests':>10}{'audited':>10}")
    for r in f["runs"]:
        label = f"GET /v1/cases/{{code}}, wrk {r['connections']} conn."
        print(f"{label:46}{r['rps']:>12,.0f}{r['p99_ms']:>10.2f}{r['requests']:>10,}{r['audited']:>10,}")
    print(
        f"{'direct case_out() (peer)':46}{f['direct_rps']:>12,.0f}{f['direct_p99_ms']:>10.2f}{f['direct_reads']:>10,}"
    )
    complete = all(r["audited"] >= r["requests"] and r["non2xx"] == 0 for r in f["runs"])
    print(f"every request answered 2xx and audited: {complete}; audit chain ok: {f['audit_ok']} "
          f"({f['audit_checked']:,} entries)")  # fmt: skip
    ok = complete and f["audit_ok"]
    if args.smoke:
        return 0 if ok else 1
    at = [r for r in f["runs"] if r["connections"] == TARGET_CONNECTIONS]
    met = bool(at) and at[0]["p99_ms"] <= TARGET_P99_MS
    print(f"target p99 ≤ {TARGET_P99_MS} ms at {TARGET_CONNECTIONS} connections: {'met' if met else 'MISSED'}")
    return 0 if ok and met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
