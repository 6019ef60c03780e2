"""Fixtures of the webhook tests: a real HTTP receiver on 127.0.0.1, and fast retries."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from crowd.config import Settings


@dataclass
class Receiver:
    """Records every request; answers 500 to the first ``failures`` attempts of each delivery
    (all of them with ``failures=None``), then 200."""

    url: str
    failures: int | None = 1
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def by_event(self, event: str) -> list[dict[str, Any]]:
        return [json.loads(b) for h, b in self.requests if h["X-Crowd-Event"] == event]


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    lock = threading.Lock()
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                delivery = self.headers["X-Crowd-Delivery"]
                seen = sum(1 for h, _ in state.requests if h["X-Crowd-Delivery"] == delivery)
                state.requests.append((dict(self.headers.items()), body))
            fail = state.failures is None or seen < state.failures
            self.send_response(500 if fail else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hook"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture()
def fast_retries(settings: Settings) -> Settings:
    """Two attempts, one second apart, instead of the production backoff."""
    return replace(settings, webhook_retry_intervals=(1,))
