"""The Xet pieces checked against the xet-core reference values, and the CAS endpoints driven
by hand with every chunk compression scheme (hf_xet picks its own, so this pins LZ4 frames
and byte grouping deterministically)."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest

from dismai_data.hub import xet
from dismai_data.hub.xet import hash_to_hex, hex_to_hash

A = "cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6"
B = "c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72"
C = "0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37"
D = "adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784"


@pytest.mark.parametrize("leaves,root,fhash", [
    ([(A, 100)], A, "8e16257caa3fe079d484d872a8975264b2ff683b0d6db9028cc7c0f968a45661"),
    ([(A, 100), (B, 200), (C, 300)], "71ec1275fca074724e2dd666921b3277c7cee603e4d025bcab2d4050015be2bc",
     "54e55dccc6653c612bdb5576c5d3cb34bb31bc4e100248abccf4c908b3ef7715"),
    ([(A, 100)] * 4, "89f2ada89ff8c96763c6b25010e6dd76a4c05b1466207633ea559acf2093211b",
     "2cdba690d0e09563596e0cda626d43eb4c96ef1e994fe72d9b2f5a83cfcd36dd"),
    ([(A, 100), (B, 200), (A, 100), (B, 200), (C, 300), (D, 400)],
     "52c826f99507aa05d0b45e9837fa1709e0485425cfbcb1e80db3905cf98b3ee9",
     "91d21684db364c8883ab8209fa5eb2e781cf07f37e1fa43e731c30839afe422f"),
])
def test_merkle_matches_xet_core_reference(leaves, root, fhash):
    nodes = [(hex_to_hash(h), s) for h, s in leaves]
    assert hash_to_hex(xet.merkle_root(nodes)) == root
    assert hash_to_hex(xet.file_hash(nodes)) == fhash


def test_hash_string_form_reverses_each_8_byte_group():
    raw = bytes(range(32))
    text = hash_to_hex(raw)
    assert text[:16] == "0706050403020100"
    assert hex_to_hash(text) == raw


@pytest.mark.parametrize("n", range(0, 13))
def test_byte_grouping_roundtrip(n):
    data = os.urandom(n)
    assert xet._ungroup4(xet.group4(data)) == data


def _grant(hub, repo):
    st, hdr, _ = hub.request("GET", f"/api/models/{repo}/xet-write-token/main", token=hub.tokens["alice"])
    assert st == 200
    return hdr["X-Xet-Cas-Url"], hdr["X-Xet-Access-Token"]


def _chunks(seed: int, n: int = 5):
    rng = __import__("random").Random(seed)
    out = []
    for i in range(n):
        size = rng.randint(1000, 70000)
        if i % 2:
            out.append(bytes(rng.randrange(4) for _ in range(size)))  # compressible
        else:
            out.append(rng.randbytes(size))
    return out


@pytest.mark.parametrize("compression", [0, 1, 2])
def test_cas_upload_each_compression(hub, compression):
    repo = f"alice/xet-manual-{compression}"
    assert hub.request("POST", "/api/repos/create", {"name": repo}, token=hub.tokens["alice"])[0] == 200
    cas, token = _grant(hub, repo)
    base = cas[len(hub.url):]
    chunks = _chunks(compression)
    body, xh = xet.build_xorb(chunks, compression)
    st, _, out = hub.request("POST", f"{base}/v1/xorbs/default/{xh}", raw=body, token=token)
    assert st == 200 and json.loads(out) == {"was_inserted": True}
    # a file made of chunks 1..4 of the xorb
    content = b"".join(chunks[1:4])
    hashes = [(xet.chunk_hash(c), len(c)) for c in chunks[1:4]]
    shard = xet.build_shard([(content, [(xh, len(content), 1, 4, hashes)])])
    st, _, out = hub.request("POST", f"{base}/v1/shards", raw=shard, token=token)
    assert st == 200, out
    sha = hashlib.sha256(content).hexdigest()
    ndjson = "\n".join(json.dumps(x) for x in [
        {"key": "header", "value": {"summary": "xet by hand"}},
        {"key": "lfsFile", "value": {"path": "blob.bin", "algo": "sha256", "oid": sha, "size": len(content)}}])
    st, _, out = hub.request("POST", f"/api/models/{repo}/commit/main", raw=ndjson.encode(),
                             token=hub.tokens["alice"], headers={"Content-Type": "application/x-ndjson"})
    assert st == 200, out
    st, hdr, got = hub.request("GET", f"/{repo}/resolve/main/blob.bin")
    assert st == 200 and got == content and hdr["ETag"] == f'"{sha}"'
    st, hdr, got = hub.request("GET", f"/{repo}/resolve/main/blob.bin", headers={"Range": "bytes=10-19"})
    assert st == 206 and got == content[10:20] and hdr["Content-Range"] == f"bytes 10-19/{len(content)}"
    st, _, _ = hub.request("GET", f"/{repo}/resolve/main/blob.bin", headers={"Range": f"bytes={len(content) + 5}-"})
    assert st == 416


def test_cas_rejects_bad_xorb_and_shard(hub):
    repo = "alice/xet-bad"
    hub.request("POST", "/api/repos/create", {"name": repo}, token=hub.tokens["alice"])
    cas, token = _grant(hub, repo)
    base = cas[len(hub.url):]
    chunks = _chunks(7, 3)
    body, xh = xet.build_xorb(chunks, 1)
    wrong = "0" * 63 + "1"
    st, hdr, _ = hub.request("POST", f"{base}/v1/xorbs/default/{wrong}", raw=body, token=token)
    assert st == 400 and hdr["X-Error-Code"] == "XorbHashMismatch"
    st, hdr, _ = hub.request("POST", f"{base}/v1/xorbs/default/{xh}", raw=body[:-10], token=token)
    assert st == 400 and hdr["X-Error-Code"] in ("InvalidXorb", "XorbHashMismatch")
    st, hdr, _ = hub.request("POST", f"{base}/v1/xorbs/default/{xh}", raw=body, token="xet_forged.sig")
    assert st == 401
    assert hub.request("POST", f"{base}/v1/xorbs/default/{xh}", raw=body, token=token)[0] == 200
    content = b"".join(chunks)
    hashes = [(xet.chunk_hash(c), len(c)) for c in chunks]
    # shard whose sha256 does not match the rebuilt content
    shard = bytearray(xet.build_shard([(content + b"x", [(xh, len(content), 0, 3, hashes)])]))
    st, hdr, _ = hub.request("POST", f"{base}/v1/shards", raw=bytes(shard), token=token)
    assert st == 400 and hdr["X-Error-Code"] == "ShardVerificationFailed"
    # shard whose xet file hash is wrong
    good = xet.build_shard([(content, [(xh, len(content), 0, 3, hashes)])])
    bad = good[:48] + bytes([good[48] ^ 1]) + good[49:]
    st, hdr, _ = hub.request("POST", f"{base}/v1/shards", raw=bad, token=token)
    assert st == 400 and hdr["X-Error-Code"] == "ShardVerificationFailed"
    # shard pointing at a xorb never uploaded
    other = xet.build_shard([(content, [("ab" * 32, len(content), 0, 3, hashes)])])
    st, hdr, _ = hub.request("POST", f"{base}/v1/shards", raw=other, token=token)
    assert st == 400 and hdr["X-Error-Code"] == "XorbNotFound"
    st, hdr, _ = hub.request("POST", f"{base}/v1/shards", raw=b"garbage", token=token)
    assert st == 400 and hdr["X-Error-Code"] == "InvalidShard"
    # nothing was stored for the bad shards: committing that content is refused
    ndjson = "\n".join(json.dumps(x) for x in [
        {"key": "header", "value": {"summary": "x"}},
        {"key": "lfsFile", "value": {"path": "f.bin", "algo": "sha256",
                                     "oid": hashlib.sha256(content + b"x").hexdigest(), "size": len(content) + 1}}])
    st, hdr, _ = hub.request("POST", f"/api/models/{repo}/commit/main", raw=ndjson.encode(), token=hub.tokens["alice"])
    assert st == 400 and hdr["X-Error-Code"] == "LfsObjectNotFound"
    assert base64  # keep import used
