"""The leaderboard's place on the hub: :func:`mount` adds its API (``/api/leaderboard``), its
page (``/leaderboard``, with a link in the top bar), its OpenAPI paths, the reconcile of
``dismai/leaderboard`` after a repo changes visibility, and the scoring worker (a daemon
thread started by the first request, once the hub knows its own address;
``DISMAI_LEADERBOARD_WORKER=0`` leaves it off) to a :class:`dismai_data.hub.server.HubApp`.

The hub imports nothing of the leaderboard; whoever starts a hub with the leaderboard mounts
it: ``dismai hub serve --mount dismai_data.leaderboard.routes:mount``, or the factories below
(:func:`create_app`, :func:`app_from_env`, :func:`serve_in_background`).
"""

from __future__ import annotations

import logging
import os

import anyio

from dismai_data.hub.openapi import json_content, op, param, web_page
from dismai_data.hub.responses import JSONResponse, json_body
from dismai_data.hub.storage import HubError, RepoKey

log = logging.getLogger("dismai_data.hub")
MOUNT = "dismai_data.leaderboard.routes:mount"
NAV = {"href": "/leaderboard", "id": "nav-leaderboard", "text": "Leaderboard"}
SUBMISSION_BODY_MAX = 1024 * 1024
OPENAPI_PATHS = {
    "/api/leaderboard": {"get": op("Leaderboard rows and queue counts", tag="leaderboard")},
    "/api/leaderboard/submissions": {"post": op("Queue a submission for scoring", body=json_content({
        "type": "object", "required": ["task", "predictions_repo", "predictions_commit", "predictions_path",
                                       "model_name"],
        "properties": {"task": {"type": "string"}, "predictions_repo": {"type": "string"},
                       "predictions_commit": {"type": "string"}, "predictions_path": {"type": "string"},
                       "model_name": {"type": "string"}, "model_repo": {"type": "string"},
                       "notes": {"type": "string"}, "column": {"type": "string"},
                       "shipped": {"type": "object", "description": "scores the publisher (org dismai) "
                                   "computed for exactly this file"}}}), tag="leaderboard")},
    "/api/leaderboard/submissions/{submission_id}": {"get": op("One submission's state",
                                                               [param("submission_id")], tag="leaderboard")},
    "/leaderboard": web_page("Web: leaderboard"),
}


def visible_rows(hub, rows: list[dict], user) -> list[dict]:
    """Leaderboard rows whose predictions repo ``user`` may see: a predictions repo made
    private (or deleted) after scoring takes its rows off the page and the API."""
    return [r for r in rows if hub.repo_id_visible(r.get("predictions_repo"), user)]


def queue_counts(storage) -> dict:
    """Queue counts by state; every state 0 before the first submission."""
    from .queue import STATES, Queue

    if (storage.root / "leaderboard").is_dir():
        return Queue(storage.root).counts()
    return {s: 0 for s in STATES}


class LeaderboardRoutes:
    """The handlers, given the hub app (its storage and access checks)."""

    def __init__(self, hub):
        self.hub = hub

    async def api(self, request, segs: list[str], m: str):
        """``POST submissions``, ``GET submissions/{id}``, ``GET`` (rows); see :mod:`.service`."""
        from . import service

        hub = self.hub
        ep = hub.endpoint(request)
        if segs == ["submissions"] and m == "POST":
            user = hub.user(request)
            body = await json_body(request, SUBMISSION_BODY_MAX)
            code, out = await anyio.to_thread.run_sync(service.submit, hub, user, body, ep)
            return JSONResponse(out, status_code=code)
        if len(segs) == 2 and segs[0] == "submissions" and m == "GET":
            out = await anyio.to_thread.run_sync(service.status, hub, segs[1], ep)
            if not hub.repo_id_visible(out.get("predictions_repo"), hub.user_or_none(request)):
                raise HubError(404, "SubmissionNotFound", f"no submission {segs[1]!r}")
            return JSONResponse(out)
        if segs in ([], [""]) and m == "GET":
            from .queue import Queue

            rows = await anyio.to_thread.run_sync(service.leaderboard_rows, hub.storage)
            rows = visible_rows(hub, rows, hub.user_or_none(request))
            queue = Queue(hub.storage.root).counts() if (hub.storage.root / "leaderboard").is_dir() else {}
            return JSONResponse({"rows": service.rows_json(rows), "queue": queue})
        raise HubError(404, "EndpointNotFound", f"no API endpoint {m} /api/leaderboard/{'/'.join(segs)}")

    async def page(self, request):
        """The leaderboard page (:mod:`.page`): its one inline script, the table sorter, is
        allowed by hash in the page's CSP."""
        from . import page, service

        hub = self.hub
        user = hub.user_or_none(request)

        def build():
            rows = visible_rows(hub, service.leaderboard_rows(hub.storage), user)
            return page.render(rows, queue_counts(hub.storage))

        return hub.web.page("Leaderboard", await anyio.to_thread.run_sync(build), csp=page.CSP)

    async def reconcile(self, keys: list[RepoKey], always: bool = False) -> None:
        """After a dataset repo is made private or public (``always``), created, deleted or
        renamed: ``dismai/leaderboard`` keeps only rows of public predictions repos, the others
        are withheld and purged from its history (:mod:`.store`). Done before the answer, so a
        repo made private has no row left in the public dataset when the client's call returns."""
        keys = [k for k in keys if k.type == "dataset"]
        if not keys:
            return
        from . import store

        storage = self.hub.storage

        def run():
            if always:  # a failure here is the caller's error: the repo's rows might still be public
                store.reconcile(storage)
                return
            try:
                if store.concerns(storage, [k.id for k in keys]):
                    store.reconcile(storage)
            except Exception:  # the repo operation itself succeeded; the next reconcile retries
                log.exception("leaderboard reconcile after a change of %s", [k.id for k in keys])

        await anyio.to_thread.run_sync(run)


def start_worker_hook(worker):
    """An ``on_request`` hook that starts ``worker`` against this server's own bound address
    (from the ASGI scope, not from a client-supplied Host header; $DISMAI_HUB_URL overrides)."""

    def hook(scope) -> None:
        if worker.thread is not None:
            return
        url = os.environ.get("DISMAI_HUB_URL")
        server = scope.get("server")
        if not url and server and server[1]:
            host = server[0]
            url = f"http://{'[' + host + ']' if ':' in host else host}:{server[1]}"
        if url:
            worker.ensure_started(url)

    return hook


def mount(app) -> None:
    """Add the leaderboard to the hub ``app`` (routes, page, nav link, OpenAPI paths,
    reconcile hook, scoring worker)."""
    routes = LeaderboardRoutes(app)
    app.leaderboard = routes
    app.api_mounts["leaderboard"] = routes.api
    app.page_mounts["leaderboard"] = routes.page
    app.web.nav.append(NAV)
    app.openapi_paths.update(OPENAPI_PATHS)
    app.on_repos_changed.append(routes.reconcile)
    app.leaderboard_worker = None
    if os.environ.get("DISMAI_LEADERBOARD_WORKER", "1") != "0":
        from .worker import BackgroundWorker

        app.leaderboard_worker = BackgroundWorker(app.storage.root)
        app.on_request.append(start_worker_hook(app.leaderboard_worker))
        app.on_shutdown.append(app.leaderboard_worker.stop)


def create_app(storage_dir: str | os.PathLike, max_upload_bytes: int | None = None):
    """A hub app with the leaderboard mounted."""
    from dismai_data.hub.server import create_app as hub_app

    return hub_app(storage_dir, max_upload_bytes, mounts=[mount])


def app_from_env():
    """:func:`dismai_data.hub.server.app_from_env` with the leaderboard mounted (for
    ``uvicorn --factory`` worker processes)."""
    from dismai_data.hub.server import MOUNTS_ENV, app_from_env as hub_app

    mounts = [s for s in os.environ.get(MOUNTS_ENV, "").split(",") if s.strip()]
    if MOUNT not in mounts:
        os.environ[MOUNTS_ENV] = ",".join(mounts + [MOUNT])
    return hub_app()


def serve_in_background(storage: str | os.PathLike, host: str = "127.0.0.1", port: int = 0,
                        max_upload_bytes: int | None = None):
    """:func:`dismai_data.hub.publish.serve_in_background` with the leaderboard mounted (what
    ``dismai main`` starts)."""
    from dismai_data.hub.publish import serve_in_background as serve

    return serve(storage, host, port, max_upload_bytes, mounts=[mount])
