"""The hub's HTTP server: a Starlette-based ASGI app that speaks the subset of the Hugging
Face Hub API that the pinned clients use (../shared/docs/hub-protocol.md), the Xet CAS
upload endpoints, the git-LFS batch API, and server-rendered web pages.

Routing is done on the *raw* request path, one percent-decoded segment at a time, so a
revision such as ``feat%2Fx`` stays one segment (Starlette's router decodes ``%2F``
first, which makes ``tree/{rev}/{path}`` ambiguous).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import mimetypes
import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.responses import JSONResponse as _StarletteJSON

from dismai_data.hub import xet
from dismai_data.hub.auth import Auth, User
from dismai_data.hub.gitignore import GitIgnore
from dismai_data.hub.limits import LIST_BODY, MAX_ITEMS, SMALL_BODY, object_body, only_fields, parse_json, typed
from dismai_data.hub.storage import (
    HEX64,
    HubError,
    RepoKey,
    Storage,
    check_path,
    decode_b64,
    file_entry_json,
    git_blob_sha1,
    list_tree,
    folder_oid,
)

log = logging.getLogger("dismai_data.hub")
TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
DEFAULT_MAX_UPLOAD = 50 * 1024 ** 3
REGULAR_MAX = 1024 * 1024
BINARY_SUFFIXES = {".parquet", ".arrow", ".png", ".jpg", ".jpeg", ".gif", ".bin", ".pt", ".pth", ".safetensors",
                   ".npy", ".npz", ".zip", ".gz", ".bz2", ".xz", ".zst", ".tar", ".h5", ".pkl", ".onnx", ".msgpack"}


# a commit body is read into memory before it is parsed: the clients put at most 100 MB of
# regular (base64) content in one commit and send anything larger through LFS/Xet
COMMIT_BODY_MAX = 256 * 1024 * 1024
COMMIT_LINE_FIELDS = {"header": {"summary", "description", "parentCommit"}, "file": {"path", "content", "encoding"},
                      "lfsFile": {"path", "algo", "oid", "size"}, "deletedFile": {"path"}, "deletedFolder": {"path"}}
PR_REFUSAL = ("pull requests and discussions are not supported by this hub (no refs/pr/N, no discussion threads, "
              "no merge): push to a branch instead (create_branch, then revision=BRANCH) and let the repo's owner "
              "merge it")


class JSONResponse(_StarletteJSON):
    """JSON with non-ASCII escaped (a lone surrogate can never fail the UTF-8 encoding) and
    non-finite floats as null (never an exception while answering)."""

    def render(self, content) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
        except ValueError:
            return json.dumps(json_safe(content), ensure_ascii=True, separators=(",", ":")).encode("ascii")


_SPACES = "this hub stores Spaces as file repos and runs none"
CREATE_REFUSED = {"template": _SPACES, "hardware": _SPACES, "sleepTimeSeconds": _SPACES, "secrets": _SPACES,
                  "variables": _SPACES, "volumes": _SPACES,
                  "resourceGroupId": "resource groups (Enterprise access control) are not supported by this hub",
                  "region": "this hub has one storage region"}
SETTINGS_REFUSED = {"discussionsDisabled": "this hub has no discussions",
                    "xetEnabled": "Xet uploads are always on", "gatedNotificationsMode": "no repo here is gated"}
# query parameters each listing honours (see list_repos); the others named in LIST_REFUSED are refused
LIST_PARAMS = {
    "model": {"author", "search", "filter", "gated", "pipeline_tag", "sort", "limit", "full", "cardData", "expand",
              "expand[]"},
    "dataset": {"author", "search", "filter", "gated", "sort", "limit", "full", "expand", "expand[]"},
    "space": {"author", "search", "filter", "sort", "limit", "full", "expand", "expand[]"},
}
LIST_REFUSED = {"apps": "this hub runs no apps", "inference": "this hub serves no inference",
                "inference_provider": "this hub serves no inference",
                "num_parameters": "this hub does not count model parameters",
                "config": "this hub does not parse config.json in listings",
                "datasets": "this hub does not track which datasets a Space uses",
                "models": "this hub does not track which models a Space uses",
                "linked": "this hub does not track which repos a Space uses"}
SORT_KEYS = ("lastModified", "createdAt", "downloads", "likes", "trendingScore")
LIST_DEFAULT = ("_id", "id", "author", "sha", "lastModified", "private", "gated", "disabled", "downloads", "likes",
                "tags", "createdAt", "modelId", "pipeline_tag", "library_name", "sdk")
EXPAND_COMMON = frozenset({"author", "cardData", "createdAt", "disabled", "downloads", "downloadsAllTime", "gated",
                           "lastModified", "likes", "private", "sha", "siblings", "tags", "trendingScore",
                           "usedStorage"})
EXPAND_BY_TYPE = {"model": frozenset({"pipeline_tag", "library_name"}), "dataset": frozenset(),
                  "space": frozenset({"sdk"})}


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


def _header_safe(text: str) -> str:
    """Printable ASCII only (escapes for the rest), no surrounding blanks: a legal header value."""
    out = "".join(ch if 32 <= ord(ch) < 127 else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return out.strip()[:500] or "error"


def error_response(exc: HubError) -> Response:
    headers = {"X-Error-Code": _header_safe(exc.code), "X-Error-Message": _header_safe(exc.message), **exc.headers}
    return JSONResponse({"error": exc.message, "code": exc.code, **exc.extra}, status_code=exc.status, headers=headers)


def _parents(path: str):
    parts = path.split("/")
    return ("/".join(parts[:i]) for i in range(1, len(parts)))


def _truthy(v: str | None) -> bool:
    return (v or "").lower() in ("1", "true", "yes")


def upload_mode(path: str, sample: bytes, size: int) -> str:
    if size > REGULAR_MAX or os.path.splitext(path)[1].lower() in BINARY_SUFFIXES or b"\0" in sample:
        return "lfs"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a cut multi-byte character at the end
            return "lfs"
    return "regular"


class HubApp:
    """The ASGI application."""

    def __init__(self, storage_dir: str | os.PathLike, max_upload_bytes: int | None = None, clean_tmp: bool = True):
        self.storage = Storage(storage_dir, max_upload_bytes or DEFAULT_MAX_UPLOAD)
        if clean_tmp:  # only where no other process of this hub can be writing
            self.storage.clean_tmp()
        self.auth = Auth(storage_dir)
        self.max_upload = self.storage.max_upload_bytes
        from dismai_data.hub import web

        self.web = web.Web(self)
        # the leaderboard's scoring worker: a daemon thread, started by the first request (the
        # hub then knows its own address); DISMAI_LEADERBOARD_WORKER=0 leaves it off
        self.leaderboard_worker = None
        if os.environ.get("DISMAI_LEADERBOARD_WORKER", "1") != "0":
            from dismai_data.leaderboard.worker import BackgroundWorker

            self.leaderboard_worker = BackgroundWorker(self.storage.root)

    # ------------------------------------------------------------------ plumbing
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    if self.leaderboard_worker is not None:
                        await anyio.to_thread.run_sync(self.leaderboard_worker.stop)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        if self.leaderboard_worker is not None and self.leaderboard_worker.thread is None:
            self._start_leaderboard_worker(scope)
        try:
            response = await self.dispatch(request)
        except HubError as exc:
            response = error_response(exc)
        except ClientDisconnect:  # the client went away mid-body: nobody to answer
            return
        except RecursionError:  # a parser recursed on hostile input that no limit above caught
            log.warning("recursion limit on %s %s", request.method, request.url.path)
            response = error_response(HubError(400, "NestingTooDeep", "request is nested too deeply to parse"))
        except Exception as exc:  # a bug: log it, answer 500 with a code
            log.exception("internal error on %s %s", request.method, request.url.path)
            response = error_response(HubError(500, "InternalError", f"{type(exc).__name__}: {exc}"))
        await response(scope, receive, send)

    def _start_leaderboard_worker(self, scope) -> None:
        """Start the scoring worker against this server's own bound address (from the ASGI
        scope, not from a client-supplied Host header; $DISMAI_HUB_URL overrides)."""
        url = os.environ.get("DISMAI_HUB_URL")
        server = scope.get("server")
        if not url and server and server[1]:
            host = server[0]
            url = f"http://{'[' + host + ']' if ':' in host else host}:{server[1]}"
        if url:
            self.leaderboard_worker.ensure_started(url)

    def endpoint(self, request: Request) -> str:
        host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
        return f"{request.url.scheme}://{host}"

    def user(self, request: Request) -> User | None:
        return self.auth.from_header(request.headers.get("authorization"))

    def user_or_none(self, request: Request) -> User | None:
        try:
            return self.user(request)
        except HubError:
            return None

    def repo(self, key: RepoKey, user: User | None, write: bool = False) -> dict:
        meta = self.storage.repo_meta(key)
        if meta is None or (meta["private"] and not (user and user.may_read(key.ns))):
            raise HubError(404, "RepoNotFound", f"Repository Not Found for {key.type} {key.id}")
        if write:
            self.require_write(user, key.ns)
        return meta

    def require_write(self, user: User | None, ns: str) -> User:
        if user is None:
            raise HubError(401, "Unauthorized", "a write token is required (Authorization: Bearer <token>)")
        if not user.may_write(ns):
            why = "is read-only" if user.scope != "write" else f"does not belong to {ns!r} or one of its members"
            raise HubError(403, "Forbidden", f"token of {user.name!r} {why}")
        return user

    def visible(self, key: RepoKey, meta: dict, user: User | None) -> bool:
        return not meta["private"] or (user is not None and user.may_read(key.ns))

    def repo_id_visible(self, repo_id, user: User | None, repo_type: str = "dataset") -> bool:
        """Whether ``user`` may see the repo ``ns/name`` (False when it is gone or private to them)."""
        if not isinstance(repo_id, str) or repo_id.count("/") != 1:
            return False
        key = RepoKey(repo_type, *repo_id.split("/"))
        meta = self.storage.repo_meta(key)
        return meta is not None and self.visible(key, meta, user)

    def visible_rows(self, rows: list[dict], user: User | None) -> list[dict]:
        """Leaderboard rows whose predictions repo ``user`` may see: a predictions repo made
        private (or deleted) after scoring takes its rows off the page and the API."""
        return [r for r in rows if self.repo_id_visible(r.get("predictions_repo"), user)]

    async def leaderboard_reconcile(self, keys: list[RepoKey], always: bool = False) -> None:
        """After a dataset repo is made private or public (``always``), created, deleted or
        renamed: ``dismai/leaderboard`` keeps only rows of public predictions repos, the others
        are withheld and purged from its history (dismai_data.leaderboard.store). Done before
        the answer, so a repo made private has no row left in the public dataset when the
        client's call returns."""
        keys = [k for k in keys if k.type == "dataset"]
        if not keys:
            return
        from dismai_data.leaderboard import store

        def run():
            if always:  # a failure here is the caller's error: the repo's rows might still be public
                store.reconcile(self.storage)
                return
            try:
                if store.concerns(self.storage, [k.id for k in keys]):
                    store.reconcile(self.storage)
            except Exception:  # the repo operation itself succeeded; the next reconcile retries
                log.exception("leaderboard reconcile after a change of %s", [k.id for k in keys])

        await anyio.to_thread.run_sync(run)

    async def read_body(self, request: Request, limit: int) -> bytearray:
        """The body, refused (413) past ``limit`` before it is read when Content-Length says so,
        else as soon as it grows past it. With a Content-Length the buffer is allocated once and
        filled in place (growing a bytearray chunk by chunk cost 0.3 s of the event loop's CPU
        per 200 MB of Xet upload)."""
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

    async def json_body(self, request: Request, limit: int = SMALL_BODY):
        """The JSON body, size-limited before parsing and depth-limited (limits.parse_json)."""
        raw = await self.read_body(request, limit)
        return parse_json(raw or b"{}")

    @staticmethod
    def only_params(request: Request, allowed: set[str], what: str, why: dict[str, str] | None = None) -> None:
        """400 UnsupportedParameter for a query parameter this endpoint does not implement."""
        for k in request.query_params.keys():
            if k not in allowed:
                reason = (why or {}).get(k, "this hub does not implement it, and ignoring it would change the answer")
                raise HubError(400, "UnsupportedParameter", f"{what}: query parameter {k!r} is not supported: "
                                                            f"{reason}", extra={"parameter": k})

    # ------------------------------------------------------------------ routing
    async def dispatch(self, request: Request) -> Response:
        raw = request.scope.get("raw_path")
        raw = raw.decode("latin-1") if raw else quote(request.scope["path"])
        raw = raw.split("?", 1)[0]
        try:
            segs = [unquote(s, errors="strict") for s in raw.split("/")[1:]]
        except UnicodeDecodeError:
            raise HubError(400, "InvalidPath", "path is not valid UTF-8 once decoded") from None
        if segs and segs[-1] == "" and len(segs) > 1 and segs[0] != "api":
            segs = segs[:-1]
        m = request.method
        if segs and segs[0] == "api":
            return await self.api(request, segs[1:], m)
        if segs and segs[0] == "xet":
            if len(segs) > 1 and segs[1] == self.storage.instance_id:
                return await self.cas(request, segs[2:], m)
            if segs[1:] == ["v1", "telemetry"]:
                return JSONResponse({})
            raise HubError(404, "EntryNotFound", "unknown Xet storage: get a new token from xet-write-token")
        if segs and segs[0] == "lfs-upload" and len(segs) == 2 and m == "PUT":
            return await self.lfs_put(request, segs[1])
        if segs == ["v1", "telemetry"] and m == "POST":  # hf_xet telemetry at the root: ignored
            return JSONResponse({})
        if segs == ["openapi.json"]:
            from dismai_data.hub.openapi import openapi_document

            return JSONResponse(openapi_document())
        if segs in ([], [""]):
            return await self.web.index(request)
        if segs == ["leaderboard"] and m in ("GET", "HEAD"):
            return await self.web.leaderboard(request)
        if segs[0] == "static":
            raise HubError(404, "EntryNotFound", "no such page")
        # /{[datasets|spaces]/}{ns}/{name}/...
        if segs[0] in ("datasets", "spaces") and len(segs) >= 3:
            t, ns, name, rest = TYPES[segs[0]], segs[1], segs[2], segs[3:]
        elif segs[0] in ("datasets", "spaces", "models") and len(segs) <= 2:
            return await self.web.index(request, TYPES[segs[0]])
        elif len(segs) >= 2:
            t, ns, name, rest = "model", segs[0], segs[1], segs[2:]
        else:
            raise HubError(404, "RepoNotFound", f"no page at {raw}")
        if name.endswith(".git") and rest == ["info", "lfs", "objects", "batch"] and m == "POST":
            return await self.lfs_batch(request, RepoKey(t, ns, name[:-4]))
        key = RepoKey(t, ns, name)
        if rest and rest[0] == "resolve" and len(rest) >= 3 and m in ("GET", "HEAD"):
            return await self.resolve(request, key, rest[1], "/".join(rest[2:]))
        if m in ("GET", "HEAD"):
            return await self.web.repo_page(request, key, rest)
        raise HubError(405, "MethodNotAllowed", f"{m} not allowed on {raw}")

    async def api(self, request: Request, segs: list[str], m: str) -> Response:
        if segs and segs[0] == "leaderboard":
            return await self.leaderboard_api(request, segs[1:], m)
        if segs == ["whoami-v2"] and m == "GET":
            return self.whoami(request)
        if segs == ["validate-yaml"] and m == "POST":
            return await self.validate_yaml(request)
        if segs == ["repos", "create"] and m == "POST":
            return await self.create_repo(request)
        if segs == ["repos", "delete"] and m == "DELETE":
            return await self.delete_repo(request)
        if segs == ["repos", "move"] and m == "POST":
            return await self.move_repo(request)
        if len(segs) == 1 and segs[0] in TYPES and m == "GET":
            return await anyio.to_thread.run_sync(self.list_repos, request, TYPES[segs[0]])
        if len(segs) >= 3 and segs[0] in TYPES:
            key = RepoKey(TYPES[segs[0]], segs[1], segs[2])
            rest = segs[3:]
            op = rest[0] if rest else ""
            if not rest and m == "GET":
                return await self.repo_info(request, key, None)
            if op == "revision" and len(rest) == 2 and m == "GET":
                return await self.repo_info(request, key, rest[1])
            if op == "tree" and len(rest) >= 2 and m == "GET":
                return await self.tree(request, key, rest[1], "/".join(rest[2:]))
            if op == "paths-info" and len(rest) == 2 and m == "POST":
                return await self.paths_info(request, key, rest[1])
            if op == "preupload" and len(rest) == 2 and m == "POST":
                return await self.preupload(request, key, rest[1])
            if op == "commit" and len(rest) == 2 and m == "POST":
                return await self.commit(request, key, rest[1])
            if op == "xet-write-token" and len(rest) == 2 and m == "GET":
                return self.xet_write_token(request, key)
            if op == "tag" and len(rest) == 2 and m == "POST":
                return await self.create_tag(request, key, rest[1])
            if op == "tag" and len(rest) == 2 and m == "DELETE":
                return await self.ref_delete(request, key, "tag", rest[1])
            if op == "branch" and len(rest) == 2 and m == "POST":
                return await self.create_branch(request, key, rest[1])
            if op == "branch" and len(rest) == 2 and m == "DELETE":
                return await self.ref_delete(request, key, "branch", rest[1])
            if op == "refs" and len(rest) == 1 and m == "GET":
                return self.list_refs(request, key)
            if op == "commits" and len(rest) == 2 and m == "GET":
                return self.list_commits(request, key, rest[1])
            if op == "settings" and len(rest) == 1 and m == "PUT":
                return await self.settings(request, key)
            if op == "super-squash" and len(rest) == 2 and m == "POST":
                return await self.super_squash(request, key, rest[1])
            if op == "discussions":
                self.repo(key, self.user(request))
                raise HubError(400, "NotSupported", PR_REFUSAL)
            if op == "lfs-files":
                self.repo(key, self.user(request))
                raise HubError(400, "NotSupported", "listing, deleting and duplicating LFS files across repos is not "
                                                    "supported by this hub (stored blobs are shared by content)")
        raise HubError(404, "EndpointNotFound", f"no API endpoint {m} /api/{'/'.join(segs)}")

    # ------------------------------------------------------------------ leaderboard
    async def leaderboard_api(self, request: Request, segs: list[str], m: str) -> Response:
        """``POST submissions``, ``GET submissions/{id}``, ``GET`` (rows); see dismai_data.leaderboard.service."""
        from dismai_data.leaderboard import service

        ep = self.endpoint(request)
        if segs == ["submissions"] and m == "POST":
            user = self.user(request)
            body = await self.json_body(request, 1024 * 1024)
            code, out = await anyio.to_thread.run_sync(service.submit, self, user, body, ep)
            return JSONResponse(out, status_code=code)
        if len(segs) == 2 and segs[0] == "submissions" and m == "GET":
            out = await anyio.to_thread.run_sync(service.status, self, segs[1], ep)
            if not self.repo_id_visible(out.get("predictions_repo"), self.user_or_none(request)):
                raise HubError(404, "SubmissionNotFound", f"no submission {segs[1]!r}")
            return JSONResponse(out)
        if segs in ([], [""]) and m == "GET":
            from dismai_data.leaderboard.queue import Queue

            rows = await anyio.to_thread.run_sync(service.leaderboard_rows, self.storage)
            rows = self.visible_rows(rows, self.user_or_none(request))
            queue = Queue(self.storage.root).counts() if (self.storage.root / "leaderboard").is_dir() else {}
            return JSONResponse({"rows": service.rows_json(rows), "queue": queue})
        raise HubError(404, "EndpointNotFound", f"no API endpoint {m} /api/leaderboard/{'/'.join(segs)}")

    # ------------------------------------------------------------------ account / repos
    def whoami(self, request: Request) -> Response:
        user = self.user(request)
        if user is None:
            raise HubError(401, "Unauthorized", "no token given")
        return JSONResponse({"type": "user", "id": user.name, "name": user.name, "fullname": user.name,
                             "orgs": [{"type": "org", "name": o} for o in user.orgs],
                             "auth": {"type": "access_token",
                                      "accessToken": {"displayName": user.token_name, "role": user.scope}}})

    async def validate_yaml(self, request: Request) -> Response:
        import yaml

        body = object_body(await self.json_body(request, LIST_BODY), "validate-yaml body")
        only_fields(body, {"content", "repoType"}, "validate-yaml")
        content = body.get("content")
        if not isinstance(content, str):
            raise HubError(400, "InvalidYaml", "'content' must be a string")
        # The client sends the whole card; only a leading "---" block is metadata. A card
        # without front matter has no metadata, which is valid (as on huggingface.co).
        text = ""
        if content.startswith("---"):
            end = content.find("\n---", 3)
            text = content[3:end] if end >= 0 else content[3:]
        try:
            data = yaml.safe_load(text) if text.strip() else {}
            json_safe(data)  # too deep or too many values once aliases are expanded: refused like bad YAML
        except (yaml.YAMLError, RecursionError, ValueError) as exc:
            exc = str(exc)[:300] if not isinstance(exc, RecursionError) else "nested too deeply"
            return JSONResponse({"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []}, status_code=400,
                                headers={"X-Error-Code": "InvalidYaml", "X-Error-Message": "invalid YAML metadata"})
        if data is not None and not isinstance(data, dict):
            return JSONResponse({"errors": [{"message": "YAML metadata must be a mapping"}], "warnings": []},
                                status_code=400, headers={"X-Error-Code": "InvalidYaml",
                                                          "X-Error-Message": "YAML metadata must be a mapping"})
        return JSONResponse({"errors": [], "warnings": []})

    async def create_repo(self, request: Request) -> Response:
        """``create_repo``: ``private`` (bool) or ``visibility`` (public|private) as the clients send
        it; Space-only and paid-plan fields are refused by name, never dropped."""
        user = self.user(request)
        body = object_body(await self.json_body(request), "create_repo body")
        only_fields(body, {"name", "organization", "type", "private", "visibility", "sdk"}, "create_repo",
                    CREATE_REFUSED)
        name = typed(body, "name", str, "create_repo", required=True)
        ns = typed(body, "organization", str, "create_repo") or None
        if user is None:
            raise HubError(401, "Unauthorized", "a write token is required to create a repository")
        if "/" in name:
            ns, name = name.split("/", 1)
        ns = ns or user.name
        t = typed(body, "type", str, "create_repo") or "model"
        if t not in TYPES.values():
            raise HubError(400, "InvalidRepoType", f"unknown repo type {t!r}")
        private = self._visibility(body, "create_repo", t)
        sdk = typed(body, "sdk", str, "create_repo")
        if sdk is not None and t != "space":
            raise HubError(400, "UnsupportedField", "create_repo: field 'sdk' is only for Spaces", extra={"field": "sdk"})
        self.require_write(user, ns)
        key = RepoKey(t, ns, name)
        url = f"{self.endpoint(request)}/{key.url_prefix}{key.id}"
        try:
            await anyio.to_thread.run_sync(lambda: self.storage.create_repo(key, bool(private), user.name,
                                                                            {"sdk": sdk} if sdk else None))
        except HubError as exc:
            if exc.status == 409:  # huggingface_hub's exist_ok=True reads the url of the 409 answer
                exc.extra = {"url": url, "name": key.id}
            raise
        await self.leaderboard_reconcile([key])
        return JSONResponse({"url": url, "name": key.id, "id": key.id})

    @staticmethod
    def _visibility(body: dict, what: str, repo_type: str) -> bool | None:
        """True/False from ``private`` or ``visibility`` (None when neither is given); 400 on a
        wrong type, an unknown value, 'protected' (a Space setting) or the two disagreeing."""
        private = typed(body, "private", bool, what)
        vis = typed(body, "visibility", str, what)
        if vis is not None:
            if vis == "protected":
                raise HubError(400, "UnsupportedField", f"{what}: visibility 'protected' (a public Space with private "
                                                        "files) is not supported by this hub", extra={"field": "visibility"})
            if vis not in ("public", "private"):
                raise HubError(400, "InvalidRequest", f"{what}: visibility must be 'public' or 'private', not {vis!r}",
                               extra={"field": "visibility"})
            if private is not None and private != (vis == "private"):
                raise HubError(400, "InvalidRequest", f"{what}: 'private' and 'visibility' disagree",
                               extra={"field": "visibility"})
            return vis == "private"
        return private

    async def delete_repo(self, request: Request) -> Response:
        user = self.user(request)
        body = object_body(await self.json_body(request), "delete_repo body")
        only_fields(body, {"name", "organization", "type"}, "delete_repo")
        name = typed(body, "name", str, "delete_repo", required=True)
        ns = typed(body, "organization", str, "delete_repo")
        t = typed(body, "type", str, "delete_repo") or "model"
        if t not in TYPES.values():
            raise HubError(400, "InvalidRepoType", f"unknown repo type {t!r}")
        if "/" in name:
            ns, name = name.split("/", 1)
        ns = ns or (user.name if user else "")
        key = RepoKey(t, ns, name)
        self.repo(key, user, write=True)
        await anyio.to_thread.run_sync(self.storage.delete_repo, key)
        await self.leaderboard_reconcile([key])
        return JSONResponse({})

    async def move_repo(self, request: Request) -> Response:
        """``move_repo``: rename or transfer; a write token of both namespaces is needed."""
        user = self.user(request)
        body = object_body(await self.json_body(request), "move_repo body")
        only_fields(body, {"fromRepo", "toRepo", "type"}, "move_repo")
        src, dst = (typed(body, f, str, "move_repo", required=True) for f in ("fromRepo", "toRepo"))
        t = typed(body, "type", str, "move_repo") or "model"
        if t not in TYPES.values():
            raise HubError(400, "InvalidRepoType", f"unknown repo type {t!r}")
        for f, v in (("fromRepo", src), ("toRepo", dst)):
            if v.count("/") != 1:
                raise HubError(400, "InvalidRepoName", f"move_repo: {f} {v!r} is not namespace/name", extra={"field": f})
        skey, dkey = RepoKey(t, *src.split("/")), RepoKey(t, *dst.split("/"))
        self.repo(skey, user, write=True)
        self.require_write(user, dkey.ns)
        await anyio.to_thread.run_sync(self.storage.move_repo, skey, dkey)
        await self.leaderboard_reconcile([skey, dkey])
        return JSONResponse({"url": f"{self.endpoint(request)}/{dkey.url_prefix}{dkey.id}"})

    async def settings(self, request: Request, key: RepoKey) -> Response:
        """``update_repo_settings``: ``private`` or ``visibility``; ``gated`` only as False (no
        repo here is gated); anything else is refused by name."""
        user = self.user(request)
        self.repo(key, user, write=True)
        body = object_body(await self.json_body(request), "settings body")
        only_fields(body, {"private", "visibility", "gated"}, "update_repo_settings", SETTINGS_REFUSED)
        if body.get("gated", False) is not False:
            raise HubError(400, "UnsupportedField", "update_repo_settings: gated repos (access requests) are not "
                                                    "supported by this hub; only gated=False is accepted",
                           extra={"field": "gated"})
        private = self._visibility(body, "update_repo_settings", key.type)
        if private is None and "gated" not in body:
            raise HubError(400, "InvalidRequest", "update_repo_settings: no setting given")
        if private is not None:
            await anyio.to_thread.run_sync(self.storage.set_private, key, private)
            await self.leaderboard_reconcile([key], always=True)
        return JSONResponse({})

    async def super_squash(self, request: Request, key: RepoKey, branch: str) -> Response:
        """``super_squash_history``: the branch becomes one parentless commit with its current tree."""
        user = self.user(request)
        self.repo(key, user, write=True)
        body = object_body(await self.json_body(request), "super-squash body")
        only_fields(body, {"message"}, "super_squash_history")
        message = typed(body, "message", str, "super_squash_history") or f"Super-squash branch '{branch}'"
        cid = await anyio.to_thread.run_sync(self.storage.super_squash, key, branch, user.name, message)
        return JSONResponse({"commitId": cid})

    # ------------------------------------------------------------------ listing and info
    def repo_tags(self, key: RepoKey, card: dict | None) -> list[str]:
        """Tags as the Hub derives them from the card: ``tags`` as they are, ``license:X``,
        ``language:X``, the dataset card's categories, and for models ``dataset:X``,
        ``pipeline_tag`` and ``library_name``."""
        if not isinstance(card, dict):
            return []

        def items(v):
            return [str(x) for x in (v if isinstance(v, list) else [v]) if isinstance(x, (str, int, float))]

        out = items(card.get("tags")) if card.get("tags") is not None else []
        keys = ["license", "language"] + (["task_categories", "task_ids", "size_categories", "multilinguality",
                                           "language_creators"] if key.type == "dataset" else [])
        for k in keys:
            if card.get(k) is not None:
                out += [f"{k}:{v}" for v in items(card[k])]
        if key.type == "model":
            if card.get("datasets") is not None:
                out += [f"dataset:{v}" for v in items(card["datasets"])]
            for k in ("pipeline_tag", "library_name"):
                if isinstance(card.get(k), str):
                    out.append(card[k])
        return list(dict.fromkeys(out))

    def repo_record(self, key: RepoKey, meta: dict, rev: str | None = None, files: bool = True) -> dict:
        """Every property this hub knows of a repo at ``rev`` (the listing and repo info pick from
        it); without ``files`` no ``siblings``/``usedStorage`` (a listing asks for them rarely)."""
        try:
            cid, tree = self.storage.tree(key, rev)
            date = self.storage.commit_obj(key, cid)["date"]
        except HubError:
            if rev is not None:
                raise
            cid, tree, date = None, {}, meta["created"]
        card = self.card_data(tree["README.md"]["blob"]) if "README.md" in tree else None
        siblings = []
        for path in sorted(tree) if files else ():
            e = tree[path]
            j = file_entry_json(path, e)
            s = {"rfilename": path, "size": e["size"], "blobId": j["oid"]}
            if e["lfs"]:
                s["lfs"] = {"size": e["size"], "sha256": e["blob"], "pointerSize": j["lfs"]["pointerSize"]}
            siblings.append(s)
        rec = {"_id": hashlib.sha1(key.id.encode()).hexdigest()[:24], "id": key.id, "author": key.ns, "sha": cid,
               "lastModified": date, "createdAt": meta["created"], "private": meta["private"], "gated": False,
               "disabled": False, "downloads": 0, "downloadsAllTime": 0, "likes": 0, "trendingScore": 0,
               "tags": self.repo_tags(key, card), "cardData": card}
        if files:
            rec.update(siblings=siblings, usedStorage=sum(e["size"] for e in tree.values()))
        if key.type == "model":
            rec["modelId"] = key.id
            for k in ("pipeline_tag", "library_name"):
                if isinstance((card or {}).get(k), str):
                    rec[k] = card[k]
        if key.type == "space":
            rec["sdk"] = meta.get("sdk")
        return rec

    def expand(self, request: Request, rec: dict, t: str, what: str) -> dict | None:
        """Only the ``expand`` properties asked for (and ``id``), or None when none were asked;
        a property this hub does not have is refused by name."""
        asked = request.query_params.getlist("expand") + request.query_params.getlist("expand[]")
        if not asked:
            return None
        known = EXPAND_COMMON | EXPAND_BY_TYPE[t]
        for a in asked:
            if a not in known:
                raise HubError(400, "UnsupportedParameter", f"{what}: expand={a!r} is not supported by this hub "
                                                            f"(supported: {', '.join(sorted(known))})",
                               extra={"parameter": "expand"})
        return {"_id": rec["_id"], "id": rec["id"], **{a: rec.get(a) for a in asked}}

    def list_repos(self, request: Request, t: str) -> Response:
        """``list_models``/``list_datasets``/``list_spaces``: author, search (every term),
        filter (every tag), gated, pipeline_tag, sort (descending), limit, full, cardData,
        expand; other parameters are refused by name."""
        user = self.user(request)
        self.only_params(request, LIST_PARAMS[t], f"list_{t}s", LIST_REFUSED)
        q = request.query_params
        author = q.get("author")
        searches = [s.lower() for s in q.getlist("search") if s]
        filters = q.getlist("filter")
        gated = q.get("gated")
        if gated is not None and gated.lower() not in ("true", "false"):
            raise HubError(400, "InvalidRequest", f"gated must be true or false, not {gated!r}",
                           extra={"parameter": "gated"})
        sort = q.get("sort")
        if sort is not None and sort not in SORT_KEYS:
            raise HubError(400, "UnsupportedParameter", f"sort={sort!r} is not supported (supported: "
                                                        f"{', '.join(SORT_KEYS)})", extra={"parameter": "sort"})
        limit = q.get("limit")
        if limit is not None and not (limit.isascii() and limit.isdigit()):
            raise HubError(400, "InvalidRequest", f"limit must be a non-negative integer, not {limit!r}",
                           extra={"parameter": "limit"})
        full, card_too = _truthy(q.get("full")), _truthy(q.get("cardData"))
        if (full or card_too) and (q.getlist("expand") or q.getlist("expand[]")):
            raise HubError(400, "InvalidRequest", "expand cannot be combined with full or cardData")
        asked = set(q.getlist("expand") + q.getlist("expand[]"))
        files = full or bool(asked & {"siblings", "usedStorage"})
        recs = []
        for key, meta in self.storage.list_repos(t):
            if not self.visible(key, meta, user) or (author and key.ns != author) or \
                    any(s not in key.id.lower() for s in searches) or (gated or "").lower() == "true":
                continue
            rec = self.repo_record(key, meta, files=files)
            if any(f not in rec["tags"] for f in filters) or \
                    (q.get("pipeline_tag") is not None and rec.get("pipeline_tag") != q.get("pipeline_tag")):
                continue
            recs.append(rec)
        if sort:
            recs.sort(key=lambda r: r[sort], reverse=True)
        if limit is not None:
            recs = recs[:int(limit)]
        out = []
        for rec in recs:
            picked = self.expand(request, rec, t, f"list_{t}s")
            if picked is None:
                picked = {k: rec[k] for k in LIST_DEFAULT if k in rec}
                if full:
                    picked.update(siblings=rec["siblings"], cardData=rec["cardData"], sha=rec["sha"])
                if card_too:
                    picked["cardData"] = rec["cardData"]
            out.append(picked)
        return JSONResponse(out)

    @functools.lru_cache(maxsize=256)
    def card_data(self, blob: str) -> dict | None:
        """The README's YAML front matter as JSON-safe data (dates as ISO text, non-finite
        numbers as null), or None when there is none or it does not parse."""
        import yaml

        try:
            text = self.storage.read_blob(blob).decode("utf-8", "replace")
        except OSError:
            return None
        if not text.startswith("---"):
            return None
        end = text.find("\n---", 3)
        if end < 0:
            return None
        try:
            data = yaml.safe_load(text[3:end])
            return json_safe(data) if isinstance(data, dict) else None
        except (yaml.YAMLError, RecursionError, ValueError):
            return None

    async def repo_info(self, request: Request, key: RepoKey, rev: str | None) -> Response:
        """``model_info``/``dataset_info``/``repo_info``: ``blobs`` (files_metadata: sizes and LFS
        info, which this hub always gives) and ``expand``; ``securityStatus`` is refused."""
        user = self.user(request)
        meta = self.repo(key, user)
        self.only_params(request, {"blobs", "expand", "expand[]"}, "repo_info",
                         {"securityStatus": "this hub does not scan files for malware"})
        rec = await anyio.to_thread.run_sync(self.repo_record, key, meta, rev or "main")
        picked = self.expand(request, rec, key.type, "repo_info")
        if picked is None:
            picked = {k: v for k, v in rec.items() if k not in ("downloadsAllTime", "trendingScore")}
        return JSONResponse(picked)

    # ------------------------------------------------------------------ reading files
    def _expand_entries(self, key: RepoKey, cid: str, entries: list[dict]) -> list[dict]:
        """``expand=True`` of tree and paths-info: each entry's ``lastCommit`` (the Hub adds
        a malware-scan status too; this hub scans nothing, so the client reads None)."""
        last = self.storage.last_commits(key, cid, [e["path"] for e in entries])
        for e in entries:
            if e["path"] in last:
                e["lastCommit"] = last[e["path"]]
        return entries

    async def tree(self, request: Request, key: RepoKey, rev: str, path: str) -> Response:
        """``list_repo_tree``: ``recursive`` and ``expand`` (lastCommit of each entry)."""
        user = self.user(request)
        self.repo(key, user)
        self.only_params(request, {"recursive", "expand"}, "list_repo_tree")
        cid, tree = self.storage.tree(key, rev)
        path = path.strip("/")
        entries = list_tree(tree, path, _truthy(request.query_params.get("recursive")))
        if entries is None:
            raise HubError(404, "EntryNotFound", f"folder {path!r} not found at {rev!r} in {key.id}",
                           {"X-Repo-Commit": cid})
        if _truthy(request.query_params.get("expand")):
            entries = await anyio.to_thread.run_sync(self._expand_entries, key, cid, entries)
        return JSONResponse(entries, headers={"X-Repo-Commit": cid})

    async def paths_info(self, request: Request, key: RepoKey, rev: str) -> Response:
        user = self.user(request)
        self.repo(key, user)
        self.only_params(request, set(), "get_paths_info")
        raw = await self.read_body(request, LIST_BODY)
        ctype = request.headers.get("content-type", "")
        if "json" in ctype:
            body = object_body(parse_json(raw or b"{}", "paths-info body"), "paths-info body")
            only_fields(body, {"paths", "expand"}, "get_paths_info")
            paths = body.get("paths", [])
            expand = body.get("expand", False)
            if not isinstance(expand, bool):
                raise HubError(400, "InvalidRequest", "get_paths_info: expand must be a boolean",
                               extra={"field": "expand"})
        else:
            try:
                form = parse_qs(raw.decode("utf-8", "strict"), keep_blank_values=True, strict_parsing=False,
                                max_num_fields=MAX_ITEMS + 2)
            except UnicodeDecodeError:
                raise HubError(400, "InvalidRequest", "paths-info form is not UTF-8") from None
            except ValueError as exc:
                raise HubError(400, "InvalidRequest", f"paths-info form: {exc}") from None
            only_fields(form, {"paths", "expand"}, "get_paths_info")
            paths = form.get("paths", [])
            expand = _truthy((form.get("expand") or ["false"])[-1])
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise HubError(400, "InvalidRequest", "get_paths_info: paths must be a list of strings",
                           extra={"field": "paths"})
        if len(paths) > MAX_ITEMS:
            raise HubError(400, "TooManyItems", f"get_paths_info: at most {MAX_ITEMS} paths a request")
        cid, tree = self.storage.tree(key, rev)
        folders = {f for q in tree for f in _parents(q)}
        out = []
        for p in paths:
            p = p.strip("/")
            if p in tree:
                out.append(file_entry_json(p, tree[p]))
            elif p == "" or p in folders:
                out.append({"type": "directory", "oid": folder_oid(tree, p + "/" if p else ""), "path": p})
        if expand:
            out = await anyio.to_thread.run_sync(self._expand_entries, key, cid, out)
        return JSONResponse(out, headers={"X-Repo-Commit": cid})

    async def resolve(self, request: Request, key: RepoKey, rev: str, path: str) -> Response:
        user = self.user(request)
        self.repo(key, user)
        cid, tree = self.storage.tree(key, rev)
        e = tree.get(path)
        if e is None:
            raise HubError(404, "EntryNotFound", f"{path!r} not found at {rev!r} in {key.id}", {"X-Repo-Commit": cid})
        etag = e["blob"] if e["lfs"] else e["oid"]
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if ctype.startswith("text/") or path.endswith((".md", ".json", ".yaml", ".yml")):
            ctype = (ctype if ctype.startswith("text/") else "text/plain") + "; charset=utf-8"
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": cid, "Accept-Ranges": "bytes",
                   "Cache-Control": "public, max-age=31536000, immutable" if rev == cid else "no-cache"}
        if e["lfs"]:
            headers["X-Linked-Size"] = str(e["size"])
            headers["X-Linked-ETag"] = f'"{etag}"'
        blob = self.storage.blob_path(e["blob"])
        return FastFileResponse(blob, headers=headers, media_type=ctype, stat_result=os.stat(blob))

    # ------------------------------------------------------------------ writing
    async def preupload(self, request: Request, key: RepoKey, rev: str) -> Response:
        user = self.user(request)
        self.repo(key, user, write=True)
        self.only_params(request, set(), "preupload", {"create_pr": PR_REFUSAL})
        body = object_body(await self.json_body(request, LIST_BODY), "preupload body")
        only_fields(body, {"files", "gitIgnore"}, "preupload")
        gitignore = typed(body, "gitIgnore", str, "preupload")
        files = body.get("files")
        if not isinstance(files, list):
            raise HubError(400, "InvalidRequest", "body must be {files: [{path, sample, size}]}")
        if len(files) > MAX_ITEMS:
            raise HubError(400, "TooManyItems", f"preupload: at most {MAX_ITEMS} files a request")
        return JSONResponse(await anyio.to_thread.run_sync(self._upload_modes, key, rev, files, gitignore))

    def _upload_modes(self, key: RepoKey, rev: str, files: list, gitignore: str | None) -> dict:
        """The preupload answer (in a worker thread: .gitignore matching is CPU work)."""
        try:
            _, tree = self.storage.tree(key, rev)
        except HubError:
            _, tree = self.storage.tree(key, "main")
        if gitignore is None and ".gitignore" in tree:  # the Hub applies the repo's own rules
            gitignore = self.storage.read_blob(tree[".gitignore"]["blob"])[:LIST_BODY].decode("utf-8", "replace")
        rules = GitIgnore(gitignore) if gitignore else None
        out = []
        for f in files:
            if not isinstance(f, dict) or not isinstance(f.get("size"), int) or isinstance(f["size"], bool) \
                    or f["size"] < 0 or not isinstance(f.get("sample", ""), str):
                raise HubError(400, "InvalidRequest", "each file needs a path, a base64 sample and an integer size")
            only_fields(f, {"path", "sample", "size"}, "preupload file")
            path = check_path(f.get("path"))
            if f["size"] > self.max_upload:
                raise HubError(413, "PayloadTooLarge",
                               f"{path!r} is {f['size']} bytes, over the upload limit of {self.max_upload}")
            sample = decode_b64(f.get("sample") or "", path)
            mode = upload_mode(path, sample, f["size"])
            item = {"path": path, "uploadMode": mode, "shouldIgnore": bool(rules and rules.ignored(path))}
            e = tree.get(path)
            if e is not None and e["lfs"] == (mode == "lfs"):
                item["oid"] = e["blob"] if e["lfs"] else e["oid"]
            out.append(item)
        return {"files": out, "commitOid": None}

    def owner_marker(self, user: str, sha: str) -> Path:
        return self.storage.root / "owners" / user / sha[:2] / sha

    def mark_owner(self, user: str, sha: str) -> None:
        p = self.owner_marker(user, sha)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()

    async def commit(self, request: Request, key: RepoKey, branch: str) -> Response:
        user = self.user(request)
        self.repo(key, user, write=True)
        if _truthy(request.query_params.get("create_pr")):
            raise HubError(400, "NotSupported", PR_REFUSAL)
        self.only_params(request, {"create_pr"}, "create_commit",
                         {"hot_reload": "hot reloading is for running Spaces; this hub runs none"})
        raw = await self.read_body(request, min(int(self.max_upload * 1.34) + 16 * 1024 * 1024, COMMIT_BODY_MAX))
        ops, header = await anyio.to_thread.run_sync(self._parse_commit, raw, key, branch, user)
        if header is None:
            raise HubError(400, "MalformedNdjson", "commit payload has no header line")
        only_fields(header, {"summary", "description", "parentCommit"}, "commit header")
        parent = header.get("parentCommit")
        if parent is not None and not (isinstance(parent, str) and re.fullmatch(r"[0-9a-f]{40}", parent)):
            raise HubError(400, "InvalidRequest", "parentCommit must be a 40-hex commit sha")
        summary = typed(header, "summary", str, "commit header") or "Upload files"
        description = typed(header, "description", str, "commit header") or ""
        if len(summary) > 10_000 or len(description) > 1_000_000:
            raise HubError(400, "InvalidRequest", "commit summary (10000 characters) or description (1000000) too long")
        cid = await anyio.to_thread.run_sync(
            lambda: self.storage.commit(key, branch, ops, user.name, summary, description, parent_commit=parent))
        return JSONResponse({"commitOid": cid, "commitUrl": f"{self.endpoint(request)}/{key.url_prefix}{key.id}/commit/{cid}",
                             "pullRequestUrl": None, "success": True})

    def _parse_commit(self, raw: bytes, key: RepoKey, branch: str, user: User):
        header = None
        ops = []
        head_blobs = None
        for n, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                item = parse_json(line, f"commit payload line {n}")
                k, v = item["key"], item["value"]
                if not isinstance(v, dict) or not isinstance(k, str) or len(item) != 2:
                    raise TypeError("value is not an object")
            except HubError as exc:
                raise HubError(400, "MalformedNdjson" if exc.code == "InvalidJson" else exc.code, exc.message) from None
            except (KeyError, TypeError) as exc:
                raise HubError(400, "MalformedNdjson", f"commit payload line {n} is not a {{key, value}} JSON object: "
                                                       f"{exc}") from None
            only_fields(v, COMMIT_LINE_FIELDS.get(k, set(v)), f"commit payload line {n} ({k})")
            if k == "header":
                if header is not None:
                    raise HubError(400, "MalformedNdjson", f"line {n}: a second header line")
                header = v
            elif k == "file":
                path = check_path(v.get("path"))
                if v.get("encoding", "base64") != "base64" or not isinstance(v.get("content"), str):
                    raise HubError(400, "MalformedNdjson", f"line {n}: file {path!r} needs base64 'content'")
                data = decode_b64(v["content"], path)
                if len(data) > self.max_upload:
                    raise HubError(413, "PayloadTooLarge", f"{path!r} is over the upload limit of {self.max_upload}")
                sha = self.storage.put_bytes(data)
                ops.append({"op": "add", "path": path, "blob": sha, "size": len(data), "oid": git_blob_sha1(data),
                            "lfs": False})
            elif k == "lfsFile":
                path = check_path(v.get("path"))
                oid = v.get("oid")
                if v.get("algo", "sha256") != "sha256" or not isinstance(oid, str) or not HEX64.match(oid):
                    raise HubError(400, "MalformedNdjson", f"line {n}: lfsFile {path!r} needs a sha256 oid")
                if head_blobs is None:
                    try:
                        _, tree = self.storage.tree(key, branch)
                        head_blobs = {e["blob"] for e in tree.values()}
                    except HubError:
                        head_blobs = set()
                if not self.storage.has_blob(oid) or not (oid in head_blobs or self.owner_marker(user.name, oid).exists()
                                                          or self.storage.repo_has_blob(key, oid)):
                    raise HubError(400, "LfsObjectNotFound",
                                   f"the content of {path!r} (sha256 {oid}) was never uploaded")
                size = self.storage.blob_path(oid).stat().st_size
                if v.get("size") is not None and (type(v.get("size")) is not int or v.get("size") != size):
                    raise HubError(400, "SizeMismatch", f"lfsFile {path!r} says {v.get('size')} bytes, blob has {size}")
                ops.append({"op": "add", "path": path, "blob": oid, "size": size, "oid": oid, "lfs": True})
            elif k in ("deletedFile", "deletedFolder"):
                if not isinstance(v.get("path"), str):
                    raise HubError(400, "MalformedNdjson", f"line {n}: {k} needs a string 'path'")
                path = check_path(v["path"].rstrip("/"))
                ops.append({"op": "delete" if k == "deletedFile" else "delete_folder", "path": path})
            else:
                raise HubError(400, "MalformedNdjson", f"line {n}: unknown key {k!r}")
        return ops, header

    def xet_write_token(self, request: Request, key: RepoKey) -> Response:
        user = self.user(request)
        self.repo(key, user, write=True)
        token, exp = self.auth.grant(user, "xet", ttl=3600)
        cas = f"{self.endpoint(request)}/xet/{self.storage.instance_id}"
        return JSONResponse({"casUrl": cas, "accessToken": token, "exp": exp},
                            headers={"X-Xet-Cas-Url": cas, "X-Xet-Access-Token": token,
                                     "X-Xet-Token-Expiration": str(exp)})

    async def cas(self, request: Request, segs: list[str], m: str) -> Response:
        if segs == ["v1", "telemetry"]:
            return JSONResponse({})
        authz = request.headers.get("authorization", "")
        token = authz.partition(" ")[2].strip()
        user = self.auth.check_grant(token, "xet")
        if user is None:
            raise HubError(401, "Unauthorized", "missing or expired Xet access token")
        if len(segs) == 4 and segs[:3] == ["v1", "xorbs", "default"] and m == "POST":
            h = segs[3]
            data = await self.read_body(request, xet.MAX_XORB_BYTES)
            inserted = await anyio.to_thread.run_sync(self.storage.put_xorb, h, data)
            return JSONResponse({"was_inserted": inserted})
        if segs == ["v1", "shards"] and m == "POST":
            data = await self.read_body(request, 256 * 1024 * 1024)
            stored = await anyio.to_thread.run_sync(
                lambda: self.storage.ingest_shard(data, lambda sha: self.owner_marker(user.name, sha).exists()))
            for sha, _size in stored:
                self.mark_owner(user.name, sha)
            return JSONResponse({"result": 1})
        raise HubError(404, "EntryNotFound", f"no CAS endpoint {m} /{'/'.join(segs)}")

    async def lfs_batch(self, request: Request, key: RepoKey) -> Response:
        user = self.user(request)
        body = await self.json_body(request, LIST_BODY)
        if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
            raise HubError(400, "InvalidRequest", "LFS batch body must have 'objects'")
        only_fields(body, {"operation", "transfers", "objects", "hash_algo", "ref"}, "LFS batch")
        if body.get("hash_algo", "sha256") != "sha256":
            raise HubError(400, "UnsupportedField", "LFS batch: only hash_algo 'sha256' is supported",
                           extra={"field": "hash_algo"})
        if len(body["objects"]) > MAX_ITEMS:
            raise HubError(400, "TooManyItems", f"LFS batch: at most {MAX_ITEMS} objects a request")
        op = body.get("operation")
        self.repo(key, user, write=(op == "upload"))
        if op != "upload":
            raise HubError(422, "NotSupported", "only the LFS 'upload' operation is served; download with resolve/")
        ep = self.endpoint(request)
        objs = []
        for o in body["objects"]:
            oid, size = (o.get("oid"), o.get("size")) if isinstance(o, dict) else (None, None)
            if not isinstance(oid, str) or not HEX64.match(oid) or not isinstance(size, int) or size < 0:
                objs.append({"oid": str(oid), "size": size if isinstance(size, int) else 0,
                             "error": {"code": 422, "message": "invalid oid or size"}})
                continue
            if size > self.max_upload:
                objs.append({"oid": oid, "size": size,
                             "error": {"code": 422, "message": f"object is over the upload limit of {self.max_upload}"}})
                continue
            if self.storage.has_blob(oid) and self.owner_marker(user.name, oid).exists():
                objs.append({"oid": oid, "size": size, "authenticated": True})
                continue
            grant, exp = self.auth.grant(user, "lfs", ttl=3600, extra=f"{oid}:{size}")
            objs.append({"oid": oid, "size": size, "authenticated": True, "actions": {"upload": {
                "href": f"{ep}/lfs-upload/{oid}?size={size}&grant={quote(grant, safe='')}",
                "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))}}})
        return JSONResponse({"transfer": "basic", "objects": objs, "hash_algo": "sha256"},
                            media_type="application/vnd.git-lfs+json")

    async def lfs_put(self, request: Request, oid: str) -> Response:
        q = request.query_params
        size = q.get("size", "")
        user = self.auth.check_grant(q.get("grant", ""), "lfs", extra=f"{oid}:{size}")
        if user is None or not size.isdigit():
            raise HubError(403, "Forbidden", "invalid or expired LFS upload URL")
        size_i = int(size)
        if size_i > self.max_upload:
            raise HubError(413, "PayloadTooLarge", f"object is over the upload limit of {self.max_upload}")
        w = self.storage.blob_writer()
        w.limit = size_i
        try:
            buf = bytearray()
            async for chunk in request.stream():
                buf += chunk
                if len(buf) >= 2 * 1024 * 1024:
                    data, buf = bytes(buf), bytearray()
                    await anyio.to_thread.run_sync(w.write, data)
            await anyio.to_thread.run_sync(w.write, bytes(buf))
            await anyio.to_thread.run_sync(lambda: w.commit(expected_sha=oid, expected_size=size_i))
        except HubError:
            w.abort()
            raise
        except BaseException:
            w.abort()
            raise
        self.mark_owner(user.name, oid)
        return PlainTextResponse("")

    # ------------------------------------------------------------------ refs
    async def create_tag(self, request: Request, key: RepoKey, rev: str) -> Response:
        user = self.user(request)
        self.repo(key, user, write=True)
        body = object_body(await self.json_body(request), "create_tag body")
        only_fields(body, {"tag", "message"}, "create_tag")
        tag = typed(body, "tag", str, "create_tag", required=True)
        message = typed(body, "message", str, "create_tag") or ""
        cid = await anyio.to_thread.run_sync(self.storage.create_tag, key, tag, rev, message)
        return JSONResponse({"name": tag, "ref": f"refs/tags/{tag}", "targetCommit": cid})

    async def create_branch(self, request: Request, key: RepoKey, branch: str) -> Response:
        user = self.user(request)
        self.repo(key, user, write=True)
        body = object_body(await self.json_body(request), "create_branch body")
        only_fields(body, {"startingPoint"}, "create_branch")
        start = typed(body, "startingPoint", str, "create_branch")
        cid = await anyio.to_thread.run_sync(self.storage.create_branch, key, branch, start)
        return JSONResponse({"name": branch, "ref": f"refs/heads/{branch}", "targetCommit": cid})

    async def ref_delete(self, request: Request, key: RepoKey, kind: str, name: str) -> Response:
        user = self.user(request)
        self.repo(key, user, write=True)
        fn = self.storage.delete_tag if kind == "tag" else self.storage.delete_branch
        await anyio.to_thread.run_sync(fn, key, name)
        return JSONResponse({})

    def list_refs(self, request: Request, key: RepoKey) -> Response:
        user = self.user(request)
        self.repo(key, user)
        self.only_params(request, {"include_prs"}, "list_repo_refs")
        refs = self.storage.refs(key)
        out = {"branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c}
                            for b, c in sorted(refs["branches"].items())],
               "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": v["commit"]}
                        for t, v in sorted(refs["tags"].items())],
               "converts": []}
        if _truthy(request.query_params.get("include_prs")):
            out["pullRequests"] = []
        return JSONResponse(out)

    def list_commits(self, request: Request, key: RepoKey, rev: str) -> Response:
        """``list_repo_commits``: ``expand[]=formatted`` adds the title and message as HTML."""
        user = self.user(request)
        self.repo(key, user)
        self.only_params(request, {"expand[]", "expand"}, "list_repo_commits")
        asked = request.query_params.getlist("expand[]") + request.query_params.getlist("expand")
        if any(a != "formatted" for a in asked):
            raise HubError(400, "UnsupportedParameter", "list_repo_commits: only expand[]=formatted is supported",
                           extra={"parameter": "expand[]"})
        out = []
        for c in self.storage.history(key, rev):
            item = {"id": c["id"], "authors": [{"user": c["author"]}], "date": c["date"], "title": c["title"],
                    "message": c["message"], "parents": c["parents"]}
            if asked:
                import html

                item["formatted"] = {"title": html.escape(c["title"]),
                                     "message": html.escape(c["message"]).replace("\n", "<br>")}
            out.append(item)
        return JSONResponse(out)


def create_app(storage_dir: str | os.PathLike, max_upload_bytes: int | None = None) -> HubApp:
    return HubApp(storage_dir, max_upload_bytes)


def app_from_env() -> HubApp:
    """Factory for worker processes (``serve --workers N``): the parent cleaned tmp/ already;
    writers in different processes are serialised by the per-repo ``flock``."""
    limit = os.environ.get("DISMAI_HUB_MAX_UPLOAD")
    return HubApp(os.environ["DISMAI_HUB_STORAGE"], int(limit) if limit else None, clean_tmp=False)
