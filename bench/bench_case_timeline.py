"""A case's timeline by its supervision code through the API (``GET /v1/cases/{code}``), audited, beside a
direct read of the same timeline in the database.

Target (the case-repository issue), on the embedded default (SQLite): p99 ≤ 25 ms at 16 connections
with 1,000,000 cases and 10,000,000 steps, load from ``wrk``, every answer audited. The API runs as
``hub serve`` runs it (its own processes, workers and audit process); the run starts once every
worker answers. The peer reads the same timeline straight from the database in-process, as the API
does (:func:`recognition.case_reads.case_rows` on a DBAPI connection, then
:func:`cases.views.render` and the JSON), with no HTTP, no authentication and no audit. Printed
beside each: the CPU time per request of the API's processes (workers and audit) and of the peer,
and wrk's timeouts (answers later than 2 s, which wrk leaves out of its p99).

The repository is written in bulk in the shape the hub leaves it (:func:`build_repository`);
``--work DIR`` keeps it there, and a later run with the same sizes reads it again.

    python -m bench case_timeline [--smoke] [--cases N] [--steps-per-case K] [--connections 8,16,32] [--work DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_api import WRK_SCRIPT, _free_port, _wait_http
from bench.bench_case_steps import DEPARTMENTS, RECEIVED, STEPS, _ts

TARGET_P99_MS = 25.0
TARGET_CONNECTIONS = 16
WINDOW = "window"
#: every step of a case on the day it was received (:func:`_step_plan`)
MAX_STEPS_PER_CASE = 60


#: the joint registration's materials as intake records them when no holder authorised the use of
#: their licences: the two licence materials asked on paper (code, name, holder, licence type, provision)
MATERIALS = (
    ("M01", "公司登记（备案）申请书", "applicant", None, "upload"),
    ("M02", "公司章程", "applicant", None, "upload"),
    ("M03", "法定代表人身份证件", "legal_representative", "1201", "paper"),
    ("M04", "住所使用证明", "applicant", "2101", "paper"),
    ("M05", "指定代表或者共同委托代理人授权委托书", "applicant", None, "paper"),
    ("M06", "印章印模", "applicant", None, "upload"),
)
CASE_COLUMNS = (
    "id, code, item_code, item_name, implementation_code, lead_department, region_code, statutory_days, "
    "promised_days, received_by, received_at, received_on, intake_outcome, outcome_detail, status, applicant_kind, "
    "applicant_code, applicant_identity, applicant_name, applicant_phone, applicant_address, agent, parties, "
    "delivery_method, delivery_address, subject, intake_fingerprint, created_by, updated_at"
)
STEP_COLUMNS = (
    "id, case_id, department, seq, step, occurred_at, recorded_at, actor, note, detail, arrived_out_of_order, "
    "fingerprint"
)
MATERIAL_COLUMNS = (
    "id, case_id, material_code, name, required, holder_role, license_type_code, provision, license_id, "
    "license_version, found_by, promised_by, updated_at"
)
DISPATCH_COLUMNS = (
    'id, case_id, department, stage_name, "after", statutory_days, promised_days, status, created_at, dispatched_at'
)
#: secondary indexes of the step log, built once after the load (the unique key stays: SQLite keeps it
#: with the table)
_STEP_INDEXES = ("ix_case_step_case_time",)


def _step_plan(per_case: int) -> list[tuple[str, int, str, str, str]]:
    """A case's steps in the order the hub logs them: (department, seq, step, detail, time of day).

    The window's two (received, accepted) at intake, then the departments' in turn. Every step of a
    case falls on the day it was received, so its time of day is the same for every case."""
    plan = [(WINDOW, 1, "received", "{}", "01:00:00"), (WINDOW, 2, "accepted", '{"outcome":"accepted"}', "01:00:00")]
    for k in range(max(per_case - 2, 0)):
        seq = k // len(DEPARTMENTS) + 1
        plan.append((DEPARTMENTS[k % len(DEPARTMENTS)], seq, STEPS[(seq - 1) % len(STEPS)], "{}",
                     f"{2 + k // 3:02d}:{k % 3 * 10:02d}:00"))  # fmt: skip
    return plan[:per_case]


def build_repository(path: Path, cases: int, per_case: int, *, seed: int = 20261102) -> tuple[list[str], int]:
    """``cases`` accepted joint-registration cases (多证联办) with ``per_case`` logged steps each, written
    straight into the case repository's tables with the rows intake and step reports write (the
    fixture, not the thing measured); their codes and the number of steps.

    Per case, as :func:`cases.intake.take_in` leaves it: the case row, its six materials (the two
    licence materials asked on paper), one dispatch per department (commerce leads, tax and public
    security after it), the window's received and accepted steps; then the departments' steps. The
    step log is written in the order the hub appends to it — step by step across all cases, not
    case by case — so a case's steps lie apart in the table as they do after weeks of reports.
    Not written: the outbox events, clocks and audit entries of those writes (the timeline reads none
    of them). Rows go in through ``executemany`` from generators, with the step log's secondary
    index built after the load.
    """
    from identifiers import supervision_code

    rnd = random.Random(seed)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-1000000")  # 1 GB: the unique keys' B-trees stay in memory
    con.execute("PRAGMA temp_store=MEMORY")
    days: list[str] = []
    codes: list[str] = []
    seen: set[str] = set()
    for i in range(1, cases + 1):
        day = RECEIVED.date() - dt.timedelta(days=i % 300)
        code = supervision_code.generate("330322", day, rng=rnd)
        while code in seen:
            code = supervision_code.generate("330322", day, rng=rnd)
        seen.add(code)
        codes.append(code)
        days.append(day.isoformat())
    seen.clear()
    now = _ts(RECEIVED)
    con.executemany(
        f"INSERT INTO case_record ({CASE_COLUMNS}) VALUES ({', '.join('?' * 29)})",
        ((i, code, "XK00101001", "企业设立登记（多证联办）", "x", "commerce", "330322", 20, 3, "window",
          f"{day} 01:00:00.000000", day, "accepted", "{}", "in_progress", "person", "P", "I", "N", None, None, None,
          None, "window", None, None, "f", "bench", now)
         for i, (code, day) in enumerate(zip(codes, days, strict=True), start=1)),
    )  # fmt: skip
    con.executemany(
        f"INSERT INTO case_material ({MATERIAL_COLUMNS}) VALUES ({', '.join('?' * 13)})",
        ((len(MATERIALS) * (i - 1) + k + 1, i, m[0], m[1], 1, m[2], m[3], m[4], None, None, None, None, now)
         for i in range(1, cases + 1) for k, m in enumerate(MATERIALS)),
    )  # fmt: skip
    con.executemany(
        f"INSERT INTO case_dispatch ({DISPATCH_COLUMNS}) VALUES ({', '.join('?' * 10)})",
        ((len(DEPARTMENTS) * (i - 1) + k + 1, i, dept, "stage", "[]" if dept == "commerce" else '["commerce"]', 5, 1,
          "dispatched", f"{days[i - 1]} 01:00:00.000000", f"{days[i - 1]} 01:00:00.000000")
         for i in range(1, cases + 1) for k, dept in enumerate(DEPARTMENTS)),
    )  # fmt: skip
    for name in _STEP_INDEXES:
        con.execute(f"DROP INDEX IF EXISTS {name}")
    plan = _step_plan(per_case)
    fingerprint = "0" * 64

    def steps() -> Any:
        n = 0
        for dept, seq, step, detail, clock in plan:
            for i in range(1, cases + 1):
                n += 1
                at = f"{days[i - 1]} {clock}.000000"
                yield (n, i, dept, seq, step, at, at, "bench", None, detail, 0, fingerprint)

    con.executemany(f"INSERT INTO case_step ({STEP_COLUMNS}) VALUES ({', '.join('?' * 12)})", steps())
    con.execute("CREATE INDEX ix_case_step_case_time ON case_step (case_id, occurred_at)")
    con.execute("ANALYZE")
    con.commit()
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    return codes, cases * len(plan)


def direct_reads(url: str, codes: list[str], seconds: float) -> tuple[float, float, float, int]:
    """The peer: the same answer built in-process from a direct read of the database, as the API
    reads it (:func:`recognition.case_reads.case_rows` on one DBAPI connection, then
    :func:`cases.views.render`), without HTTP, authentication and audit; (reads/s, p99 ms, CPU ms
    per read, reads)."""
    from cases.views import render
    from hub.db import make_engine
    from recognition.case_reads import case_rows

    engine = make_engine(url)
    conn = engine.raw_connection()
    rng = random.Random(7)
    latencies: list[float] = []
    cpu = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        code = rng.choice(codes)
        t0 = time.perf_counter()
        rows = case_rows(conn, engine.dialect, code)
        conn.rollback()
        assert rows is not None, code
        out = render(rows, personal=False)
        out.model_dump_json()
        latencies.append(time.perf_counter() - t0)
        assert out.timeline, code
    cpu = time.process_time() - cpu
    conn.close()
    engine.dispose()
    latencies.sort()
    p99 = latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000
    return len(latencies) / sum(latencies), p99, cpu / len(latencies) * 1000, len(latencies)


#: bench_api's wrk script, its summary line also naming the requests wrk gave up on (no answer within
#: its 2-second timeout: left out of its latency percentiles, so counted here)
TIMELINE_WRK = WRK_SCRIPT.replace("non2xx=%%d\\n", "non2xx=%%d timeouts=%%d\\n").replace(
    "summary.errors.status))", "summary.errors.status, summary.errors.timeout))"
)


def run_wrk(port: int, script: Path, seconds: int, connections: int) -> tuple[float, float, int, int, int]:
    """One wrk run: requests/s, p99 ms, requests, non-2xx answers, timeouts."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    m = re.search(r"HUB p99_us=(\d+) requests=(\d+) non2xx=(\d+) timeouts=(\d+)", out)
    assert rps is not None and m is not None, out
    return float(rps.group(1)), int(m.group(1)) / 1000.0, int(m.group(2)), int(m.group(3)), int(m.group(4))


def _wait_workers(port: int, workers: int, deadline_s: float = 180.0) -> None:
    """Until ``10 × workers`` fresh connections in a row are answered within a second each.

    Every worker listens on its own socket (SO_REUSEPORT) and the kernel spreads new connections
    over them; a worker still loading the app holds the connections it is handed, so a run started
    then measures its start-up (seconds on a loaded machine), not the API."""
    import http.client

    end = time.monotonic() + deadline_s
    streak = 0
    while streak < 10 * workers:
        if time.monotonic() > end:
            raise RuntimeError("not every API worker came up")
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
        try:
            con.request("GET", "/healthz")
            streak = streak + 1 if con.getresponse().status == 200 else 0
        except OSError:
            streak = 0
        finally:
            con.close()


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants: the server's workers and
    its audit process (Linux ``/proc``; 0 elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    parent: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        child = int(entry.parent.name)
        parent[child] = int(fields[1])
        used[child] = (int(fields[11]) + int(fields[12])) / tick
    seen = {pid}
    for child in sorted(parent):
        chain, p = [], child
        while p in parent and p not in seen and p > 1:
            chain.append(p)
            p = parent[p]
        if p in seen:
            seen.update(chain)
    return sum(used.get(p, 0.0) for p in seen)


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
    work.mkdir(parents=True, exist_ok=True)
    db = work / "hub.db"
    url = f"sqlite:///{db}"
    built = work / f"cases-{cases}-{per_case}.txt"
    started = time.perf_counter()
    if db.exists() and built.exists():  # --work names a repository this run built before: read it again
        codes = built.read_text().split()
        steps = cases * len(_step_plan(per_case))
    else:
        db.unlink(missing_ok=True)
        migrate(url)
        codes, steps = build_repository(db, cases, per_case)
        built.write_text("\n".join(codes) + "\n")
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
        _wait_workers(port, workers)
        script = work / "timeline.lua"
        script.write_text(TIMELINE_WRK % {"codes": codes_file, "seed": 5, "token": token, "prefix": "/v1/cases/",
                                        "suffix": ""})  # fmt: skip
        for connections in levels:
            run_wrk(port, script, 1, connections)  # warm-up
            with engine.connect() as conn:
                before = int(conn.scalar(select(func.count()).select_from(AuditEntry)) or 0)
            cpu = _tree_cpu(server.pid)
            rps, p99, requests, non2xx, timeouts = run_wrk(port, script, seconds, connections)
            cpu = _tree_cpu(server.pid) - cpu
            with engine.connect() as conn:
                after = int(conn.scalar(select(func.count()).select_from(AuditEntry)) or 0)
            runs.append({"connections": connections, "rps": rps, "p99_ms": p99, "requests": requests,
                         "non2xx": non2xx, "timeouts": timeouts, "audited": after - before,
                         "cpu_ms": cpu * 1000 / requests if requests else 0.0})  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    d_rps, d_p99, d_cpu, d_n = direct_reads(url, sample, max(1.0, seconds / 3))
    report = audit.verify(engine)
    engine.dispose()
    return {
        "cases": cases, "steps": steps, "load_s": load_s, "runs": runs, "direct_rps": d_rps, "direct_p99_ms": d_p99,
        "direct_cpu_ms": d_cpu, "direct_reads": d_n, "audit_ok": report.ok, "audit_checked": report.checked,
    }  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench case_timeline")
    parser.add_argument("--smoke", action="store_true", help="tiny run; target not evaluated")
    parser.add_argument("--cases", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--steps-per-case", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", default="8,16,32")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the database here; a later run with the same sizes reads it again")  # fmt: skip
    args = parser.parse_args(argv)
    if not 1 <= args.steps_per_case <= MAX_STEPS_PER_CASE:
        parser.error(f"--steps-per-case: 1 to {MAX_STEPS_PER_CASE}")
    cases = args.cases or (2_000 if args.smoke else 1_000_000)
    seconds = 2 if args.smoke else args.seconds
    levels = [8] if args.smoke else [int(c) for c in args.connections.split(",") if c.strip()]
    f = run(cases, args.steps_per_case, seconds=seconds, levels=levels, workers=args.workers, work=args.work)
    load = os.getloadavg()
    print(f"{f['cases']:,} cases, {f['steps']:,} steps (loaded in {f['load_s']:.1f}s); API workers {args.workers}; "
          f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'':46}{'requests/s':>12}{'p99 ms':>10}{'requests':>10}{'audited':>10}{'CPU ms/req':>12}"
          f"{'timeouts':>10}")  # fmt: skip
    for r in f["runs"]:
        label = f"GET /v1/cases/{{code}}, wrk {r['connections']} conn."
        print(f"{label:46}{r['rps']:>12,.0f}{r['p99_ms']:>10.2f}{r['requests']:>10,}{r['audited']:>10,}"
              f"{r['cpu_ms']:>12.2f}{r['timeouts']:>10,}")  # fmt: skip
    print(f"{'direct read + render, in-process (peer)':46}{f['direct_rps']:>12,.0f}{f['direct_p99_ms']:>10.2f}"
          f"{f['direct_reads']:>10,}{'':>10}{f['direct_cpu_ms']:>12.2f}")  # fmt: skip
    print("CPU ms/req: the API's processes (workers, audit) per answered request; the peer's own per read. "
          "timeouts: no answer within wrk's 2 s (not in its p99)")  # fmt: skip
    complete = all(r["audited"] >= r["requests"] and r["non2xx"] == 0 and r["timeouts"] == 0 for r in f["runs"])
    print(f"every request answered 2xx within wrk's timeout and audited: {complete}; audit chain ok: {f['audit_ok']} "
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
