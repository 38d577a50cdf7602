"""The hub's HTTP server: a Starlette-based ASGI app that speaks the subset of the Hugging
Face Hub API that the pinned clients use (../shared/docs/hub-protocol.md), the Xet CAS
upload endpoints, the git-LFS batch API, and server-rendered web pages.

Routing is done on the *raw* request path, one percent-decoded segment at a time, so a
revision such as ``feat%2Fx`` stays one segment (Starlette's router decodes ``%2F``
first, which makes ``tree/{rev}/{path}`` ambiguous). :class:`HubApp` holds the shared
state (storage, auth, access checks) and maps paths to the handlers of
:mod:`dismai_data.hub.routes` and :mod:`dismai_data.hub.web`.

Extensions (the leaderboard: ``dismai_data.leaderboard.routes.mount``) add their own routes
and hooks to an app through its extension points (``api_mounts``, ``page_mounts``,
``on_repos_changed``, ``on_request``, ``on_shutdown``, ``openapi_paths``); the hub imports none.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import quote, unquote

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from dismai_data.hub.auth import Auth, User
from dismai_data.hub.responses import (  # noqa: F401  (re-exported: the hub's public response helpers)
    FastFileResponse,
    JSONResponse,
    error_response,
    json_safe,
)
from dismai_data.hub.routes.cas import Cas
from dismai_data.hub.routes.commits import (  # noqa: F401  (re-exported)
    BINARY_SUFFIXES,
    COMMIT_BODY_MAX,
    PR_REFUSAL,
    REGULAR_MAX,
    Commits,
    upload_mode,
)
from dismai_data.hub.routes.files import Files
from dismai_data.hub.routes.lfs import Lfs
from dismai_data.hub.routes.listing import SORT_KEYS, Listing  # noqa: F401  (SORT_KEYS re-exported)
from dismai_data.hub.routes.refs import Refs
from dismai_data.hub.routes.repos import TYPES, Repos
from dismai_data.hub.storage import HubError, RepoKey, Storage

log = logging.getLogger("dismai_data.hub")
DEFAULT_MAX_UPLOAD = 50 * 1024 ** 3
#: ``module:function`` mount specs, comma-separated, for apps built by :func:`app_from_env`
MOUNTS_ENV = "DISMAI_HUB_MOUNTS"
LFS_REFUSAL = ("listing and deleting a repo's LFS files is not supported by this hub (stored blobs are shared by "
               "content and stay readable from every commit that names them)")


class HubApp:
    """The ASGI application: shared state, access checks, the routing table and the
    extension points that mounted extensions fill."""

    def __init__(self, storage_dir: str | os.PathLike, max_upload_bytes: int | None = None, clean_tmp: bool = True):
        self.storage = Storage(storage_dir, max_upload_bytes or DEFAULT_MAX_UPLOAD)
        if clean_tmp:  # only where no other process of this hub can be writing
            self.storage.clean_tmp()
        self.auth = Auth(storage_dir)
        self.max_upload = self.storage.max_upload_bytes
        self.repos, self.listing, self.files = Repos(self), Listing(self), Files(self)
        self.commits, self.refs, self.lfs, self.cas = Commits(self), Refs(self), Lfs(self), Cas(self)
        from dismai_data.hub import web

        self.web = web.Web(self)
        # extension points: /api/{name}/... -> async handler(request, segs, method); GET/HEAD /{name} ->
        # async handler(request); async hooks(keys, always) after a repo is created, deleted, moved or
        # changes visibility; hooks(scope) on every HTTP request; hooks() (in a thread) at shutdown
        self.api_mounts: dict[str, Callable] = {}
        self.page_mounts: dict[str, Callable] = {}
        self.on_repos_changed: list[Callable] = []
        self.on_request: list[Callable] = []
        self.on_shutdown: list[Callable] = []
        self.openapi_paths: dict[str, dict] = {}

    # ------------------------------------------------------------------ plumbing
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    for hook in self.on_shutdown:
                        await anyio.to_thread.run_sync(hook)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        for hook in self.on_request:
            hook(scope)
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

    def endpoint(self, request: Request) -> str:
        host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
        return f"{request.url.scheme}://{host}"

    # ------------------------------------------------------------------ access
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

    async def repos_changed(self, keys: list[RepoKey], always: bool = False) -> None:
        """Run the extensions' hooks after repos were created, deleted or moved, or changed
        visibility (``always``), before the answer is sent."""
        for hook in self.on_repos_changed:
            await hook(keys, always)

    def owner_marker(self, user: str, sha: str) -> Path:
        """The marker saying ``user`` uploaded the blob ``sha`` (an LFS/Xet upload may only be
        committed by who uploaded it, or where the repo already has it)."""
        return self.storage.root / "owners" / user / sha[:2] / sha

    def mark_owner(self, user: str, sha: str) -> None:
        p = self.owner_marker(user, sha)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()

    def card_data(self, blob: str) -> dict | None:
        return self.listing.card_data(blob)

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
                return await self.cas.route(request, segs[2:], m)
            if segs[1:] == ["v1", "telemetry"]:
                return JSONResponse({})
            raise HubError(404, "EntryNotFound", "unknown Xet storage: get a new token from xet-write-token")
        if segs and segs[0] == "lfs-upload" and len(segs) == 2 and m == "PUT":
            return await self.lfs.put(request, segs[1])
        if segs == ["v1", "telemetry"] and m == "POST":  # hf_xet telemetry at the root: ignored
            return JSONResponse({})
        if segs == ["openapi.json"]:
            from dismai_data.hub.openapi import openapi_document

            return JSONResponse(openapi_document(self.openapi_paths))
        if segs in ([], [""]):
            return await self.web.index(request)
        if len(segs) == 1 and segs[0] in self.page_mounts and m in ("GET", "HEAD"):
            return await self.page_mounts[segs[0]](request)
        if segs[0] == "static":
            raise HubError(404, "EntryNotFound", "no such page")
        return await self.repo_paths(request, segs, raw, m)

    async def repo_paths(self, request: Request, segs: list[str], raw: str, m: str) -> Response:
        """``/{[datasets|spaces]/}{ns}/{name}/...``: LFS batch, resolve, web pages."""
        if segs[0] in ("datasets", "spaces") and len(segs) >= 3:
            t, ns, name, rest = TYPES[segs[0]], segs[1], segs[2], segs[3:]
        elif segs[0] in ("datasets", "spaces", "models") and len(segs) <= 2:
            return await self.web.index(request, TYPES[segs[0]])
        elif len(segs) >= 2:
            t, ns, name, rest = "model", segs[0], segs[1], segs[2:]
        else:
            raise HubError(404, "RepoNotFound", f"no page at {raw}")
        if name.endswith(".git") and rest == ["info", "lfs", "objects", "batch"] and m == "POST":
            return await self.lfs.batch(request, RepoKey(t, ns, name[:-4]))
        key = RepoKey(t, ns, name)
        if rest and rest[0] == "resolve" and len(rest) >= 3 and m in ("GET", "HEAD"):
            return await self.files.resolve(request, key, rest[1], "/".join(rest[2:]))
        if m in ("GET", "HEAD"):
            return await self.web.repo_page(request, key, rest)
        raise HubError(405, "MethodNotAllowed", f"{m} not allowed on {raw}")

    async def api(self, request: Request, segs: list[str], m: str) -> Response:
        if segs and segs[0] in self.api_mounts:
            return await self.api_mounts[segs[0]](request, segs[1:], m)
        if segs == ["whoami-v2"] and m == "GET":
            return self.repos.whoami(request)
        if segs == ["validate-yaml"] and m == "POST":
            return await self.repos.validate_yaml(request)
        if segs == ["repos", "create"] and m == "POST":
            return await self.repos.create_repo(request)
        if segs == ["repos", "delete"] and m == "DELETE":
            return await self.repos.delete_repo(request)
        if segs == ["repos", "move"] and m == "POST":
            return await self.repos.move_repo(request)
        if len(segs) == 1 and segs[0] in TYPES and m == "GET":
            return await anyio.to_thread.run_sync(self.listing.list_repos, request, TYPES[segs[0]])
        if len(segs) >= 3 and segs[0] in TYPES:
            key = RepoKey(TYPES[segs[0]], segs[1], segs[2])
            rest = segs[3:]
            op = rest[0] if rest else ""
            route = self.repo_api().get((op, m))
            if route is not None and (len(rest) == route[0] or (route[0] < 0 and len(rest) >= -route[0])):
                out = route[1](request, key, rest)
                return await out if inspect.isawaitable(out) else out
            if op == "discussions":
                self.repo(key, self.user(request))
                raise HubError(400, "NotSupported", PR_REFUSAL)
            if op == "lfs-files":
                self.repo(key, self.user(request))
                raise HubError(400, "NotSupported", LFS_REFUSAL)
        raise HubError(404, "EndpointNotFound", f"no API endpoint {m} /api/{'/'.join(segs)}")

    async def _lfs_files(self, request: Request, key: RepoKey, rest: list[str]) -> Response:
        if rest[1] == "duplicate":
            return await self.lfs.duplicate(request, key)
        self.repo(key, self.user(request))
        raise HubError(400, "NotSupported", LFS_REFUSAL)

    def repo_api(self) -> dict[tuple[str, str], tuple[int, Callable]]:
        """``/api/{type}s/{ns}/{name}/{op}/...`` by (op, method): (the number of segments after
        the name, negative for "at least", and the handler of (request, key, those segments))."""
        fs, cs, rs = self.files, self.commits, self.refs
        return {
            ("", "GET"): (0, lambda rq, k, rest: self.listing.repo_info(rq, k, None)),
            ("revision", "GET"): (2, lambda rq, k, rest: self.listing.repo_info(rq, k, rest[1])),
            ("tree", "GET"): (-2, lambda rq, k, rest: fs.tree(rq, k, rest[1], "/".join(rest[2:]))),
            ("paths-info", "POST"): (2, lambda rq, k, rest: fs.paths_info(rq, k, rest[1])),
            ("preupload", "POST"): (2, lambda rq, k, rest: cs.preupload(rq, k, rest[1])),
            ("commit", "POST"): (2, lambda rq, k, rest: cs.commit(rq, k, rest[1])),
            ("xet-write-token", "GET"): (2, lambda rq, k, rest: self.cas.write_token(rq, k)),
            ("xet-read-token", "GET"): (2, lambda rq, k, rest: self.cas.read_token(rq, k, rest[1])),
            ("tag", "POST"): (2, lambda rq, k, rest: rs.create_tag(rq, k, rest[1])),
            ("tag", "DELETE"): (2, lambda rq, k, rest: rs.delete(rq, k, "tag", rest[1])),
            ("branch", "POST"): (2, lambda rq, k, rest: rs.create_branch(rq, k, rest[1])),
            ("branch", "DELETE"): (2, lambda rq, k, rest: rs.delete(rq, k, "branch", rest[1])),
            ("refs", "GET"): (1, lambda rq, k, rest: rs.list_refs(rq, k)),
            ("commits", "GET"): (2, lambda rq, k, rest: rs.list_commits(rq, k, rest[1])),
            ("settings", "PUT"): (1, lambda rq, k, rest: self.repos.settings(rq, k)),
            ("super-squash", "POST"): (2, lambda rq, k, rest: self.repos.super_squash(rq, k, rest[1])),
            ("lfs-files", "POST"): (2, lambda rq, k, rest: self._lfs_files(rq, k, rest)),
        }


def load_mount(spec: str | Callable) -> Callable:
    """A mount function, given as itself or as ``"module:function"``."""
    if callable(spec):
        return spec
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"mount {spec!r} is not module:function")
    return getattr(importlib.import_module(module), attr)


def listen_socket(host: str, port: int) -> socket.socket:
    """The bound TCP socket the hub serves on. It is made with ``IPPROTO_TCP`` and
    ``TCP_NODELAY``: asyncio only disables Nagle on sockets whose protocol says TCP, and
    uvicorn writes a response's headers and body separately, so without it every JSON answer
    on a kept-alive connection waited for the client's delayed ACK (about 40 ms each)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets on Linux
    sock.bind((host, port))
    return sock


def create_app(storage_dir: str | os.PathLike, max_upload_bytes: int | None = None,
               mounts: Iterable[str | Callable] = (), clean_tmp: bool = True) -> HubApp:
    """A hub app with each of ``mounts`` (a function or ``"module:function"``) called on it."""
    app = HubApp(storage_dir, max_upload_bytes, clean_tmp=clean_tmp)
    for spec in mounts:
        load_mount(spec)(app)
    return app


def app_from_env() -> HubApp:
    """Factory for worker processes (``serve --workers N``): the parent cleaned tmp/ already;
    writers in different processes are serialised by the per-repo ``flock``. Mounts come from
    ``$DISMAI_HUB_MOUNTS``."""
    limit = os.environ.get("DISMAI_HUB_MAX_UPLOAD")
    mounts = [s for s in os.environ.get(MOUNTS_ENV, "").split(",") if s.strip()]
    return create_app(os.environ["DISMAI_HUB_STORAGE"], int(limit) if limit else None, mounts, clean_tmp=False)
