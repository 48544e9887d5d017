"""The rate limiter's cost per request on each backend, beside the in-process counters (the peer).

Each API request is counted twice (its client address, then its consumer): one ``acquire`` on
the counters for each. This times ``acquire`` over 2,000 counters (addresses and consumers)
with a limit never reached, first in one process, then in two processes at once on the same
counters (the contention of ``hub serve --workers 2``): the shared table under ``$HUB_HOME``
(the default), a SQLite file, Redis (``--redis-url``, when reachable), and this process's own
dict (the peer).

Target: per request (two counts) p99 ≤ 1 ms on the default backend, two processes at once — a
small part of the API's 25 ms p99 budget; the others' figures are printed beside it (Redis's
is a network round trip per count, and so depends on where Redis runs). ``--smoke``: a few
thousand calls, no target.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_P99_PER_REQUEST_MS = 1.0
NOW = 1_800_000_000.0


def _backend(kind: str, where: str, prefix: str) -> object:
    from recognition.throttle import MemoryBackend, RedisBackend, SharedTableBackend, SqliteBackend

    if kind == "shared":
        return SharedTableBackend(Path(where))
    if kind == "sqlite":
        return SqliteBackend(Path(where))
    if kind == "redis":
        return RedisBackend(where, prefix=prefix, timeout=1.0)
    return MemoryBackend()


async def _run(kind: str, where: str, prefix: str, calls: int, seed: int) -> list[float]:
    from recognition.throttle import Limit

    backend: Any = _backend(kind, where, prefix)
    limit = Limit(rate=1e6, burst=1_000_000_000)  # never reached
    rng = random.Random(seed)
    buckets = [f"a:10.0.{i // 250}.{i % 250}" for i in range(1000)] + [f"c:c{i:012x}" for i in range(1000)]
    times = []
    clock = time.perf_counter
    for i in range(calls):
        bucket = rng.choice(buckets)
        t0 = clock()
        wait = await backend.acquire(bucket, limit, NOW + i * 1e-4)
        times.append(clock() - t0)
        assert wait == 0.0
    await backend.aclose()
    return times


def run(kind: str, where: str, prefix: str, calls: int, seed: int) -> list[float]:
    """``calls`` acquires on random counters, one after another as one API worker makes them; each one's seconds."""
    return asyncio.run(_run(kind, where, prefix, calls, seed))


def _worker(args: tuple[str, str, str, int, int]) -> list[float]:
    return run(*args)


def measure(kind: str, where: str, prefix: str, calls: int, processes: int) -> tuple[float, float, float]:
    """(mean µs, p99 µs, calls/s over all processes) of one acquire."""
    started = time.perf_counter()
    if processes == 1:
        times = run(kind, where, prefix, calls, 1)
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            parts = pool.map(_worker, [(kind, where, prefix, calls, seed) for seed in range(processes)])
        times = [t for part in parts for t in part]
    elapsed = time.perf_counter() - started
    times.sort()
    return statistics.fmean(times) * 1e6, times[int(len(times) * 0.99) - 1] * 1e6, len(times) / elapsed


def _redis_reachable(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        client.ping()
        client.close()
        return True
    except (redis.RedisError, OSError):
        return False


def figures(calls: int, redis_url: str) -> dict[str, Any]:
    """The figures: per backend (memory: the peer, the shared table, an SQLite file, Redis when reachable)
    and process count (1, 2), the mean and p99 µs of one acquire, calls/s, and the p99 per request (two
    counts, an upper bound); the default backend's p99 per request with two processes and whether it met
    the target."""
    work = Path(tempfile.mkdtemp(prefix="bench_throttle_"))
    prefix = f"hub:bench-throttle:{os.getpid()}:"
    kinds = [("memory (this process: the peer)", "memory", ""), ("shared table (default)", "shared", ""),
             ("SQLite file", "sqlite", "")]  # fmt: skip
    redis = _redis_reachable(redis_url)
    if redis:
        kinds.append(("Redis", "redis", redis_url))
    rows: list[dict[str, Any]] = []
    default = float("inf")
    for label, kind, url in kinds:
        for procs in (1, 2):
            where = str(work / f"throttle-{procs}.{kind}") if kind in ("shared", "sqlite") else url
            mean, p99, rate = measure(kind, where, prefix + f"{procs}:", calls, procs)
            per_request = 2 * p99 / 1000  # two counts per request, each at its p99 (an upper bound)
            rows.append({"label": label, "backend": kind, "procs": procs, "mean_us": mean, "p99_us": p99,
                         "rate": rate, "p99_per_request_ms": per_request})  # fmt: skip
            if kind == "shared" and procs == 2:
                default = per_request
    return {"calls": calls, "redis": redis, "rows": rows, "default_ms": default,
            "met": default <= TARGET_P99_PER_REQUEST_MS}  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_throttle")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--calls", type=int, default=50_000, help="acquires per process")
    parser.add_argument("--redis-url", default=os.environ.get("HUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)
    calls = 2_000 if args.smoke else args.calls
    load = os.getloadavg()[0]
    f = figures(calls, args.redis_url)
    if not f["redis"]:
        print(f"Redis not reachable at {args.redis_url}: not measured")
    print(f"{calls:,} acquires per process over 2,000 counters; load average {load:.1f} "
          f"on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'backend':34}{'procs':>6}{'mean µs':>10}{'p99 µs':>10}{'calls/s':>12}{'p99/request ms':>16}")
    for r in f["rows"]:
        print(f"{r['label']:34}{r['procs']:>6}{r['mean_us']:>10.1f}{r['p99_us']:>10.1f}{r['rate']:>12,.0f}"
              f"{r['p99_per_request_ms']:>16.3f}")  # fmt: skip
    if args.smoke:
        return 0
    met, default = f["met"], f["default_ms"]
    print(f"target: per request p99 ≤ {TARGET_P99_PER_REQUEST_MS} ms on the default backend with two processes: "
          f"{'met' if met else 'MISSED'} ({default:.3f} ms)")  # fmt: skip
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
