"""A small fault-injecting HTTP proxy for the tests, between boto3 and the moto server.

It forwards every request to the upstream server, except that it can answer with an S3
error (503 SlowDown, 500, 409 ConditionalRequestConflict), drop the connection without an
answer, or delay the request: either for the next N matching requests, or at random for a
fraction of all of them (seeded, so a failing run can be replayed).
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
    "conflict": (
        409,
        "ConditionalRequestConflict",
        "A conflicting conditional operation is currently in progress.",
    ),
}
#: drop: close the connection before forwarding; lost: forward, then close instead of
#: answering (the request took effect, the client cannot know); delay: forward late.
FAULTS = (*ERRORS, "drop", "lost", "delay")


@dataclass
class _Rule:
    fault: str
    method: str | None
    remaining: int
    skip: int = 0  # let this many matching requests through first


@dataclass
class Plan:
    rules: list[_Rule] = field(default_factory=list)
    rate: float = 0.0
    random_faults: tuple[str, ...] = FAULTS
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    injected: dict[str, int] = field(default_factory=dict)
    forwarded: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pick(self, method: str) -> str | None:
        with self.lock:
            for rule in self.rules:
                if rule.remaining > 0 and rule.method in (None, method):
                    if rule.skip > 0:
                        rule.skip -= 1
                        break
                    rule.remaining -= 1
                    return self._count(rule.fault)
            if self.rate and self.rng.random() < self.rate:
                return self._count(self.rng.choice(self.random_faults))
            self.forwarded += 1
            return None

    def _count(self, fault: str) -> str:
        self.injected[fault] = self.injected.get(fault, 0) + 1
        return fault


class FaultProxy:
    def __init__(self, upstream: str, delay_seconds: float = 0.3) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.delay_seconds = delay_seconds
        self.plan = Plan()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy.plan.pick(self.command)
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault in ERRORS:
                    status, code, message = ERRORS[fault]
                    payload = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                        f"<Message>{message}</Message></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if fault == "delay":
                    time.sleep(proxy.delay_seconds)
                upstream = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=60
                )
                try:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in ("connection", "keep-alive")
                    }
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    if fault == "lost":
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self.send_response(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in (
                            "connection",
                            "transfer-encoding",
                            "content-length",
                            "keep-alive",
                            "server",
                            "date",
                        ):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> FaultProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def inject(
        self, fault: str, *, method: str | None = None, count: int = 1, skip: int = 0
    ) -> None:
        assert fault in FAULTS, fault
        with self.plan.lock:
            self.plan.rules.append(_Rule(fault, method, count, skip))

    def chaos(self, rate: float, *, seed: int = 0, faults: tuple[str, ...] = FAULTS) -> None:
        with self.plan.lock:
            self.plan.rate = rate
            self.plan.rng = random.Random(seed)
            self.plan.random_faults = faults

    def calm(self) -> None:
        with self.plan.lock:
            self.plan.rate = 0.0
            self.plan.rules.clear()
