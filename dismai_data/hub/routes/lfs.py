"""The git-LFS batch API (upload only; downloads go through ``resolve``), the signed upload URL
it hands out, and ``lfs-files/duplicate`` (cross-repo copies of LFS files)."""

from __future__ import annotations

import time
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from dismai_data.hub.limits import LIST_BODY, MAX_ITEMS, object_body, only_fields, typed
from dismai_data.hub.responses import JSONResponse, json_body
from dismai_data.hub.routes import Routes
from dismai_data.hub.storage import HEX64, HubError, RepoKey


class Lfs(Routes):
    async def batch(self, request: Request, key: RepoKey) -> Response:
        user = self.hub.user(request)
        body = await json_body(request, LIST_BODY)
        if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
            raise HubError(400, "InvalidRequest", "LFS batch body must have 'objects'")
        only_fields(body, {"operation", "transfers", "objects", "hash_algo", "ref"}, "LFS batch")
        if body.get("hash_algo", "sha256") != "sha256":
            raise HubError(400, "UnsupportedField", "LFS batch: only hash_algo 'sha256' is supported",
                           extra={"field": "hash_algo"})
        if len(body["objects"]) > MAX_ITEMS:
            raise HubError(400, "TooManyItems", f"LFS batch: at most {MAX_ITEMS} objects a request")
        op = body.get("operation")
        self.hub.repo(key, user, write=(op == "upload"))
        if op != "upload":
            raise HubError(422, "NotSupported", "only the LFS 'upload' operation is served; download with resolve/")
        ep = self.hub.endpoint(request)
        objs = [self._object(o, user, ep) for o in body["objects"]]
        return JSONResponse({"transfer": "basic", "objects": objs, "hash_algo": "sha256"},
                            media_type="application/vnd.git-lfs+json")

    def _object(self, o, user, ep: str) -> dict:
        """One object of the batch answer: an error, already stored, or an upload action."""
        max_upload = self.hub.max_upload
        oid, size = (o.get("oid"), o.get("size")) if isinstance(o, dict) else (None, None)
        if not isinstance(oid, str) or not HEX64.match(oid) or not isinstance(size, int) or size < 0:
            return {"oid": str(oid), "size": size if isinstance(size, int) else 0,
                    "error": {"code": 422, "message": "invalid oid or size"}}
        if size > max_upload:
            return {"oid": oid, "size": size,
                    "error": {"code": 422, "message": f"object is over the upload limit of {max_upload}"}}
        if self.storage.has_blob(oid) and self.hub.owner_marker(user.name, oid).exists():
            return {"oid": oid, "size": size, "authenticated": True}
        grant, exp = self.hub.auth.grant(user, "lfs", ttl=3600, extra=f"{oid}:{size}")
        return {"oid": oid, "size": size, "authenticated": True, "actions": {"upload": {
            "href": f"{ep}/lfs-upload/{oid}?size={size}&grant={quote(grant, safe='')}",
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))}}}

    async def put(self, request: Request, oid: str) -> Response:
        """``PUT /lfs-upload/{oid}?size=&grant=``: the object's bytes, checked against its sha256."""
        q = request.query_params
        size = q.get("size", "")
        user = self.hub.auth.check_grant(q.get("grant", ""), "lfs", extra=f"{oid}:{size}")
        if user is None or not size.isdigit():
            raise HubError(403, "Forbidden", "invalid or expired LFS upload URL")
        size_i = int(size)
        if size_i > self.hub.max_upload:
            raise HubError(413, "PayloadTooLarge", f"object is over the upload limit of {self.hub.max_upload}")
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
        except BaseException:
            w.abort()
            raise
        self.hub.mark_owner(user.name, oid)
        return PlainTextResponse("")

    async def duplicate(self, request: Request, key: RepoKey) -> Response:
        """``POST /api/{type}s/{source}/lfs-files/duplicate`` (what ``create_commit`` calls before a
        cross-repo CommitOperationCopy of LFS files): ``{target: {type, name}, files: [{xetHash,
        sha256, filename}]}``. The caller must read the source and write the target; each file must
        be an LFS file of some commit of the source. The blobs are shared by content, so duplicating
        is recording that the caller may now commit them (as after an upload)."""
        user = self.hub.user(request)
        self.hub.repo(key, user)
        body = object_body(await json_body(request, LIST_BODY), "lfs-files/duplicate body")
        only_fields(body, {"target", "files"}, "lfs-files/duplicate")
        target = object_body(typed(body, "target", dict, "lfs-files/duplicate", required=True), "target")
        only_fields(target, {"type", "name"}, "lfs-files/duplicate target")
        t = typed(target, "type", str, "lfs-files/duplicate target", required=True)
        name = typed(target, "name", str, "lfs-files/duplicate target", required=True)
        if t not in ("model", "dataset", "space") or name.count("/") != 1:
            raise HubError(400, "InvalidRequest", "lfs-files/duplicate: target must be {type: model|dataset|space, "
                                                  "name: 'namespace/name'}", extra={"field": "target"})
        self.hub.repo(RepoKey(t, *name.split("/")), user, write=True)
        files = typed(body, "files", list, "lfs-files/duplicate", required=True)
        if len(files) > MAX_ITEMS:
            raise HubError(400, "TooManyItems", f"lfs-files/duplicate: at most {MAX_ITEMS} files a request")
        failed = []
        for i, f in enumerate(files):
            f = object_body(f, f"lfs-files/duplicate files[{i}]")
            only_fields(f, {"xetHash", "sha256", "filename"}, f"lfs-files/duplicate files[{i}]")
            sha = typed(f, "sha256", str, f"lfs-files/duplicate files[{i}]", required=True)
            xet_hash = typed(f, "xetHash", str, f"lfs-files/duplicate files[{i}]")
            if not HEX64.match(sha) or not await anyio.to_thread.run_sync(self.storage.repo_has_blob, key, sha):
                failed.append({"sha256": sha, "error": f"no LFS file with this sha256 in {key.id}"})
            elif xet_hash is not None and xet_hash != self.storage.blob_xet_hash(sha):
                failed.append({"sha256": sha, "error": f"xetHash {xet_hash[:80]!r} is not the Xet hash of this file"})
            else:
                self.hub.mark_owner(user.name, sha)
        return JSONResponse({"failed": failed})
