"""Reading files: ``resolve`` (the download URL), ``list_repo_tree`` and ``get_paths_info``."""

from __future__ import annotations

import mimetypes
import os
from urllib.parse import parse_qs

import anyio
from starlette.requests import Request
from starlette.responses import Response

from dismai_data.hub.limits import LIST_BODY, MAX_ITEMS, object_body, only_fields, parse_json
from dismai_data.hub.responses import FastFileResponse, JSONResponse, only_params, read_body, truthy
from dismai_data.hub.routes import Routes
from dismai_data.hub.storage import HubError, RepoKey, file_entry_json, folder_oid, list_tree


def parents(path: str):
    parts = path.split("/")
    return ("/".join(parts[:i]) for i in range(1, len(parts)))


def _paths_query(raw: bytes, ctype: str) -> tuple[list[str], bool]:
    """(paths, expand) of a paths-info body, JSON or form-encoded as the clients send it."""
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
        expand = truthy((form.get("expand") or ["false"])[-1])
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise HubError(400, "InvalidRequest", "get_paths_info: paths must be a list of strings",
                       extra={"field": "paths"})
    if len(paths) > MAX_ITEMS:
        raise HubError(400, "TooManyItems", f"get_paths_info: at most {MAX_ITEMS} paths a request")
    return paths, expand


class Files(Routes):
    def with_xet(self, entries: list[dict]) -> list[dict]:
        """``xetHash`` on the entries of files uploaded through Xet, as the Hub lists them: the
        clients then download them through Xet (and copy them across repos by that hash)."""
        for e in entries:
            if "lfs" in e:
                h = self.storage.blob_xet_hash(e["lfs"]["oid"])
                if h:
                    e["xetHash"] = h
        return entries

    def expand_entries(self, key: RepoKey, cid: str, entries: list[dict]) -> list[dict]:
        """``expand=True`` of tree and paths-info: each entry's ``lastCommit`` (the Hub adds
        a malware-scan status too; this hub scans nothing, so the client reads None)."""
        last = self.storage.last_commits(key, cid, [e["path"] for e in entries])
        for e in entries:
            if e["path"] in last:
                e["lastCommit"] = last[e["path"]]
        return entries

    async def tree(self, request: Request, key: RepoKey, rev: str, path: str) -> Response:
        """``list_repo_tree``: ``recursive`` and ``expand`` (lastCommit of each entry)."""
        user = self.hub.user(request)
        self.hub.repo(key, user)
        only_params(request, {"recursive", "expand"}, "list_repo_tree")
        cid, tree = self.storage.tree(key, rev)
        path = path.strip("/")
        entries = list_tree(tree, path, truthy(request.query_params.get("recursive")))
        if entries is None:
            raise HubError(404, "EntryNotFound", f"folder {path!r} not found at {rev!r} in {key.id}",
                           {"X-Repo-Commit": cid})
        entries = await anyio.to_thread.run_sync(self.with_xet, entries)
        if truthy(request.query_params.get("expand")):
            entries = await anyio.to_thread.run_sync(self.expand_entries, key, cid, entries)
        return JSONResponse(entries, headers={"X-Repo-Commit": cid})

    async def paths_info(self, request: Request, key: RepoKey, rev: str) -> Response:
        user = self.hub.user(request)
        self.hub.repo(key, user)
        only_params(request, set(), "get_paths_info")
        raw = await read_body(request, LIST_BODY)
        paths, expand = _paths_query(raw, request.headers.get("content-type", ""))
        cid, tree = self.storage.tree(key, rev)
        folders = {f for q in tree for f in parents(q)}
        out = []
        for p in paths:
            p = p.strip("/")
            if p in tree:
                out.append(file_entry_json(p, tree[p]))
            elif p == "" or p in folders:
                out.append({"type": "directory", "oid": folder_oid(tree, p + "/" if p else ""), "path": p})
        out = await anyio.to_thread.run_sync(self.with_xet, out)
        if expand:
            out = await anyio.to_thread.run_sync(self.expand_entries, key, cid, out)
        return JSONResponse(out, headers={"X-Repo-Commit": cid})

    async def resolve(self, request: Request, key: RepoKey, rev: str, path: str) -> Response:
        user = self.hub.user(request)
        self.hub.repo(key, user)
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
            xet_hash = self.storage.blob_xet_hash(e["blob"])
            if xet_hash:  # hf_xet then downloads it through the reconstruction API (routes/cas.py)
                headers["X-Xet-Hash"] = xet_hash
                headers["Link"] = self.hub.cas.xet_link(request, key, cid)
        blob = self.storage.blob_path(e["blob"])
        return FastFileResponse(blob, headers=headers, media_type=ctype, stat_result=os.stat(blob))
