"""How a sandbox server started as its own process (``python -m sandbox.tax.server``,
``python -m sandbox.sms``) tells its starter which port it took, and serves until interrupted."""

from __future__ import annotations

import contextlib
from http.server import HTTPServer
from pathlib import Path


def write_port_file(port_file: Path, port: int) -> None:
    """Write ``port`` to ``port_file`` atomically: a starter polling the file never reads half a number."""
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(port))
    tmp.replace(port_file)


def serve(httpd: HTTPServer, port: int, port_file: Path | None) -> int:
    """Announce the port (when asked to) and serve until interrupted; the process's exit status."""
    if port_file:
        write_port_file(port_file, port)
    with contextlib.suppress(KeyboardInterrupt):
        httpd.serve_forever()
    return 0
