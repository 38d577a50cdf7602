"""Listing and repo info: ``list_models``/``list_datasets``/``list_spaces``, ``repo_info``,
and what both derive from a repo's card (its YAML metadata and the tags the Hub makes of it)."""

from __future__ import annotations

import functools
import hashlib

import anyio
from starlette.requests import Request
from starlette.responses import Response

from dismai_data.hub.responses import JSONResponse, json_safe, only_params, truthy
from dismai_data.hub.routes import Routes
from dismai_data.hub.storage import HubError, RepoKey, file_entry_json

# query parameters each listing honours (see list_repos); the others named in LIST_REFUSED are refused
LIST_PARAMS = {
    "model": {"author", "search", "filter", "gated", "pipeline_tag", "sort", "limit", "full", "cardData", "expand",
              "expand[]"},
    "dataset": {"author", "search", "filter", "gated", "sort", "limit", "full", "expand", "expand[]"},
    "space": {"author", "search", "filter", "sort", "limit", "full", "expand", "expand[]"},
}
LIST_REFUSED = {"apps": "this hub runs no apps", "inference": "this hub serves no inference",
                "inference_provider": "this hub serves no inference",
                "num_parameters": "this hub does not count model parameters",
                "config": "this hub does not parse config.json in listings",
                "datasets": "this hub does not track which datasets a Space uses",
                "models": "this hub does not track which models a Space uses",
                "linked": "this hub does not track which repos a Space uses"}
SORT_KEYS = ("lastModified", "createdAt", "downloads", "likes", "trendingScore")
LIST_DEFAULT = ("_id", "id", "author", "sha", "lastModified", "private", "gated", "disabled", "downloads", "likes",
                "tags", "createdAt", "modelId", "pipeline_tag", "library_name", "sdk")
EXPAND_COMMON = frozenset({"author", "cardData", "createdAt", "disabled", "downloads", "downloadsAllTime", "gated",
                           "lastModified", "likes", "private", "sha", "siblings", "tags", "trendingScore",
                           "usedStorage"})
EXPAND_BY_TYPE = {"model": frozenset({"pipeline_tag", "library_name"}), "dataset": frozenset(),
                  "space": frozenset({"sdk"})}


def repo_tags(key: RepoKey, card: dict | None) -> list[str]:
    """Tags as the Hub derives them from the card: ``tags`` as they are, ``license:X``,
    ``language:X``, the dataset card's categories, and for models ``dataset:X``,
    ``pipeline_tag`` and ``library_name``."""
    if not isinstance(card, dict):
        return []

    def items(v):
        return [str(x) for x in (v if isinstance(v, list) else [v]) if isinstance(x, (str, int, float))]

    out = items(card.get("tags")) if card.get("tags") is not None else []
    keys = ["license", "language"] + (["task_categories", "task_ids", "size_categories", "multilinguality",
                                       "language_creators"] if key.type == "dataset" else [])
    for k in keys:
        if card.get(k) is not None:
            out += [f"{k}:{v}" for v in items(card[k])]
    if key.type == "model":
        if card.get("datasets") is not None:
            out += [f"dataset:{v}" for v in items(card["datasets"])]
        for k in ("pipeline_tag", "library_name"):
            if isinstance(card.get(k), str):
                out.append(card[k])
    return list(dict.fromkeys(out))


def expand(request: Request, rec: dict, t: str, what: str) -> dict | None:
    """Only the ``expand`` properties asked for (and ``id``), or None when none were asked;
    a property this hub does not have is refused by name."""
    asked = request.query_params.getlist("expand") + request.query_params.getlist("expand[]")
    if not asked:
        return None
    known = EXPAND_COMMON | EXPAND_BY_TYPE[t]
    for a in asked:
        if a not in known:
            raise HubError(400, "UnsupportedParameter", f"{what}: expand={a!r} is not supported by this hub "
                                                        f"(supported: {', '.join(sorted(known))})",
                           extra={"parameter": "expand"})
    return {"_id": rec["_id"], "id": rec["id"], **{a: rec.get(a) for a in asked}}


def _list_query(request: Request, t: str) -> dict:
    """The listing's query parameters, checked (400 on a refused or malformed one)."""
    only_params(request, LIST_PARAMS[t], f"list_{t}s", LIST_REFUSED)
    q = request.query_params
    gated = q.get("gated")
    if gated is not None and gated.lower() not in ("true", "false"):
        raise HubError(400, "InvalidRequest", f"gated must be true or false, not {gated!r}",
                       extra={"parameter": "gated"})
    sort = q.get("sort")
    if sort is not None and sort not in SORT_KEYS:
        raise HubError(400, "UnsupportedParameter", f"sort={sort!r} is not supported (supported: "
                                                    f"{', '.join(SORT_KEYS)})", extra={"parameter": "sort"})
    limit = q.get("limit")
    if limit is not None and not (limit.isascii() and limit.isdigit()):
        raise HubError(400, "InvalidRequest", f"limit must be a non-negative integer, not {limit!r}",
                       extra={"parameter": "limit"})
    full, card_too = truthy(q.get("full")), truthy(q.get("cardData"))
    if (full or card_too) and (q.getlist("expand") or q.getlist("expand[]")):
        raise HubError(400, "InvalidRequest", "expand cannot be combined with full or cardData")
    asked = set(q.getlist("expand") + q.getlist("expand[]"))
    return {"author": q.get("author"), "searches": [s.lower() for s in q.getlist("search") if s],
            "filters": q.getlist("filter"), "gated": gated, "sort": sort, "limit": limit, "full": full,
            "card_too": card_too, "files": full or bool(asked & {"siblings", "usedStorage"}),
            "pipeline_tag": q.get("pipeline_tag")}


class Listing(Routes):
    def repo_record(self, key: RepoKey, meta: dict, rev: str | None = None, files: bool = True) -> dict:
        """Every property this hub knows of a repo at ``rev`` (the listing and repo info pick from
        it); without ``files`` no ``siblings``/``usedStorage`` (a listing asks for them rarely)."""
        try:
            cid, tree = self.storage.tree(key, rev)
            date = self.storage.commit_obj(key, cid)["date"]
        except HubError:
            if rev is not None:
                raise
            cid, tree, date = None, {}, meta["created"]
        card = self.card_data(tree["README.md"]["blob"]) if "README.md" in tree else None
        siblings = []
        for path in sorted(tree) if files else ():
            e = tree[path]
            j = file_entry_json(path, e)
            s = {"rfilename": path, "size": e["size"], "blobId": j["oid"]}
            if e["lfs"]:
                s["lfs"] = {"size": e["size"], "sha256": e["blob"], "pointerSize": j["lfs"]["pointerSize"]}
            siblings.append(s)
        rec = {"_id": hashlib.sha1(key.id.encode()).hexdigest()[:24], "id": key.id, "author": key.ns, "sha": cid,
               "lastModified": date, "createdAt": meta["created"], "private": meta["private"], "gated": False,
               "disabled": False, "downloads": 0, "downloadsAllTime": 0, "likes": 0, "trendingScore": 0,
               "tags": repo_tags(key, card), "cardData": card}
        if files:
            rec.update(siblings=siblings, usedStorage=sum(e["size"] for e in tree.values()))
        if key.type == "model":
            rec["modelId"] = key.id
            for k in ("pipeline_tag", "library_name"):
                if isinstance((card or {}).get(k), str):
                    rec[k] = card[k]
        if key.type == "space":
            rec["sdk"] = meta.get("sdk")
        return rec

    def list_repos(self, request: Request, t: str) -> Response:
        """``list_models``/``list_datasets``/``list_spaces``: author, search (every term),
        filter (every tag), gated, pipeline_tag, sort (descending), limit, full, cardData,
        expand; other parameters are refused by name."""
        user = self.hub.user(request)
        q = _list_query(request, t)
        recs = []
        for key, meta in self.storage.list_repos(t):
            if not self.hub.visible(key, meta, user) or (q["author"] and key.ns != q["author"]) or \
                    any(s not in key.id.lower() for s in q["searches"]) or (q["gated"] or "").lower() == "true":
                continue
            rec = self.repo_record(key, meta, files=q["files"])
            if any(f not in rec["tags"] for f in q["filters"]) or \
                    (q["pipeline_tag"] is not None and rec.get("pipeline_tag") != q["pipeline_tag"]):
                continue
            recs.append(rec)
        if q["sort"]:
            recs.sort(key=lambda r: r[q["sort"]], reverse=True)
        if q["limit"] is not None:
            recs = recs[:int(q["limit"])]
        out = []
        for rec in recs:
            picked = expand(request, rec, t, f"list_{t}s")
            if picked is None:
                picked = {k: rec[k] for k in LIST_DEFAULT if k in rec}
                if q["full"]:
                    picked.update(siblings=rec["siblings"], cardData=rec["cardData"], sha=rec["sha"])
                if q["card_too"]:
                    picked["cardData"] = rec["cardData"]
            out.append(picked)
        return JSONResponse(out)

    @functools.lru_cache(maxsize=256)
    def card_data(self, blob: str) -> dict | None:
        """The README's YAML front matter as JSON-safe data (dates as ISO text, non-finite
        numbers as null), or None when there is none or it does not parse."""
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
            return json_safe(data) if isinstance(data, dict) else None
        except (yaml.YAMLError, RecursionError, ValueError):
            return None

    async def repo_info(self, request: Request, key: RepoKey, rev: str | None) -> Response:
        """``model_info``/``dataset_info``/``repo_info``: ``blobs`` (files_metadata: sizes and LFS
        info, which this hub always gives) and ``expand``; ``securityStatus`` is refused."""
        user = self.hub.user(request)
        meta = self.hub.repo(key, user)
        only_params(request, {"blobs", "expand", "expand[]"}, "repo_info",
                    {"securityStatus": "this hub does not scan files for malware"})
        rec = await anyio.to_thread.run_sync(self.repo_record, key, meta, rev or "main")
        picked = expand(request, rec, key.type, "repo_info")
        if picked is None:
            picked = {k: v for k, v in rec.items() if k not in ("downloadsAllTime", "trendingScore")}
        return JSONResponse(picked)
