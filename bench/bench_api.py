"""Licences by holder and one licence by id through the API, audit write included, vs the same reads
straight in the database.

Fills the licence index with N licences (default 1,000,000; a cached SQLite file under
``$HUB_HOME/bench`` is reused), starts the API as ``hub serve`` does in its own processes,
and drives it with ``wrk`` (Debian) from another process over random holders. Prints the
API's requests/s and p99 beside the direct ``licenses_by_holder`` lookup's, and checks that
every answered request left an audit entry and that the audit chain verifies.

wrk drives a closed loop: each connection sends its next request when the answer came, so
the number of connections sets the queue every answer waits in. The run is repeated at several
connection counts (``--connections 8,16,32``) and each level's throughput and p99 are printed.

The load generator runs unthrottled, as an operator would set one up: its consumer has
``--rate-limit 0`` and its loopback address is in ``HUB_RATE_LIMIT_TRUSTED``. ``--throttled``
counts every request on the shared counters instead (limits far above the load, so nothing is
refused): the API's figure with the rate limiter's cost in it; ``--rate-limit-url`` picks the
backend (default: the SQLite file; ``redis://127.0.0.1:6379/0``).

Beside the index, ``--sealed`` licences (default 10,000) are issued for real — sealed with the
hub's SM2 key into a local store — and ``GET /v1/licenses/{id}`` is driven over them: every
answer reads the stored envelope and verifies it against its seal and the index before it is
served (the signature check remembered by the envelope's SHA-256, so each worker pays it once
per object; the warm-up run pays it). The peer reads and verifies the same envelope in-process.

Target: both endpoints ≥ 1,000 requests/s with p99 ≤ 25 ms at 16 connections. ``--smoke``: 2,000 licences, a
2-second run, no target.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

LICENSES_PER_HOLDER = 4
TARGET_RPS = 1000.0
TARGET_P99_MS = 25.0
TARGET_CONNECTIONS = 16


def holder_code(i: int) -> str:
    """Every 4th holder a person (resident-id shaped, so masking is exercised), the rest enterprises."""
    if i % 4 == 0:
        rest, seq = divmod(i // 4, 1000)
        return f"3303221980{rest % 12 + 1:02d}{rest // 12 % 28 + 1:02d}{seq:03d}X"
    return f"91330322{i:010d}"


def fill_index(url: str, n_licenses: int) -> int:
    from e_license_store.tables import LicenseIndexEntry
    from hub.db import make_engine, migrate

    migrate(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        # the generated rows only (key "bench"): the licences sealed for real beside them are counted apart
        have = int(conn.scalar(select(func.count()).where(LicenseIndexEntry.key_id == "bench")) or 0)
    if have >= n_licenses:
        engine.dispose()
        return have
    types = [("1101", "营业执照"), ("1102", "税务登记证"), ("2101", "不动产权证书"), ("3101", "建设项目用地预审意见")]
    now = dt.datetime.now(dt.UTC)
    chunk: list[dict[str, object]] = []
    started = time.perf_counter()
    with engine.begin() as conn:
        for k in range(have, n_licenses):
            holder, j = divmod(k, LICENSES_PER_HOLDER)
            code, (type_code, type_name) = holder_code(holder), types[j]
            issue = dt.date(2010, 1, 1) + dt.timedelta(days=k % 4000)
            chunk.append({
                "license_id": f"{type_code}-113303220025678912-{k:013d}", "license_type_code": type_code,
                "license_type_name": type_name, "license_number": f"N{k:012d}", "holder_code": code,
                "holder_kind": "person" if holder % 4 == 0 else "enterprise", "holder_name": f"持证人{holder}",
                "issuer_code": "113303220025678912", "issuer_name": "洞头区市场监督管理局", "issue_date": issue,
                "valid_from": issue, "valid_until": None if j != 3 else issue + dt.timedelta(days=1095),
                "status": "valid" if k % 50 else "revoked", "version": 1,
                "object_key": f"licenses/{k}/v1.json", "content_sha256": "0" * 64, "content_fingerprint": "0" * 64,
                "key_id": "bench", "updated_at": now,
            })  # fmt: skip
            if len(chunk) == 20_000:
                conn.execute(insert(LicenseIndexEntry), chunk)
                chunk.clear()
        if chunk:
            conn.execute(insert(LicenseIndexEntry), chunk)
    print(f"indexed {n_licenses - have:,} licences in {time.perf_counter() - started:.1f}s", flush=True)
    engine.dispose()
    return n_licenses


def seal_sample(url: str, root: Path, n: int) -> list[str]:
    """``n`` licences issued for real (sealed, stored, indexed) under ``root``; their ids (kept for reuse)."""
    from e_license_store.model import LicenseDraft
    from e_license_store.service import LicenseService
    from e_license_store.signing import load_keyring
    from e_license_store.store.local import LocalStore
    from hub.db import make_engine, session_factory
    from mappings.canonical.models import HolderKind, SourceRef

    ids_file = root / "sealed_ids.txt"
    ids = ids_file.read_text().split() if ids_file.exists() else []
    if len(ids) >= n:
        return ids[:n]
    engine = make_engine(url)
    service = LicenseService(
        LocalStore(root / "store"), session_factory(engine), load_keyring(root / "keys", create=True)
    )
    started = time.perf_counter()
    items = []
    for i in range(len(ids), n):
        draft = LicenseDraft(
            license_type_code="1101", license_number=f"S{i:012d}", holder_name=f"温州洞头样本{i}有限公司",
            holder_code=f"91330322S{i:09d}", holder_kind=HolderKind.enterprise, issuer_code="113303220025678912",
            issue_date=dt.date(2020, 1, 1) + dt.timedelta(days=i % 1000),
            surface={"enterprise_name": f"温州洞头样本{i}有限公司", "legal_rep_name": "张三丰",
                     "address": "浙江省温州市洞头区北岙街道中心路12号"},
        )  # fmt: skip
        src = SourceRef(department="commerce", dataset="bench", source_key=f"sealed-{i}", source_version="1")
        items.append((draft, src))
    for start in range(0, len(items), 2000):  # sealed in the service's workers, indexed per batch
        ids += [issued.license_id for issued in service.issue_batch(items[start : start + 2000])]
    ids_file.write_text("\n".join(ids) + "\n")
    print(f"sealed {n:,} licences in {time.perf_counter() - started:.1f}s", flush=True)
    engine.dispose()
    return ids


def direct_get(url: str, root: Path, ids: list[str], seconds: float) -> tuple[float, float, int]:
    """The peer of ``GET /v1/licenses/{id}``: the index row, the envelope read and verified in-process."""
    from e_license_store.signing import load_keyring
    from e_license_store.store.local import LocalStore
    from hub.db import make_engine, session_factory
    from recognition.directory import LicenseDirectory

    engine = make_engine(url)
    sessions = session_factory(engine)
    directory = LicenseDirectory(LocalStore(root / "store"), load_keyring(root / "keys"))
    latencies: list[float] = []
    rng = random.Random(7)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        lid = rng.choice(ids)
        t0 = time.perf_counter()
        with sessions() as s:
            row = directory.get(s, lid)
        assert row is not None and directory.surface(row)
        latencies.append(time.perf_counter() - t0)
    engine.dispose()
    latencies.sort()
    return len(latencies) / sum(latencies), latencies[int(len(latencies) * 0.99) - 1] * 1000, len(latencies)


def make_key(url: str, *, throttled: bool = False) -> str:
    """The load generator's consumer: unthrottled (``--rate-limit 0``), or counted with a limit it never reaches."""
    from hub.db import make_engine, session_scope
    from recognition.consumers import add_consumer

    engine = make_engine(url)
    with session_scope(engine) as s:
        token = add_consumer(
            s, f"bench-{os.getpid()}-{time.time_ns()}", ["licenses:read:*", "fields:*", "purpose:bench"],
            rate_limit=1e6 if throttled else 0,
        )[1]  # fmt: skip
    engine.dispose()
    return token


def direct_lookup(url: str, codes: list[str], seconds: float) -> tuple[float, float, int]:
    """The peer: ``licenses_by_holder`` in a loop in this process (no HTTP, no auth, no audit)."""
    from e_license_store.index import licenses_by_holder
    from hub.db import make_engine, session_factory

    engine = make_engine(url)
    sessions = session_factory(engine)
    latencies: list[float] = []
    rng = random.Random(7)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        code = rng.choice(codes)
        t0 = time.perf_counter()
        with sessions() as s:
            rows = licenses_by_holder(s, code, limit=50)
        latencies.append(time.perf_counter() - t0)
        assert rows, code
    engine.dispose()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return len(latencies) / sum(latencies), p99, len(latencies)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(port: int, deadline_s: float = 60.0) -> None:
    import httpx

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling with a deadline, not a fixed wait
    raise RuntimeError("API did not come up")


WRK_SCRIPT = """
local codes = {}
for line in io.lines("%(codes)s") do codes[#codes + 1] = line end
math.randomseed(%(seed)d)
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function()
  return wrk.format("GET", "%(prefix)s" .. codes[math.random(#codes)] .. "%(suffix)s")
end
done = function(summary, latency, requests)
  io.write(string.format("HUB p99_us=%%d requests=%%d non2xx=%%d\\n", latency:percentile(99), summary.requests,
    summary.errors.status))
end
"""


def run_wrk(port: int, script: Path, seconds: int, connections: int) -> tuple[float, float, int, int]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"HUB p99_us=(\d+) requests=(\d+) non2xx=(\d+)", out)
    assert m is not None, out
    return rps, int(m.group(1)) / 1000.0, int(m.group(2)), int(m.group(3))


ENDPOINTS = {
    "holder": ("/v1/holders/{code}/licenses", "codes.txt", "/v1/holders/", "/licenses"),
    "licence": ("/v1/licenses/{id}", "ids.txt", "/v1/licenses/", ""),
}


def run(opt: argparse.Namespace, levels: list[int]) -> dict[str, Any]:
    """The figures: licences indexed and sealed, holders; per endpoint and wrk connection level the
    requests/s, p99, requests, non-2xx answers and audit entries written; the two direct peers; the audit
    chain's verification. ``opt`` holds :func:`main`'s options (licences, seconds, workers, sealed, db_url,
    throttled, rate_limit_url, smoke)."""
    from hub.settings import get_settings

    work = Path(tempfile.mkdtemp(prefix="bench_api_"))
    url = opt.db_url
    if url is None:
        cache = get_settings().home / "bench"
        cache.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(work if opt.smoke else cache) / f'api_{opt.licenses}.db'}"
    n = fill_index(url, opt.licenses)
    sealed_root = (work if opt.smoke else get_settings().home / "bench") / f"api_{opt.licenses}_sealed"
    sealed_root.mkdir(parents=True, exist_ok=True)
    sealed_ids = seal_sample(url, sealed_root, opt.sealed)
    ids_file = work / "ids.txt"
    ids_file.write_text("\n".join(sealed_ids) + "\n")
    holders = n // LICENSES_PER_HOLDER
    rng = random.Random(11)
    codes = [holder_code(rng.randrange(holders)) for _ in range(20_000)]
    codes_file = work / "codes.txt"
    codes_file.write_text("\n".join(codes) + "\n")
    token = make_key(url, throttled=opt.throttled)

    from e_license_store.tables import LicenseIndexEntry  # noqa: F401 - tables registered for the count below
    from hub.db import make_engine
    from recognition import audit
    from recognition.tables import AuditEntry

    engine = make_engine(url)
    with engine.connect() as conn:
        audit_before = int(conn.scalar(select(func.count()).select_from(AuditEntry)) or 0)

    port = _free_port()
    env = {
        **os.environ,
        "HUB_DB_URL": url,
        "HUB_HOME": str(work),
        "HUB_API_KEY_CACHE_SECONDS": "5",
        "HUB_STORE_URL": f"file://{sealed_root / 'store'}",
        "HUB_SIGNING_KEY_DIR": str(sealed_root / "keys"),
    }
    if opt.throttled:
        env.update(
            HUB_RATE_LIMIT_TRUSTED="", HUB_RATE_LIMIT_ADDRESS_RATE="1000000", HUB_RATE_LIMIT_ADDRESS_BURST="1000000",
            HUB_RATE_LIMIT_URL=opt.rate_limit_url, HUB_RATE_LIMIT_PREFIX=f"hub:bench:{os.getpid()}:",
        )  # fmt: skip
    else:
        env["HUB_RATE_LIMIT_TRUSTED"] = "127.0.0.1/32"  # the load generator's address is not counted
    # started as `hub serve` starts it (recognition.serve), workers and audit processes included
    server = subprocess.Popen(
        [sys.executable, "-m", "recognition.serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(opt.workers), "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    endpoints = {
        "holder": ("/v1/holders/{code}/licenses", codes_file, "/v1/holders/", "/licenses"),
        "licence": ("/v1/licenses/{id}", ids_file, "/v1/licenses/", ""),
    }
    # endpoint, connections, rps, p99, requests, non2xx, audited
    runs: list[tuple[str, int, float, float, int, int, int]] = []
    try:
        _wait_http(port)
        for name, (_route, values, prefix, suffix) in endpoints.items():
            script = work / f"bench_{name}.lua"
            script.write_text(WRK_SCRIPT % {"codes": values, "seed": 5, "token": token, "prefix": prefix,
                                            "suffix": suffix})  # fmt: skip
            for connections in levels:
                run_wrk(port, script, 1 if opt.smoke else 3, connections)  # warm-up (caches, connections)
                with engine.connect() as conn:
                    audit_mid = int(conn.scalar(select(func.count()).select_from(AuditEntry)) or 0)
                rps, p99, requests, non2xx = run_wrk(port, script, opt.seconds, connections)
                with engine.connect() as conn:
                    audit_after = int(conn.scalar(select(func.count()).select_from(AuditEntry)) or 0)
                runs.append((name, connections, rps, p99, requests, non2xx, audit_after - audit_mid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    d_rps, d_p99, d_n = direct_lookup(url, codes, 1.0 if opt.smoke else 5.0)
    g_rps, g_p99, g_n = direct_get(url, sealed_root, sealed_ids, 1.0 if opt.smoke else 5.0)
    report = audit.verify(engine)
    engine.dispose()

    runs_out = [
        {"endpoint": name, "route": endpoints[name][0], "connections": c, "rps": rps, "p99_ms": p99,
         "requests": requests, "non2xx": non2xx, "audited": audited}
        for name, c, rps, p99, requests, non2xx, audited in runs
    ]  # fmt: skip
    return {
        "licenses": n,
        "sealed": len(sealed_ids),
        "holders": holders,
        "runs": runs_out,
        "direct_lookup": {"rps": d_rps, "p99_ms": d_p99, "reads": d_n},
        "direct_get": {"rps": g_rps, "p99_ms": g_p99, "reads": g_n},
        "audit_before": audit_before,
        "audit_ok": report.ok,
        "audit_checked": report.checked,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_api")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--licenses", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument(
        "--connections",
        default="8,16,32",
        help="wrk connection counts to run, comma-separated (closed loop: more connections, more "
        "requests in flight, more queueing in every answer)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sealed", type=int, default=10_000, help="Licences sealed for real for GET /v1/licenses/{id}")
    parser.add_argument("--db-url", default=None, help="Default: a cached SQLite file under $HUB_HOME/bench")
    parser.add_argument(
        "--throttled",
        action="store_true",
        help="Count every request per address and per consumer (limits never reached)",
    )
    parser.add_argument(
        "--rate-limit-url",
        default="",
        help="The counters' backend with --throttled (default: the SQLite file under HUB_HOME)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.licenses, args.seconds, args.connections, args.sealed = 2_000, 2, "8", 200
    levels = [int(c) for c in str(args.connections).split(",") if c.strip()]
    f = run(args, levels)
    n, holders = f["licenses"], f["holders"]
    d, g, report_ok, checked = f["direct_lookup"], f["direct_get"], f["audit_ok"], f["audit_checked"]
    load = os.getloadavg()
    limiter = f"throttled ({args.rate_limit_url or 'shared table'})" if args.throttled else "unthrottled"
    print(f"licences indexed: {n:,} (of them sealed for real: {f['sealed']:,})  holders: {holders:,}  "
          f"API workers: {args.workers}  rate limits: {limiter}")  # fmt: skip
    print(f"run: {args.seconds}s per level; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
          f"on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'':52}{'requests/s':>12}{'p99 ms':>10}{'requests':>10}{'audited':>10}")
    for r in f["runs"]:
        label = f"{r['route']}, wrk {r['connections']} conn."
        print(f"{label:52}{r['rps']:>12,.0f}{r['p99_ms']:>10.2f}{r['requests']:>10,}{r['audited']:>10,}")
    print(f"{'direct licenses_by_holder() (peer)':52}{d['rps']:>12,.0f}{d['p99_ms']:>10.2f}{d['reads']:>10,}")
    print(f"{'direct index row + verified envelope (peer)':52}{g['rps']:>12,.0f}{g['p99_ms']:>10.2f}{g['reads']:>10,}")
    non2xx = sum(r["non2xx"] for r in f["runs"])
    complete = all(r["audited"] >= r["requests"] for r in f["runs"])
    print(f"non-2xx answers: {non2xx}; every answered request audited: {complete}; audit chain ok: {report_ok} "
          f"({checked:,} entries, {f['audit_before']:,} before)")  # fmt: skip
    ok = non2xx == 0 and complete and report_ok
    if args.smoke:
        return 0 if ok else 1
    met = True
    for name, (route, *_rest) in ENDPOINTS.items():
        at = [r for r in f["runs"] if r["endpoint"] == name and r["connections"] == TARGET_CONNECTIONS]
        good = bool(at) and at[0]["rps"] >= TARGET_RPS and at[0]["p99_ms"] <= TARGET_P99_MS
        met = met and good
        print(f"target {route}: ≥ {TARGET_RPS:,.0f} req/s with p99 ≤ {TARGET_P99_MS} ms at {TARGET_CONNECTIONS} "
              f"connections: {'met' if good else 'MISSED'}")  # fmt: skip
    return 0 if ok and met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
