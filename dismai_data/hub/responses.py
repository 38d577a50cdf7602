"""What every route shares: the JSON and file responses, the error answer (status, JSON body,
``X-Error-Code``/``X-Error-Message`` headers), size-limited body reading and the refusal of
query parameters an endpoint does not implement."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.responses import JSONResponse as _StarletteJSON

from dismai_data.hub.limits import SMALL_BODY, parse_json
from dismai_data.hub.storage import HubError


class JSONResponse(_StarletteJSON):
    """JSON with non-ASCII escaped (a lone surrogate can never fail the UTF-8 encoding) and
    non-finite floats as null (never an exception while answering)."""

    def render(self, content) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
        except ValueError:
            return json.dumps(json_safe(content), ensure_ascii=True, separators=(",", ":")).encode("ascii")


def json_safe(v, budget: list | None = None):
    """YAML data as JSON: dates and other scalars as text, non-finite floats as None. At most
    200000 values: YAML aliases can make a small card expand exponentially (ValueError then).
    Depth is bounded by yaml's own recursion (RecursionError, caught by the caller)."""
    import datetime
    import math

    budget = budget if budget is not None else [200_000]
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("data expands to too many values")
    if isinstance(v, dict):
        return {str(k): json_safe(x, budget) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [json_safe(x, budget) for x in v]
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, str):
        return v if v.isascii() else v.encode("utf-8", "replace").decode("utf-8")
    if v is None or isinstance(v, (bool, int)):
        return v
    if isinstance(v, (datetime.date, datetime.datetime, datetime.time)):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


class FastFileResponse(FileResponse):
    chunk_size = 1024 * 1024


def header_safe(text: str) -> str:
    """Printable ASCII only (escapes for the rest), no surrounding blanks: a legal header value."""
    out = "".join(ch if 32 <= ord(ch) < 127 else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return out.strip()[:500] or "error"


def error_response(exc: HubError) -> Response:
    headers = {"X-Error-Code": header_safe(exc.code), "X-Error-Message": header_safe(exc.message), **exc.headers}
    return JSONResponse({"error": exc.message, "code": exc.code, **exc.extra}, status_code=exc.status, headers=headers)


def truthy(v: str | None) -> bool:
    return (v or "").lower() in ("1", "true", "yes")


async def read_body(request: Request, limit: int) -> bytearray:
    """The body, refused (413) past ``limit`` before it is read when Content-Length says so,
    else as soon as it grows past it. With a Content-Length the buffer is allocated once and
    filled in place (growing a bytearray chunk by chunk costs the event loop CPU time on
    large Xet uploads)."""
    declared = request.headers.get("content-length")
    n = int(declared) if declared and declared.isascii() and declared.isdigit() else None
    if n is not None and n > limit:
        raise HubError(413, "PayloadTooLarge", f"request body of {declared} bytes is over the limit of {limit}")
    if n is not None:
        buf = bytearray(n)
        view = memoryview(buf)
        pos = 0
        try:
            async for chunk in request.stream():
                if pos + len(chunk) > n:
                    raise HubError(400, "InvalidRequest", "request body is longer than its Content-Length")
                view[pos:pos + len(chunk)] = chunk
                pos += len(chunk)
        finally:
            view.release()
        if pos != n:
            raise HubError(400, "InvalidRequest", f"request body ended after {pos} of {n} bytes")
        return buf
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise HubError(413, "PayloadTooLarge", f"request body is over the limit of {limit} bytes")
    return buf


async def json_body(request: Request, limit: int = SMALL_BODY):
    """The JSON body, size-limited before parsing and depth-limited (limits.parse_json)."""
    raw = await read_body(request, limit)
    return parse_json(raw or b"{}")


def only_params(request: Request, allowed: set[str], what: str, why: dict[str, str] | None = None) -> None:
    """400 UnsupportedParameter for a query parameter this endpoint does not implement."""
    for k in request.query_params.keys():
        if k not in allowed:
            reason = (why or {}).get(k, "this hub does not implement it, and ignoring it would change the answer")
            raise HubError(400, "UnsupportedParameter", f"{what}: query parameter {k!r} is not supported: "
                                                        f"{reason}", extra={"parameter": k})
