"""Licence lookup by holder with 1,000,000 licences indexed (证照索引查询).

Target (issue 5): p99 ≤ 5 ms for ``licenses_by_holder`` (the query the recognition
API serves) on the hub's default database (SQLite, the migrated ``license_index``).
The index is bulk-loaded (the benchmark is about reads); the peer printed beside it is
the same query as raw SQL through ``sqlite3`` without SQLAlchemy.

    python -m bench index [--smoke] [--rows N] [--lookups N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TARGET_P99_MS = 5.0
HOLDER_SHARE = 2.5  # licences per holder on average


def _holder(h: int) -> str:
    return f"91330322MA{h:07d}X"


def _rows(n: int) -> Iterator[tuple[object, ...]]:
    types = [("1101", "营业执照"), ("1102", "税务登记证"), ("2101", "不动产权证书"), ("3101", "建设项目用地预审意见")]
    statuses = ["valid"] * 17 + ["expired", "suspended", "revoked"]
    holders = max(1, int(n / HOLDER_SHARE))
    now = dt.datetime(2026, 11, 22, tzinfo=dt.UTC).isoformat(sep=" ")
    for i in range(n):
        code, name = types[i % 4]
        h = (i * 7919) % holders
        issue = dt.date(2010, 1, 1) + dt.timedelta(days=(i * 37) % 5000)
        until = None if code != "3101" else (issue + dt.timedelta(days=3 * 365)).isoformat()
        lid = f"{code}-113303220025678912-{i:012d}X"
        yield (
            lid,
            code,
            name,
            f"NO{i:013d}",
            _holder(h),
            "enterprise",
            f"企业{h}",
            "113303220025678912",
            "市场监督管理局",
            issue.isoformat(),
            issue.isoformat(),
            until,
            statuses[i % 20],
            1,
            f"licenses/{lid}/v000001.json",
            "0" * 64,
            "0" * 64,
            "sm2-0000000000000000",
            now,
            None,
            None,
        )


def bulk_load(url: str, path: Path, n: int) -> float:
    """Create the schema by migration, then load ``n`` rows with the secondary indexes rebuilt after."""
    from hub.db import migrate

    migrate(url, "licenses@head")
    started = time.perf_counter()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("DROP INDEX ix_license_index_holder")
    con.execute("DROP INDEX ix_license_index_status_valid_until")
    con.execute("DROP INDEX ix_license_index_case_code")
    cols = 21  # in the migrations' column order (object_sha256, case_code last)
    sql = f"INSERT INTO license_index VALUES ({', '.join('?' * cols)})"
    con.executemany(sql, _rows(n))
    con.execute("CREATE INDEX ix_license_index_holder ON license_index (holder_code, license_type_code, status)")
    con.execute("CREATE INDEX ix_license_index_status_valid_until ON license_index (status, valid_until)")
    con.execute("CREATE INDEX ix_license_index_case_code ON license_index (case_code)")
    con.execute("ANALYZE")
    con.commit()
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    return time.perf_counter() - started


def _percentiles(samples_ms: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return statistics.median(samples_ms), q[98], max(samples_ms)


def run(n: int, lookups: int) -> dict[str, Any]:
    """The figures: rows indexed and the bulk load's time, licences found by ``licenses_by_holder`` and by the
    raw SQL over the same holders, each one's latency percentiles (ms), and SQLite's query plan."""
    from e_license_store.index import licenses_by_holder
    from hub.db import make_engine, session_factory

    with tempfile.TemporaryDirectory(prefix="bench-index-") as d:
        path = Path(d) / "hub.db"
        url = f"sqlite:///{path}"
        load_s = bulk_load(url, path, n)
        rng = random.Random(5)
        holders = [_holder(rng.randrange(max(1, int(n / HOLDER_SHARE)))) for _ in range(lookups)]
        engine = make_engine(url)
        sessions = session_factory(engine)
        orm_ms: list[float] = []
        found = 0
        with sessions() as session:
            for h in holders[:50]:  # warm the page cache and statement cache
                licenses_by_holder(session, h)
            for h in holders:
                t = time.perf_counter()
                rows = licenses_by_holder(session, h)
                orm_ms.append((time.perf_counter() - t) * 1000)
                found += len(rows)
        engine.dispose()
        con = sqlite3.connect(path)
        sql = "SELECT * FROM license_index WHERE holder_code = ? ORDER BY issue_date DESC, license_id LIMIT 50 OFFSET 0"
        raw_ms: list[float] = []
        raw_found = 0
        for h in holders:
            t = time.perf_counter()
            raw_rows = con.execute(sql, (h,)).fetchall()
            raw_ms.append((time.perf_counter() - t) * 1000)
            raw_found += len(raw_rows)
        plan = " ".join(str(r[-1]) for r in con.execute("EXPLAIN QUERY PLAN " + sql, (holders[0],)))
        indexed = int(con.execute("SELECT COUNT(*) FROM license_index").fetchone()[0])
        con.close()
    p50, p99, worst = _percentiles(orm_ms)
    r50, r99, rworst = _percentiles(raw_ms)
    return {
        "n": n,
        "lookups": lookups,
        "indexed": indexed,
        "load_s": load_s,
        "found": found,
        "raw_found": raw_found,
        "plan": plan,
        "orm_ms": {"p50": p50, "p99": p99, "max": worst},
        "raw_ms": {"p50": r50, "p99": r99, "max": rworst},
        "met": p99 <= TARGET_P99_MS,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench index")
    parser.add_argument("--smoke", action="store_true", help="tiny run; target not evaluated")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--lookups", type=int, default=None)
    args = parser.parse_args(argv)
    n = args.rows or (10_000 if args.smoke else 1_000_000)
    lookups = args.lookups or (200 if args.smoke else 5_000)

    print(
        f"{n:,} licences indexed, {lookups:,} lookups by random holder; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    f = run(n, lookups)
    load_s = f["load_s"]
    print(f"bulk load {n:,} rows in {load_s:.1f}s ({n / load_s:,.0f} rows/s)")
    p50, p99, worst = f["orm_ms"]["p50"], f["orm_ms"]["p99"], f["orm_ms"]["max"]
    r50, r99, rworst = f["raw_ms"]["p50"], f["raw_ms"]["p99"], f["raw_ms"]["max"]
    print(f"query plan: {f['plan']}")
    print(
        f"licenses_by_holder (SQLAlchemy)  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {worst:6.2f} ms  "
        f"({f['found'] / lookups:.1f} licences per holder)   target p99 ≤ {TARGET_P99_MS} ms"
    )
    print(f"raw sqlite3, same SQL (peer)     p50 {r50:6.2f} ms  p99 {r99:6.2f} ms  max {rworst:6.2f} ms")
    if args.smoke:
        print("smoke run: target not evaluated")
        return 0
    print("MET" if f["met"] else "MISSED")
    return 0 if f["met"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
