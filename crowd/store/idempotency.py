"""Idempotency keys: a creating request's response, stored with its effect.

:func:`save` runs inside the transaction that makes the request's effect, so the key and the
effect commit together or not at all. A key older than :data:`TTL` counts as absent: it is
replaced when used again and deleted by :func:`purge_expired`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from crowd.store.db import Cursor, execute_prepared

#: How long a key's response is kept for replay.
TTL = timedelta(hours=24)


@dataclass(frozen=True)
class Stored:
    """A stored response and what identifies the request that produced it."""

    request: str  # method and path
    body_hash: bytes
    status: int
    response: str  # JSON text


def find(cur: Cursor, account_id: int, key: str) -> Stored | None:
    """The live (unexpired) response stored under ``key`` for the account, if any."""
    execute_prepared(
        cur,
        "crowd_idempotency_find",
        "SELECT request, body_hash, status, response FROM idempotency_keys"
        " WHERE account_id = $1::bigint AND key = $2::text AND created_at > now() - $3::interval",
        (account_id, key, TTL),
    )
    row = cur.fetchone()
    return Stored(row[0], bytes(row[1]), row[2], row[3]) if row else None


def save(cur: Cursor, account_id: int, key: str, stored: Stored) -> Stored | None:
    """Store ``stored`` under ``key``; None when stored, else the live row that holds the key.

    When another transaction has just stored the same key and not yet finished, this waits
    for it: its row is returned once it commits, and this one is stored if it rolls back.
    """
    execute_prepared(
        cur,
        "crowd_idempotency_save",
        """
        INSERT INTO idempotency_keys (account_id, key, request, body_hash, status, response)
        VALUES ($1::bigint, $2::text, $3::text, $4::bytea, $5::smallint, $6::text)
        ON CONFLICT (account_id, key) DO UPDATE
            SET request = EXCLUDED.request, body_hash = EXCLUDED.body_hash,
                status = EXCLUDED.status, response = EXCLUDED.response, created_at = now()
            WHERE idempotency_keys.created_at <= now() - $7::interval
        RETURNING 1
        """,
        (account_id, key, stored.request, stored.body_hash, stored.status, stored.response, TTL),
    )
    if cur.fetchone() is not None:
        return None
    return find(cur, account_id, key)


def replace_response(cur: Cursor, account_id: int, key: str, status: int, response: str) -> None:
    """Change the response stored under ``key`` (a later transaction of the same request made
    a further effect, such as the next reservation)."""
    cur.execute(
        "UPDATE idempotency_keys SET status = %s, response = %s WHERE account_id = %s AND key = %s",
        (status, response, account_id, key),
    )


def purge_expired(cur: Cursor, limit: int = 10_000) -> int:
    """Delete up to ``limit`` expired keys, oldest first; returns how many."""
    cur.execute(
        "DELETE FROM idempotency_keys WHERE (account_id, key) IN ("
        " SELECT account_id, key FROM idempotency_keys WHERE created_at <= now() - %s"
        " ORDER BY created_at LIMIT %s)",
        (TTL, limit),
    )
    return int(cur.rowcount)
