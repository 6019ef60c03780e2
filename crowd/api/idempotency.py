"""``Idempotency-Key`` on the POSTs that create something.

A client that sends ``Idempotency-Key: <key>`` (say a UUID made once per logical call and
reused across its retries) gets, for a retry whose first response was lost, the stored
response of the first attempt instead of a second effect. How:

* :func:`idempotent` wraps the view and reads the header.
* The view makes its effect in :func:`transaction`, then calls :func:`record` in that same
  transaction. :func:`record` is one statement, an ``INSERT ... ON CONFLICT`` of the key and
  the response, so key and effect commit together: a process killed before the commit leaves
  neither, one killed after it leaves both. That one statement is all a key costs a request
  that goes through (the hot path).
* When the key is already stored, the ``INSERT`` finds it instead: the transaction rolls back
  (so a retry's effect, such as a second reservation, is undone) and the stored response is
  replayed (``Idempotent-Replayed: true``); the same key sent with another method, path or
  body is a 422 (``idempotency_key_reused``).
* A keyed request that records nothing (an error, a 204) looks the key up once before it
  answers, in a transaction of its own, and replays a stored response when there is one. So
  a retry that now fails (say it finds nothing left to reserve, or sends another body) still
  gets the first attempt's response or the 422; a request that changed nothing is simply
  evaluated again when retried.
* Views whose effect starts outside PostgreSQL (queueing a run or a model version in Redis)
  call :func:`precheck` first, which looks the key up before anything happens.
* Two attempts with one key in flight at once: the second waits in :func:`record` until the
  first commits, then rolls its own effect back and replays the first's response. (For the
  run and model triggers, whose one-at-a-time rule lives outside that transaction, the
  second attempt instead finds the first's run or version queued and answers
  ``"run": null`` / ``"model": null``, which queues nothing more.)

Without the header none of this runs; the view's cost is one dictionary look-up.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec

from flask import Response, current_app, g, request
from flask.typing import ResponseReturnValue

from crowd.api import auth, deps
from crowd.errors import BadRequest, CrowdError, Invalid
from crowd.store import idempotency as store
from crowd.store.db import Cursor

P = ParamSpec("P")

HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")

#: Turns a stored JSON body into the body a replay sends (e.g. a fresh secret in place of
#: one that was never stored).
ReplayHook = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class _Pending:
    account_id: int
    key: str
    request: str
    body_hash: bytes
    checked: bool = False
    stored: bool = False


class _Replay(Exception):
    def __init__(self, stored: store.Stored) -> None:
        super().__init__("replay")
        self.stored = stored


def idempotent(
    *, on_replay: ReplayHook | None = None
) -> Callable[[Callable[P, ResponseReturnValue]], Callable[P, ResponseReturnValue]]:
    """Honour ``Idempotency-Key`` on a creating POST. Goes below ``auth.require``."""

    def wrap(view: Callable[P, ResponseReturnValue]) -> Callable[P, ResponseReturnValue]:
        @functools.wraps(view)
        def inner(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
            raw = request.headers.get(HEADER)
            if raw is None:
                return view(*args, **kwargs)
            pending = _Pending(
                account_id=auth.current().id,
                key=_valid_key(raw),
                request=f"{request.method} {request.path}",
                body_hash=hashlib.sha256(request.get_data()).digest(),
            )
            g.crowd_idempotency = pending
            try:
                out = view(*args, **kwargs)
            except _Replay as replay:
                return _replay(pending, replay.stored, on_replay)
            except CrowdError as error:
                stored = _stored_for_unrecorded(pending, error)
                if stored is None:
                    raise
                return _replay(pending, stored, on_replay)
            stored = _stored_for_unrecorded(pending)
            return out if stored is None else _replay(pending, stored, on_replay)

        inner.crowd_idempotent = True  # type: ignore[attr-defined]  # read by the tests
        return inner

    return wrap


@contextmanager
def transaction() -> Iterator[Cursor]:
    """The request's effect transaction, in which :func:`record` stores the response; a
    stored response found there rolls the effect back and is replayed instead."""
    with deps.db().transaction() as cur:
        yield cur


def _stored_for_unrecorded(
    pending: _Pending, error: CrowdError | None = None
) -> store.Stored | None:
    """For a keyed request that recorded nothing and looked nothing up: the response already
    stored under its key, if any (one look-up, off the hot path). A look-up that fails
    (the database went away) leaves ``error`` to be answered."""
    if pending.stored or pending.checked:
        return None
    pending.checked = True
    try:
        with deps.db().transaction() as cur:
            return store.find(cur, pending.account_id, pending.key)
    except CrowdError:
        if error is None:
            raise
        return None


def precheck() -> None:
    """Replay a stored response now, in a transaction of its own (no-op without a key): for
    views whose effect starts outside PostgreSQL."""
    pending: _Pending | None = g.get("crowd_idempotency")
    if pending is None or pending.checked:
        return
    pending.checked = True
    with deps.db().transaction() as cur:
        stored = store.find(cur, pending.account_id, pending.key)
    if stored is not None:
        raise _Replay(stored)


def keyed() -> bool:
    """Whether the current request carries an ``Idempotency-Key`` (so :func:`record` stores)."""
    return g.get("crowd_idempotency") is not None


def record(cur: Cursor, status: int, body: dict[str, Any]) -> None:
    """Store the response of a keyed request in the transaction of ``cur`` (no-op without a
    key). Called again by a later transaction of the same request, it replaces the response.

    One statement when the key is new. When the key is already stored (this is a retry, or
    another attempt with the key committed first), raises so that this transaction rolls
    back and the request replays the stored response instead.
    """
    pending: _Pending | None = g.get("crowd_idempotency")
    if pending is None:
        return
    text = current_app.json.dumps(body)
    if pending.stored:
        store.replace_response(cur, pending.account_id, pending.key, status, text)
        return
    found = store.save(
        cur,
        pending.account_id,
        pending.key,
        store.Stored(pending.request, pending.body_hash, status, text),
    )
    if found is not None:
        raise _Replay(found)
    pending.stored = True


def _valid_key(raw: str) -> str:
    if not _VALID_KEY.fullmatch(raw):
        raise BadRequest(
            f"{HEADER} must be 1 to 255 visible ASCII characters without spaces, for example "
            f"a UUID made once per logical request and reused across its retries; got {raw[:40]!r}"
        )
    return raw


def _replay(pending: _Pending, stored: store.Stored, hook: ReplayHook | None) -> Response:
    if stored.request != pending.request or stored.body_hash != pending.body_hash:
        what = (
            f"a different request ({stored.request})"
            if stored.request != pending.request
            else "the same request with a different body"
        )
        raise Invalid(
            f"{HEADER} {pending.key[:40]!r} was already used for {what}; send a new key for "
            "a new request, and the same key only to retry the same request with the same body",
            code="idempotency_key_reused",
        )
    text = stored.response
    if hook is not None:
        text = current_app.json.dumps(hook(json.loads(text)))
    response = Response(text, status=stored.status, mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response
