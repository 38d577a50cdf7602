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
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from dismai_data.hub import xet
from dismai_data.hub.auth import Auth, User
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


class FastFileResponse(FileResponse):
    chunk_size = 1024 * 1024


def _header_safe(text: str) -> str:
    """Printable ASCII only (escapes for the rest), no surrounding blanks: a legal header value."""
    out = "".join(ch if 32 <= ord(ch) < 127 else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return out.strip()[:500] or "error"


def error_response(exc: HubError) -> Response:
    headers = {"X-Error-Code": _header_safe(exc.code), "X-Error-Message": _header_safe(exc.message), **exc.headers}
    return JSONResponse({"error": exc.message, "code": exc.code, **exc.extra}, status_code=exc.status, headers=headers)


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

    async def read_body(self, request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise HubError(413, "PayloadTooLarge", f"request body of {declared} bytes is over the limit of {limit}")
        buf = bytearray()
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > limit:
                raise HubError(413, "PayloadTooLarge", f"request body is over the limit of {limit} bytes")
        return bytes(buf)

    async def json_body(self, request: Request, limit: int = 16 * 1024 * 1024):
        raw = await self.read_body(request, limit)
        try:
            return json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HubError(400, "InvalidJson", f"request body is not JSON: {exc}") from exc

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
        if len(segs) == 1 and segs[0] in TYPES and m == "GET":
            return self.list_repos(request, TYPES[segs[0]])
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
            return JSONResponse(await anyio.to_thread.run_sync(service.status, self, segs[1], ep))
        if segs in ([], [""]) and m == "GET":
            from dismai_data.leaderboard.queue import Queue

            rows = await anyio.to_thread.run_sync(service.leaderboard_rows, self.storage)
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

        body = await self.json_body(request)
        content = body.get("content") if isinstance(body, dict) else None
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
        except yaml.YAMLError as exc:
            return JSONResponse({"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []}, status_code=400,
                                headers={"X-Error-Code": "InvalidYaml", "X-Error-Message": "invalid YAML metadata"})
        if data is not None and not isinstance(data, dict):
            return JSONResponse({"errors": [{"message": "YAML metadata must be a mapping"}], "warnings": []},
                                status_code=400, headers={"X-Error-Code": "InvalidYaml",
                                                          "X-Error-Message": "YAML metadata must be a mapping"})
        return JSONResponse({"errors": [], "warnings": []})

    async def create_repo(self, request: Request) -> Response:
        user = self.user(request)
        body = await self.json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise HubError(400, "InvalidRequest", "body must be {name, organization?, type?, private?}")
        if user is None:
            raise HubError(401, "Unauthorized", "a write token is required to create a repository")
        name = body["name"]
        ns = body.get("organization") or None
        if not isinstance(ns, (str, type(None))):
            raise HubError(400, "InvalidRequest", "organization must be a string")
        if "/" in name:
            ns, name = name.split("/", 1)
        ns = ns or user.name
        t = body.get("type") or "model"
        if t not in TYPES.values():
            raise HubError(400, "InvalidRepoType", f"unknown repo type {t!r}")
        self.require_write(user, ns)
        key = RepoKey(t, ns, name)
        url = f"{self.endpoint(request)}/{key.url_prefix}{key.id}"
        try:
            await anyio.to_thread.run_sync(self.storage.create_repo, key, bool(body.get("private")), user.name)
        except HubError as exc:
            if exc.status == 409:  # huggingface_hub's exist_ok=True reads the url of the 409 answer
                exc.extra = {"url": url, "name": key.id}
            raise
        return JSONResponse({"url": url, "name": key.id, "id": key.id})

    async def delete_repo(self, request: Request) -> Response:
        user = self.user(request)
        body = await self.json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise HubError(400, "InvalidRequest", "body must be {name, organization?, type?}")
        name, ns = body["name"], body.get("organization")
        t = body.get("type") or "model"
        if not isinstance(ns, (str, type(None))) or t not in TYPES.values():
            raise HubError(400, "InvalidRequest", "organization must be a string and type model|dataset|space")
        if "/" in name:
            ns, name = name.split("/", 1)
        ns = ns or (user.name if user else "")
        key = RepoKey(t, ns, name)
        self.repo(key, user, write=True)
        await anyio.to_thread.run_sync(self.storage.delete_repo, key)
        return JSONResponse({})

    async def settings(self, request: Request, key: RepoKey) -> Response:
        user = self.user(request)
        self.repo(key, user, write=True)
        body = await self.json_body(request)
        if isinstance(body, dict) and "private" in body:
            await anyio.to_thread.run_sync(self.storage.set_private, key, bool(body["private"]))
        return JSONResponse({})

    def list_repos(self, request: Request, t: str) -> Response:
        user = self.user(request)
        q = request.query_params
        author, search = q.get("author"), (q.get("search") or "").lower()
        out = []
        for key, meta in self.storage.list_repos(t):
            if not self.visible(key, meta, user) or (author and key.ns != author) or (search and search not in key.id.lower()):
                continue
            try:
                cid = self.storage.resolve(key, "main")
                date = self.storage.commit_obj(key, cid)["date"]
            except HubError:
                cid, date = None, meta["created"]
            out.append({"_id": hashlib.sha1(key.id.encode()).hexdigest()[:24], "id": key.id, "author": key.ns,
                        "sha": cid, "lastModified": date, "private": meta["private"], "gated": False,
                        "disabled": False, "downloads": 0, "likes": 0, "tags": [], "createdAt": meta["created"]})
        limit = q.get("limit")
        if limit and limit.isdigit():
            out = out[:int(limit)]
        return JSONResponse(out)

    @functools.lru_cache(maxsize=256)
    def card_data(self, blob: str) -> dict | None:
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
        except yaml.YAMLError:
            return None
        return data if isinstance(data, dict) else None

    async def repo_info(self, request: Request, key: RepoKey, rev: str | None) -> Response:
        user = self.user(request)
        meta = self.repo(key, user)
        cid, tree = self.storage.tree(key, rev)
        commit = self.storage.commit_obj(key, cid)
        siblings = []
        for path in sorted(tree):
            e = tree[path]
            s = {"rfilename": path, "size": e["size"], "blobId": file_entry_json(path, e)["oid"]}
            if e["lfs"]:
                s["lfs"] = {"size": e["size"], "sha256": e["blob"], "pointerSize": file_entry_json(path, e)["lfs"]["pointerSize"]}
            siblings.append(s)
        card = self.card_data(tree["README.md"]["blob"]) if "README.md" in tree else None
        info = {"_id": hashlib.sha1(key.id.encode()).hexdigest()[:24], "id": key.id, "author": key.ns, "sha": cid,
                "lastModified": commit["date"], "createdAt": meta["created"], "private": meta["private"],
                "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
                "cardData": card, "siblings": siblings, "usedStorage": sum(e["size"] for e in tree.values())}
        if key.type == "model":
            info["modelId"] = key.id
        return JSONResponse(info)

    # ------------------------------------------------------------------ reading files
    async def tree(self, request: Request, key: RepoKey, rev: str, path: str) -> Response:
        user = self.user(request)
        self.repo(key, user)
        cid, tree = self.storage.tree(key, rev)
        path = path.strip("/")
        entries = list_tree(tree, path, _truthy(request.query_params.get("recursive")))
        if entries is None:
            raise HubError(404, "EntryNotFound", f"folder {path!r} not found at {rev!r} in {key.id}",
                           {"X-Repo-Commit": cid})
        return JSONResponse(entries, headers={"X-Repo-Commit": cid})

    async def paths_info(self, request: Request, key: RepoKey, rev: str) -> Response:
        user = self.user(request)
        self.repo(key, user)
        raw = await self.read_body(request, 16 * 1024 * 1024)
        ctype = request.headers.get("content-type", "")
        if "json" in ctype:
            try:
                body = json.loads(raw or b"{}")
                paths = body.get("paths", [])
            except (ValueError, AttributeError) as exc:
                raise HubError(400, "InvalidJson", "body must be {paths: [...]}") from exc
        else:
            paths = parse_qs(raw.decode("utf-8", "replace")).get("paths", [])
        if isinstance(paths, str):
            paths = [paths]
        cid, tree = self.storage.tree(key, rev)
        out = []
        for p in paths:
            if not isinstance(p, str):
                continue
            p = p.strip("/")
            if p in tree:
                out.append(file_entry_json(p, tree[p]))
            elif p == "" or any(q.startswith(p + "/") for q in tree):
                out.append({"type": "directory", "oid": folder_oid(tree, p + "/" if p else ""), "path": p})
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
        body = await self.json_body(request)
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list):
            raise HubError(400, "InvalidRequest", "body must be {files: [{path, sample, size}]}")
        try:
            _, tree = self.storage.tree(key, rev)
        except HubError:
            _, tree = self.storage.tree(key, "main")
        out = []
        for f in files:
            if not isinstance(f, dict) or not isinstance(f.get("size"), int) or f["size"] < 0:
                raise HubError(400, "InvalidRequest", "each file needs a path, a base64 sample and an integer size")
            path = check_path(f.get("path"))
            if f["size"] > self.max_upload:
                raise HubError(413, "PayloadTooLarge",
                               f"{path!r} is {f['size']} bytes, over the upload limit of {self.max_upload}")
            sample = decode_b64(f.get("sample") or "", path)
            mode = upload_mode(path, sample, f["size"])
            item = {"path": path, "uploadMode": mode, "shouldIgnore": False}
            e = tree.get(path)
            if e is not None and e["lfs"] == (mode == "lfs"):
                item["oid"] = e["blob"] if e["lfs"] else e["oid"]
            out.append(item)
        return JSONResponse({"files": out, "commitOid": None})

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
            raise HubError(400, "NotSupported", "pull requests are not supported by this hub")
        raw = await self.read_body(request, int(self.max_upload * 1.34) + 16 * 1024 * 1024)
        ops, header = await anyio.to_thread.run_sync(self._parse_commit, raw, key, branch, user)
        if header is None:
            raise HubError(400, "MalformedNdjson", "commit payload has no header line")
        parent = header.get("parentCommit")
        if parent is not None and not (isinstance(parent, str) and re.fullmatch(r"[0-9a-f]{40}", parent)):
            raise HubError(400, "InvalidRequest", "parentCommit must be a 40-hex commit sha")
        summary = header.get("summary") or "Upload files"
        cid = await anyio.to_thread.run_sync(
            lambda: self.storage.commit(key, branch, ops, user.name, str(summary), str(header.get("description") or ""),
                                        parent_commit=parent))
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
                item = json.loads(line)
                k, v = item["key"], item["value"]
                if not isinstance(v, dict):
                    raise TypeError("value is not an object")
            except (ValueError, KeyError, TypeError) as exc:
                raise HubError(400, "MalformedNdjson", f"commit payload line {n} is not a {{key, value}} JSON object: "
                                                       f"{exc}") from exc
            if k == "header":
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
                if not self.storage.has_blob(oid) or not (oid in head_blobs or self.owner_marker(user.name, oid).exists()):
                    raise HubError(400, "LfsObjectNotFound",
                                   f"the content of {path!r} (sha256 {oid}) was never uploaded")
                size = self.storage.blob_path(oid).stat().st_size
                if v.get("size") is not None and v.get("size") != size:
                    raise HubError(400, "SizeMismatch", f"lfsFile {path!r} says {v.get('size')} bytes, blob has {size}")
                ops.append({"op": "add", "path": path, "blob": oid, "size": size, "oid": oid, "lfs": True})
            elif k in ("deletedFile", "deletedFolder"):
                path = check_path(str(v.get("path", "")).rstrip("/"))
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
        body = await self.json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
            raise HubError(400, "InvalidRequest", "LFS batch body must have 'objects'")
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
        body = await self.json_body(request)
        tag = body.get("tag") if isinstance(body, dict) else None
        if not isinstance(tag, str):
            raise HubError(400, "InvalidRequest", "body must be {tag, message?}")
        cid = await anyio.to_thread.run_sync(self.storage.create_tag, key, tag, rev, str(body.get("message") or ""))
        return JSONResponse({"name": tag, "ref": f"refs/tags/{tag}", "targetCommit": cid})

    async def create_branch(self, request: Request, key: RepoKey, branch: str) -> Response:
        user = self.user(request)
        self.repo(key, user, write=True)
        body = await self.json_body(request)
        start = body.get("startingPoint") if isinstance(body, dict) else None
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
        user = self.user(request)
        self.repo(key, user)
        out = [{"id": c["id"], "authors": [{"user": c["author"]}], "date": c["date"], "title": c["title"],
                "message": c["message"], "parents": c["parents"]} for c in self.storage.history(key, rev)]
        return JSONResponse(out)


def create_app(storage_dir: str | os.PathLike, max_upload_bytes: int | None = None) -> HubApp:
    return HubApp(storage_dir, max_upload_bytes)


def app_from_env() -> HubApp:
    """Factory for worker processes (``serve --workers N``): the parent cleaned tmp/ already;
    writers in different processes are serialised by the per-repo ``flock``."""
    limit = os.environ.get("DISMAI_HUB_MAX_UPLOAD")
    return HubApp(os.environ["DISMAI_HUB_STORAGE"], int(limit) if limit else None, clean_tmp=False)
