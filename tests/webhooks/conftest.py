"""Fixtures of the webhook tests: real HTTP receivers (127.0.0.1 by default, or any address
given), settings that allow webhooks to such private addresses, and fast retries."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask

from crowd.config import ANY_ADDRESS, Settings
from tests.conftest import app_for, serving_in_thread


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    """The suite's settings, allowing webhooks to private addresses (the receivers')."""
    return replace(settings, webhook_allow_private=ANY_ADDRESS)


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    """An API that registers webhooks on private addresses (the suite's refuses them)."""
    with app_for(settings) as app:
        yield app


@dataclass
class Receiver:
    """Records every request; answers 500 to the first ``failures`` attempts of each delivery
    (all of them with ``failures=None``), then 200; or, with ``redirect_to``, 307 to it."""

    url: str
    failures: int | None = 1
    redirect_to: str | None = None
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def by_event(self, event: str) -> list[dict[str, Any]]:
        return [json.loads(b) for h, b in self.requests if h["X-Crowd-Event"] == event]


@contextmanager
def serving(host: str = "127.0.0.1", failures: int | None = 1) -> Iterator[Receiver]:
    """A receiver listening on ``host`` (an IPv4 or IPv6 address) at a free port."""
    lock = threading.Lock()
    state = Receiver(url="", failures=failures)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                delivery = self.headers["X-Crowd-Delivery"]
                seen = sum(1 for h, _ in state.requests if h["X-Crowd-Delivery"] == delivery)
                state.requests.append((dict(self.headers.items()), body))
            fail = state.failures is None or seen < state.failures
            if state.redirect_to:
                self.send_response(307)
                self.send_header("Location", state.redirect_to)
            else:
                self.send_response(500 if fail else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    netloc = f"[{host}]" if ":" in host else host
    with serving_in_thread(Server((host, 0), Handler)) as port:
        state.url = f"http://{netloc}:{port}/hook"
        yield state


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    with serving() as state:
        yield state


@pytest.fixture()
def fast_retries(settings: Settings) -> Settings:
    """Two attempts, one second apart, instead of the production backoff."""
    return replace(settings, webhook_retry_intervals=(1,))
