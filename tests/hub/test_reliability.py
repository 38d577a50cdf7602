"""Crash safety and concurrency of the hub."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
import urllib.parse

from dismai_data.hub import xet

from .conftest import HubServer, last_json, run_client


def _commit_regular(hub, token, repo, path, data: bytes):
    import base64

    body = "\n".join(json.dumps(x) for x in [
        {"key": "header", "value": {"summary": f"add {path}"}},
        {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}])
    st, _, out = hub.request("POST", f"/api/models/{repo}/commit/main", raw=body.encode(), token=token)
    assert st == 200, out
    return json.loads(out)["commitOid"]


def _start_partial(url: str, path: str, total: int, first: bytes, headers: dict) -> http.client.HTTPConnection:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.putrequest("PUT" if "lfs-upload" in path else "POST", path)
    conn.putheader("Content-Length", str(total))
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    conn.send(first)
    return conn


def test_kill9_mid_upload(tmp_path, client_home):
    hub = HubServer(tmp_path / "crash").start()
    try:
        _kill9_scenario(hub, tmp_path, client_home)
    finally:
        hub.stop()


def _kill9_scenario(hub, tmp_path, client_home):
    token = hub.token("dave", "write")
    repo = "dave/r"
    assert hub.request("POST", "/api/repos/create", {"name": repo}, token=token)[0] == 200
    c1 = _commit_regular(hub, token, repo, "a.txt", b"v1\n")
    payload = os.urandom(6 * 1024 * 1024)
    oid = hashlib.sha256(payload).hexdigest()
    # an LFS upload and a xorb upload, both cut in the middle by kill -9
    batch = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(payload)}]}
    st, _, out = hub.request("POST", f"/{repo}.git/info/lfs/objects/batch", batch, token=token)
    href = json.loads(out)["objects"][0]["actions"]["upload"]["href"]
    u = urllib.parse.urlsplit(href)
    lfs_conn = _start_partial(hub.url, u.path + "?" + u.query, len(payload), payload[:4 * 1024 * 1024], {})
    _, hdr, _ = hub.request("GET", f"/api/models/{repo}/xet-write-token/main", token=token)
    xorb, xh = xet.build_xorb([payload[i:i + 65536] for i in range(0, len(payload), 65536)], 0)
    cas_path = urllib.parse.urlsplit(hdr["X-Xet-Cas-Url"]).path
    xet_conn = _start_partial(hub.url, f"{cas_path}/v1/xorbs/default/{xh}", len(xorb), xorb[:len(xorb) // 2],
                              {"Authorization": f"Bearer {hdr['X-Xet-Access-Token']}"})
    tmp = hub.storage / "tmp"
    deadline = time.time() + 20
    while time.time() < deadline and not any(p.stat().st_size > 0 for p in tmp.glob("blob.*")):
        time.sleep(0.05)
    assert any(p.stat().st_size > 0 for p in tmp.glob("blob.*")), "the LFS upload never started writing"
    hub.kill9()
    lfs_conn.close()
    xet_conn.close()

    hub.start()  # same storage, same port
    try:
        refs = json.loads(hub.request("GET", f"/api/models/{repo}/refs")[2])
        assert refs["branches"] == [{"name": "main", "ref": "refs/heads/main", "targetCommit": c1}]
        assert hub.request("GET", f"/{repo}/resolve/main/a.txt")[2] == b"v1\n"
        assert not list(tmp.iterdir()), "partial writes survived the restart"
        assert not (hub.storage / "blobs" / "sha256" / oid[:2] / oid[2:4] / oid).exists()
        assert not (hub.storage / "xorbs" / xh[:2] / xh).exists()
        # the half-uploaded content cannot be committed, let alone served
        body = "\n".join(json.dumps(x) for x in [
            {"key": "header", "value": {"summary": "x"}},
            {"key": "lfsFile", "value": {"path": "big.bin", "algo": "sha256", "oid": oid, "size": len(payload)}}])
        st, hdr, _ = hub.request("POST", f"/api/models/{repo}/commit/main", raw=body.encode(), token=token)
        assert st == 400 and hdr["X-Error-Code"] == "LfsObjectNotFound"
        assert hub.request("GET", f"/{repo}/resolve/main/big.bin")[0] == 404
        # the retried upload succeeds, through both client paths
        src = tmp_path / "big.bin"
        src.write_bytes(payload)
        for xet_mode, name in ((False, "big-lfs.bin"), (True, "big-xet.bin")):
            code = f"""
            from huggingface_hub import HfApi
            print(HfApi().upload_file(path_or_fileobj={str(src)!r}, path_in_repo={name!r}, repo_id={repo!r}).oid)
            """
            run_client(hub, code, client_home, token, xet=xet_mode)
            st, hdr, got = hub.request("GET", f"/{repo}/resolve/main/{name}")
            assert st == 200 and got == payload and hdr["ETag"] == f'"{oid}"'
        commits = json.loads(hub.request("GET", f"/api/models/{repo}/commits/main")[2])
        assert commits[2]["id"] == c1 and len(commits) == 4
    finally:
        hub.stop()


def test_20_concurrent_upload_file_with_parent_commit(hub, client_home):
    code = """
    import json, threading
    from concurrent.futures import ThreadPoolExecutor
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    api = HfApi()
    repo = "alice/concurrent"
    api.create_repo(repo)
    base = api.repo_info(repo).sha
    outcomes = {"landed": [], "412": 0, "other": []}
    lock = threading.Lock()
    def work(i):
        for attempt in range(60):
            parent = api.repo_info(repo).sha
            try:
                c = api.upload_file(path_or_fileobj=f"file {i}".encode(), path_in_repo=f"f{i:02d}.txt",
                                    repo_id=repo, parent_commit=parent)
                with lock:
                    outcomes["landed"].append([i, c.oid, parent])
                return
            except HfHubHTTPError as e:
                with lock:
                    if e.response.status_code == 412:
                        outcomes["412"] += 1
                    else:
                        outcomes["other"].append(str(e))
                        return
    with ThreadPoolExecutor(20) as ex:
        list(ex.map(work, range(20)))
    commits = api.list_repo_commits(repo)
    files = api.list_repo_files(repo)
    print(json.dumps({"outcomes": outcomes, "base": base, "commits": [c.commit_id for c in commits],
                      "files": sorted(files)}))
    """
    out = last_json(run_client(hub, code, client_home, hub.tokens["alice"], timeout=600))
    oc = out["outcomes"]
    assert oc["other"] == []
    assert len(oc["landed"]) == 20
    assert oc["412"] > 0  # the race was real
    # history is linear: each landed commit's parent is the commit before it, and the chain ends at base
    chain = out["commits"]
    assert len(chain) == 20 + 1
    assert chain[-1] == out["base"]
    parent_of = {c: p for _, c, p in oc["landed"]}
    for newer, older in zip(chain, chain[1:]):
        assert parent_of[newer] == older
    assert out["files"] == sorted([".gitattributes"] + [f"f{i:02d}.txt" for i in range(20)])
    st, _, raw = hub.request("GET", "/api/models/alice/concurrent/commits/main")
    for c in json.loads(raw)[:-1]:
        assert len(c["parents"]) == 1


def test_50_readers_while_writer_pushes(hub, client_home, tmp_path):
    repo = "dismai/readers"
    t = hub.tokens["alice"]
    folder = tmp_path / "ds"
    (folder / "data").mkdir(parents=True)

    def make_revision(n: int):
        (folder / "README.md").write_text(f"---\nlicense: mit\n---\nrevision {n}\n")
        (folder / "data" / "train.bin").write_bytes(hashlib.sha256(str(n).encode()).digest() * (20000 + n))
        (folder / "data" / "rev.txt").write_text(str(n))

    make_revision(0)
    code = f"""
    from huggingface_hub import HfApi
    import sys
    api = HfApi()
    api.create_repo({repo!r}, repo_type="dataset", exist_ok=True)
    api.upload_folder(repo_id={repo!r}, repo_type="dataset", folder_path={str(folder)!r})
    """
    run_client(hub, code, client_home, t)
    errors: list[str] = []
    seen: set[int] = set()
    stop = threading.Event()

    def reader():
        import urllib.request

        reads = 0
        while not stop.is_set() or reads < 3:
            try:
                req = urllib.request.Request(f"{hub.url}/datasets/{repo}/resolve/main/README.md", method="HEAD")
                with urllib.request.urlopen(req, timeout=60) as r:
                    sha = r.headers["X-Repo-Commit"]
                base = f"{hub.url}/datasets/{repo}/resolve/{sha}/"
                readme = urllib.request.urlopen(base + "README.md", timeout=60).read().decode()
                n = int(urllib.request.urlopen(base + "data/rev.txt", timeout=60).read())
                blob = urllib.request.urlopen(base + "data/train.bin", timeout=60).read()
                if readme.strip().splitlines()[-1] != f"revision {n}" or \
                        blob != hashlib.sha256(str(n).encode()).digest() * (20000 + n):
                    errors.append(f"mixed revision at {sha}")
                seen.add(n)
            except Exception as exc:  # any error counts
                errors.append(repr(exc))
            reads += 1

    threads = [threading.Thread(target=reader) for _ in range(50)]
    for th in threads:
        th.start()
    try:
        for n in (1, 2, 3):
            make_revision(n)
            run_client(hub, code, client_home, t)
    finally:
        stop.set()
        for th in threads:
            th.join(120)
    assert errors == []
    assert len(seen) >= 2  # readers saw the revisions change under them


def test_two_worker_processes_serialise_commits(tmp_path):
    """With --workers 2, racing commits (raw API, parentCommit) from two processes' worth of
    connections still give a linear history with nothing lost: the repo lock is a file lock."""
    import base64
    from concurrent.futures import ThreadPoolExecutor

    hub = HubServer(tmp_path / "multi", workers=2).start()
    try:
        token = hub.token("erin", "write")
        assert hub.request("POST", "/api/repos/create", {"name": "erin/multi"}, token=token)[0] == 200

        def work(i):
            for _ in range(100):
                refs = json.loads(hub.request("GET", "/api/models/erin/multi/refs")[2])
                head = refs["branches"][0]["targetCommit"]
                body = "\n".join(json.dumps(x) for x in [
                    {"key": "header", "value": {"summary": f"w{i}", "parentCommit": head}},
                    {"key": "file", "value": {"path": f"w{i}.txt", "content": base64.b64encode(b"x").decode(),
                                              "encoding": "base64"}}])
                st, _, out = hub.request("POST", "/api/models/erin/multi/commit/main", raw=body.encode(), token=token)
                if st == 200:
                    return json.loads(out)["commitOid"], head
                assert st == 412, out
            raise AssertionError("never landed")

        with ThreadPoolExecutor(12) as ex:
            landed = list(ex.map(work, range(12)))
        commits = json.loads(hub.request("GET", "/api/models/erin/multi/commits/main")[2])
        assert len(commits) == 13
        parent = {c: p for c, p in landed}
        for newer, older in zip(commits, commits[1:]):
            assert parent[newer["id"]] == older["id"]
        files = [e["path"] for e in json.loads(hub.request("GET", "/api/models/erin/multi/tree/main")[2])]
        assert sorted(files) == sorted([".gitattributes"] + [f"w{i}.txt" for i in range(12)])
    finally:
        hub.stop()
