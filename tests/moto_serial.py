"""The AWS API server of the test suite: moto's own server application, on loopback.

Run as ``python moto_serial.py``; it prints its port and serves until killed.

Why not the ``moto_server`` command as it is: moto checks ``If-Match``/``If-None-Match``
and then writes, without a lock, so two concurrent conditional PUTs can both succeed. S3
makes the check and the write one atomic step, and lambdacron's at-most-once guarantee
rests on exactly that. Serving moto's application one request at a time restores S3's
atomicity, so the concurrency tests test lambdacron, not a race inside the test server.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


class Serialised:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            return list(self.app(environ, start_response))


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request
    app = Serialised(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
