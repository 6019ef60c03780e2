"""Request parsing: JSON bodies validated by pydantic models, and pagination parameters."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from crowd.api import deps
from crowd.errors import BadRequest, Invalid

M = TypeVar("M", bound=BaseModel)


def json_body(model: type[M], *, allow_empty: bool = False) -> M:
    """Parse and validate the body; 400 for bytes that are not JSON, 422 for a wrong shape.

    With ``allow_empty`` an empty body means ``{}`` (every field takes its default)."""
    raw = request.get_data(cache=False)
    if allow_empty and not raw.strip():
        return model.model_validate({})
    if not raw.strip():
        raise BadRequest(f"send a JSON object body; {_example(model)}")
    try:
        payload: Any = json.loads(raw, parse_constant=_reject_constant)
        _check_strings(payload)
    except (ValueError, RecursionError) as exc:
        reason = "too deeply nested" if isinstance(exc, RecursionError) else _short(exc)
        raise BadRequest(f"body is not valid UTF-8 JSON ({reason}); {_example(model)}") from None
    if not isinstance(payload, dict):
        raise BadRequest(f"body must be a JSON object; {_example(model)}")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise Invalid(describe(exc)) from None
    except RecursionError:
        raise BadRequest("body is too deeply nested") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number; send a finite number or null")


#: Deepest nesting of arrays and objects accepted in a body (task data included).
MAX_DEPTH = 64


def _check_strings(payload: Any) -> None:
    """Reject what PostgreSQL or our JSON encoder cannot handle well.

    NUL characters and unpaired surrogates cannot be stored; nesting deeper than
    :data:`MAX_DEPTH` would only come back to bite whoever reads the task later.
    """
    stack: list[tuple[Any, int]] = [(payload, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels; flatten the data")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            if "\x00" in item:
                raise ValueError("strings must not contain NUL (\\u0000) characters")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("strings must not contain unpaired UTF-16 surrogates") from None


def describe(exc: ValidationError, limit: int = 3) -> str:
    """A one-line summary naming each bad field, e.g. ``labels: List should have at least 2 items``."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field; remove it (see GET /openapi.json for the fields)"
        parts.append(f"{where}: {msg}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _example(model: type[BaseModel]) -> str:
    example = (model.model_config.get("json_schema_extra") or {}).get("example")  # type: ignore[union-attr]
    return f"for example {json.dumps(example)}" if example else "see GET /openapi.json"


def _short(exc: Exception) -> str:
    return str(exc).split("\n")[0][:120]


def page_params() -> tuple[int, int]:
    """``(after_id, limit)`` from ``?cursor=&limit=``; a bad value is a 400 saying what to send."""
    cfg = deps.settings()
    raw_limit = request.args.get("limit", "")
    if raw_limit == "":
        limit = cfg.page_limit_default
    else:
        if not _digits(raw_limit, 4) or not 1 <= int(raw_limit) <= cfg.page_limit_max:
            raise BadRequest(
                f"limit must be a whole number from 1 to {cfg.page_limit_max}, got {raw_limit[:40]!r}"
            )
        limit = int(raw_limit)
    return decode_cursor(request.args.get("cursor", "")), limit


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    if cursor == "":
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        prefix, _, value = text.partition(":")
        if prefix != "v1" or not _digits(value, 19) or int(value) > MAX_ID:
            raise ValueError(text)
        if encode_cursor(int(value)) != cursor:  # only the exact spelling this API makes
            raise ValueError(text)
        return int(value)
    except (ValueError, UnicodeError, binascii.Error):
        raise BadRequest(
            "cursor is not one this API returned; pass next_cursor from the previous page, "
            "or omit it to start from the beginning"
        ) from None


def next_cursor(ids: list[int], limit: int) -> str | None:
    """The cursor for the page after one holding ``ids``, or None when this was the last page."""
    return encode_cursor(ids[-1]) if len(ids) == limit else None


def int_arg(name: str, lo: int = 0, hi: int | None = None) -> int | None:
    """An optional whole-number query parameter from ``lo`` to ``hi`` (default: the largest
    id); a bad value is a 400."""
    raw = request.args.get(name, "")
    if raw == "":
        return None
    top = MAX_ID if hi is None else hi
    if not _digits(raw, len(str(top))) or not lo <= int(raw) <= top:
        raise BadRequest(f"{name} must be a whole number from {lo} to {top}, got {raw[:40]!r}")
    return int(raw)


#: Largest id (PostgreSQL bigint).
MAX_ID = 2**63 - 1


def _digits(raw: str, most: int) -> bool:
    """ASCII digits only (str.isdigit also accepts '²', which int() refuses), at most ``most``."""
    return 0 < len(raw) <= most and raw.isascii() and raw.isdigit()


def choice_arg(name: str, choices: tuple[str, ...]) -> str | None:
    """An optional query parameter with a fixed set of values; anything else is a 400."""
    raw = request.args.get(name, "")
    if raw == "":
        return None
    if raw not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}, got {raw[:40]!r}")
    return raw


def flag_arg(name: str) -> bool:
    """``?name=true|false|1|0``; absent means false."""
    raw = request.args.get(name, "").lower()
    if raw in ("", "false", "0"):
        return False
    if raw in ("true", "1"):
        return True
    raise BadRequest(f"{name} must be true or false, got {raw[:40]!r}")
