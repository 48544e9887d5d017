"""moto's S3 service alone, as the scaled mode's S3 server (``python -m rigs.s3_server HOST PORT``).

``moto_server`` serves every AWS service moto mocks: for each request its dispatcher lists moto's
package directory and tries the host against every service's URL patterns, under one lock, before
the S3 handler runs, and it logs a line per request. The hub asks it for S3 only, so this serves
moto's S3 application directly (the same backend, handlers and request handler ``moto_server`` runs)
and logs errors, not every request. All requests are still served by one Python process.
"""

from __future__ import annotations

import argparse
from typing import Any

from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class _Handler(MotoRequestHandler):
    """moto's request handler without a log line per request (errors are still logged)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rigs.s3_server", description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    args = parser.parse_args(argv)
    run_simple(args.host, args.port, create_backend_app("s3"), threaded=True, request_handler=_Handler)


if __name__ == "__main__":
    main()
