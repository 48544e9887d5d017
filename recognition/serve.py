"""``hub serve``: the mutual-recognition API under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Serve the mutual-recognition API (互认接口): /v1, /healthz, /metrics, /openapi.json."""
    import uvicorn

    uvicorn.run(
        "recognition.serve:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,  # paths carry holder codes (personal data); the audit log records every read
        loop="uvloop",
        http="httptools",
    )


def app_factory() -> object:
    import gc

    from recognition.app import create_app

    # The audit log is committed by a child process of each worker (recognition.audit_process), so
    # no thread competes with the event loop for the interpreter lock: the switch interval stays
    # at its default.
    app = create_app()
    # Everything imported and built so far lives as long as the worker. A full collection walks all
    # of it (~160,000 objects, ~100 ms here) and halts the event loop meanwhile, every few seconds
    # under load; frozen, it is left out and full collections only walk what requests leave behind.
    gc.collect()
    gc.freeze()
    return app
