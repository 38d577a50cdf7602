"""Xet uploads: the write token (``xet-write-token``) and the CAS endpoints the hf-xet client
posts to (``/xet/{instance}/v1/xorbs/default/{hash}``, ``/v1/shards``); downloads go through
``resolve``, so no reconstruction endpoint is served."""

from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import Response

from dismai_data.hub import xet
from dismai_data.hub.responses import JSONResponse, read_body
from dismai_data.hub.routes import Routes
from dismai_data.hub.storage import HubError, RepoKey

SHARD_MAX = 256 * 1024 * 1024


class Cas(Routes):
    def write_token(self, request: Request, key: RepoKey) -> Response:
        user = self.hub.user(request)
        self.hub.repo(key, user, write=True)
        token, exp = self.hub.auth.grant(user, "xet", ttl=3600)
        cas = f"{self.hub.endpoint(request)}/xet/{self.storage.instance_id}"
        return JSONResponse({"casUrl": cas, "accessToken": token, "exp": exp},
                            headers={"X-Xet-Cas-Url": cas, "X-Xet-Access-Token": token,
                                     "X-Xet-Token-Expiration": str(exp)})

    async def route(self, request: Request, segs: list[str], m: str) -> Response:
        """``/xet/{instance}/...``: telemetry (ignored), xorbs and shards with a Xet token."""
        if segs == ["v1", "telemetry"]:
            return JSONResponse({})
        authz = request.headers.get("authorization", "")
        token = authz.partition(" ")[2].strip()
        user = self.hub.auth.check_grant(token, "xet")
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
