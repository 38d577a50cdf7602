"""Hostile input: deep nesting, huge bodies and strings, wrong types and odd Unicode in
every field of every JSON body, broken NDJSON, xorbs, shards and LFS uploads, hostile
README YAML and Markdown. Each gets a 4xx with X-Error-Code (or a normal answer); none a
5xx, and the server log holds no traceback. Raw requests on purpose: no client sends these."""

from __future__ import annotations

import base64
import json

import lz4.frame
import pytest

from dismai_data.hub import xet

from .conftest import HubServer

REPO = "eve/target"
DEEP = b"[" * 100_000
ODD = [None, 0, -1, 1.5, 10 ** 30, True, [], {}, [[[[[]]]]], "", "x" * 200_000,
       "\u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9 \U0001F680", "\u202eevil\u202c",
       "a\u0000b", "../../etc/passwd", "\n\r\t", "\ufeff", "\udcff"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    server = HubServer(tmp_path_factory.mktemp("hostile") / "hub", max_upload_mb=8).start()
    server.tok = server.token("eve", "write")
    assert server.request("POST", "/api/repos/create", {"name": REPO}, token=server.tok)[0] == 200
    yield server
    server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log and "internal error" not in log, log[-6000:]


def raw_json(value) -> bytes:
    """JSON text, keeping a lone surrogate as its escape (json.dumps does that by default)."""
    return json.dumps(value).encode()


def check(resp, allow=(200, 201)):
    st, hdr, body = resp
    assert st < 500, (st, body[:500])
    if st not in allow:
        assert 400 <= st < 500, (st, body[:500])
        assert hdr.get("X-Error-Code") and hdr.get("X-Error-Message"), (st, dict(hdr), body[:300])
    return st


def test_log_is_clean_so_far(hub):
    assert "Traceback" not in hub.log.read_text()


# every JSON endpoint with a valid body; each field is then replaced by every odd value
BODIES = {
    ("POST", "/api/repos/create"): {"name": "eve/fuzzed", "type": "dataset", "private": True, "visibility": "private",
                                    "organization": "eve"},
    ("PUT", f"/api/models/{REPO}/settings"): {"private": False, "visibility": "public", "gated": False},
    ("POST", f"/api/models/{REPO}/tag/main"): {"tag": "t1", "message": "m"},
    ("POST", f"/api/models/{REPO}/branch/b1"): {"startingPoint": "main"},
    ("POST", f"/api/models/{REPO}/preupload/main"): {"files": [{"path": "a.txt", "sample": "eA==", "size": 1}]},
    ("POST", f"/api/models/{REPO}/super-squash/nobranch"): {"message": "m"},
    ("POST", "/api/repos/move"): {"fromRepo": "eve/none", "toRepo": "eve/none2", "type": "model"},
    ("DELETE", "/api/repos/delete"): {"name": "nothere", "organization": "eve", "type": "model"},
    ("POST", "/api/validate-yaml"): {"content": "---\nlicense: mit\n---\n", "repoType": "model"},
    ("POST", f"/{REPO}.git/info/lfs/objects/batch"): {"operation": "upload", "transfers": ["basic"],
                                                       "objects": [{"oid": "ab" * 32, "size": 3}],
                                                       "hash_algo": "sha256"},
    ("POST", "/api/leaderboard/submissions"): {"task": "perov-5", "predictions_repo": REPO, "model_name": "m",
                                               "predictions_commit": "0" * 40, "predictions_path": "p"},
}


@pytest.mark.parametrize("endpoint", list(BODIES), ids=[f"{m} {p}" for m, p in BODIES])
def test_every_field_every_odd_value(hub, endpoint):
    method, path = endpoint
    body = BODIES[endpoint]
    for field in body:
        for value in ODD:
            check(hub.request(method, path, raw=raw_json({**body, field: value}), token=hub.tok,
                              headers={"Content-Type": "application/json"}))
    check(hub.request(method, path, raw=raw_json({**body, "unknownField\U0001F680": 1}), token=hub.tok,
                      headers={"Content-Type": "application/json"}), allow=())
    for bad in (DEEP, b"{" * 50_000, b'{"a":' * 50_000, b"[]", b"3", b'"s"', b"null", b"\xff\xfe\x00", b"NaN",
                b"{\"a\": Infinity}", b"1" * 5000, b'{"a": "\\ud800"}', b'{"a":1,"a":2}'):
        check(hub.request(method, path, raw=bad, token=hub.tok, headers={"Content-Type": "application/json"}))
    # too big before parsing: refused on the declared length, before the body is read
    st, hdr = declared_only(hub, method, path, 9 * 1024 * 1024)
    assert st == 413 and hdr["X-Error-Code"] == "PayloadTooLarge", (st, dict(hdr))


def declared_only(hub, method: str, path: str, length: int):
    """Send headers declaring ``length`` bytes and no body; the answer must come at once."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=30)
    try:
        conn.putrequest(method, path)
        conn.putheader("Content-Length", str(length))
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Authorization", f"Bearer {hub.tok}")
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.headers
    finally:
        conn.close()


def test_commit_ndjson(hub):
    path = f"/api/models/{REPO}/commit/main"
    header = {"key": "header", "value": {"summary": "s"}}

    def ndjson(*lines):
        return b"\n".join(x if isinstance(x, bytes) else json.dumps(x).encode() for x in lines)

    st, hdr, _ = hub.request("POST", path, raw=DEEP, token=hub.tok)
    assert st == 400 and hdr["X-Error-Code"] == "NestingTooDeep"
    cases = [ndjson(header, DEEP), ndjson(DEEP), b"\n" * 100_000, ndjson(header, header),
             ndjson({"key": "header", "value": {"summary": "s", "createPr": True}}),
             ndjson(header, {"key": "file", "value": {"path": "a", "content": "eA==", "encoding": "base64",
                                                      "mode": "100755"}})]
    for field in ("summary", "description", "parentCommit"):
        for v in ODD:
            cases.append(ndjson({"key": "header", "value": {"summary": "s", field: v}}))
    for key, value in (("file", {"path": "a.txt", "content": "eA==", "encoding": "base64"}),
                       ("lfsFile", {"path": "a.bin", "algo": "sha256", "oid": "ab" * 32, "size": 1}),
                       ("deletedFile", {"path": "nothere.txt"}), ("deletedFolder", {"path": "nothere/"})):
        for field in value:
            for v in ODD:
                cases.append(ndjson(header, {"key": key, "value": {**value, field: v}}))
        for v in ODD:
            cases.append(ndjson(header, {"key": v if isinstance(v, str) else key, "value": v}))
    for body in cases:
        check(hub.request("POST", path, raw=body, token=hub.tok))
    refs = json.loads(hub.request("GET", f"/api/models/{REPO}/refs")[2])
    # nothing above was stored except well-formed unicode file names (and deletions of nothing failed)
    tree = json.loads(hub.request("GET", f"/api/models/{REPO}/tree/main?recursive=true")[2])
    assert all("\x00" not in e["path"] and "\udcff" not in e["path"] for e in tree)
    assert "main" in [b["name"] for b in refs["branches"]]


def test_query_strings_and_paths(hub):
    for path in ("/api/models?limit=-1", "/api/models?limit=1e9", "/api/models?sort=%ff", "/api/models?expand=%00",
                 "/api/models?gated=maybe", "/api/models?search=%ed%a0%80", "/api/models?filter=" + "x" * 100_000,
                 f"/api/models/{REPO}/tree/main?recursive=%ff", f"/api/models/{REPO}/commits/main?expand[]=x",
                 f"/api/models/{REPO}/revision/%ff%fe", f"/{REPO}/resolve/%ff/a", f"/{REPO}/resolve/main/%00",
                 f"/{REPO}?rev=" + "%5B" * 10_000, "/api/models/" + "a" * 10_000 + "/b", "/%ed%a0%80/x",
                 f"/api/models/{REPO}/discussions", f"/api/models/{REPO}/tree/main/" + "a/" * 5_000):
        check(hub.request("GET", path, token=hub.tok))
    check(hub.request("POST", f"/api/models/{REPO}/paths-info/main", raw=b"paths=" + b"%ff" * 1000, token=hub.tok,
                      headers={"Content-Type": "application/x-www-form-urlencoded"}))
    check(hub.request("POST", f"/api/models/{REPO}/paths-info/main", raw=b"&".join([b"paths=a"] * 20_000),
                      token=hub.tok, headers={"Content-Type": "application/x-www-form-urlencoded"}))
    check(hub.request("POST", f"/api/models/{REPO}/paths-info/main", raw=DEEP, token=hub.tok,
                      headers={"Content-Type": "application/json"}))


def test_xet_and_lfs_bodies(hub):
    _, hdr, _ = hub.request("GET", f"/api/models/{REPO}/xet-write-token/main", token=hub.tok)
    from urllib.parse import urlsplit

    cas = urlsplit(hdr["X-Xet-Cas-Url"]).path
    auth = {"Authorization": f"Bearer {hdr['X-Xet-Access-Token']}"}
    good, h = xet.build_xorb([b"a" * 1000, b"b" * 1000], 1)
    bomb = lz4.frame.compress(b"\0" * (8 * 1024 * 1024))  # 8 MiB of zeros in a few KiB, header says 10 bytes
    bomb_xorb = bytes([0]) + len(bomb).to_bytes(3, "little") + bytes([1]) + (10).to_bytes(3, "little") + bomb
    for body, hh in ((b"", h), (b"\0" * 7, h), (good[:-5], h), (good, "0" * 64), (good, "zz"), (bomb_xorb, h),
                     (b"\xff" * 100, h), (bytes([0, 255, 255, 255, 9, 1, 0, 0]) + b"x" * 10, h)):
        check(hub.request("POST", f"{cas}/v1/xorbs/default/{hh}", raw=body, headers=auth))
    for body in (b"", b"\0" * 47, b"HFRepoMetaData" + b"\0" * 100, b"\xff" * 1000,
                 xet.build_shard([(b"x", [("ab" * 32, 1, 0, 1, [(b"\0" * 32, 1)])])]),
                 b"HFRepoMetaData\x00" + bytes(17) + (2).to_bytes(8, "little") + bytes(8) + b"\x11" * 32
                 + (0).to_bytes(4, "little") + (2 ** 31).to_bytes(4, "little") + bytes(8)):
        check(hub.request("POST", f"{cas}/v1/shards", raw=body, headers=auth))
    check(hub.request("POST", f"{cas}/v1/shards", raw=b"x", headers={"Authorization": "Bearer xet_garbage.sig"}))
    check(hub.request("PUT", "/lfs-upload/" + "ab" * 32 + "?size=3&grant=lfs_x.y", raw=b"abc"))
    check(hub.request("PUT", "/lfs-upload/" + "ab" * 32 + "?size=-3", raw=b"abc"))


def test_hostile_readme_yaml_and_markdown(hub):
    """A README whose YAML is nested too deep, expands exponentially through aliases, holds
    dates and non-finite numbers, or whose Markdown nests 50 000 block quotes: repo info and
    the repo page still answer."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi"))
    cards = ["---\nx: " + "[" * 5000 + "\n---\n# t\n", "---\n" + bomb + "---\n# t\n",
             "---\nlicense: mit\ndate: 2024-01-01\nnan: .nan\ninf: -.inf\nwhen: 2024-01-01 10:00:00\n---\n# t\n",
             "---\nlicense: mit\n---\n" + ">" * 50_000 + " deep\n", "---\nlicense: mit\n---\n" + "* " * 20_000 + "x\n",
             "---\nt: \"\\ud800\"\n---\n# surrogate\n"]
    for n, card in enumerate(cards):
        st, _, out = hub.request("POST", "/api/validate-yaml", {"content": card, "repoType": "model"}, token=hub.tok)
        assert st in (200, 400), (n, st, out[:300])
        line = {"key": "file", "value": {"path": "README.md", "content": base64.b64encode(card.encode("utf-8",
                                                                                                     "surrogatepass")).decode(),
                                         "encoding": "base64"}}
        body = b"\n".join(json.dumps(x).encode() for x in ({"key": "header", "value": {"summary": f"card {n}"}}, line))
        assert hub.request("POST", f"/api/models/{REPO}/commit/main", raw=body, token=hub.tok)[0] == 200, n
        for path in (f"/api/models/{REPO}", f"/{REPO}", "/api/models?full=true", "/api/models?cardData=true"):
            st, _, out = hub.request("GET", path)
            assert st == 200, (n, path, st, out[:300])
