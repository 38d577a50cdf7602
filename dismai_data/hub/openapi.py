"""The hub's OpenAPI 3.0 document (served at /openapi.json), written by hand because routing
is done on the raw path (see server.py). It lists the endpoints the stock clients use; a mounted
extension adds its own paths (``HubApp.openapi_paths``), built with :func:`param`, :func:`op`
and :func:`json_content`."""

from __future__ import annotations

import functools

from dismai_data.hub.routes.listing import SORT_KEYS


def param(name: str, where: str = "path", example=None, schema=None, required=None) -> dict:
    d = {"name": name, "in": where, "required": where == "path" if required is None else required,
         "schema": schema or {"type": "string", "minLength": 1}}
    if example is not None:
        d["example"] = example
    return d


REPO = [param("repo_type", schema={"type": "string", "enum": ["models", "datasets", "spaces"]}, example="models"),
        param("namespace", example="alice"), param("name", example="secure")]
REV = param("revision", example="main")
ERR = {"description": "error; X-Error-Code and X-Error-Message headers say why",
       "headers": {"X-Error-Code": {"schema": {"type": "string"}}, "X-Error-Message": {"schema": {"type": "string"}}}}
JSON_ANY = {"application/json": {"schema": {}}}
BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
HTML_OK = {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}
REPO_BASE = "/api/{repo_type}/{namespace}/{name}"


def op(summary: str, params=(), body=None, ok="OK", tag="api") -> dict:
    d = {"summary": summary, "tags": [tag], "parameters": list(params),
         "responses": {"200": {"description": ok, "content": JSON_ANY}, "4XX": ERR}}
    if body is not None:
        d["requestBody"] = {"required": True, "content": body}
    return d


def json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def web_page(summary: str, params: list | None = None, errors: bool = False) -> dict:
    """A ``get`` of an HTML page."""
    d = {"summary": summary, "tags": ["web"]}
    if params is not None:
        d["parameters"] = params
    d["responses"] = {**HTML_OK, **({"4XX": ERR} if errors else {})}
    return {"get": d}


def _account_paths() -> dict:
    return {
        "/api/whoami-v2": {"get": op("The token's user")},
        "/api/validate-yaml": {"post": op("Validate README YAML", body=json_content({
            "type": "object", "properties": {"content": {"type": "string"}, "repoType": {"type": "string"}},
            "required": ["content"]}))},
        "/api/repos/create": {"post": op("Create a repository", body=json_content({
            "type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "organization": {"type": "string"},
                "type": {"type": "string", "enum": ["model", "dataset", "space"]}, "private": {"type": "boolean"},
                "visibility": {"type": "string", "enum": ["public", "private"]}, "sdk": {"type": "string"}}}))},
        "/api/repos/move": {"post": op("Rename or transfer a repository", body=json_content({
            "type": "object", "required": ["fromRepo", "toRepo"], "properties": {
                "fromRepo": {"type": "string"}, "toRepo": {"type": "string"}, "type": {"type": "string"}}}))},
        "/api/repos/delete": {"delete": op("Delete a repository", body=json_content({
            "type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "organization": {"type": "string"}, "type": {"type": "string"}}}))},
        "/api/{repo_type}": {"get": op("List repositories", [
            REPO[0], param("author", "query"), param("search", "query"), param("filter", "query"),
            param("sort", "query", schema={"type": "string", "enum": list(SORT_KEYS)}),
            param("full", "query", schema={"type": "boolean"}), param("expand", "query"),
            param("limit", "query", schema={"type": "integer"})])},
    }


def _repo_read_paths() -> dict:
    return {
        REPO_BASE: {"get": op("Repository info at main", REPO + [param("blobs", "query", schema={"type": "boolean"}),
                                                                  param("expand", "query")])},
        REPO_BASE + "/revision/{revision}": {"get": op("Repository info at a revision", REPO + [REV])},
        REPO_BASE + "/tree/{revision}": {"get": op("List files", REPO + [REV, param(
            "recursive", "query", schema={"type": "boolean"}), param("expand", "query", schema={"type": "boolean"})])},
        REPO_BASE + "/tree/{revision}/{path}": {"get": op("List files in a folder", REPO + [REV, param("path")])},
        REPO_BASE + "/paths-info/{revision}": {"post": op("Info on paths", REPO + [REV], body={
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
                "paths": {"type": "array", "items": {"type": "string"}}, "expand": {"type": "boolean"}}}}})},
        REPO_BASE + "/refs": {"get": op("Branches and tags", REPO + [param("include_prs", "query",
                                                                          schema={"type": "boolean"})])},
        REPO_BASE + "/commits/{revision}": {"get": op("Commit history", REPO + [REV])},
    }


def _repo_write_paths() -> dict:
    return {
        REPO_BASE + "/preupload/{revision}": {"post": op("Upload modes", REPO + [REV], body=json_content({
            "type": "object", "required": ["files"], "properties": {"files": {"type": "array", "items": {
                "type": "object", "required": ["path", "sample", "size"], "properties": {
                    "path": {"type": "string"}, "sample": {"type": "string"}, "size": {"type": "integer"}}}}}}))},
        REPO_BASE + "/commit/{revision}": {"post": op(
            "Commit: NDJSON lines {key: header|file|lfsFile|deletedFile|deletedFolder, value} (the clients send "
            "Content-Type application/x-ndjson)", REPO + [REV], body=BINARY)},
        REPO_BASE + "/xet-write-token/{revision}": {"get": op("Xet CAS write token", REPO + [REV])},
        REPO_BASE + "/xet-read-token/{revision}": {"get": op(
            "Xet CAS read token for the files of one commit (what hf_hub_download asks for when a resolve "
            "answer carries X-Xet-Hash)", REPO + [REV])},
        REPO_BASE + "/tag/{revision}": {
            "post": op("Create a tag", REPO + [REV], body=json_content({
                "type": "object", "required": ["tag"], "properties": {
                    "tag": {"type": "string"}, "message": {"type": "string"}}})),
            "delete": op("Delete a tag (the path segment is the tag)", REPO + [REV])},
        REPO_BASE + "/branch/{branch}": {
            "post": op("Create a branch", REPO + [param("branch")], body=json_content({
                "type": "object", "properties": {"startingPoint": {"type": "string"}}})),
            "delete": op("Delete a branch", REPO + [param("branch")])},
        REPO_BASE + "/settings": {"put": op("Repository settings", REPO, body=json_content({
            "type": "object", "properties": {"private": {"type": "boolean"}, "visibility": {
                "type": "string", "enum": ["public", "private"]}, "gated": {"type": "boolean"}}}))},
        REPO_BASE + "/lfs-files/duplicate": {"post": op(
            "Allow a cross-repo copy of LFS files (read the source, write the target)", REPO, body=json_content({
                "type": "object", "required": ["target", "files"], "properties": {
                    "target": {"type": "object", "properties": {"type": {"type": "string"},
                                                                "name": {"type": "string"}}},
                    "files": {"type": "array", "items": {"type": "object", "properties": {
                        "xetHash": {"type": "string"}, "sha256": {"type": "string"},
                        "filename": {"type": "string"}}}}}}))},
        REPO_BASE + "/super-squash/{revision}": {"post": op(
            "Squash a branch's history into one commit", REPO + [REV],
            body=json_content({"type": "object", "properties": {"message": {"type": "string"}}}))},
    }


def _transfer_paths() -> dict:
    """Downloads (resolve), the git-LFS batch API and the Xet CAS endpoints."""
    file_params = [param("namespace", example="alice"), param("name", example="secure"), REV,
                   param("path", example=".gitattributes")]
    raw_ok = {"200": {"description": "file bytes", "content": BINARY}, "206": {"description": "range"}, "4XX": ERR}
    return {
        "/{namespace}/{name}/resolve/{revision}/{path}": {"get": {**op("Download a model file", file_params),
                                                                  "responses": raw_ok}},
        "/datasets/{namespace}/{name}/resolve/{revision}/{path}": {"get": {
            **op("Download a dataset file", file_params), "responses": raw_ok}},
        "/{namespace}/{name}.git/info/lfs/objects/batch": {"post": op(
            "git-LFS batch API (upload)", [param("namespace"), param("name")], body=json_content({
                "type": "object", "required": ["operation", "objects"], "properties": {
                    "operation": {"type": "string", "enum": ["upload", "download"]},
                    "transfers": {"type": "array", "items": {"type": "string"}},
                    "objects": {"type": "array", "items": {"type": "object", "properties": {
                        "oid": {"type": "string"}, "size": {"type": "integer"}}}}}}), tag="lfs")},
        "/lfs-upload/{oid}": {"put": op("LFS basic transfer upload (signed URL)", [
            param("oid"), param("size", "query"), param("grant", "query")], body=BINARY, tag="lfs")},
        "/xet/{storage}/v1/xorbs/default/{hash}": {"post": op("Upload a xorb", [param("storage"), param("hash")],
                                                              body=BINARY, tag="xet")},
        "/xet/{storage}/v1/shards": {"post": op("Upload a shard", [param("storage")], body=BINARY, tag="xet")},
        "/xet/{storage}/v1/chunks/default/{hash}": {"get": op("Global dedupe query (always 404)",
                                                              [param("storage"), param("hash")], tag="xet")},
        "/xet/{storage}/v2/reconstructions/{hash}": {"get": op(
            "How to rebuild a file (or the bytes of its Range header) from xorb ranges, with a signed URL for "
            "each (Xet read token)", [param("storage"), param("hash")], tag="xet")},
        "/xet/{storage}/v1/reconstructions/{hash}": {"get": op(
            "The same in the V1 shape (fetch_info per xorb)", [param("storage"), param("hash")], tag="xet")},
        "/xet/{storage}/v1/fetch/{hash}": {"get": op(
            "Bytes of a stored xorb: the signed URL of a reconstruction answer, with a Range inside its window",
            [param("storage"), param("hash"), param("bytes", "query"), param("exp", "query"), param("sig", "query")],
            tag="xet")},
    }


def _web_paths() -> dict:
    return {
        "/": web_page("Web: repositories"),
        "/datasets/{namespace}/{name}": web_page("Web: dataset page", [
            param("namespace"), param("name"), param("rev", "query")], errors=True),
    }


@functools.lru_cache(maxsize=1)
def _base_paths() -> dict:
    return {**_account_paths(), **_repo_read_paths(), **_repo_write_paths(), **_transfer_paths(), **_web_paths()}


def openapi_document(extra_paths: dict | None = None) -> dict:
    """The document, with the paths of mounted extensions (``extra_paths``) added."""
    return {"openapi": "3.0.3",
            "info": {"title": "dismai hub", "version": "1.0",
                     "description": "A local hub speaking the Hugging Face Hub API subset used by datasets 5.2.0, "
                                    "huggingface_hub 2.4.0 and hf-xet 1.8.0."},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{}, {"bearer": []}],
            "paths": {**_base_paths(), **(extra_paths or {})}}
