"""A recording stand-in for the Lambda Invoke API, for what moto does not keep.

moto's Lambda echoes the payload but forgets the ClientContext and the invocation type it
was sent; this endpoint serves ``POST /2015-03-31/functions/{name}/invocations``, records
every request's headers and body, and answers as told (a FunctionError, a status).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Invocation:
    function: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"ok": true}'
    function_error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering: a function that runs that long.
    delay: float = 0


@dataclass
class RecordingLambda:
    reply: Reply = field(default_factory=Reply)
    seen: list[Invocation] = field(default_factory=list)

    def __post_init__(self) -> None:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                parts = self.path.split("?")[0].split("/")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if (
                    len(parts) != 5
                    or parts[1:3] != ["2015-03-31", "functions"]
                    or parts[4] != "invocations"
                ):
                    self.send_error(404)
                    return
                recorder.seen.append(Invocation(parts[3], dict(self.headers.items()), body))
                reply = recorder.reply
                time.sleep(reply.delay)
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                if reply.function_error:
                    self.send_header("X-Amz-Function-Error", reply.function_error)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
