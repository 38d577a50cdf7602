"""Auth rules and rejections: each bad request answers a clear 4xx with X-Error-Code and
X-Error-Message."""

from __future__ import annotations

import base64
import json

import pytest

from .conftest import HubServer, last_json, run_client


def ndjson(*lines) -> bytes:
    return "\n".join(json.dumps(x) for x in lines).encode()


def header(summary="t", **kw):
    return {"key": "header", "value": {"summary": summary, **kw}}


def file_line(path, data: bytes):
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}


def assert_error(resp, status, code):
    st, hdr, body = resp
    assert st == status, (st, body)
    assert hdr["X-Error-Code"] == code, (hdr["X-Error-Code"], body)
    assert hdr["X-Error-Message"]


@pytest.fixture(scope="module")
def repo(hub):
    name = "alice/secure"
    hub.request("POST", "/api/repos/create", {"name": name}, token=hub.tokens["alice"])
    return name


@pytest.mark.parametrize("path", ["../evil.txt", "a/../../evil.txt", "/etc/passwd", "a\\b.txt", "nul\0.txt",
                                  "a//b.txt", "./x.txt", ".git/config"])
def test_path_traversal_rejected(hub, repo, path):
    t = hub.tokens["alice"]
    assert_error(hub.request("POST", f"/api/models/{repo}/commit/main", raw=ndjson(header(), file_line(path, b"x")),
                             token=t), 400, "InvalidPath")
    pre = {"files": [{"path": path, "sample": "eA==", "size": 1}]}
    assert_error(hub.request("POST", f"/api/models/{repo}/preupload/main", pre, token=t), 400, "InvalidPath")


def test_traversal_in_url_does_not_escape(hub, repo):
    st, hdr, _ = hub.request("GET", f"/{repo}/resolve/main/..%2F..%2Frepo.json")
    assert st == 404 and hdr["X-Error-Code"] == "EntryNotFound"


@pytest.mark.parametrize("body", [b"not json\n", b'{"key": "header"}\n', b'{"key": "file", "value": 3}\n',
                                  ndjson(header(), {"key": "bogus", "value": {}}),
                                  ndjson({"key": "file", "value": {"path": "a.txt", "content": "!!notb64"}}),
                                  ndjson(file_line("a.txt", b"no header line"))])
def test_malformed_ndjson(hub, repo, body):
    assert_error(hub.request("POST", f"/api/models/{repo}/commit/main", raw=body, token=hub.tokens["alice"]),
                 400, "MalformedNdjson")


def test_lfs_file_that_never_arrived(hub, repo):
    body = ndjson(header(), {"key": "lfsFile", "value": {"path": "big.bin", "algo": "sha256", "oid": "ab" * 32,
                                                          "size": 10}})
    assert_error(hub.request("POST", f"/api/models/{repo}/commit/main", raw=body, token=hub.tokens["alice"]),
                 400, "LfsObjectNotFound")


def test_tokens(hub, repo):
    body = ndjson(header(), file_line("ok.txt", b"ok"))
    path = f"/api/models/{repo}/commit/main"
    assert_error(hub.request("POST", path, raw=body), 401, "Unauthorized")
    assert_error(hub.request("POST", path, raw=body, token="dsm_wrong"), 401, "InvalidCredentials")
    assert_error(hub.request("POST", path, raw=body, token=hub.tokens["alice_read"]), 403, "Forbidden")
    assert_error(hub.request("POST", path, raw=body, token=hub.tokens["bob"]), 403, "Forbidden")
    assert_error(hub.request("POST", "/api/repos/create", {"name": "alice/bobs"}, token=hub.tokens["bob"]),
                 403, "Forbidden")
    assert_error(hub.request("POST", "/api/repos/create", {"name": "x/anon"}), 401, "Unauthorized")
    assert hub.request("POST", path, raw=body, token=hub.tokens["alice"])[0] == 200
    st, _, out = hub.request("GET", "/api/whoami-v2", token=hub.tokens["alice"])
    assert st == 200 and json.loads(out)["name"] == "alice"
    assert [o["name"] for o in json.loads(out)["orgs"]] == ["dismai"]
    assert hub.request("GET", "/api/whoami-v2")[0] == 401
    # an organisation member may write to the organisation
    assert hub.request("POST", "/api/repos/create", {"name": "sec-org", "organization": "dismai",
                                                     "type": "dataset"}, token=hub.tokens["alice"])[0] == 200
    assert_error(hub.request("POST", "/api/repos/create", {"name": "sec-org2", "organization": "dismai"},
                             token=hub.tokens["bob"]), 403, "Forbidden")


def test_unknown_repo_revision_entry(hub, repo):
    assert_error(hub.request("GET", "/api/models/alice/nope"), 404, "RepoNotFound")
    assert_error(hub.request("GET", "/alice/nope/resolve/main/x"), 404, "RepoNotFound")
    assert_error(hub.request("GET", f"/api/models/{repo}/revision/nobranch"), 404, "RevisionNotFound")
    assert_error(hub.request("GET", f"/{repo}/resolve/{'0' * 40}/x"), 404, "RevisionNotFound")
    resp = hub.request("HEAD", f"/{repo}/resolve/main/missing.txt")
    assert resp[0] == 404 and resp[1]["X-Error-Code"] == "EntryNotFound" and len(resp[1]["X-Repo-Commit"]) == 40
    assert_error(hub.request("GET", f"/api/models/{repo}/tree/main/no/such/folder"), 404, "EntryNotFound")


def test_private_repos_are_invisible(hub, client_home):
    t = hub.tokens["alice"]
    assert hub.request("POST", "/api/repos/create", {"name": "alice/hidden", "private": True, "type": "dataset"},
                       token=t)[0] == 200
    for tok in (None, hub.tokens["bob"]):
        assert_error(hub.request("GET", "/api/datasets/alice/hidden", token=tok), 404, "RepoNotFound")
        assert_error(hub.request("GET", "/datasets/alice/hidden/resolve/main/.gitattributes", token=tok),
                     404, "RepoNotFound")
        listing = json.loads(hub.request("GET", "/api/datasets", token=tok)[2])
        assert "alice/hidden" not in [r["id"] for r in listing]
        st, _, page = hub.request("GET", "/", token=tok)
        assert b"alice/hidden" not in page
    assert hub.request("GET", "/api/datasets/alice/hidden", token=hub.tokens["alice_read"])[0] == 200
    listing = json.loads(hub.request("GET", "/api/datasets", token=t)[2])
    assert "alice/hidden" in [r["id"] for r in listing]
    # with the stock client
    code = """
    import json
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError
    try:
        HfApi().dataset_info("alice/hidden")
        print(json.dumps("visible"))
    except RepositoryNotFoundError:
        print(json.dumps("not found"))
    """
    assert last_json(run_client(hub, code, client_home, hub.tokens["bob"])) == "not found"
    assert last_json(run_client(hub, code, client_home, hub.tokens["alice_read"])) == "visible"


def test_oversize_uploads(tmp_path, client_home):
    small = HubServer(tmp_path / "small", max_upload_mb=1).start()
    try:
        t = small.token("carol", "write")
        small.request("POST", "/api/repos/create", {"name": "carol/r"}, token=t)
        pre = {"files": [{"path": "big.bin", "sample": "AAAA", "size": 2_000_000}]}
        assert_error(small.request("POST", "/api/models/carol/r/preupload/main", pre, token=t), 413, "PayloadTooLarge")
        body = ndjson(header(), file_line("big.txt", b"a" * 1_100_000))
        assert_error(small.request("POST", "/api/models/carol/r/commit/main", raw=body, token=t), 413,
                     "PayloadTooLarge")
        batch = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": "ab" * 32, "size": 2_000_000}]}
        st, _, out = small.request("POST", "/carol/r.git/info/lfs/objects/batch", batch, token=t)
        assert st == 200 and json.loads(out)["objects"][0]["error"]["code"] == 422
        code = """
        from huggingface_hub import HfApi
        try:
            HfApi().upload_file(path_or_fileobj=b"x" * 2_000_000, path_in_repo="big.bin", repo_id="carol/r")
            print("uploaded")
        except Exception as e:
            print("refused", type(e).__name__, "413" in str(e))
        """
        out = run_client(small, code, client_home, t).stdout.strip().splitlines()[-1]
        assert out.startswith("refused") and out.endswith("True")
    finally:
        small.stop()


@pytest.mark.parametrize("content,status", [
    ("# A card with no front matter\n\nJust prose.", 200),
    ("---\nlicense: mit\ntags: [a]\n---\n# Card", 200),
    ("---\n- a list\n- not a mapping\n---\n# Card", 400),
    ("---\nkey: [unclosed\n---\n# Card", 400),
])
def test_validate_yaml(hub, content, status):
    """The client sends the whole README; only a leading --- block is metadata."""
    st, hdr, body = hub.request("POST", "/api/validate-yaml", {"content": content, "repoType": "model"},
                                token=hub.tokens["alice"])
    assert st == status, body
    if status == 400:
        assert hdr["X-Error-Code"] == "InvalidYaml"
