"""Bounded parsing of request bodies: every JSON value the hub reads goes through
:func:`parse_json`, which limits its size (the caller reads at most ``limit`` bytes),
its nesting depth and its strings, and answers a 4xx naming the problem instead of
letting a hostile body reach a ``RecursionError`` or a lone surrogate reach a page.
:func:`only_fields` refuses body fields the hub does not implement, so a client option
that changes meaning on the real Hub is never silently dropped.
"""

from __future__ import annotations

import json

from dismai_data.hub.storage import HubError

MAX_DEPTH = 32  # deepest JSON nesting accepted (the clients send at most 4)
SMALL_BODY = 1024 * 1024  # settings, tags, branches, repo create/delete/move
LIST_BODY = 8 * 1024 * 1024  # preupload (256 files a call), paths-info, LFS batch
MAX_ITEMS = 10_000  # files in one preupload / paths in one paths-info / objects in one LFS batch


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def check_value(obj, what: str) -> None:
    """Depth-limited walk (iterative, so it cannot recurse): no nesting deeper than
    MAX_DEPTH, no string (key or value) that is not valid Unicode (lone surrogates)."""
    stack = [(obj, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            if not v.isascii():
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError:
                    raise HubError(400, "InvalidString", f"{what} holds a string that is not valid Unicode "
                                                         "(a lone surrogate escape)") from None
        elif isinstance(v, (dict, list)):
            if depth > MAX_DEPTH:
                raise HubError(400, "NestingTooDeep", f"{what} is nested deeper than {MAX_DEPTH} levels")
            if isinstance(v, dict):
                for k, x in v.items():
                    stack.append((k, depth))
                    stack.append((x, depth + 1))
            else:
                stack.extend((x, depth + 1) for x in v)


def parse_json(raw: bytes, what: str = "request body"):
    """JSON of ``raw`` (already size-limited by the reader) or a 400 with X-Error-Code."""
    try:
        obj = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise HubError(400, "NestingTooDeep", f"{what} is nested too deeply to parse") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise HubError(400, "InvalidJson", f"{what} is not JSON: {str(exc)[:200]}") from None
    check_value(obj, what)
    return obj


def only_fields(body: dict, allowed: set[str] | frozenset[str], what: str, why: dict[str, str] | None = None) -> None:
    """400 UnsupportedField naming the first field of ``body`` outside ``allowed``
    (with the reason from ``why`` when there is one)."""
    for k in body:
        if k not in allowed:
            reason = (why or {}).get(k, "this hub does not implement it, and dropping it would change what the "
                                        "request means")
            raise HubError(400, "UnsupportedField", f"{what}: field {k!r} is not supported: {reason}",
                           extra={"field": k})


def object_body(obj, what: str) -> dict:
    if not isinstance(obj, dict):
        raise HubError(400, "InvalidRequest", f"{what} must be a JSON object, not {type(obj).__name__}")
    return obj


def typed(body: dict, field: str, types, what: str, required: bool = False):
    """``body[field]`` when it has one of ``types`` (None when absent and not required), else 400."""
    if field not in body or body[field] is None:
        if required:
            raise HubError(400, "InvalidRequest", f"{what}: field {field!r} is required", extra={"field": field})
        return None
    v = body[field]
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in (types if isinstance(types, tuple)
                                                                           else (types,))):
        names = "/".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise HubError(400, "InvalidRequest", f"{what}: field {field!r} must be {names}, not {type(v).__name__}",
                       extra={"field": field})
    return v
