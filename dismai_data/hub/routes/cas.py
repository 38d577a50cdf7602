"""Xet: the write and read tokens (``xet-write-token``, ``xet-read-token``) and the CAS
endpoints the hf-xet client calls under ``/xet/{instance}/``: xorb and shard uploads (write
token), file reconstructions for downloads (``/v1|v2/reconstructions/{file hash}``, read
token) and the ranged xorb reads those answers point to (``/v1/fetch/{xorb}``, a signed URL
like the Hub's presigned S3 URLs: hf-xet sends no token with it)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time

import anyio
from starlette.requests import Request
from starlette.responses import Response

from dismai_data.hub import xet
from dismai_data.hub.auth import User
from dismai_data.hub.responses import FastFileResponse, JSONResponse, only_params, read_body
from dismai_data.hub.routes import Routes
from dismai_data.hub.storage import HubError, RepoKey

SHARD_MAX = 256 * 1024 * 1024
TOKEN_TTL = 3600
READ = "xetread"  # purpose of a read grant: its token starts with "xetread_", never valid on /api
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _token(request: Request) -> str:
    return request.headers.get("authorization", "").partition(" ")[2].strip()


class Cas(Routes):
    def token_response(self, request: Request, token: str, exp: int) -> Response:
        cas = f"{self.hub.endpoint(request)}/xet/{self.storage.instance_id}"
        return JSONResponse({"casUrl": cas, "accessToken": token, "exp": exp},
                            headers={"X-Xet-Cas-Url": cas, "X-Xet-Access-Token": token,
                                     "X-Xet-Token-Expiration": str(exp)})

    def write_token(self, request: Request, key: RepoKey) -> Response:
        user = self.hub.user(request)
        self.hub.repo(key, user, write=True)
        token, exp = self.hub.auth.grant(user, "xet", ttl=TOKEN_TTL)
        return self.token_response(request, token, exp)

    def read_token(self, request: Request, key: RepoKey, rev: str) -> Response:
        """A read grant for one repo at one commit: it lets hf-xet reconstruct the files of
        that commit and nothing else (anonymous users get one for public repos)."""
        only_params(request, set(), "xet-read-token")
        user = self.hub.user(request)
        self.hub.repo(key, user)
        cid, _tree = self.storage.tree(key, rev)
        scope = json.dumps([key.type, key.ns, key.name, cid])
        token, exp = self.hub.auth.grant(user or User("", "read"), READ, ttl=TOKEN_TTL, extra=scope)
        return self.token_response(request, token, exp)

    def xet_link(self, request: Request, key: RepoKey, cid: str) -> str:
        """The ``Link`` header value of a resolve answer for a file with a Xet hash."""
        return f'<{self.hub.endpoint(request)}/api/{key.type}s/{key.id}/xet-read-token/{cid}>; rel="xet-auth"'

    async def route(self, request: Request, segs: list[str], m: str) -> Response:
        """``/xet/{instance}/...``: telemetry (ignored), signed xorb reads, reconstructions
        with a read token, xorbs and shards with a write token."""
        if segs == ["v1", "telemetry"]:
            return JSONResponse({})
        if len(segs) == 3 and segs[:2] == ["v1", "fetch"] and m in ("GET", "HEAD"):
            return await self.fetch(request, segs[2])
        if len(segs) == 3 and segs[0] in ("v1", "v2") and segs[1] == "reconstructions" and m == "GET":
            return await self.reconstruction(request, segs[0], segs[2])
        user = self.hub.auth.check_grant(_token(request), "xet")
        if user is None:
            raise HubError(401, "Unauthorized", "missing or expired Xet access token")
        if len(segs) == 4 and segs[:3] == ["v1", "xorbs", "default"] and m == "POST":
            h = segs[3]
            data = await read_body(request, xet.MAX_XORB_BYTES)
            inserted = await anyio.to_thread.run_sync(self.storage.put_xorb, h, data)
            return JSONResponse({"was_inserted": inserted})
        if segs == ["v1", "shards"] and m == "POST":
            data = await read_body(request, SHARD_MAX)
            stored = await anyio.to_thread.run_sync(
                lambda: self.storage.ingest_shard(data, lambda sha: self.hub.owner_marker(user.name, sha).exists()))
            for sha, _size in stored:
                self.hub.mark_owner(user.name, sha)
            return JSONResponse({"result": 1})
        raise HubError(404, "EntryNotFound", f"no CAS endpoint {m} /{'/'.join(segs)}")

    # ---- downloads ----------------------------------------------------------------------
    def _read_scope(self, request: Request) -> tuple[RepoKey, str, User | None]:
        """The repo and commit a read grant covers; the repo must still be visible to its user
        (a repo made private since the grant stops answering at once)."""
        opened = self.hub.auth.grants.open_grant(_token(request), READ)
        if opened is None:
            raise HubError(401, "Unauthorized", "missing or expired Xet read token: get one from xet-read-token")
        grant, scope = opened
        t, ns, name, cid = json.loads(scope)
        key = RepoKey(t, ns, name)
        user = grant if grant.name else None
        self.hub.repo(key, user)
        return key, cid, user

    async def reconstruction(self, request: Request, version: str, file_hash: str) -> Response:
        """``GET /v{1,2}/reconstructions/{file hash}`` (optional ``Range: bytes=a-b``): the terms
        of the file (or of the range) and signed URLs of the xorb byte ranges that hold them."""
        only_params(request, set(), "reconstructions")
        key, cid, _user = self._read_scope(request)
        rec = await anyio.to_thread.run_sync(self.storage.xet_file, file_hash)
        not_found = HubError(404, "EntryNotFound", f"no file with Xet hash {file_hash!r} in {key.id} at {cid}")
        if rec is None:
            raise not_found
        _cid, tree = self.storage.tree(key, cid)
        if not any(e["lfs"] and e["blob"] == rec["sha256"] for e in tree.values()):
            raise not_found
        size = rec["size"]
        first, end = 0, size
        if "range" in request.headers:
            first, end = _file_range(request.headers["range"], size)
        indexes: dict[str, list] = {}

        def index_of(h: str):
            if h not in indexes:
                indexes[h] = self.storage.xorb_index(h)
            return indexes[h]

        offset, terms, ranges = await anyio.to_thread.run_sync(
            xet.plan_reconstruction, rec["terms"], index_of, first, end)
        exp = int(time.time()) + TOKEN_TTL
        base = f"{self.hub.endpoint(request)}/xet/{self.storage.instance_id}/v1/fetch"

        def url(h: str, r: xet.FetchRange) -> str:
            return f"{base}/{h}?bytes={r.byte_start}-{r.byte_end - 1}&exp={exp}&sig={self._sign(h, r, exp)}"

        out: dict = {"offset_into_first_range": offset, "terms": terms}
        if version == "v1":
            out["fetch_info"] = {h: [{"range": {"start": r.start, "end": r.end}, "url": url(h, r),
                                      "url_range": {"start": r.byte_start, "end": r.byte_end - 1}} for r in rs]
                                 for h, rs in ranges.items()}
        else:
            out["xorbs"] = {h: [{"url": url(h, r), "ranges": [{"chunks": {"start": r.start, "end": r.end},
                                                                "bytes": {"start": r.byte_start,
                                                                          "end": r.byte_end - 1}}]} for r in rs]
                            for h, rs in ranges.items()}
        return JSONResponse(out)

    def _sign(self, h: str, r: xet.FetchRange, exp: int) -> str:
        msg = f"fetch:{h}:{r.byte_start}:{r.byte_end - 1}:{exp}".encode()
        return hmac.new(self.hub.auth.secret, msg, hashlib.sha256).hexdigest()

    async def fetch(self, request: Request, h: str) -> Response:
        """``GET /v1/fetch/{xorb}?bytes=S-E&exp=T&sig=...`` with ``Range: bytes=s-e`` inside
        ``[S, E]``: those bytes of the stored xorb (206). The signature covers the xorb, the
        window and the expiry, so a URL reads only what its reconstruction answer allowed."""
        only_params(request, {"bytes", "exp", "sig"}, "xorb fetch")
        q = request.query_params
        try:
            lo, hi = (int(x) for x in q.get("bytes", "").split("-"))
            exp = int(q.get("exp", ""))
        except ValueError:
            raise HubError(403, "InvalidSignature", "xorb fetch URL is malformed: ask for a new reconstruction") \
                from None
        want = self._sign(h, xet.FetchRange(0, 0, lo, hi + 1), exp)
        if not hmac.compare_digest(want, q.get("sig", "")) or exp < time.time():
            raise HubError(403, "InvalidSignature", "xorb fetch URL is invalid or expired: ask for a new "
                                                    "reconstruction")
        rng = request.headers.get("range", f"bytes={lo}-{hi}")
        m = _RANGE.match(rng)
        if not m or not m.group(1) or not m.group(2) or not (lo <= int(m.group(1)) <= int(m.group(2)) <= hi):
            raise HubError(416, "RangeNotSatisfiable",
                           f"xorb fetch: Range {rng!r} is not one range inside the signed bytes {lo}-{hi}")
        path = self.storage.xorb_path(h)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise HubError(404, "EntryNotFound", f"xorb {h} not found") from None
        scope = dict(request.scope)
        scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k != b"range"] + [
            (b"range", f"bytes={m.group(1)}-{m.group(2)}".encode())]
        return _ScopedFile(path, scope, stat_result=st, media_type="application/octet-stream")


class _ScopedFile(FastFileResponse):
    """A file response answering the (checked) range of a rewritten request scope."""

    def __init__(self, path, scope, **kw):
        super().__init__(path, **kw)
        self._scope = scope

    async def __call__(self, scope, receive, send):
        await super().__call__(self._scope, receive, send)


def _file_range(header: str, size: int) -> tuple[int, int]:
    """``[first, end)`` of a reconstruction ``Range`` header (``bytes=a-b``, ``a-``, ``-n``)."""
    m = _RANGE.match(header.strip())
    if not m or not (m.group(1) or m.group(2)):
        raise HubError(416, "RangeNotSatisfiable", f"reconstruction: Range {header[:80]!r} is not bytes=a-b")
    a, b = m.group(1), m.group(2)
    if not a:
        first, end = max(0, size - int(b)), size
    else:
        first, end = int(a), (min(int(b) + 1, size) if b else size)
    if first >= size or end <= first:
        raise HubError(416, "RangeNotSatisfiable", f"reconstruction: Range {header[:80]!r} outside the {size} bytes")
    return first, end
