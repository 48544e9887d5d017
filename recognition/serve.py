"""``hub serve``: the mutual-recognition API under uvicorn."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
from collections.abc import Callable
from typing import Annotated, Any

import typer

log = logging.getLogger(__name__)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Serve the mutual-recognition API (互认接口): /v1, /healthz, /metrics, /openapi.json."""
    run(host, port, workers, log_level)


def run(host: str, port: int, workers: int, log_level: str, factory: str = "recognition.serve:app_factory") -> None:
    """Serve the app ``factory`` (``module:function``) builds; ``hub serve`` passes the pipeline's
    (:mod:`pipeline.api`), which adds the feeds' figures to ``/metrics``."""
    import uvicorn  # noqa: PLC0415 - ~75 ms, only when serving; `hub --help` imports this module

    if workers <= 1:
        uvicorn.run(host=host, port=port, **_config_kwargs(log_level, factory))
        return
    _supervise(host, port, workers, log_level, factory)


def _config_kwargs(log_level: str, factory: str = "recognition.serve:app_factory") -> dict[str, Any]:
    return {
        "app": factory,
        "factory": True,
        "log_level": log_level,
        "access_log": False,  # paths carry holder codes (personal data); the audit log records every read
        "loop": "uvloop",
        "http": "httptools",
    }


def _listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(host: str, port: int, log_level: str, factory: str) -> None:
    """One worker process: its own listening socket in the port's SO_REUSEPORT group, one uvicorn server."""
    import uvicorn  # noqa: PLC0415 - ~75 ms, only in a serving worker; `hub --help` imports this module

    config = uvicorn.Config(**_config_kwargs(log_level, factory))
    uvicorn.Server(config).run(sockets=[_listening_socket(host, port)])


def _supervise(host: str, port: int, workers: int, log_level: str, factory: str) -> None:
    """Run ``workers`` processes, each listening on the port through SO_REUSEPORT; restart any that dies.

    uvicorn's own supervisor hands one shared listening socket to every worker, and whichever
    wakes first accepts every connection waiting: a burst of new connections lands mostly on
    one worker (32 connections measured split up to 26/6), whose clients then wait twice as
    long. With a socket each, the kernel spreads connections over the workers as they arrive.
    """
    spawn = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        proc = spawn.Process(target=_worker, args=(host, port, log_level, factory), name="hub-api-worker")
        proc.start()
        return proc

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    procs = [start() for _ in range(workers)]
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            multiprocessing.connection.wait([p.sentinel for p in procs], timeout=1.0)
            for i, proc in enumerate(procs):
                if proc.is_alive() or stopping:
                    continue
                if proc.exitcode == 3:  # uvicorn's start-up failure (port taken, app not importable)
                    stop(signal.SIGTERM, None)
                    raise SystemExit(3)
                log.warning("API worker %s exited (%s); starting another", proc.pid, proc.exitcode)
                procs[i] = start()
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def app_factory(*installs: Callable[[Any], None]) -> object:
    """The API; each of ``installs`` is given the app before it serves (what rooms above add)."""
    from recognition.app import create_app  # noqa: PLC0415 - the app, ~2 s

    # The audit log is committed by a child process of each worker (recognition.audit_process), so
    # no thread competes with the event loop for the interpreter lock (the WAL checkpointer,
    # hub.sqlite_wal.Checkpointer, holds it a few microseconds per wake-up and releases it while
    # SQLite copies): the switch interval stays at its default.
    app = create_app()
    for install in installs:
        install(app)
    # Everything imported and built so far lives as long as the worker. A full collection walks all
    # of it (~160,000 objects, ~100 ms here) and halts the event loop meanwhile, every few seconds
    # under load; frozen, it is left out and full collections only walk what requests leave behind.
    gc.collect()
    gc.freeze()
    return app


if __name__ == "__main__":
    typer.run(serve)
