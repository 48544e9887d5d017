"""Throttling (限流): GCRA counters shared by every API process, and what happens when they are not reachable.

GCRA (the generic cell rate algorithm) keeps one number per counter, the theoretical arrival
time (TAT): the moment the counter would be empty again. A request at ``now`` moves it on by
one interval (``1 / rate``) from ``max(TAT, now)`` and is allowed while that stays within
``burst`` intervals of ``now``; else it is refused, with the seconds until it would fit. The
limit is smooth (no window edges letting two bursts through back to back) and costs one read
and one write of one number.

Backends, chosen by ``HUB_RATE_LIMIT_URL`` (``bench/bench_throttle.py`` measures each):

- empty (default): a memory-mapped table in a file of its own (``$HUB_HOME/throttle.shm``, 1 MiB,
  never the hub database), shared by the processes of one host: a few microseconds a count;
- ``redis://…``: one Lua script per count (atomic on the server), shared by every host; awaited,
  so the event loop serves other requests during the round trip;
- ``sqlite:///path``: a SQLite file (WAL, ``synchronous=OFF``), shared by one host's processes,
  without the table's fixed size, at ten times its cost;
- ``memory://``: this process only (tests, a single-process run).

When the shared counters fail (Redis down, file unwritable), :class:`Throttle` keeps limiting
with this process's own counters (``local``: at most workers × the limit, an error logged once
per outage, the shared ones tried again after a second) or refuses (``closed``).

>>> limit = Limit(rate=2, burst=3)  # two a second, three at once
>>> tat, waits = None, []
>>> for _ in range(4):
...     new, wait = gcra(tat, 100.0, limit)
...     tat = new if new is not None else tat
...     waits.append(wait)
>>> waits  # three at once, the fourth half a second later
[0.0, 0.0, 0.0, 0.5]
>>> gcra(tat, 100.5, limit)
(102.0, 0.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import math
import mmap
import os
import sqlite3
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

log = logging.getLogger(__name__)

_EPSILON = 1e-9  # floating-point slack: a request exactly at the limit is allowed


@dataclass(frozen=True)
class Limit:
    """``rate`` requests per second, ``burst`` at once; a rate of 0 is no limit."""

    rate: float
    burst: int

    @classmethod
    def of(cls, rate: float, burst: int | None = None) -> Limit:
        """A limit whose burst defaults to two seconds' worth of requests."""
        return cls(rate, burst if burst is not None else max(1, math.ceil(2 * rate)))

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    @property
    def tolerance(self) -> float:
        return self.burst * self.interval


def gcra(tat: float | None, now: float, limit: Limit) -> tuple[float | None, float]:
    """One request against a counter at ``tat``: (the TAT to store, 0.0) or (None, seconds to wait)."""
    new = max(tat or now, now) + limit.interval
    excess = new - now - limit.tolerance
    if excess > _EPSILON:
        return None, excess
    return new, 0.0


class BackendUnavailable(RuntimeError):
    """The shared counters could not be read or written."""


class Backend(Protocol):
    """Counters. ``acquire`` is a coroutine so that Redis's round trip does not hold the event loop;
    the local backends answer without awaiting anything."""

    async def acquire(self, bucket: str, limit: Limit, now: float) -> float:
        """Count one request; 0.0 if allowed, else the seconds until it would be."""
        ...

    async def aclose(self) -> None: ...


class MemoryBackend:
    """This process's own counters."""

    def __init__(self) -> None:
        self._tats: dict[str, float] = {}
        self._lock = threading.Lock()
        self._pruned = 0.0

    async def acquire(self, bucket: str, limit: Limit, now: float) -> float:
        return self.count(bucket, limit, now)

    def count(self, bucket: str, limit: Limit, now: float) -> float:
        with self._lock:
            new, wait = gcra(self._tats.get(bucket), now, limit)
            if new is not None:
                self._tats[bucket] = new
            if now - self._pruned > 60.0:
                self._tats = {k: v for k, v in self._tats.items() if v > now}
                self._pruned = now
        return wait

    async def aclose(self) -> None:
        self._tats.clear()


class SqliteBackend:
    """Counters in a SQLite file of their own, shared by the processes of one host."""

    # one statement counts and answers; DO UPDATE's WHERE leaves a refused request's counter alone
    # (and returns no row)
    _UPSERT = (
        "INSERT INTO gcra (bucket, tat) VALUES (?1, ?2 + ?3) ON CONFLICT (bucket) DO UPDATE "
        "SET tat = max(tat, ?2) + ?3 WHERE max(tat, ?2) + ?3 - ?2 <= ?4 RETURNING tat"
    )
    _SCHEMA = "CREATE TABLE IF NOT EXISTS gcra (bucket TEXT PRIMARY KEY, tat REAL NOT NULL) WITHOUT ROWID"
    _PRUNE_SECONDS = 60.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._thread_lock = threading.Lock()  # flock does not exclude threads sharing one open file
        self._lock_file: BinaryIO | None = None
        self._pruned = 0.0
        self._conns: list[sqlite3.Connection] = []

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._lock_file is None:
                self._lock_file = open(f"{self.path}.lock", "a+b")  # noqa: SIM115 - held for the backend's life
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
            with self._flock():
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=OFF")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS gcra (bucket TEXT PRIMARY KEY, tat REAL NOT NULL) WITHOUT ROWID"
                )
        except (OSError, sqlite3.Error) as exc:
            raise BackendUnavailable(f"throttle file {self.path}: {exc}") from exc
        self._local.conn = conn
        self._conns.append(conn)
        return conn

    @contextlib.contextmanager
    def _flock(self) -> Any:
        assert self._lock_file is not None
        with self._thread_lock:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)

    async def acquire(self, bucket: str, limit: Limit, now: float) -> float:
        conn = self._connect()
        interval, tolerance = limit.interval, limit.tolerance
        stored: list[Any] = []
        try:
            with self._flock():
                # fetchall: the statement runs to its end, so its implicit transaction commits under the lock
                counted = conn.execute(self._UPSERT, (bucket, now, interval, tolerance + _EPSILON)).fetchall()
                if not counted:
                    stored = conn.execute("SELECT tat FROM gcra WHERE bucket = ?", (bucket,)).fetchall()
                if now - self._pruned > self._PRUNE_SECONDS:
                    self._pruned = now
                    conn.execute("DELETE FROM gcra WHERE tat < ?", (now,))  # empty counters: as if absent
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"throttle file {self.path}: {exc}") from exc
        if counted:
            return 0.0
        return max(float(stored[0][0]) if stored else now, now) + interval - now - tolerance

    async def aclose(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._conns.clear()
        self._local = threading.local()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


_GCRA_LUA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + interval
local excess = new - now - tolerance
if excess > 1e-9 then return string.format('%.6f', excess) end
redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX', math.max(1, math.ceil((new - now) * 1000)))
return '0'
"""


class RedisBackend:
    """Counters in Redis, one atomic Lua script per request; a key lives only while its counter is not empty."""

    def __init__(self, url: str, *, prefix: str = "hub:rl:", timeout: float = 0.05) -> None:
        import redis  # noqa: PLC0415 - redis-py (~250 ms) only for the Redis backend; the others never load it

        self.url, self.prefix, self.timeout = url, prefix, timeout
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.client: Any = None
        self._script: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _bound_script(self) -> Any:
        """The script on a client of the running event loop (an asyncio client is bound to its loop)."""
        loop = asyncio.get_running_loop()
        if self.client is None or self._loop is not loop:
            import redis.asyncio  # noqa: PLC0415 - redis-py (~250 ms) only for the Redis backend

            # a short timeout: a slow Redis must not hold requests; the throttle falls back meanwhile
            self.client = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
            self._script, self._loop = self.client.register_script(_GCRA_LUA), loop
        return self._script

    async def acquire(self, bucket: str, limit: Limit, now: float) -> float:
        try:
            args = [repr(now), repr(limit.interval), repr(limit.tolerance)]
            answer = await self._bound_script()(keys=[self.prefix + bucket], args=args)
        except self._errors as exc:
            raise BackendUnavailable(f"Redis: {type(exc).__name__}: {exc}") from exc
        return float(answer)

    async def aclose(self) -> None:
        if self.client is not None and self._loop is asyncio.get_running_loop():
            with contextlib.suppress(*self._errors):
                await self.client.aclose()
        self.client = None


class SharedTableBackend:
    """Counters in a memory-mapped hash table, one file shared by the processes of one host.

    The table has 1,024 stripes of 64 slots; a slot holds a 64-bit fingerprint of the counter's
    name and its TAT. A counter lives in the stripe its fingerprint picks: found by fingerprint,
    else it takes the stripe's slot with the earliest TAT — an empty slot, an empty counter, or
    (the stripe full of live counters) the one nearest to empty, which is forgotten. So up to
    65,536 counters are live at once; past that (a flood from that many addresses within a
    burst's time) the counters nearest to empty are lost first. One ``flock`` over the file
    serialises the processes for the microseconds a count takes; the kernel drops it with a
    process that dies, and a count torn by a crash leaves at worst one wrong counter.
    """

    MAGIC = b"HUBGCRA1"
    STRIPES = 1024
    WAYS = 64
    _HEADER = 64

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stripe = self.WAYS * 16  # fingerprints, then TATs
        self.size = self._HEADER + self.STRIPES * self._stripe
        self._lock = threading.Lock()  # flock does not exclude threads sharing one open file
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._pid = 0
        self._fps = struct.Struct(f"<{self.WAYS}Q")
        self._tats = struct.Struct(f"<{self.WAYS}d")
        self._slot = struct.Struct("<Q")
        self._tat = struct.Struct("<d")

    def _open(self) -> mmap.mmap:
        self.close()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size != self.size or os.pread(fd, len(self.MAGIC), 0) != self.MAGIC:
                    os.ftruncate(fd, 0)  # a table of another layout, or none yet: start empty
                    os.ftruncate(fd, self.size)
                    os.pwrite(fd, self.MAGIC, 0)
                table = mmap.mmap(fd, self.size)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            raise BackendUnavailable(f"throttle table {self.path}: {exc}") from exc
        self._fd, self._map, self._pid = fd, table, os.getpid()
        return table

    async def acquire(self, bucket: str, limit: Limit, now: float) -> float:
        fp = int.from_bytes(hashlib.blake2b(bucket.encode(), digest_size=8).digest(), "little") or 1
        base = self._HEADER + (fp >> 40) % self.STRIPES * self._stripe
        with self._lock:
            table = self._map
            if table is None or self._pid != os.getpid():  # a forked child opens its own
                table = self._open()
            fd = self._fd
            assert fd is not None
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                fps = self._fps.unpack_from(table, base)
                tats_at = base + self.WAYS * 8
                try:
                    slot = fps.index(fp)
                    tat: float | None = self._tat.unpack_from(table, tats_at + slot * 8)[0]
                except ValueError:
                    tats = self._tats.unpack_from(table, tats_at)
                    slot, tat = tats.index(min(tats)), None
                new, wait = gcra(tat, now, limit)
                if new is not None:
                    self._slot.pack_into(table, base + slot * 8, fp)
                    self._tat.pack_into(table, tats_at + slot * 8, new)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        return wait

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def open_backend(url: str, home: Path, *, prefix: str = "hub:rl:", timeout: float = 0.05) -> Backend:
    """The backend ``HUB_RATE_LIMIT_URL`` names (empty: the shared table under ``home``); ``timeout``:
    how long Redis may take to answer."""
    if not url:
        return SharedTableBackend(home / "throttle.shm")
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBackend(url, prefix=prefix, timeout=timeout)
    if url == "memory://":
        return MemoryBackend()
    if url.startswith("sqlite:///"):
        return SqliteBackend(Path(url.removeprefix("sqlite:///")))
    raise ValueError(f"HUB_RATE_LIMIT_URL {url!r}: expected redis://…, sqlite:///path, memory:// or empty")


class Throttle:
    """A backend and what to do when it fails: keep limiting per process (``local``) or refuse (``closed``)."""

    def __init__(
        self, backend: Backend, *, on_error: Literal["local", "closed"] = "local", retry_seconds: float = 1.0
    ) -> None:
        self.backend = backend
        self.on_error = on_error
        self.retry_seconds = retry_seconds
        self.fallback = MemoryBackend()
        self.failures = 0
        self._down_until: float | None = None

    async def acquire(self, bucket: str, limit: Limit, now: float) -> float:
        """0.0 if allowed, else seconds to wait; raises :class:`BackendUnavailable` when closed and down."""
        if limit.unlimited:
            return 0.0
        if self._down_until is None or now >= self._down_until:
            try:
                wait = await self.backend.acquire(bucket, limit, now)
            except BackendUnavailable as exc:
                self.failures += 1
                if self._down_until is None:
                    log.error("rate-limit counters unavailable (%s); %s", exc,
                              "limiting per process" if self.on_error == "local" else "refusing requests")  # fmt: skip
                self._down_until = now + self.retry_seconds
            else:
                if self._down_until is not None:
                    log.warning("rate-limit counters reachable again")
                    self._down_until = None
                return wait
        if self.on_error == "closed":
            raise BackendUnavailable("rate-limit counters unavailable")
        return self.fallback.count(bucket, limit, now)

    async def aclose(self) -> None:
        await self.backend.aclose()
        await self.fallback.aclose()
