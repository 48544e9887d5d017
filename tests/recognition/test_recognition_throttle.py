"""The rate-limit counters: GCRA on each backend, shared between processes, and a backend that fails."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recognition.throttle import (
    Backend,
    BackendUnavailable,
    Limit,
    MemoryBackend,
    RedisBackend,
    SharedTableBackend,
    SqliteBackend,
    Throttle,
    open_backend,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0  # a fixed "now": the tests move time themselves


@pytest.fixture(params=["memory", "shared", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made: Backend
    if request.param == "memory":
        made = MemoryBackend()
    elif request.param == "shared":
        made = SharedTableBackend(tmp_path / "throttle.shm")
    elif request.param == "sqlite":
        made = SqliteBackend(tmp_path / "throttle.db")
    else:
        url, prefix = request.getfixturevalue("redis_prefix")
        made = RedisBackend(url, prefix=prefix)
    yield made
    asyncio.run(made.aclose())


def test_each_backend_allows_the_burst_then_the_rate(backend: Backend) -> None:
    limit = Limit(rate=2.0, burst=3)

    async def acquire(bucket: str, now: float) -> float:
        return await backend.acquire(bucket, limit, now)

    async def story() -> None:
        assert [await acquire("c:one", T0) for _ in range(3)] == [0.0, 0.0, 0.0]
        assert await acquire("c:one", T0) == pytest.approx(0.5)
        assert await acquire("c:other", T0) == 0.0  # counters are separate
        assert await acquire("c:one", T0 + 0.25) == pytest.approx(0.25)  # a refused request is not counted
        assert await acquire("c:one", T0 + 0.5) == 0.0
        assert await acquire("c:one", T0 + 0.5) == pytest.approx(0.5)
        # idle long enough, the whole burst is back
        assert [await acquire("c:one", T0 + 10) for _ in range(4)][-2:] == [0.0, pytest.approx(0.5)]

    asyncio.run(story())


@pytest.mark.redis
def test_redis_counter_keys_expire_once_empty(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix

    async def ttl_ms() -> int:
        backend = RedisBackend(url, prefix=prefix)
        await backend.acquire("c:one", Limit(rate=10.0, burst=5), T0)
        found = int(await backend.client.pttl(prefix + "c:one"))
        await backend.aclose()
        return found

    assert 0 < asyncio.run(ttl_ms()) <= 100  # one interval of 0.1 s: Redis forgets the counter once it is empty


_WORKER = """
import asyncio
import sys
from pathlib import Path
from recognition.throttle import Limit, RedisBackend, SharedTableBackend, SqliteBackend
kind, where, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "redis":
    backend = RedisBackend(where, prefix=prefix)
else:
    backend = {"shared": SharedTableBackend, "sqlite": SqliteBackend}[kind](Path(where))
limit = Limit(rate=0.001, burst=100)  # no refill within the test: only the burst is there to share

async def main() -> int:
    return sum([await backend.acquire("c:shared", limit, 1_800_000_000.0) == 0.0 for _ in range(80)])

print(asyncio.run(main()))
"""


@pytest.mark.parametrize("kind", ["shared", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_counters_shared_between_two_processes(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Two processes take 80 each from one burst of 100: together exactly 100 pass, not 160."""
    if kind != "redis":
        where, prefix = str(tmp_path / f"throttle.{kind}"), ""
    else:
        where, prefix = request.getfixturevalue("redis_prefix")
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, kind, where, prefix], cwd=ROOT, stdout=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]  # fmt: skip
    allowed = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(allowed) == 100 and all(a >= 20 for a in allowed), allowed


class _Down:
    """A backend that is down until told otherwise."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    async def acquire(self, bucket: str, limit: Limit, now: float) -> float:
        self.calls += 1
        if not self.up:
            raise BackendUnavailable("connection refused")
        return 0.0

    async def aclose(self) -> None:
        pass


def test_unreachable_counters_fall_back_to_this_process_and_come_back(caplog: pytest.LogCaptureFixture) -> None:
    down = _Down()
    throttle = Throttle(down, on_error="local", retry_seconds=1.0)
    limit = Limit(rate=1.0, burst=2)
    with caplog.at_level(logging.ERROR, logger="recognition.throttle"):
        waits = [asyncio.run(throttle.acquire("c:one", limit, T0)) for _ in range(3)]
    assert waits[:2] == [0.0, 0.0] and waits[2] > 0  # still limited, by this process's counters
    assert down.calls == 1  # not asked again within retry_seconds: no timeout per request
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    down.up = True
    assert asyncio.run(throttle.acquire("c:one", limit, T0 + 1.5)) == 0.0  # back on the shared counters
    assert down.calls == 2


def test_unreachable_counters_closed_refuse() -> None:
    throttle = Throttle(_Down(), on_error="closed")
    with pytest.raises(BackendUnavailable):
        asyncio.run(throttle.acquire("a:192.0.2.1", Limit(rate=1.0, burst=2), T0))
    assert asyncio.run(throttle.acquire("a:192.0.2.1", Limit(rate=0.0, burst=1), T0)) == 0.0  # nothing to count


def test_redis_that_does_not_answer_is_reported_unavailable() -> None:
    backend = RedisBackend("redis://127.0.0.1:9/0", timeout=0.2)  # the discard port: nothing listens
    with pytest.raises(BackendUnavailable, match="Redis"):
        asyncio.run(backend.acquire("c:one", Limit(rate=1.0, burst=1), T0))


class _TinyTable(SharedTableBackend):
    STRIPES = 1
    WAYS = 2


def test_full_shared_table_forgets_the_counter_nearest_to_empty(tmp_path: Path) -> None:
    table = _TinyTable(tmp_path / "tiny.shm")
    limit = Limit(rate=1.0, burst=5)

    def acquire(backend: SharedTableBackend, bucket: str) -> float:
        return asyncio.run(backend.acquire(bucket, limit, T0))

    for _ in range(5):
        acquire(table, "c:busy")  # TAT T0 + 5: far from empty
    assert acquire(table, "c:quiet") == 0.0  # TAT T0 + 1
    assert acquire(table, "c:busy") > 0
    assert acquire(table, "c:new") == 0.0  # the table is full: "quiet" (nearest to empty) goes
    assert acquire(table, "c:busy") > 0  # the busy counter is kept
    table.close()
    # a table file of another layout (an older hub, a different size) is started afresh
    assert acquire(SharedTableBackend(tmp_path / "tiny.shm"), "c:busy") == 0.0


def test_backend_is_chosen_by_url(tmp_path: Path) -> None:
    assert isinstance(open_backend("", tmp_path), SharedTableBackend)
    assert isinstance(open_backend(f"sqlite:///{tmp_path}/t.db", tmp_path), SqliteBackend)
    assert isinstance(open_backend("memory://", tmp_path), MemoryBackend)
    assert isinstance(open_backend("redis://127.0.0.1:6379/0", tmp_path), RedisBackend)
    with pytest.raises(ValueError, match="HUB_RATE_LIMIT_URL"):
        open_backend("mysql://x", tmp_path)
