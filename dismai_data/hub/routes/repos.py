"""Account and repository routes: whoami, validate-yaml, create/delete/move a repo, its
settings (visibility) and super-squash."""

from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import Response

from dismai_data.hub.limits import LIST_BODY, object_body, only_fields, typed
from dismai_data.hub.responses import JSONResponse, json_body, json_safe
from dismai_data.hub.routes import Routes
from dismai_data.hub.storage import HubError, RepoKey

TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_SPACES = "this hub stores Spaces as file repos and runs none"
CREATE_REFUSED = {"template": _SPACES, "hardware": _SPACES, "sleepTimeSeconds": _SPACES, "secrets": _SPACES,
                  "variables": _SPACES, "volumes": _SPACES,
                  "resourceGroupId": "resource groups (Enterprise access control) are not supported by this hub",
                  "region": "this hub has one storage region"}
SETTINGS_REFUSED = {"discussionsDisabled": "this hub has no discussions",
                    "xetEnabled": "Xet uploads are always on", "gatedNotificationsMode": "no repo here is gated"}


def visibility(body: dict, what: str, repo_type: str) -> bool | None:
    """True/False from ``private`` or ``visibility`` (None when neither is given); 400 on a
    wrong type, an unknown value, 'protected' (a Space setting) or the two disagreeing."""
    private = typed(body, "private", bool, what)
    vis = typed(body, "visibility", str, what)
    if vis is not None:
        if vis == "protected":
            raise HubError(400, "UnsupportedField", f"{what}: visibility 'protected' (a public Space with private "
                                                    "files) is not supported by this hub",
                           extra={"field": "visibility"})
        if vis not in ("public", "private"):
            raise HubError(400, "InvalidRequest", f"{what}: visibility must be 'public' or 'private', not {vis!r}",
                           extra={"field": "visibility"})
        if private is not None and private != (vis == "private"):
            raise HubError(400, "InvalidRequest", f"{what}: 'private' and 'visibility' disagree",
                           extra={"field": "visibility"})
        return vis == "private"
    return private


def _repo_type(body: dict, what: str) -> str:
    t = typed(body, "type", str, what) or "model"
    if t not in TYPES.values():
        raise HubError(400, "InvalidRepoType", f"unknown repo type {t!r}")
    return t


class Repos(Routes):
    def whoami(self, request: Request) -> Response:
        user = self.hub.user(request)
        if user is None:
            raise HubError(401, "Unauthorized", "no token given")
        return JSONResponse({"type": "user", "id": user.name, "name": user.name, "fullname": user.name,
                             "orgs": [{"type": "org", "name": o} for o in user.orgs],
                             "auth": {"type": "access_token",
                                      "accessToken": {"displayName": user.token_name, "role": user.scope}}})

    async def validate_yaml(self, request: Request) -> Response:
        import yaml

        body = object_body(await json_body(request, LIST_BODY), "validate-yaml body")
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
        user = self.hub.user(request)
        body = object_body(await json_body(request), "create_repo body")
        only_fields(body, {"name", "organization", "type", "private", "visibility", "sdk"}, "create_repo",
                    CREATE_REFUSED)
        name = typed(body, "name", str, "create_repo", required=True)
        ns = typed(body, "organization", str, "create_repo") or None
        if user is None:
            raise HubError(401, "Unauthorized", "a write token is required to create a repository")
        if "/" in name:
            ns, name = name.split("/", 1)
        ns = ns or user.name
        t = _repo_type(body, "create_repo")
        private = visibility(body, "create_repo", t)
        sdk = typed(body, "sdk", str, "create_repo")
        if sdk is not None and t != "space":
            raise HubError(400, "UnsupportedField", "create_repo: field 'sdk' is only for Spaces",
                           extra={"field": "sdk"})
        self.hub.require_write(user, ns)
        key = RepoKey(t, ns, name)
        url = f"{self.hub.endpoint(request)}/{key.url_prefix}{key.id}"
        try:
            await anyio.to_thread.run_sync(lambda: self.storage.create_repo(key, bool(private), user.name,
                                                                            {"sdk": sdk} if sdk else None))
        except HubError as exc:
            if exc.status == 409:  # huggingface_hub's exist_ok=True reads the url of the 409 answer
                exc.extra = {"url": url, "name": key.id}
            raise
        await self.hub.repos_changed([key])
        return JSONResponse({"url": url, "name": key.id, "id": key.id})

    async def delete_repo(self, request: Request) -> Response:
        user = self.hub.user(request)
        body = object_body(await json_body(request), "delete_repo body")
        only_fields(body, {"name", "organization", "type"}, "delete_repo")
        name = typed(body, "name", str, "delete_repo", required=True)
        ns = typed(body, "organization", str, "delete_repo")
        t = _repo_type(body, "delete_repo")
        if "/" in name:
            ns, name = name.split("/", 1)
        ns = ns or (user.name if user else "")
        key = RepoKey(t, ns, name)
        self.hub.repo(key, user, write=True)
        await anyio.to_thread.run_sync(self.storage.delete_repo, key)
        await self.hub.repos_changed([key])
        return JSONResponse({})

    async def move_repo(self, request: Request) -> Response:
        """``move_repo``: rename or transfer; a write token of both namespaces is needed."""
        user = self.hub.user(request)
        body = object_body(await json_body(request), "move_repo body")
        only_fields(body, {"fromRepo", "toRepo", "type"}, "move_repo")
        src, dst = (typed(body, f, str, "move_repo", required=True) for f in ("fromRepo", "toRepo"))
        t = _repo_type(body, "move_repo")
        for f, v in (("fromRepo", src), ("toRepo", dst)):
            if v.count("/") != 1:
                raise HubError(400, "InvalidRepoName", f"move_repo: {f} {v!r} is not namespace/name",
                               extra={"field": f})
        skey, dkey = RepoKey(t, *src.split("/")), RepoKey(t, *dst.split("/"))
        self.hub.repo(skey, user, write=True)
        self.hub.require_write(user, dkey.ns)
        await anyio.to_thread.run_sync(self.storage.move_repo, skey, dkey)
        await self.hub.repos_changed([skey, dkey])
        return JSONResponse({"url": f"{self.hub.endpoint(request)}/{dkey.url_prefix}{dkey.id}"})

    async def settings(self, request: Request, key: RepoKey) -> Response:
        """``update_repo_settings``: ``private`` or ``visibility``; ``gated`` only as False (no
        repo here is gated); anything else is refused by name."""
        user = self.hub.user(request)
        self.hub.repo(key, user, write=True)
        body = object_body(await json_body(request), "settings body")
        only_fields(body, {"private", "visibility", "gated"}, "update_repo_settings", SETTINGS_REFUSED)
        if body.get("gated", False) is not False:
            raise HubError(400, "UnsupportedField", "update_repo_settings: gated repos (access requests) are not "
                                                    "supported by this hub; only gated=False is accepted",
                           extra={"field": "gated"})
        private = visibility(body, "update_repo_settings", key.type)
        if private is None and "gated" not in body:
            raise HubError(400, "InvalidRequest", "update_repo_settings: no setting given")
        if private is not None:
            await anyio.to_thread.run_sync(self.storage.set_private, key, private)
            await self.hub.repos_changed([key], always=True)
        return JSONResponse({})

    async def super_squash(self, request: Request, key: RepoKey, branch: str) -> Response:
        """``super_squash_history``: the branch becomes one parentless commit with its current tree."""
        user = self.hub.user(request)
        self.hub.repo(key, user, write=True)
        body = object_body(await json_body(request), "super-squash body")
        only_fields(body, {"message"}, "super_squash_history")
        message = typed(body, "message", str, "super_squash_history") or f"Super-squash branch '{branch}'"
        cid = await anyio.to_thread.run_sync(self.storage.super_squash, key, branch, user.name, message)
        return JSONResponse({"commitId": cid})
