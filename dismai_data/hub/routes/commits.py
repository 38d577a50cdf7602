"""Writing files: ``preupload`` (which files go by LFS/Xet, which are ignored) and
``create_commit`` (the NDJSON commit payload)."""

from __future__ import annotations

import os
import re

import anyio
from starlette.requests import Request
from starlette.responses import Response

from dismai_data.hub.gitignore import GitIgnore
from dismai_data.hub.limits import LIST_BODY, MAX_ITEMS, object_body, only_fields, parse_json, typed
from dismai_data.hub.responses import JSONResponse, json_body, only_params, read_body, truthy
from dismai_data.hub.routes import Routes
from dismai_data.hub.storage import HEX64, HubError, RepoKey, check_path, decode_b64, git_blob_sha1

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


def upload_mode(path: str, sample: bytes, size: int) -> str:
    if size > REGULAR_MAX or os.path.splitext(path)[1].lower() in BINARY_SUFFIXES or b"\0" in sample:
        return "lfs"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a cut multi-byte character at the end
            return "lfs"
    return "regular"


def _commit_line(line: bytes, n: int) -> tuple[str, dict]:
    """(key, value) of one NDJSON commit line, its fields checked."""
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
    return k, v


class Commits(Routes):
    async def preupload(self, request: Request, key: RepoKey, rev: str) -> Response:
        user = self.hub.user(request)
        self.hub.repo(key, user, write=True)
        only_params(request, set(), "preupload", {"create_pr": PR_REFUSAL})
        body = object_body(await json_body(request, LIST_BODY), "preupload body")
        only_fields(body, {"files", "gitIgnore"}, "preupload")
        gitignore = typed(body, "gitIgnore", str, "preupload")
        files = body.get("files")
        if not isinstance(files, list):
            raise HubError(400, "InvalidRequest", "body must be {files: [{path, sample, size}]}")
        if len(files) > MAX_ITEMS:
            raise HubError(400, "TooManyItems", f"preupload: at most {MAX_ITEMS} files a request")
        return JSONResponse(await anyio.to_thread.run_sync(self.upload_modes, key, rev, files, gitignore))

    def upload_modes(self, key: RepoKey, rev: str, files: list, gitignore: str | None) -> dict:
        """The preupload answer (in a worker thread: .gitignore matching is CPU work)."""
        try:
            _, tree = self.storage.tree(key, rev)
        except HubError:
            _, tree = self.storage.tree(key, "main")
        if gitignore is None and ".gitignore" in tree:  # the Hub applies the repo's own rules
            gitignore = self.storage.read_blob(tree[".gitignore"]["blob"])[:LIST_BODY].decode("utf-8", "replace")
        rules = GitIgnore(gitignore) if gitignore else None
        out = []
        max_upload = self.hub.max_upload
        for f in files:
            if not isinstance(f, dict) or not isinstance(f.get("size"), int) or isinstance(f["size"], bool) \
                    or f["size"] < 0 or not isinstance(f.get("sample", ""), str):
                raise HubError(400, "InvalidRequest", "each file needs a path, a base64 sample and an integer size")
            only_fields(f, {"path", "sample", "size"}, "preupload file")
            path = check_path(f.get("path"))
            if f["size"] > max_upload:
                raise HubError(413, "PayloadTooLarge",
                               f"{path!r} is {f['size']} bytes, over the upload limit of {max_upload}")
            sample = decode_b64(f.get("sample") or "", path)
            mode = upload_mode(path, sample, f["size"])
            item = {"path": path, "uploadMode": mode, "shouldIgnore": bool(rules and rules.ignored(path))}
            e = tree.get(path)
            if e is not None and e["lfs"] == (mode == "lfs"):
                item["oid"] = e["blob"] if e["lfs"] else e["oid"]
            out.append(item)
        return {"files": out, "commitOid": None}

    async def commit(self, request: Request, key: RepoKey, branch: str) -> Response:
        user = self.hub.user(request)
        self.hub.repo(key, user, write=True)
        if truthy(request.query_params.get("create_pr")):
            raise HubError(400, "NotSupported", PR_REFUSAL)
        only_params(request, {"create_pr"}, "create_commit",
                    {"hot_reload": "hot reloading is for running Spaces; this hub runs none"})
        raw = await read_body(request, min(int(self.hub.max_upload * 1.34) + 16 * 1024 * 1024, COMMIT_BODY_MAX))
        ops, header = await anyio.to_thread.run_sync(self.parse_commit, raw, key, branch, user)
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
        return JSONResponse({"commitOid": cid,
                             "commitUrl": f"{self.hub.endpoint(request)}/{key.url_prefix}{key.id}/commit/{cid}",
                             "pullRequestUrl": None, "success": True})

    def parse_commit(self, raw: bytes, key: RepoKey, branch: str, user):
        """(operations, header) of an NDJSON commit payload; regular files are stored as they
        are read, LFS files must have been uploaded (by this user, or be in the repo)."""
        header = None
        ops = []
        head_blobs = None
        for n, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            k, v = _commit_line(line, n)
            if k == "header":
                if header is not None:
                    raise HubError(400, "MalformedNdjson", f"line {n}: a second header line")
                header = v
            elif k == "file":
                ops.append(self._regular_file(v, n))
            elif k == "lfsFile":
                if head_blobs is None:
                    head_blobs = self._head_blobs(key, branch)
                ops.append(self._lfs_file(v, n, key, user, head_blobs))
            elif k in ("deletedFile", "deletedFolder"):
                if not isinstance(v.get("path"), str):
                    raise HubError(400, "MalformedNdjson", f"line {n}: {k} needs a string 'path'")
                path = check_path(v["path"].rstrip("/"))
                ops.append({"op": "delete" if k == "deletedFile" else "delete_folder", "path": path})
            else:
                raise HubError(400, "MalformedNdjson", f"line {n}: unknown key {k!r}")
        return ops, header

    def _regular_file(self, v: dict, n: int) -> dict:
        path = check_path(v.get("path"))
        if v.get("encoding", "base64") != "base64" or not isinstance(v.get("content"), str):
            raise HubError(400, "MalformedNdjson", f"line {n}: file {path!r} needs base64 'content'")
        data = decode_b64(v["content"], path)
        if len(data) > self.hub.max_upload:
            raise HubError(413, "PayloadTooLarge", f"{path!r} is over the upload limit of {self.hub.max_upload}")
        sha = self.storage.put_bytes(data)
        return {"op": "add", "path": path, "blob": sha, "size": len(data), "oid": git_blob_sha1(data), "lfs": False}

    def _head_blobs(self, key: RepoKey, branch: str) -> set[str]:
        try:
            _, tree = self.storage.tree(key, branch)
            return {e["blob"] for e in tree.values()}
        except HubError:
            return set()

    def _lfs_file(self, v: dict, n: int, key: RepoKey, user, head_blobs: set[str]) -> dict:
        path = check_path(v.get("path"))
        oid = v.get("oid")
        if v.get("algo", "sha256") != "sha256" or not isinstance(oid, str) or not HEX64.match(oid):
            raise HubError(400, "MalformedNdjson", f"line {n}: lfsFile {path!r} needs a sha256 oid")
        if not self.storage.has_blob(oid) or not (oid in head_blobs or self.hub.owner_marker(user.name, oid).exists()
                                                  or self.storage.repo_has_blob(key, oid)):
            raise HubError(400, "LfsObjectNotFound", f"the content of {path!r} (sha256 {oid}) was never uploaded")
        size = self.storage.blob_path(oid).stat().st_size
        if v.get("size") is not None and (type(v.get("size")) is not int or v.get("size") != size):
            raise HubError(400, "SizeMismatch", f"lfsFile {path!r} says {v.get('size')} bytes, blob has {size}")
        return {"op": "add", "path": path, "blob": oid, "size": size, "oid": oid, "lfs": True}
