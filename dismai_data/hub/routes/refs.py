"""Branches, tags and history: create/delete a branch or tag, ``list_repo_refs``,
``list_repo_commits``."""

from __future__ import annotations

import html

import anyio
from starlette.requests import Request
from starlette.responses import Response

from dismai_data.hub.limits import object_body, only_fields, typed
from dismai_data.hub.responses import JSONResponse, json_body, only_params, truthy
from dismai_data.hub.routes import Routes
from dismai_data.hub.storage import HubError, RepoKey


class Refs(Routes):
    async def create_tag(self, request: Request, key: RepoKey, rev: str) -> Response:
        user = self.hub.user(request)
        self.hub.repo(key, user, write=True)
        body = object_body(await json_body(request), "create_tag body")
        only_fields(body, {"tag", "message"}, "create_tag")
        tag = typed(body, "tag", str, "create_tag", required=True)
        message = typed(body, "message", str, "create_tag") or ""
        cid = await anyio.to_thread.run_sync(self.storage.create_tag, key, tag, rev, message)
        return JSONResponse({"name": tag, "ref": f"refs/tags/{tag}", "targetCommit": cid})

    async def create_branch(self, request: Request, key: RepoKey, branch: str) -> Response:
        user = self.hub.user(request)
        self.hub.repo(key, user, write=True)
        body = object_body(await json_body(request), "create_branch body")
        only_fields(body, {"startingPoint"}, "create_branch")
        start = typed(body, "startingPoint", str, "create_branch")
        cid = await anyio.to_thread.run_sync(self.storage.create_branch, key, branch, start)
        return JSONResponse({"name": branch, "ref": f"refs/heads/{branch}", "targetCommit": cid})

    async def delete(self, request: Request, key: RepoKey, kind: str, name: str) -> Response:
        """Delete the tag (``kind`` "tag") or branch ``name``."""
        user = self.hub.user(request)
        self.hub.repo(key, user, write=True)
        fn = self.storage.delete_tag if kind == "tag" else self.storage.delete_branch
        await anyio.to_thread.run_sync(fn, key, name)
        return JSONResponse({})

    def list_refs(self, request: Request, key: RepoKey) -> Response:
        user = self.hub.user(request)
        self.hub.repo(key, user)
        only_params(request, {"include_prs"}, "list_repo_refs")
        refs = self.storage.refs(key)
        out = {"branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c}
                            for b, c in sorted(refs["branches"].items())],
               "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": v["commit"]}
                        for t, v in sorted(refs["tags"].items())],
               "converts": []}
        if truthy(request.query_params.get("include_prs")):
            out["pullRequests"] = []
        return JSONResponse(out)

    def list_commits(self, request: Request, key: RepoKey, rev: str) -> Response:
        """``list_repo_commits``: ``expand[]=formatted`` adds the title and message as HTML."""
        user = self.hub.user(request)
        self.hub.repo(key, user)
        only_params(request, {"expand[]", "expand"}, "list_repo_commits")
        asked = request.query_params.getlist("expand[]") + request.query_params.getlist("expand")
        if any(a != "formatted" for a in asked):
            raise HubError(400, "UnsupportedParameter", "list_repo_commits: only expand[]=formatted is supported",
                           extra={"parameter": "expand[]"})
        out = []
        for c in self.storage.history(key, rev):
            item = {"id": c["id"], "authors": [{"user": c["author"]}], "date": c["date"], "title": c["title"],
                    "message": c["message"], "parents": c["parents"]}
            if asked:
                item["formatted"] = {"title": html.escape(c["title"]),
                                     "message": html.escape(c["message"]).replace("\n", "<br>")}
            out.append(item)
        return JSONResponse(out)
