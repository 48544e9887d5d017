"""Serving the tax SOAP sandbox on loopback: in a background thread or as its own process.

``python -m sandbox.tax.server --db tax.db --faults faults.json --port-file port`` is what
``hub sandbox up`` detaches; tests use :class:`TaxServer` in a thread.
"""

from __future__ import annotations

import argparse
import logging
import os
import socketserver
import sys
import threading
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from spyne.server.wsgi import WsgiApplication

from sandbox.faults import FaultFile
from sandbox.serving import serve
from sandbox.tax.service import make_application
from sandbox.tax.store import TaxStore
from sandbox.tax.wsgi import Credentials, TaxGateway

DEFAULT_USER = "hub"
DEFAULT_PASSWORD = "sandbox-secret"  # noqa: S105 - the sandbox's documented default, overridable


def default_credentials() -> Credentials:
    return Credentials(
        os.environ.get("HUB_SANDBOX_TAX_USER", DEFAULT_USER),
        os.environ.get("HUB_SANDBOX_TAX_PASSWORD", DEFAULT_PASSWORD),
    )


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    #: the hub's delivery worker pushes notices many at once: a backlog of 5 would reset connections
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logging.getLogger("sandbox.tax").debug(format, *args)


def make_wsgi(store: TaxStore, faults: FaultFile, credentials: Credentials | None) -> TaxGateway:
    return TaxGateway(WsgiApplication(make_application(store)), faults, credentials)


class TaxServer:
    """The tax service on ``127.0.0.1:<port>`` in a daemon thread (port 0: pick a free one)."""

    def __init__(self, store: TaxStore, faults: FaultFile, credentials: Credentials | None, port: int = 0) -> None:
        self.httpd = make_server(
            "127.0.0.1",
            port,
            make_wsgi(store, faults, credentials),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="tax-soap", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_port)

    @property
    def wsdl_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tax?wsdl"

    def start(self) -> TaxServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tax SOAP sandbox server")
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--faults", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--no-auth", action="store_true")
    args = parser.parse_args(argv)
    credentials = None if args.no_auth else default_credentials()
    server = TaxServer(TaxStore(args.db), FaultFile(args.faults), credentials, args.port)
    return serve(server.httpd, server.port, args.port_file)


if __name__ == "__main__":
    sys.exit(main())
