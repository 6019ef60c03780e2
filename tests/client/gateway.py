"""A small HTTP gateway between a client and the live service, with faults on demand.

It stands in for the load balancer or reverse proxy of a real deployment: requests go through
it over real sockets to the real service, unless the test scripted a fault for the next one:
``"drop"`` forwards the request but closes the connection instead of relaying the response
(the service acted; the client never hears), ``"reset"`` closes it without forwarding, and
``(status, retry_after)`` answers with that status without forwarding. Every request's
method, path and Idempotency-Key is recorded.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from tests.conftest import serving_in_thread

Fault = str | tuple[int, str | None]


@dataclass
class Seen:
    method: str
    path: str
    idempotency_key: str | None
    fault: Fault | None


@dataclass
class Gateway:
    upstream: str
    url: str = ""
    faults: deque[Fault] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_faults(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)


def _handler(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with gateway.lock:
                fault = gateway.faults.popleft() if gateway.faults else None
                gateway.seen.append(
                    Seen(self.command, self.path, self.headers.get("Idempotency-Key"), fault)
                )
            if fault == "reset":
                self.close_connection = True
                return
            if isinstance(fault, tuple):
                status, retry_after = fault
                payload = b'{"error": {"code": "unavailable", "message": "try again"}}'
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
            }
            response = requests.request(
                self.command, gateway.upstream + self.path, data=body, headers=headers, timeout=30
            )
            if fault == "drop":
                self.close_connection = True
                return
            self.send_response(response.status_code)
            for k, v in response.headers.items():
                if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        do_GET = do_POST = do_PATCH = _any

    return Handler


@contextmanager
def serving(gateway: Gateway, port: int = 0) -> Iterator[Gateway]:
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(gateway))
    server.daemon_threads = True
    with serving_in_thread(server) as bound:
        gateway.url = f"http://127.0.0.1:{bound}"
        yield gateway
