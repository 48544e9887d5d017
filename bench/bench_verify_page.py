"""The public verification page, ``GET /verify/{id}?v=&t=``, under ``wrk``, audit included, beside the same
work done in-process.

The licence index is filled with N licences (default 1,000,000, the cached SQLite file of
``bench api`` is reused), ``--sealed`` of them issued for real (sealed with the hub's SM2 key into a
local store, as ``bench api`` does) and ``--rendered`` of those rendered to PDF with their signed file
bindings. The API is started as ``hub serve`` starts it, and wrk drives the QR links of the rendered
licences: each answer checks the token, reads the index row, reads and verifies the stored envelope
and the file binding (signature checks remembered by the bytes' SHA-256, paid by the warm-up), renders
the page and commits its audit entry before it leaves. The peer does the same reads, checks and
rendering in this process, without HTTP or audit. Every answered request must have left an audit
entry and the audit chain must verify.

The load generator's address is exempt from the per-address rate limit (``HUB_RATE_LIMIT_TRUSTED``),
as an operator would set up a probe; ``--throttled`` counts every request on the shared counters
instead (limits far above the load).

A licence's first view in a worker also checks its two seals (SM2, about a millisecond each when the
machine is idle); the second peer line shows that cost.

Target: p99 ≤ 25 ms at 16 connections. ``--smoke``: 2,000 licences, 100 sealed and rendered, a
2-second run, no target.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.bench_api import _free_port, _wait_http, fill_index, run_wrk, seal_sample

TARGET_P99_MS = 25.0
TARGET_CONNECTIONS = 16

WRK_SCRIPT = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
math.randomseed(%(seed)d)
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
done = function(summary, latency, requests)
  io.write(string.format("HUB p99_us=%%d requests=%%d non2xx=%%d\\n", latency:percentile(99), summary.requests,
    summary.errors.status))
end
"""


def render_sample(url: str, root: Path, ids: list[str]) -> None:
    """PDFs and signed file bindings for ``ids`` (those without one yet), as the hub renders them on first request."""
    from e_license_store.render import ensure_file
    from e_license_store.signing import load_keyring
    from e_license_store.store.local import LocalStore
    from e_license_store.tables import LicenseFileEntry
    from hub.db import make_engine, session_factory

    engine = make_engine(url)
    with engine.connect() as conn:
        have = set(conn.scalars(select(LicenseFileEntry.license_id).where(LicenseFileEntry.license_id.in_(ids))))
    todo = [i for i in ids if i not in have]
    started = time.perf_counter()
    store, sessions, keyring = LocalStore(root / "store"), session_factory(engine), load_keyring(root / "keys")
    for lid in todo:
        ensure_file(lid, store=store, sessions=sessions, keyring=keyring)
    if todo:
        print(f"rendered {len(todo):,} licence files in {time.perf_counter() - started:.1f}s", flush=True)
    engine.dispose()


def direct_page(
    url: str, root: Path, ids: list[str], seconds: float, *, cold: bool = False
) -> tuple[float, float, int]:
    """The peer: token check, index row, verified envelope and binding, the page rendered; no HTTP, no audit.

    ``cold``: every read checks both seals afresh (a licence's first view in a worker: with a million
    licences scanned at random, most views are), where the warm peer remembers the verdicts."""
    import datetime as dt

    from e_license_store import verify_link
    from e_license_store.signing import load_keyring
    from e_license_store.store.local import LocalStore
    from hub.db import make_engine
    from recognition.directory import LicenseDirectory, license_by_id_dbapi
    from recognition.routers.pages import render
    from recognition.verify_page import facts

    engine = make_engine(url)
    directory = LicenseDirectory(LocalStore(root / "store"), load_keyring(root / "keys"))
    conn = engine.raw_connection()
    latencies: list[float] = []
    rng = random.Random(7)
    tokens = {lid: verify_link.token(lid, 1) for lid in ids}
    today = dt.date.today()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        lid = rng.choice(ids)
        if cold:
            directory = LicenseDirectory(directory.store, directory.keyring)
        t0 = time.perf_counter()
        assert verify_link.check_token(lid, 1, tokens[lid])
        row = license_by_id_dbapi(conn, engine.dialect, lid)
        conn.rollback()
        assert row is not None
        shown = facts(row, directory.envelope(row), directory.file_binding(row), today)
        page = render("verify_licence.html", status=200, lang="zh", path=f"/verify/{lid}", query={"v": "1"},
                      f=shown, today=today, uploaded=False)  # fmt: skip
        assert page.status_code == 200
        latencies.append(time.perf_counter() - t0)
    conn.close()
    engine.dispose()
    latencies.sort()
    return len(latencies) / sum(latencies), latencies[int(len(latencies) * 0.99) - 1] * 1000, len(latencies)


def run(opt: argparse.Namespace, levels: list[int]) -> dict[str, Any]:
    """The figures: licences indexed, sealed and driven; per wrk connection level the requests/s, p99,
    requests, non-2xx answers and audit entries written; the direct peer warm and cold; the audit chain's
    verification. ``opt`` holds :func:`main`'s options (licences, sealed, rendered, seconds, workers,
    db_url, throttled, smoke)."""
    from hub.settings import get_settings

    work = Path(tempfile.mkdtemp(prefix="bench_verify_page_"))
    cache = work if opt.smoke else get_settings().home / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    url = opt.db_url or f"sqlite:///{cache / f'api_{opt.licenses}.db'}"
    n = fill_index(url, opt.licenses)
    sealed_root = cache / f"api_{opt.licenses}_sealed"
    sealed_root.mkdir(parents=True, exist_ok=True)
    # the links' key: one for this run, shared with the server (its tokens are what the QR codes carry)
    os.environ["HUB_VERIFY_KEY"] = secrets.token_hex(32)
    base = "http://127.0.0.1"
    os.environ["HUB_VERIFY_BASE_URL"] = base
    ids = seal_sample(url, sealed_root, opt.sealed)[: opt.rendered]
    render_sample(url, sealed_root, ids)

    from e_license_store import verify_link
    from hub.db import make_engine
    from recognition import audit
    from recognition.tables import AuditEntry

    paths_file = work / "paths.txt"
    paths_file.write_text("\n".join(verify_link.path(lid, 1) for lid in ids) + "\n")
    engine = make_engine(url)
    with engine.connect() as conn:
        audit_before = int(conn.scalar(select(func.count()).select_from(AuditEntry)) or 0)
    port = _free_port()
    env = {
        **os.environ,
        "HUB_DB_URL": url,
        "HUB_HOME": str(work),
        "HUB_STORE_URL": f"file://{sealed_root / 'store'}",
        "HUB_SIGNING_KEY_DIR": str(sealed_root / "keys"),
    }
    if opt.throttled:
        env.update(HUB_RATE_LIMIT_TRUSTED="", HUB_RATE_LIMIT_ADDRESS_RATE="1000000",
                   HUB_RATE_LIMIT_ADDRESS_BURST="1000000")  # fmt: skip
    else:
        env["HUB_RATE_LIMIT_TRUSTED"] = "127.0.0.1/32"
    server = subprocess.Popen(
        [sys.executable, "-m", "recognition.serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(opt.workers), "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    runs: list[tuple[int, float, float, int, int, int]] = []  # connections, rps, p99, requests, non2xx, audited
    try:
        _wait_http(port)
        script = work / "bench_verify_page.lua"
        script.write_text(WRK_SCRIPT % {"paths": paths_file, "seed": 5})
        # warm-up: each worker checks each driven licence's seals once (remembered), connections open
        run_wrk(port, script, 1 if opt.smoke else 10, max(levels))
        for connections in levels:
            run_wrk(port, script, 1 if opt.smoke else 3, connections)
            with engine.connect() as conn:
                audit_mid = int(conn.scalar(select(func.count()).select_from(AuditEntry)) or 0)
            rps, p99, requests, non2xx = run_wrk(port, script, opt.seconds, connections)
            with engine.connect() as conn:
                audit_after = int(conn.scalar(select(func.count()).select_from(AuditEntry)) or 0)
            runs.append((connections, rps, p99, requests, non2xx, audit_after - audit_mid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    d_rps, d_p99, d_n = direct_page(url, sealed_root, ids, 1.0 if opt.smoke else 5.0)
    c_rps, c_p99, c_n = direct_page(url, sealed_root, ids, 1.0 if opt.smoke else 5.0, cold=True)
    report = audit.verify(engine)
    engine.dispose()

    return {
        "licenses": n,
        "sealed": opt.sealed,
        "driven": len(ids),
        "runs": [
            {"connections": c, "rps": rps, "p99_ms": p99, "requests": requests, "non2xx": non2xx, "audited": audited}
            for c, rps, p99, requests, non2xx, audited in runs
        ],
        "direct": {"rps": d_rps, "p99_ms": d_p99, "reads": d_n},
        "direct_cold": {"rps": c_rps, "p99_ms": c_p99, "reads": c_n},
        "audit_before": audit_before,
        "audit_ok": report.ok,
        "audit_checked": report.checked,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_verify_page")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--licenses", type=int, default=1_000_000)
    parser.add_argument("--sealed", type=int, default=10_000, help="Licences sealed for real (bench api's sample)")
    parser.add_argument("--rendered", type=int, default=1_000, help="Of those, rendered to PDF and driven")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", default="8,16,32", help="wrk connection counts, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db-url", default=None, help="Default: bench api's cached SQLite file under $HUB_HOME")
    parser.add_argument("--throttled", action="store_true", help="Count every request per address (never reached)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.licenses, args.sealed, args.rendered, args.seconds, args.connections = 2_000, 100, 100, 2, "8"
    levels = [int(c) for c in str(args.connections).split(",") if c.strip()]
    f = run(args, levels)
    d, c = f["direct"], f["direct_cold"]
    load = os.getloadavg()
    print(f"licences indexed: {f['licenses']:,}; sealed for real: {args.sealed:,}; rendered and driven: "
          f"{f['driven']:,}; API workers: {args.workers}; "
          f"rate limits: {'counted' if args.throttled else 'probe exempt'}")  # fmt: skip
    print(f"run: {args.seconds}s per level; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
          f"on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'':52}{'requests/s':>12}{'p99 ms':>10}{'requests':>10}{'audited':>10}")
    for r in f["runs"]:
        label = f"GET /verify/{{id}}?v=&t=, wrk {r['connections']} conn."
        print(f"{label:52}{r['rps']:>12,.0f}{r['p99_ms']:>10.2f}{r['requests']:>10,}{r['audited']:>10,}")
    print(f"{'direct token + row + verified objects + page (peer)':52}{d['rps']:>12,.0f}{d['p99_ms']:>10.2f}"
          f"{d['reads']:>10,}")  # fmt: skip
    print(f"{'  the same, both seals checked afresh (first view)':52}{c['rps']:>12,.0f}{c['p99_ms']:>10.2f}"
          f"{c['reads']:>10,}")  # fmt: skip
    non2xx = sum(r["non2xx"] for r in f["runs"])
    complete = all(r["audited"] >= r["requests"] for r in f["runs"])
    print(f"non-2xx answers: {non2xx}; every answered request audited: {complete}; audit chain ok: "
          f"{f['audit_ok']} ({f['audit_checked']:,} entries, {f['audit_before']:,} before)")  # fmt: skip
    ok = non2xx == 0 and complete and f["audit_ok"]
    if args.smoke:
        return 0 if ok else 1
    at = [r for r in f["runs"] if r["connections"] == TARGET_CONNECTIONS]
    met = bool(at) and at[0]["p99_ms"] <= TARGET_P99_MS
    print(f"target GET /verify/{{id}}: p99 ≤ {TARGET_P99_MS} ms at {TARGET_CONNECTIONS} connections: "
          f"{'met' if met else 'MISSED'}")  # fmt: skip
    return 0 if ok and met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
