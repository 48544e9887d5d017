"""The API's audit group commit in a child process of each API worker.

:class:`recognition.audit.AuditWriter` commits from a thread, and that thread shares the
interpreter lock with the event loop: under load every database call it makes waits for the
loop to let go of the lock (while holding the cross-process audit lock), and the loop in turn
waits for it. :class:`ProcessAuditWriter` keeps the same contract — ``await write(record)``
returns the entry's number once the entry is durable, a failed commit fails every caller of
its group — but the chain work runs in a child process (``python -m recognition.audit_process``)
with its own interpreter. The event loop only sends each record as a line of JSON over a
socket pair and reads the numbers back; nothing in the worker competes with the loop.

The child reads the database URL as its first line (never from its command line, where a
password would show), then commits whatever lines have arrived as one group with
:class:`recognition.audit._ChainSink` (the same statements, lock and WAL sync as the thread
writer) and answers ``<id> <seq>`` or ``<id> !<error>`` per line. It exits when the socket
closes, that is when its worker stops or dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, cast

from sqlalchemy.engine import Engine

from hub.db import make_engine
from recognition.audit import AuditRecord, _ChainSink

log = logging.getLogger(__name__)

_FIELDS = ("consumer", "action", "resource", "outcome", "key_id", "subject", "fields", "purpose", "detail")
#: a child that died is started again at most this often; meanwhile writes fail (503), they never skip the log
RESTART_SECONDS = 1.0


class AuditProcessError(RuntimeError):
    """The audit child failed the commit, or is gone."""


def to_line(request_id: int, rec: AuditRecord) -> bytes:
    body: dict[str, Any] = {f: getattr(rec, f) for f in _FIELDS}
    body["at"] = rec.at.isoformat()  # exact: microseconds and offset survive fromisoformat
    return f"{request_id} {json.dumps(body, ensure_ascii=False, separators=(',', ':'))}\n".encode()


def from_line(line: bytes) -> tuple[int, AuditRecord]:
    head, _, payload = line.partition(b" ")
    body = json.loads(payload)
    at = dt.datetime.fromisoformat(body.pop("at"))
    return int(head), AuditRecord(**body, at=at)


class _Replies(asyncio.Protocol):
    def __init__(self, owner: ProcessAuditWriter) -> None:
        self.owner = owner
        self.buffer = b""
        self.closed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\n" not in self.buffer:
            return
        *lines, self.buffer = self.buffer.split(b"\n")
        self.owner._answered(lines)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(self)


class ProcessAuditWriter:
    """Group commit in a child process; ``await write(record)`` returns once the entry is durable."""

    def __init__(self, engine: Engine) -> None:
        self.url = engine.url.render_as_string(hide_password=False)
        self.commits = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._transport: asyncio.Transport | None = None
        self._protocol: _Replies | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Future[asyncio.Transport] | None = None
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._next_id = 0
        self._out: list[bytes] = []
        self._started_at = 0.0

    async def start(self) -> None:
        """Start the child now (the app does it at start-up, so the first request does not wait for it)."""
        await self._child()

    def _ready(self) -> asyncio.Transport | None:
        transport = self._transport
        if transport is not None and not transport.is_closing() and self._loop is asyncio.get_running_loop():
            return transport
        return None

    async def _child(self) -> asyncio.Transport:
        ready = self._ready()
        if ready is not None:
            return ready
        loop = asyncio.get_running_loop()
        if self._starting is not None and self._loop is loop:
            return await asyncio.shield(self._starting)
        if self._transport is not None or self._proc is not None:  # a closed child or another loop's
            self.close()
        now = time.monotonic()
        if self._started_at and now - self._started_at < RESTART_SECONDS:
            raise AuditProcessError("the audit writer process stopped; it is started again shortly")
        self._started_at = now
        self._loop = loop
        self._starting = starting = loop.create_future()
        try:
            ours, theirs = socket.socketpair()
            try:
                # a session of its own: Ctrl-C reaches the server, which then closes the socket
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "recognition.audit_process"], stdin=theirs.fileno(),
                    stdout=subprocess.DEVNULL, close_fds=True, start_new_session=True,
                )  # fmt: skip
            finally:
                theirs.close()
            protocol = _Replies(self)
            accepted, _ = await loop.connect_accepted_socket(lambda: protocol, ours)
            transport = cast(asyncio.Transport, accepted)  # uvloop's transports are not its subclasses
            transport.write(self.url.encode() + b"\n")
            self._transport, self._protocol = transport, protocol
            starting.set_result(transport)
            return transport
        except BaseException as exc:
            starting.set_exception(exc)
            starting.exception()  # retrieved: the waiters (if any) get it
            raise
        finally:
            self._starting = None

    async def write(self, record: AuditRecord) -> int:
        transport = self._ready() or await self._child()
        assert self._loop is not None
        line_id = self._next_id
        self._next_id += 1
        line = to_line(line_id, record)  # may raise (detail not JSON): nothing sent, the caller gets the error
        fut: asyncio.Future[int] = self._loop.create_future()
        self._pending[line_id] = fut
        if not self._out:
            self._loop.call_soon(self._flush, transport)
        self._out.append(line)
        return await fut

    def _flush(self, transport: asyncio.Transport) -> None:
        out, self._out = self._out, []
        if out and not transport.is_closing():
            transport.write(b"".join(out))  # one send for everything this loop turn wrote

    def _answered(self, lines: list[bytes]) -> None:
        groups = set()
        for line in lines:
            head, _, tail = line.partition(b" ")
            fut = self._pending.pop(int(head), None)
            if fut is None or fut.done():
                continue
            if tail.startswith(b"!"):
                fut.set_exception(AuditProcessError(tail[1:].decode(errors="replace")))
            else:
                seq, _, group = tail.partition(b" ")
                groups.add(group)
                fut.set_result(int(seq))
        self.commits += len(groups)

    def _lost(self, protocol: _Replies) -> None:
        protocol.closed.set()
        if protocol is not self._protocol:
            return
        self._transport = None
        self._protocol = None
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(AuditProcessError("the audit writer process stopped before committing"))
        proc = self._proc
        if proc is not None and proc.poll() is None and self._loop is not None:
            self._loop.call_later(RESTART_SECONDS, self._reap, proc)  # it is on its way out; collect it later

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if self._proc is proc:
            self._proc = None

    async def aclose(self) -> None:
        """Stop the child once it has committed and answered everything it received."""
        transport, protocol, proc = self._transport, self._protocol, self._proc
        if transport is not None and protocol is not None and not transport.is_closing():
            self._flush(transport)
            transport.write_eof()  # the child commits what it has, answers, and exits on end of input
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(protocol.closed.wait(), 10)
            transport.close()
        if proc is not None:
            for _ in range(500):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.01)  # polling a process exit with a bound, not a fixed wait
            self._reap(proc)
        self._transport = self._protocol = None

    def close(self) -> None:
        """Stop at once (outside the event loop, or when it is gone): entries not yet answered fail."""
        transport, self._transport = self._transport, None
        self._protocol = None
        if transport is not None:
            transport.abort()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # an interrupted commit rolls back whole: the chain stays intact
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _serve(sock: socket.socket) -> None:
    buffer = b""
    while b"\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buffer += chunk
    url, _, buffer = buffer.partition(b"\n")
    engine = make_engine(url.decode())
    sink = _ChainSink(engine)
    group = 0
    try:
        while True:
            if b"\n" not in buffer:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    return
                buffer += chunk
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):  # everything that is already there joins this group
                while chunk := sock.recv(1 << 20):
                    buffer += chunk
            sock.setblocking(True)
            if b"\n" not in buffer:
                continue
            *lines, buffer = buffer.split(b"\n")
            ids: list[int] = []
            records: list[AuditRecord] = []
            replies: list[bytes] = []
            for line in lines:
                try:
                    request_id, rec = from_line(line)
                except Exception as exc:  # a line the parent wrote but cannot be read: answer it, keep going
                    replies.append(line.partition(b" ")[0] + f" !{type(exc).__name__}\n".encode())
                    continue
                ids.append(request_id)
                records.append(rec)
            if records:
                group += 1
                try:
                    seqs = sink.write(records)
                except Exception as exc:
                    log.exception("audit commit of %d entries failed", len(records))
                    replies += [f"{i} !{type(exc).__name__}\n".encode() for i in ids]
                else:
                    replies += [f"{i} {s} {group}\n".encode() for i, s in zip(ids, seqs, strict=True)]
            sock.sendall(b"".join(replies))
    finally:
        sink.close()
        engine.dispose()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when to stop, by closing the socket
    logging.basicConfig(level=os.environ.get("HUB_AUDIT_LOG_LEVEL", "WARNING"))
    sock = socket.socket(fileno=0)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        _serve(sock)


if __name__ == "__main__":
    main()
