"""Accounts and their bearer tokens. Tokens are stored as SHA-256 hashes, never in clear."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from crowd.store.db import Cursor, one


class Role(StrEnum):
    ADMIN = "admin"
    REQUESTER = "requester"
    WORKER = "worker"


@dataclass(frozen=True)
class Account:
    id: int
    role: Role
    name: str
    created_by: int | None
    creator_is_admin: bool = False

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "role": self.role.value}


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token() -> str:
    """A random bearer token: 256 bits, URL-safe, with a prefix that makes leaks greppable."""
    return "crowd_" + secrets.token_urlsafe(32)


def create(
    cur: Cursor, role: Role, name: str, created_by: int | None = None
) -> tuple[Account, str]:
    """Create an account and return it with its token (the only time the token is visible)."""
    token = new_token()
    cur.execute(
        "INSERT INTO accounts (role, name, token_hash, created_by) VALUES (%s, %s, %s, %s)"
        " RETURNING id",
        (role.value, name, hash_token(token), created_by),
    )
    (account_id,) = one(cur)
    return Account(account_id, role, name, created_by), token


def rotate_token(cur: Cursor, account_id: int) -> str:
    """Give the account a new token, which replaces (and so revokes) its current one."""
    token = new_token()
    cur.execute(
        "UPDATE accounts SET token_hash = %s WHERE id = %s", (hash_token(token), account_id)
    )
    return token


def authenticate(cur: Cursor, token: str) -> Account | None:
    """The account owning ``token``, or None. The hash is compared in constant time."""
    digest = hash_token(token)
    cur.execute(
        "SELECT a.id, a.role, a.name, a.created_by, a.token_hash, c.role = 'admin'"
        " FROM accounts a LEFT JOIN accounts c ON c.id = a.created_by WHERE a.token_hash = %s",
        (digest,),
    )
    row = cur.fetchone()
    if row is None or not hmac.compare_digest(bytes(row[4]), digest):
        return None
    return Account(row[0], Role(row[1]), row[2], row[3], bool(row[5]))


def count(cur: Cursor) -> int:
    cur.execute("SELECT count(*) FROM accounts")
    return int(one(cur)[0])


def list_workers(cur: Cursor, created_by: int | None, after_id: int, limit: int) -> list[Account]:
    """Worker accounts created by ``created_by`` (all workers when None), by id."""
    cur.execute(
        "SELECT id, role, name, created_by FROM accounts"
        " WHERE role = 'worker' AND (%s::bigint IS NULL OR created_by = %s) AND id > %s"
        " ORDER BY id LIMIT %s",
        (created_by, created_by, after_id, limit),
    )
    return [Account(r[0], Role(r[1]), r[2], r[3]) for r in cur.fetchall()]


def get_worker(cur: Cursor, account_id: int) -> Account | None:
    """The worker account ``account_id`` (None for other roles or no such account)."""
    cur.execute(
        "SELECT a.id, a.role, a.name, a.created_by, c.role = 'admin'"
        " FROM accounts a LEFT JOIN accounts c ON c.id = a.created_by"
        " WHERE a.id = %s AND a.role = 'worker'",
        (account_id,),
    )
    row = cur.fetchone()
    return Account(row[0], Role(row[1]), row[2], row[3], bool(row[4])) if row else None
