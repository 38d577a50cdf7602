"""The hub's OpenAPI 3.0 document (served at /openapi.json), written by hand because routing
is done on the raw path (see server.py). It lists the endpoints the stock clients use."""

from __future__ import annotations

import functools

from dismai_data.hub.server import SORT_KEYS


def _p(name: str, where: str = "path", example=None, schema=None, required=None) -> dict:
    d = {"name": name, "in": where, "required": where == "path" if required is None else required,
         "schema": schema or {"type": "string", "minLength": 1}}
    if example is not None:
        d["example"] = example
    return d


REPO = [_p("repo_type", schema={"type": "string", "enum": ["models", "datasets", "spaces"]}, example="models"),
        _p("namespace", example="alice"), _p("name", example="secure")]
REV = _p("revision", example="main")
ERR = {"description": "error; X-Error-Code and X-Error-Message headers say why",
       "headers": {"X-Error-Code": {"schema": {"type": "string"}}, "X-Error-Message": {"schema": {"type": "string"}}}}
JSON_ANY = {"application/json": {"schema": {}}}


def _op(summary: str, params=(), body=None, ok="OK", tag="api") -> dict:
    op = {"summary": summary, "tags": [tag], "parameters": list(params),
          "responses": {"200": {"description": ok, "content": JSON_ANY}, "4XX": ERR}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    return op


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict:
    repo_base = "/api/{repo_type}/{namespace}/{name}"
    file_params = [_p("namespace", example="alice"), _p("name", example="secure"), REV,
                   _p("path", example=".gitattributes")]
    raw_ok = {"200": {"description": "file bytes", "content": {"application/octet-stream": {"schema": {
        "type": "string", "format": "binary"}}}}, "206": {"description": "range"}, "4XX": ERR}
    paths = {
        "/api/whoami-v2": {"get": _op("The token's user")},
        "/api/validate-yaml": {"post": _op("Validate README YAML", body=_json({
            "type": "object", "properties": {"content": {"type": "string"}, "repoType": {"type": "string"}},
            "required": ["content"]}))},
        "/api/repos/create": {"post": _op("Create a repository", body=_json({
            "type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "organization": {"type": "string"},
                "type": {"type": "string", "enum": ["model", "dataset", "space"]}, "private": {"type": "boolean"},
                "visibility": {"type": "string", "enum": ["public", "private"]}, "sdk": {"type": "string"}}}))},
        "/api/repos/move": {"post": _op("Rename or transfer a repository", body=_json({
            "type": "object", "required": ["fromRepo", "toRepo"], "properties": {
                "fromRepo": {"type": "string"}, "toRepo": {"type": "string"}, "type": {"type": "string"}}}))},
        "/api/repos/delete": {"delete": _op("Delete a repository", body=_json({
            "type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "organization": {"type": "string"}, "type": {"type": "string"}}}))},
        "/api/{repo_type}": {"get": _op("List repositories", [REPO[0], _p("author", "query"), _p("search", "query"),
                                                              _p("filter", "query"), _p("sort", "query", schema={
                                                                  "type": "string", "enum": list(SORT_KEYS)}),
                                                              _p("full", "query", schema={"type": "boolean"}),
                                                              _p("expand", "query"),
                                                              _p("limit", "query", schema={"type": "integer"})])},
        repo_base: {"get": _op("Repository info at main", REPO + [_p("blobs", "query", schema={"type": "boolean"}),
                                                                  _p("expand", "query")])},
        repo_base + "/revision/{revision}": {"get": _op("Repository info at a revision", REPO + [REV])},
        repo_base + "/tree/{revision}": {"get": _op("List files", REPO + [REV, _p(
            "recursive", "query", schema={"type": "boolean"}), _p("expand", "query", schema={"type": "boolean"})])},
        repo_base + "/tree/{revision}/{path}": {"get": _op("List files in a folder", REPO + [REV, _p("path")])},
        repo_base + "/paths-info/{revision}": {"post": _op("Info on paths", REPO + [REV], body={
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
                "paths": {"type": "array", "items": {"type": "string"}}, "expand": {"type": "boolean"}}}}})},
        repo_base + "/preupload/{revision}": {"post": _op("Upload modes", REPO + [REV], body=_json({
            "type": "object", "required": ["files"], "properties": {"files": {"type": "array", "items": {
                "type": "object", "required": ["path", "sample", "size"], "properties": {
                    "path": {"type": "string"}, "sample": {"type": "string"}, "size": {"type": "integer"}}}}}}))},
        repo_base + "/commit/{revision}": {"post": _op(
            "Commit: NDJSON lines {key: header|file|lfsFile|deletedFile|deletedFolder, value} (the clients send "
            "Content-Type application/x-ndjson)", REPO + [REV], body={
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}})},
        repo_base + "/xet-write-token/{revision}": {"get": _op("Xet CAS write token", REPO + [REV])},
        repo_base + "/tag/{revision}": {
            "post": _op("Create a tag", REPO + [REV], body=_json({"type": "object", "required": ["tag"], "properties": {
                "tag": {"type": "string"}, "message": {"type": "string"}}})),
            "delete": _op("Delete a tag (the path segment is the tag)", REPO + [REV])},
        repo_base + "/branch/{branch}": {
            "post": _op("Create a branch", REPO + [_p("branch")], body=_json({"type": "object", "properties": {
                "startingPoint": {"type": "string"}}})),
            "delete": _op("Delete a branch", REPO + [_p("branch")])},
        repo_base + "/refs": {"get": _op("Branches and tags", REPO + [_p("include_prs", "query",
                                                                         schema={"type": "boolean"})])},
        repo_base + "/commits/{revision}": {"get": _op("Commit history", REPO + [REV])},
        repo_base + "/settings": {"put": _op("Repository settings", REPO, body=_json({
            "type": "object", "properties": {"private": {"type": "boolean"}, "visibility": {
                "type": "string", "enum": ["public", "private"]}, "gated": {"type": "boolean"}}}))},
        repo_base + "/super-squash/{revision}": {"post": _op("Squash a branch's history into one commit", REPO + [REV],
                                                             body=_json({"type": "object", "properties": {
                                                                 "message": {"type": "string"}}}))},
        "/{namespace}/{name}/resolve/{revision}/{path}": {"get": {**_op("Download a model file", file_params),
                                                                  "responses": raw_ok}},
        "/datasets/{namespace}/{name}/resolve/{revision}/{path}": {"get": {
            **_op("Download a dataset file", file_params), "responses": raw_ok}},
        "/{namespace}/{name}.git/info/lfs/objects/batch": {"post": _op(
            "git-LFS batch API (upload)", [_p("namespace"), _p("name")], body=_json({
                "type": "object", "required": ["operation", "objects"], "properties": {
                    "operation": {"type": "string", "enum": ["upload", "download"]},
                    "transfers": {"type": "array", "items": {"type": "string"}},
                    "objects": {"type": "array", "items": {"type": "object", "properties": {
                        "oid": {"type": "string"}, "size": {"type": "integer"}}}}}}), tag="lfs")},
        "/lfs-upload/{oid}": {"put": _op("LFS basic transfer upload (signed URL)", [
            _p("oid"), _p("size", "query"), _p("grant", "query")], body={
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}, tag="lfs")},
        "/xet/{storage}/v1/xorbs/default/{hash}": {"post": _op("Upload a xorb", [_p("storage"), _p("hash")], body={
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}, tag="xet")},
        "/xet/{storage}/v1/shards": {"post": _op("Upload a shard", [_p("storage")], body={
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}, tag="xet")},
        "/xet/{storage}/v1/chunks/default/{hash}": {"get": _op("Global dedupe query (always 404)",
                                                               [_p("storage"), _p("hash")], tag="xet")},
        "/api/leaderboard": {"get": _op("Leaderboard rows and queue counts", tag="leaderboard")},
        "/api/leaderboard/submissions": {"post": _op("Queue a submission for scoring", body=_json({
            "type": "object", "required": ["task", "predictions_repo", "predictions_commit", "predictions_path",
                                           "model_name"],
            "properties": {"task": {"type": "string"}, "predictions_repo": {"type": "string"},
                           "predictions_commit": {"type": "string"}, "predictions_path": {"type": "string"},
                           "model_name": {"type": "string"}, "model_repo": {"type": "string"},
                           "notes": {"type": "string"}, "column": {"type": "string"},
                           "shipped": {"type": "object", "description": "scores the publisher (org dismai) "
                                       "computed for exactly this file"}}}), tag="leaderboard")},
        "/api/leaderboard/submissions/{submission_id}": {"get": _op("One submission's state",
                                                                    [_p("submission_id")], tag="leaderboard")},
        "/leaderboard": {"get": {"summary": "Web: leaderboard", "tags": ["web"], "responses": {
            "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/": {"get": {"summary": "Web: repositories", "tags": ["web"], "responses": {
            "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/datasets/{namespace}/{name}": {"get": {"summary": "Web: dataset page", "tags": ["web"], "parameters": [
            _p("namespace"), _p("name"), _p("rev", "query")], "responses": {
            "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}, "4XX": ERR}}},
    }
    return {"openapi": "3.0.3",
            "info": {"title": "dismai hub", "version": "1.0",
                     "description": "A local hub speaking the Hugging Face Hub API subset used by datasets 5.2.0, "
                                    "huggingface_hub 2.4.0 and hf-xet 1.8.0."},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{}, {"bearer": []}],
            "paths": paths}
