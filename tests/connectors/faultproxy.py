"""A TCP proxy that can drop connections part-way (fault injection for SQL sources)."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class FaultProxy:
    target_host: str
    target_port: int
    #: when set, connections opened from now on are cut after this many server→client bytes
    cut_after_bytes: int | None = None
    port: int = 0
    _server: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    cuts: int = 0

    def start(self) -> FaultProxy:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        srv.settimeout(0.2)
        self._server = srv
        self.port = srv.getsockname()[1]
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection((self.target_host, self.target_port))
            budget = self.cut_after_bytes
            for src, dst, limit in ((client, upstream, None), (upstream, client, budget)):
                t = threading.Thread(target=self._pipe, args=(src, dst, limit, client, upstream), daemon=True)
                t.start()

    def _pipe(
        self, src: socket.socket, dst: socket.socket, limit: int | None, a: socket.socket, b: socket.socket
    ) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[: max(0, limit - sent)])
                    self.cuts += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
