"""``hub serve``: the mutual-recognition API with the pipeline's figures on ``/metrics``.

The API lives in :mod:`recognition`, below the run ledger; the app served here is recognition's
with :class:`pipeline.metrics.PipelineMetrics` registered on it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline import metrics
from recognition import serve as api

FACTORY = "pipeline.api:app_factory"


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Serve the mutual-recognition API (互认接口): /v1, /healthz, /metrics (with the feeds' figures), /openapi.json."""
    api.run(host, port, workers, log_level, factory=FACTORY)


def app_factory() -> object:
    return api.app_factory(metrics.install)


if __name__ == "__main__":
    typer.run(serve)
