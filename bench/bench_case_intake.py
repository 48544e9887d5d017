"""Intake with material recognition through the API (``POST /v1/cases``), audited, with 1,000,000
licences indexed, beside the same intake called in-process.

Every intake is an enterprise's change registration (``XK00102000``) under its authorisation: the
applicant is looked up in the identity index, its business licence (``1101``) and the premises'
property certificate (``2101``) are found among its valid licences and recorded by id and version
(免提交), the case, its materials, dispatch and authorisation are written and announced, and the
request is audited. Target (the case-repository issue), on the embedded default (SQLite):
≥ 500 cases/s. The peer: ``cases.intake.take_in`` in a loop in one process (no HTTP, no auth, no audit).

    python -m bench case_intake [--smoke] [--licenses N] [--applicants K] [--connections 8,16]
    python -m bench case_intake --profile 300 [--licenses 20000 --applicants 2000]   # cProfile of take_in
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_api import _free_port, _wait_http, run_wrk

TARGET_CASES_S = 500.0
ITEM = "XK00102000"

LUA = """
local codes = {}
for line in io.lines("%(codes)s") do codes[#codes + 1] = line end
math.randomseed(%(seed)d)
wrk.headers["Authorization"] = "Bearer %(token)s"
wrk.headers["Content-Type"] = "application/json"
local body = [[%(body)s]]
request = function()
  return wrk.format("POST", "/v1/cases", nil, string.gsub(body, "@CODE@", codes[math.random(#codes)]))
end
done = function(summary, latency, requests)
  io.write(string.format("HUB p99_us=%%d requests=%%d non2xx=%%d\\n", latency:percentile(99), summary.requests,
    summary.errors.status))
end
"""


def enterprise(i: int) -> str:
    """A valid unified social credit code (GB 32100) for holder ``i``."""
    from identifiers import org_code, uscc

    body8 = f"{i:08d}"
    body = f"91330322{body8}{org_code.calc_check_digit(body8)}"
    return body + uscc.calc_check_digit(body)


def fill(url: str, n_licenses: int, applicants: int) -> list[str]:
    """Two licences (1101, 2101) per enterprise up to ``n_licenses``, and the first ``applicants``
    enterprises in the identity index; the applicants' codes."""
    import pandas as pd
    from sqlalchemy import insert

    from e_license_store.tables import LicenseIndexEntry
    from hub.db import make_engine, migrate, session_factory
    from identity.resolve import resolve_batch

    migrate(url)
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC)
    issue = dt.date(2020, 1, 1)
    chunk: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for k in range(n_licenses):
            holder, j = divmod(k, 2)
            type_code, type_name = (("1101", "营业执照"), ("2101", "不动产权证书"))[j]
            chunk.append({
                "license_id": f"{type_code}-113303220025678958-{k:013d}", "license_type_code": type_code,
                "license_type_name": type_name, "license_number": f"N{k:012d}", "holder_code": enterprise(holder),
                "holder_kind": "enterprise", "holder_name": f"洞头样本{holder}有限公司",
                "issuer_code": "113303220025678958", "issuer_name": "洞头区市场监督管理局", "issue_date": issue,
                "valid_from": issue, "valid_until": None, "status": "valid", "version": 1,
                "object_key": f"licenses/{k}/v1.json", "content_sha256": "0" * 64, "content_fingerprint": "0" * 64,
                "key_id": "bench", "updated_at": now,
            })  # fmt: skip
            if len(chunk) == 20_000:
                conn.execute(insert(LicenseIndexEntry), chunk)
                chunk.clear()
        if chunk:
            conn.execute(insert(LicenseIndexEntry), chunk)
    codes = [enterprise(i) for i in range(applicants)]
    firms = pd.DataFrame({"_source_key": [f"e{i}" for i in range(applicants)], "_source_version": "1", "uscc": codes,
                          "name": [f"洞头样本{i}有限公司" for i in range(applicants)]})  # fmt: skip
    with session_factory(engine)() as s:
        resolve_batch(s, firms, "enterprise", "commerce", "enterprises")
        s.commit()
    engine.dispose()
    return codes


def body(code: str) -> dict[str, Any]:
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    return {
        "item_code": ITEM,
        "applicant": {"code": code, "name": "洞头样本有限公司"},
        "materials": [{"code": "M01", "provided": "upload"}],
        "authorisations": [{"holder": "applicant", "materials": ["M02", "M03"], "purpose": "办理本事项",
                            "valid_until": until}],
    }  # fmt: skip


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its live descendants (the API's
    supervisor, its workers and their audit writers)."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for proc in (root, *root.children(recursive=True)):
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        pass
    return total


def direct(url: str, codes: list[str], seconds: float) -> tuple[float, float, int, float]:
    """The peer: ``take_in`` and commit in a loop; (cases/s, p99 ms, cases, CPU ms per case)."""
    from cases import intake
    from cases.schemas import IntakeIn
    from hub.db import make_engine, session_factory

    engine = make_engine(url)
    sessions = session_factory(engine)
    rng = random.Random(3)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    cpu0 = time.process_time()
    while time.perf_counter() < deadline:
        payload = IntakeIn.model_validate(body(rng.choice(codes)))
        t0 = time.perf_counter()
        with sessions() as s:
            intake.take_in(s, payload, actor="bench")
            s.commit()
        latencies.append(time.perf_counter() - t0)
    cpu_ms = (time.process_time() - cpu0) * 1000 / max(len(latencies), 1)
    engine.dispose()
    latencies.sort()
    p99 = latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000
    return len(latencies) / sum(latencies), p99, len(latencies), cpu_ms


def profile(n_licenses: int, applicants: int, intakes: int, *, top: int = 30) -> dict[str, float]:
    """``take_in`` and commit ``intakes`` times under cProfile (after 20 unprofiled ones) on a new
    database; prints the functions by cumulative time. CPU ms and statements per intake are
    counted in a second, unprofiled pass of the same size."""
    import cProfile
    import pstats

    from sqlalchemy import event

    from cases import intake
    from cases.schemas import IntakeIn
    from hub.db import make_engine, session_factory

    work = Path(tempfile.mkdtemp(prefix="bench_case_intake_profile_"))
    url = f"sqlite:///{work / 'hub.db'}"
    codes = fill(url, n_licenses, applicants)
    engine = make_engine(url)
    sessions = session_factory(engine)
    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    rng = random.Random(3)

    def take(n: int) -> None:
        for _ in range(n):
            payload = IntakeIn.model_validate(body(rng.choice(codes)))
            with sessions() as s:
                intake.take_in(s, payload, actor="bench")
                s.commit()

    take(20)
    prof = cProfile.Profile()
    prof.enable()
    take(intakes)
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)
    statements[0] = 0
    cpu0 = time.process_time()
    take(intakes)
    cpu_ms = (time.process_time() - cpu0) * 1000 / intakes
    engine.dispose()
    return {"cpu_ms": cpu_ms, "statements": statements[0] / intakes}


def run(
    n_licenses: int,
    applicants: int,
    *,
    seconds: int,
    levels: list[int],
    workers: int = 2,
    work: Path | None = None,
) -> dict[str, Any]:
    """Fill under ``work`` (default: a new temporary directory), drive the API with wrk at each level,
    run the peer; the figures (and the checks' counts)."""
    from sqlalchemy import func, select

    from cases.tables import CaseMaterial, CaseRecord
    from hub.db import make_engine, session_scope
    from recognition import audit
    from recognition.consumers import add_consumer
    from recognition.tables import AuditEntry

    work = work or Path(tempfile.mkdtemp(prefix="bench_case_intake_"))
    url = f"sqlite:///{work / 'hub.db'}"
    started = time.perf_counter()
    codes = fill(url, n_licenses, applicants)
    load_s = time.perf_counter() - started
    codes_file = work / "codes.txt"
    codes_file.write_text("\n".join(codes) + "\n")
    engine = make_engine(url)
    with session_scope(engine) as s:
        token = add_consumer(s, f"bench-{os.getpid()}", ["cases:write", "cases:read"], rate_limit=0)[1]
    port = _free_port()
    env = {**os.environ, "HUB_DB_URL": url, "HUB_HOME": str(work), "HUB_API_KEY_CACHE_SECONDS": "5",
           "HUB_RATE_LIMIT_TRUSTED": "127.0.0.1/32"}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "recognition.serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    script = work / "intake.lua"
    template = json.dumps(body("@CODE@"), ensure_ascii=False)
    script.write_text(LUA % {"codes": codes_file, "seed": 5, "token": token, "body": template})
    runs = []

    def count(model: Any, *where: Any) -> int:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def settled() -> tuple[int, int, int, int]:
        """(audit entries, intake entries, cases, licences recognised) once every case has its
        intake's entry: wrk stops with requests in flight, which the server still finishes (each
        commits its case, then its entry) though wrk counts none of them."""
        deadline = time.monotonic() + 30
        while True:
            cases = count(CaseRecord)
            intakes = count(AuditEntry, AuditEntry.action == "case_intake")
            if intakes >= cases or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return count(AuditEntry), intakes, cases, count(CaseMaterial, CaseMaterial.found_by == "hub")

    try:
        _wait_http(port)
        for connections in levels:
            run_wrk(port, script, 1, connections)  # warm-up
            audited, intakes, cases, recognised = settled()
            cpu0 = tree_cpu(server.pid)
            rps, p99, requests, non2xx = run_wrk(port, script, seconds, connections)
            cpu_ms = (tree_cpu(server.pid) - cpu0) * 1000 / max(requests, 1)
            after = settled()
            runs.append({"connections": connections, "rps": rps, "p99_ms": p99, "requests": requests,
                         "server_cpu_ms": cpu_ms, "non2xx": non2xx, "audited": after[0] - audited,
                         "intakes_audited": after[1] - intakes, "cases": after[2] - cases,
                         "recognised": after[3] - recognised})  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    d_rps, d_p99, d_n, d_cpu = direct(url, codes, max(1.0, seconds / 3))
    report = audit.verify(engine)
    engine.dispose()
    return {"licenses": n_licenses, "applicants": applicants, "load_s": load_s, "runs": runs, "direct_rps": d_rps,
            "direct_p99_ms": d_p99, "direct_cases": d_n, "direct_cpu_ms": d_cpu, "workers": workers,
            "audit_ok": report.ok}  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench case_intake")
    parser.add_argument("--smoke", action="store_true", help="tiny run; target not evaluated")
    parser.add_argument("--licenses", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--applicants", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", default="8,16")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile N in-process intakes instead (20,000 licences)"
    )
    args = parser.parse_args(argv)
    if args.profile:
        n = args.licenses or 20_000
        p = profile(n, min(args.applicants, n // 2), args.profile)
        load = os.getloadavg()
        print(f"take_in: {p['cpu_ms']:.2f} ms CPU and {p['statements']:.1f} statements per intake ({n:,} licences; "
              f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores)")  # fmt: skip
        return 0
    n = args.licenses or (2_000 if args.smoke else 1_000_000)
    applicants = min(args.applicants, n // 2) if not args.smoke else 200
    levels = [4] if args.smoke else [int(c) for c in args.connections.split(",") if c.strip()]
    f = run(n, applicants, seconds=3 if args.smoke else args.seconds, levels=levels, workers=args.workers)
    load = os.getloadavg()
    print(f"{f['licenses']:,} licences indexed, {f['applicants']:,} applicants in the identity index (filled in "
          f"{f['load_s']:.1f}s); load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
          f"on {os.cpu_count()} cores")  # fmt: skip
    print(f"API: {f['workers']} worker process(es); CPU ms/case: the server's processes (workers, audit "
          f"writers) per answered intake; the peer's own process time per intake")  # fmt: skip
    print("answered: wrk's count (2xx and not); cases, audited, recognised: written meanwhile, counted once "
          "every case has its intake's audit entry (wrk counts no request in flight when it stops)")  # fmt: skip
    print(f"{'':40}{'cases/s':>10}{'p99 ms':>10}{'CPU ms':>8}{'answered':>9}{'non-2xx':>8}{'cases':>8}"
          f"{'audited':>9}{'recognised':>12}")  # fmt: skip
    for r in f["runs"]:
        label = f"POST /v1/cases, wrk {r['connections']} conn."
        print(
            f"{label:40}{r['rps']:>10,.0f}{r['p99_ms']:>10.2f}{r['server_cpu_ms']:>8.2f}{r['requests']:>9,}"
            f"{r['non2xx']:>8,}{r['cases']:>8,}{r['audited']:>9,}{r['recognised']:>12,}"
        )
    print(
        f"{'take_in() in-process (peer)':40}{f['direct_rps']:>10,.0f}{f['direct_p99_ms']:>10.2f}"
        f"{f['direct_cpu_ms']:>8.2f}{f['direct_cases']:>8,}"
    )
    complete = all(
        r["non2xx"] == 0 and r["cases"] >= r["requests"] and r["intakes_audited"] == r["cases"]
        and r["audited"] >= r["requests"] and r["recognised"] == 2 * r["cases"]
        for r in f["runs"]
    )  # fmt: skip
    print(f"every intake 2xx, audited and both licences recognised: {complete}; audit chain ok: {f['audit_ok']}")
    ok = complete and f["audit_ok"]
    if args.smoke:
        return 0 if ok else 1
    at = [r for r in f["runs"] if r["connections"] == 16]
    met = bool(at) and at[0]["rps"] >= TARGET_CASES_S
    print(f"target ≥ {TARGET_CASES_S:,.0f} cases/s at 16 connections: {'met' if met else 'MISSED'}")
    return 0 if ok and met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
