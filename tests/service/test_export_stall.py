"""A client that starts an export over HTTP and stops reading cannot keep its export slot, nor
the database connection behind it: a real `crowd serve` (gunicorn), one process allowed one
export at once, and a client whose receive buffer is small, so the server's writes back up."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import requests

from crowd.config import Settings
from crowd.store.db import Database
from tests.service.servers import Crowd, wait_for

#: About 7.6 MB of JSON lines: more than the server's socket can buffer (Linux's tcp_wmem
#: maximum is 4 MB), so the stalled client's export really waits on it.
TASKS = 40_000


def _stalled_export(base: str, token: str, pid: int) -> socket.socket:
    """Ask for the export and read only the first bytes of the response, then nothing."""
    url = urlsplit(base)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect((url.hostname, url.port))
    sock.sendall(
        f"GET /api/v1/projects/{pid}/export HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    return sock


def _export_sessions(database: Database) -> int:
    with database.transaction() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE '%%crowd_export_%%' AND pid <> pg_backend_pid()"
        )
        return int(cur.fetchone()[0])


def test_a_client_that_stops_reading_an_export_loses_its_slot(
    settings: Settings, database: Database, clean: None, tmp_path: Path
) -> None:
    """Slow (about 18 s): a real gunicorn must notice, through its idle timeout, that a client
    stopped reading."""
    assert settings.database_url and settings.redis_url
    crowd = Crowd(settings.database_url, settings.redis_url, tmp_path)
    crowd.env.update(CROWD_EXPORT_CONCURRENCY="1", CROWD_EXPORT_IDLE_TIMEOUT="2")
    try:
        crowd.serve(web_workers=1)
        token = crowd.token()
        api, hdr = f"{crowd.base}/api/v1", {"Authorization": f"Bearer {token}"}
        spec = {"name": "export", "labels": ["a", "b"]}
        pid = requests.post(f"{api}/projects", json=spec, headers=hdr, timeout=30).json()["id"]
        for start in range(0, TASKS, 10_000):
            batch = {"tasks": [{"external_id": f"t{i}"} for i in range(start, start + 10_000)]}
            r = requests.post(f"{api}/projects/{pid}/tasks", json=batch, headers=hdr, timeout=60)
            assert r.status_code == 201, r.text

        stalled = _stalled_export(crowd.base, token, pid)
        try:
            # While it is stalled, the one slot is taken.
            busy = requests.get(f"{api}/projects/{pid}/export", headers=hdr, timeout=30)
            assert busy.status_code == 429 and busy.headers["Retry-After"] == "10"
            assert _export_sessions(database) == 1
            # Two seconds without a read: the server gives up on that client, and the slot
            # and the database session are free again, with the client still connected.
            wait_for(lambda: _export_sessions(database) == 0, 60, "the stalled export to end")

            def served() -> bool:
                r = requests.get(f"{api}/projects/{pid}/export", headers=hdr, timeout=60)
                assert r.status_code in (200, 429), r.text
                return r.status_code == 200 and len(r.text.splitlines()) == TASKS

            wait_for(served, 60, "a new export to be served whole")
        finally:
            stalled.close()
    finally:
        crowd.stop()
