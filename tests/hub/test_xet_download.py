"""Xet downloads: files uploaded through Xet are served as the Hub serves them (``X-Xet-Hash``
on resolve, ``xetHash`` in tree and paths-info, ``xet-read-token``, the V1/V2 reconstruction
API and signed ranged xorb reads). The reconstruction plan is checked against the bytes on
every range shape (chunk edges, one byte, cut terms, a term used twice); the stock clients
(hf_hub_download, HfFileSystem ranged reads, datasets) download through it with the plain
HTTP download disabled; and the read grants are checked like the rest of the privacy model
(hand-made requests here: no client sends a forged grant or a stretched URL)."""

from __future__ import annotations

import hashlib
import json
import random
import urllib.parse

import pytest

from dismai_data.hub import xet

from .conftest import last_json, run_client


# ---- the plan, against the bytes --------------------------------------------------------
def _xorb(rng: random.Random, n: int, compression: int):
    chunks = [rng.randbytes(rng.randint(1, 300)) if i % 3 else bytes(rng.randint(1, 300)) for i in range(n)]
    data, h = xet.build_xorb(chunks, compression)
    return chunks, data, h


def _rebuild(plan, xorbs: dict, first: int) -> bytes:
    """What a client does with a reconstruction answer: fetch each range, decode its chunks,
    concatenate the terms and skip ``offset_into_first_range``."""
    offset, terms, ranges = plan
    out = bytearray()
    for t in terms:
        h, a, b = t["hash"], t["range"]["start"], t["range"]["end"]
        r = next(r for r in ranges[h] if r.start <= a and b <= r.end)  # a fetch must hold the term
        blob = xorbs[h][1][r.byte_start:r.byte_end]
        chunks = xet.walk_xorb(blob)
        part = b"".join(xet.decompress_chunk(c.compression, blob[c.offset:c.offset + c.compressed_size], c.size)
                        for c in chunks[a - r.start:b - r.start])
        assert len(part) == t["unpacked_length"]
        out += part
    return bytes(out[offset:])


@pytest.mark.parametrize("seed", range(6))
def test_plan_rebuilds_every_range(seed):
    rng = random.Random(seed)
    xorbs = {}
    for k in range(2):
        chunks, data, h = _xorb(rng, 12, k + seed % 2)
        xorbs[h] = (chunks, data)
    hs = list(xorbs)
    terms, content = [], bytearray()
    for h, a, b in [(hs[0], 0, 5), (hs[1], 3, 9), (hs[0], 2, 7), (hs[0], 5, 12), (hs[1], 0, 1)]:  # reuse, overlap
        terms.append(xet.Term(h, sum(len(c) for c in xorbs[h][0][a:b]), a, b))
        content += b"".join(xorbs[h][0][a:b])
    index = {h: xet.walk_xorb(d) for h, (_c, d) in xorbs.items()}
    edges = sorted({0, len(content)} | {sum(t.size for t in terms[:i]) for i in range(len(terms))})
    cases = [(0, len(content)), (0, 1), (len(content) - 1, len(content))]
    cases += [(e, min(e + 1, len(content))) for e in edges[:-1]] + [(e - 1, e + 1) for e in edges[1:-1]]
    cases += [tuple(sorted(rng.sample(range(len(content) + 1), 2))) for _ in range(40)]
    for first, end in cases:
        if end <= first:
            continue
        plan = xet.plan_reconstruction(terms, index.__getitem__, first, end)
        got = _rebuild(plan, xorbs, first)
        assert got[:end - first] == bytes(content[first:end]), (seed, first, end)
        assert len(got) - (end - first) < 300  # at most the rest of the last chunk
        for h, rs in plan[2].items():  # merged: sorted, disjoint, not touching
            assert all(x.end < y.start for x, y in zip(rs, rs[1:]))


# ---- the stock clients ------------------------------------------------------------------
PAYLOAD = "bytes(range(256)) * 4000 + __import__('random').Random(7).randbytes(2_500_000)"


@pytest.fixture(scope="module")
def xet_repo(hub, tmp_path_factory):
    """A private model repo of alice with one binary file uploaded through Xet."""
    home = tmp_path_factory.mktemp("xetdl")
    run_client(hub, f"""
        from huggingface_hub import HfApi
        api = HfApi()
        api.create_repo("alice/xet-dl", private=True)
        api.upload_file(path_or_fileobj={PAYLOAD}, path_in_repo="w/model.bin", repo_id="alice/xet-dl")
        api.create_repo("alice/xet-dl-public")
        api.upload_file(path_or_fileobj=b"public " * 300000, path_in_repo="p.bin", repo_id="alice/xet-dl-public")
    """, home, hub.tokens["alice"])
    return "alice/xet-dl"


def test_stock_clients_download_through_xet(hub, xet_repo, client_home):
    """hf_hub_download, the tree listing and HfFileSystem ranged reads, with the plain HTTP
    download path made to fail: every byte comes through the reconstruction API."""
    out = last_json(run_client(hub, f"""
        import hashlib, json
        import huggingface_hub.file_download as fd
        from huggingface_hub import HfApi, HfFileSystem, get_hf_file_metadata, hf_hub_download, hf_hub_url
        def no_http(*a, **k):
            raise AssertionError("plain HTTP download used")
        fd.http_get = no_http
        data = {PAYLOAD}
        api = HfApi()
        meta = get_hf_file_metadata(hf_hub_url("{xet_repo}", "w/model.bin"))
        tree = {{f.path: f.xet_hash for f in api.list_repo_tree("{xet_repo}", recursive=True)
                 if hasattr(f, "xet_hash")}}
        info = api.get_paths_info("{xet_repo}", ["w/model.bin"])[0]
        p = hf_hub_download("{xet_repo}", "w/model.bin")
        fs = HfFileSystem()
        reads = []
        with fs.open("{xet_repo}/w/model.bin", "rb", block_size=100_000) as f:
            for a, n in ((0, 1), (1023, 2), (65535, 70000), (len(data) - 5, 5), (1_000_000, 1_500_000)):
                f.seek(a)
                reads.append(f.read(n) == data[a:a + n])
        print(json.dumps({{"xet": meta.xet_file_data.file_hash if meta.xet_file_data else None,
                          "tree": tree.get("w/model.bin"), "info": info.xet_hash,
                          "same": hashlib.sha256(open(p, "rb").read()).hexdigest() == hashlib.sha256(data).hexdigest(),
                          "reads": reads}}))
    """, client_home, hub.tokens["alice"]))
    assert out["xet"] and out["xet"] == out["tree"] == out["info"]
    assert out["same"] and all(out["reads"]), out


def test_datasets_load_through_xet(hub, client_home):
    out = last_json(run_client(hub, """
        import json
        import datasets
        import huggingface_hub.file_download as fd
        ds = datasets.Dataset.from_dict({"x": list(range(50000)), "s": [str(i) * 7 for i in range(50000)]})
        ds.push_to_hub("alice/xet-ds", private=True)
        http_get = fd.http_get
        def no_http(url, *a, **k):  # the card (a regular file) comes over HTTP, the parquet through Xet
            assert not url.endswith(".parquet"), "plain HTTP download of " + url
            return http_get(url, *a, **k)
        fd.http_get = no_http
        back = datasets.load_dataset("alice/xet-ds", split="train", download_mode="force_redownload")
        print(json.dumps({"same": back["s"] == ds["s"] and back["x"] == ds["x"]}))
    """, client_home, hub.tokens["alice"]))
    assert out["same"]


# ---- the grants -------------------------------------------------------------------------
def _read_grant(hub, repo, token, rev="main", rt="model"):
    st, hdr, body = hub.request("GET", f"/api/{rt}s/{repo}/xet-read-token/{rev}", token=token)
    return st, (hdr["X-Xet-Cas-Url"], hdr["X-Xet-Access-Token"]) if st == 200 else None


def _xet_hash(hub, repo, path, token):
    st, hdr, _ = hub.request("HEAD", f"/{repo}/resolve/main/{path}", token=token)
    assert st == 200
    return hdr["X-Xet-Hash"], hdr["Link"]


def _cas(hub, url, token=None, headers=None):
    return hub.request("GET", url[len(hub.url):], token=token, headers=headers)


def test_read_grants_cover_one_repo(hub, xet_repo):
    alice, bob = hub.tokens["alice"], hub.tokens["bob"]
    h, link = _xet_hash(hub, xet_repo, "w/model.bin", alice)
    assert 'rel="xet-auth"' in link and "/xet-read-token/" in link
    # the private repo: no grant for anonymous or bob (404 like the repo itself), one for alice
    assert _read_grant(hub, xet_repo, None)[0] == 404
    assert _read_grant(hub, xet_repo, bob)[0] == 404
    st, (cas, tok) = _read_grant(hub, xet_repo, alice)
    assert st == 200
    st, _, body = _cas(hub, f"{cas}/v2/reconstructions/{h}", tok)
    assert st == 200
    plan = json.loads(body)
    assert sum(t["unpacked_length"] for t in plan["terms"]) == 4000 * 256 + 2_500_000
    st, _, v1 = _cas(hub, f"{cas}/v1/reconstructions/{h}", tok)
    assert st == 200 and set(json.loads(v1)) == {"offset_into_first_range", "terms", "fetch_info"}
    # a grant of the public repo (anonymous or bob) does not reach the private repo's file
    for who in (None, bob):
        st, (cas2, tok2) = _read_grant(hub, "alice/xet-dl-public", who)
        assert st == 200
        assert _cas(hub, f"{cas2}/v2/reconstructions/{h}", tok2)[0] == 404
    # no token, a write grant, a grant for another purpose, or a forged one: 401
    st, hdr, _ = hub.request("GET", f"/api/models/{xet_repo}/xet-write-token/main", token=alice)
    for bad in (None, hdr["X-Xet-Access-Token"], tok[:-4] + "0000", "xetread_e30.00"):
        assert _cas(hub, f"{cas}/v2/reconstructions/{h}", bad)[0] == 401, bad
    # a read grant is no API token
    assert hub.request("GET", f"/api/models/{xet_repo}", token=tok)[0] == 401


def test_signed_fetch_urls_read_only_their_window(hub, xet_repo):
    alice = hub.tokens["alice"]
    h, _ = _xet_hash(hub, xet_repo, "w/model.bin", alice)
    _, (cas, tok) = _read_grant(hub, xet_repo, alice)
    st, _, body = _cas(hub, f"{cas}/v2/reconstructions/{h}", tok, {"Range": "bytes=1000-1999"})
    assert st == 200
    plan = json.loads(body)
    (xh, fetches), = plan["xorbs"].items()
    url, rng = fetches[0]["url"], fetches[0]["ranges"][0]["bytes"]
    lo, hi = rng["start"], rng["end"]
    st, hdr, data = _cas(hub, url, headers={"Range": f"bytes={lo}-{hi}"})
    assert st == 206 and len(data) == hi - lo + 1
    assert _cas(hub, url, headers={"Range": f"bytes={lo}-{hi + 1}"})[0] == 416  # past the window
    assert _cas(hub, url, headers={"Range": f"bytes={lo}-{hi},0-1"})[0] == 416  # multi-range
    q = urllib.parse.urlsplit(url)
    params = dict(urllib.parse.parse_qsl(q.query))
    changes = ({"bytes": f"{lo}-{hi + 1000}"}, {"exp": str(int(params["exp"]) + 1)}, {"sig": "0" * 64}, {"exp": "x"})
    for change in changes:
        forged = q._replace(query=urllib.parse.urlencode({**params, **change})).geturl()
        assert _cas(hub, forged, headers={"Range": f"bytes={lo}-{hi}"})[0] == 403, change
    other = url.replace(xh, hashlib.sha256(b"x").hexdigest())  # the signature names the xorb
    assert _cas(hub, other, headers={"Range": f"bytes={lo}-{hi}"})[0] == 403
    # reconstruction ranges outside the file, or not bytes=a-b
    for bad in ("bytes=99999999-", "bytes=5-2", "items=0-1", "bytes=-", "bytes=0-1,4-5"):
        assert _cas(hub, f"{cas}/v2/reconstructions/{h}", tok, {"Range": bad})[0] == 416, bad
    assert _cas(hub, f"{cas}/v2/reconstructions/{'0' * 64}", tok)[0] == 404
    assert _cas(hub, f"{cas}/v2/reconstructions/not-a-hash", tok)[0] == 404


def test_grant_stops_when_the_repo_turns_private(hub, client_home):
    run_client(hub, """
        from huggingface_hub import HfApi
        api = HfApi()
        api.create_repo("alice/xet-flip")
        api.upload_file(path_or_fileobj=b"flip " * 200000, path_in_repo="f.bin", repo_id="alice/xet-flip")
    """, client_home, hub.tokens["alice"])
    h, _ = _xet_hash(hub, "alice/xet-flip", "f.bin", None)
    st, (cas, tok) = _read_grant(hub, "alice/xet-flip", None)
    assert _cas(hub, f"{cas}/v2/reconstructions/{h}", tok)[0] == 200
    run_client(hub, 'from huggingface_hub import HfApi; HfApi().update_repo_settings("alice/xet-flip", private=True)',
               client_home, hub.tokens["alice"])
    assert _cas(hub, f"{cas}/v2/reconstructions/{h}", tok)[0] == 404


def test_cross_repo_lfs_copy_needs_read_and_write(hub, xet_repo, client_home):
    """lfs-files/duplicate through create_commit(CommitOperationCopy(src_repo_id=...)): alice
    copies from her private repo; bob can neither copy out of it nor into her public one."""
    out = last_json(run_client(hub, """
        import json, sys
        from huggingface_hub import CommitOperationCopy, HfApi
        from huggingface_hub.errors import HfHubHTTPError
        tokens = json.loads(sys.argv[1])
        def copy(who, src, dst, path="w/model.bin"):
            api = HfApi(token=tokens[who])
            try:
                api.create_commit(dst, commit_message="copy", operations=[CommitOperationCopy(
                    path, "copied.bin", src_repo_id=src, src_repo_type="model")])
                return "ok"
            except HfHubHTTPError as e:
                return e.response.status_code
        HfApi(token=tokens["bob"]).create_repo("bob/dest", exist_ok=True)
        out = {"alice": copy("alice", "alice/xet-dl", "alice/xet-dl-public"),
               "bob_out": copy("bob", "alice/xet-dl", "bob/dest"),
               "bob_in": copy("bob", "alice/xet-dl-public", "alice/xet-dl-public", "p.bin")}
        api = HfApi(token=tokens["alice"])
        out["same_hash"] = [f.xet_hash for f in api.get_paths_info("alice/xet-dl-public", ["copied.bin"])] == [
            f.xet_hash for f in api.get_paths_info("alice/xet-dl", ["w/model.bin"])]
        print(json.dumps(out))
    """.replace("sys.argv[1]", repr(json.dumps(hub.tokens))), client_home, hub.tokens["alice"]))
    assert out == {"alice": "ok", "bob_out": 404, "bob_in": 403, "same_hash": True}
    # a file that is not in the source repo is reported as failed, by sha256
    st, _, body = hub.request("POST", "/api/models/alice/xet-dl-public/lfs-files/duplicate", {
        "target": {"type": "model", "name": "alice/xet-dl"}, "files": [{"sha256": "ab" * 32, "filename": "x"}]},
        token=hub.tokens["alice"])
    assert st == 200 and json.loads(body)["failed"][0]["sha256"] == "ab" * 32
    st, _, _ = hub.request("POST", "/api/models/alice/xet-dl-public/lfs-files/duplicate", {
        "target": {"type": "model", "name": "alice/xet-dl"}, "files": [], "mode": "move"}, token=hub.tokens["alice"])
    assert st == 400
