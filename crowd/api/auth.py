"""Bearer-token authentication and role checks."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import g, request

from crowd.api import deps
from crowd.errors import Forbidden, NotFound, Unauthorized
from crowd.store import accounts, projects
from crowd.store.accounts import Account, Role
from crowd.store.projects import Project

P = ParamSpec("P")
R = TypeVar("R")

# Accounts never change role or owner, so a short in-process cache saves a query per request.
_CACHE_SECONDS = 30.0
_cache: dict[bytes, tuple[float, Account]] = {}
_cache_lock = threading.Lock()


def _account_for(token: str) -> Account | None:
    key = accounts.hash_token(token)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit and hit[0] > now:
        return hit[1]
    with deps.db().transaction() as cur:
        account = accounts.authenticate(cur, token)
    if account is not None:
        with _cache_lock:
            if len(_cache) > 10_000:
                _cache.clear()
            _cache[key] = (now + _CACHE_SECONDS, account)
    return account


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
    with deps.db().transaction() as cur:
        project = projects.get(cur, project_id)
    if project is None or not can_manage(current(), project):
        raise NotFound(f"no project {project_id} among yours; GET /api/v1/projects lists them")
    return project
