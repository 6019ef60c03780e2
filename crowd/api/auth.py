"""Bearer-token authentication and role checks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import g, request

from crowd.api import deps
from crowd.api.cache import TTLCache
from crowd.errors import Forbidden, NotFound, Unauthorized
from crowd.store import accounts, projects
from crowd.store.accounts import Account, Role
from crowd.store.db import Cursor
from crowd.store.projects import Project

P = ParamSpec("P")
R = TypeVar("R")

# Accounts never change role or owner, so a short in-process cache saves a query per request.
_accounts: TTLCache[bytes, Account] = TTLCache(seconds=30.0)
# A short cache saves a query per worker request. A settings change (PATCH) drops this
# process's entry at once; other processes see it within the TTL.
_projects: TTLCache[int, Project] = TTLCache(seconds=5.0)


def _account_for(token: str) -> Account | None:
    """The token's account. A token not authenticated recently by this process is subject to
    the failed-authentication limit of the caller's address (:mod:`crowd.api.ratelimit`)."""
    digest = accounts.hash_token(token)
    known = _accounts.peek(digest)
    if known is not None:
        return known  # the hot path: no Redis, no database
    limit = deps.auth_failures()
    address = request.remote_addr or "unknown"
    limit.check(address)

    def load(_digest: bytes) -> Account | None:
        with deps.db().transaction() as cur:
            return accounts.authenticate(cur, token)

    account = _accounts.get(digest, load)
    if account is None:
        limit.failed(address)
    return account


def forget_account(token: str) -> None:
    """Drop ``token`` from this process's account cache, so its next use is looked up (and
    counted against the failed-authentication limit if it no longer works)."""
    _accounts.forget(accounts.hash_token(token))


def cached_project(project_id: int, cur: Cursor | None = None) -> Project | None:
    """The project row, from a cache of a few seconds.

    Inside a transaction pass its cursor: a miss then reads with it instead of taking a second
    pooled connection (a pool sized threads + 1 runs dry when every thread misses at once).
    """

    def load(pid: int) -> Project | None:
        if cur is not None:
            return projects.get(cur, pid)
        with deps.db().transaction() as own:
            return projects.get(own, pid)

    return _projects.get(project_id, load)


def forget_project(project_id: int) -> None:
    _projects.forget(project_id)


def current() -> Account:
    account: Account = g.account
    return account


def require(*roles: Role) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Reject the request unless it carries a valid token of one of ``roles``."""

    def wrap(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized(
                    "send 'Authorization: Bearer <token>'; an admin creates tokens with "
                    "`crowd token create`, a requester creates worker tokens with POST /api/v1/workers"
                )
            account = _account_for(token.strip())
            if account is None:
                raise Unauthorized("unknown token; check it was copied whole")
            if account.role not in roles:
                allowed = " or ".join(r.value for r in roles)
                raise Forbidden(
                    f"this endpoint needs a {allowed} token, not a {account.role} token"
                )
            g.account = account
            return view(*args, **kwargs)

        return inner

    return wrap


def can_manage(account: Account, project: Project) -> bool:
    return account.role == Role.ADMIN or project.owner_id == account.id


def can_work_on(account: Account, project: Project) -> bool:
    """Workers work for the requester who created them; workers an admin created work for all."""
    return account.created_by == project.owner_id or account.creator_is_admin


def project_for_requester(project_id: int) -> Project:
    """The project, if the caller (admin or requester) may manage it; 404 otherwise."""
    project = cached_project(project_id)
    if project is None or not can_manage(current(), project):
        raise NotFound(f"no project {project_id} among yours; GET /api/v1/projects lists them")
    return project
