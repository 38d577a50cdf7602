"""The leaderboard end to end against real hubs on 127.0.0.1: ``dismai submit`` (validation
before upload, upload, queueing), the scoring worker started with the hub and alone, the
rows in ``dismai/leaderboard``, and the reliability cases of issue 7 (two submissions at
once, a worker killed mid-scoring, the same predictions twice, an unknown task, missing or
extra ids, a failed scoring recorded with its reason, re-scoring gives identical numbers).

The task is the reconstruction task ``jarvis-supercon-3d`` on a small reference (20 train
and 8 test rows of the real JARVIS AtomGen split) published as ``dismai/jarvis-supercon-3d``,
so one scoring takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .conftest import HubServer, client_env, last_json, run_client

ROOT = Path(__file__).resolve().parents[2]
JARVIS_ZIP = ROOT / "builders" / "raw" / "jarvis_supercon_3d" / "jarvis_leaderboard_atomgen_split.json.zip"
TASK = "jarvis-supercon-3d"
PY = sys.executable


# ---------------------------------------------------------------------------- helpers
def reference_folder(folder: Path) -> Path:
    from dismai_data.io import row_from_poscar
    from dismai_data.structure import rows_to_table

    with zipfile.ZipFile(JARVIS_ZIP) as z:
        d = json.loads(z.read(z.namelist()[0]))
    (folder / "data").mkdir(parents=True)
    for split, n in (("train", 20), ("test", 8)):
        rows = [row_from_poscar(p, i) for i, p in sorted(d[split].items())[:n]]
        pq.write_table(rows_to_table(rows), folder / "data" / f"{split}-00000-of-00001.parquet")
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# small jarvis-supercon-3d reference (tests)\n")
    (folder / "build_info.json").write_text(json.dumps({"name": TASK, "version": "1.0.0"}))
    return folder


def predictions(ref: Path, out: Path, shift: float = 0.0, drop: int = 0, extra: bool = False) -> Path:
    """The reference test rows as predictions, fractional coordinates shifted by ``shift``
    (a different content, still matching), the last ``drop`` rows left out, an unknown id
    added with ``extra``."""
    import pyarrow as pa

    t = pq.read_table(ref / "data" / "test-00000-of-00001.parquet").select(["id", "species", "frac_coords",
                                                                             "lattice"])
    rows = t.to_pylist()
    for r in rows:
        r["frac_coords"] = [[(x + shift) % 1.0 for x in xyz] for xyz in r["frac_coords"]]
    if drop:
        rows = rows[:-drop]
    if extra:
        rows.append(dict(rows[0], id="not-a-test-id"))
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out


def publish_reference(hub: HubServer, ref: Path) -> None:
    """Publish with the project's publisher, in a client process (HF_ENDPOINT, no offline mode)."""
    from dismai_data.hub.publish import publisher_token

    code = f"""
    import os
    from dismai_data.hub.publish import publish_dataset
    publish_dataset({str(ref)!r}, "dismai/{TASK}", endpoint=os.environ["HF_ENDPOINT"], token=os.environ["HF_TOKEN"])
    """
    run_client(hub, code, ref.parent / "publisher-home", publisher_token(hub.storage))


def start_hub(storage: Path, worker: bool, lease: float = 120) -> HubServer:
    old = {k: os.environ.get(k) for k in ("DISMAI_LEADERBOARD_WORKER", "DISMAI_LEADERBOARD_LEASE_S")}
    os.environ["DISMAI_LEADERBOARD_WORKER"] = "1" if worker else "0"
    os.environ["DISMAI_LEADERBOARD_LEASE_S"] = str(lease)
    try:
        return HubServer(storage).start()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def dismai(hub: HubServer, home: Path, token: str | None, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    env = client_env(hub, home, token)
    return subprocess.run([PY, "-m", "dismai_data.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def lb_rows(hub: HubServer) -> list[dict]:
    st, _, body = hub.request("GET", "/api/leaderboard")
    assert st == 200
    return json.loads(body)["rows"]


def wait_status(hub: HubServer, sid: str, states=("scored", "failed"), timeout: float = 240) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, _, body = hub.request("GET", f"/api/leaderboard/submissions/{sid}")
        assert st == 200, body
        out = json.loads(body)
        if out["status"] in states:
            return out
        time.sleep(0.5)
    raise AssertionError(f"{sid} not {states} after {timeout} s: {out}\n{hub.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> Path:
    return reference_folder(tmp_path_factory.mktemp("lbref") / TASK)


@pytest.fixture(scope="module")
def hub_on(tmp_path_factory, ref):
    """A hub that runs its own scoring worker."""
    server = start_hub(tmp_path_factory.mktemp("lbhub") / "hub", worker=True)
    server.tokens = {"carol": server.token("carol", "write"), "dave": server.token("dave", "write"),
                     "carol_read": server.token("carol", "read")}
    publish_reference(server, ref)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hub_off(tmp_path_factory, ref):
    """A hub without a worker: the tests run ``dismai leaderboard worker`` themselves."""
    server = start_hub(tmp_path_factory.mktemp("lbhub-off") / "hub", worker=False)
    server.tokens = {"erin": server.token("erin", "write")}
    publish_reference(server, ref)
    yield server
    server.stop()


# ---------------------------------------------------------------------------- tests
def test_submit_scored_by_the_hub_worker_then_duplicate_and_rescore(hub_on, ref, tmp_path):
    home = tmp_path / "home"
    preds = predictions(ref, tmp_path / "p" / "exact.parquet")
    proc = dismai(hub_on, home, hub_on.tokens["carol"], "submit", "--task", TASK, "--predictions", str(preds),
                  "--model-name", "Copycat 1", "--notes", "reference rows as predictions", "--wait",
                  "--timeout", "240")
    assert proc.returncode == 0, proc.stderr[-3000:] + hub_on.log.read_text()[-3000:]
    out = last_json(proc)
    assert f"leaderboard: {hub_on.url}/leaderboard" in proc.stderr
    assert out["status"] == "scored" and out["duplicate"] is False
    row = out["row"]
    assert row["task"] == TASK and row["model_name"] == "Copycat 1" and row["submitter"] == "carol"
    assert row["predictions_repo"] == f"carol/Copycat-1-{TASK}-predictions"
    assert len(row["predictions_commit"]) == 40 and row["dataset_repo"] == f"dismai/{TASK}"
    assert row["dataset_revision"] == "v1.0.0" and len(row["dataset_commit"]) == 40
    assert row["evaluation_version"] and row["submitted_at"] and row["scored_at"]
    m = row["metrics"]
    assert m["match_rate"]["value"] == 1.0 and m["percent_failed"]["value"] == 0.0
    for k in ("rmse", "mae_a", "mae_gamma", "kld_a", "kld_gamma"):
        assert k in m and m[k]["value"] is not None
    assert m["mae_a"]["value"] < 1e-6 and m["mae_a"]["error_low"] is not None
    sid = out["submission_id"]

    # the rows load with the stock datasets client
    code = """
    import json, datasets
    ds = datasets.load_dataset("dismai/leaderboard", split="train")
    print(json.dumps([ds[i]["submission_id"] for i in range(len(ds))]))
    """
    assert last_json(run_client(hub_on, code, tmp_path / "c1")) .count(sid) == 1

    # the same predictions again (another model name): recognised, not scored twice
    proc = dismai(hub_on, home, hub_on.tokens["carol"], "submit", "--task", TASK, "--predictions", str(preds),
                  "--model-name", "Copycat again")
    assert proc.returncode == 0, proc.stderr[-3000:]
    dup = last_json(proc)
    assert dup["duplicate"] is True and dup["submission_id"] == sid and dup["status"] == "scored"
    assert "already submitted" in proc.stderr and sid in proc.stderr
    assert [r["submission_id"] for r in lb_rows(hub_on)].count(sid) == 1

    # re-scoring gives identical numbers
    proc = dismai(hub_on, home, None, "leaderboard", "rescore", sid, "--storage", str(hub_on.storage),
                  "--endpoint", hub_on.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    from dismai_data.physics.cpu import hardware

    assert last_json(proc) == {"submission_id": sid, "identical": True, "agree": True, "criterion": "rounding",
                               "scored_on": "this hub's worker", "rescored_on": hardware(), "differences": {}}

    # the page lists it
    st, hdr, page = hub_on.request("GET", "/leaderboard")
    assert st == 200 and b"Copycat 1" in page and b'data-task="jarvis-supercon-3d"' in page
    assert "script-src 'sha256-" in hdr["Content-Security-Policy"]


def test_two_submissions_at_once(hub_on, ref, tmp_path):
    p1 = predictions(ref, tmp_path / "a" / "shift1.parquet", shift=0.01)
    p2 = predictions(ref, tmp_path / "b" / "shift2.parquet", shift=0.02, drop=0)
    results = {}

    def go(name, user, path):
        code = f"""
        import json, os
        from dismai_data.leaderboard import submit_and_wait
        out = submit_and_wait(os.environ["HF_ENDPOINT"], os.environ["HF_TOKEN"], {TASK!r}, {str(path)!r},
                              {name!r}, timeout=240)
        print(json.dumps(out))
        """
        results[name] = last_json(run_client(hub_on, code, tmp_path / name, hub_on.tokens[user], timeout=400))

    threads = [threading.Thread(target=go, args=("Shifty A", "carol", p1)),
               threading.Thread(target=go, args=("Shifty B", "dave", p2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {"Shifty A", "Shifty B"}
    ids = {r["submission_id"] for r in results.values()}
    assert len(ids) == 2
    rows = lb_rows(hub_on)
    for r in results.values():
        assert r["status"] == "scored" and r["duplicate"] is False
        assert [x["submission_id"] for x in rows].count(r["submission_id"]) == 1
        assert r["row"]["metrics"]["match_rate"]["value"] == 1.0
    assert {results["Shifty A"]["row"]["submitter"], results["Shifty B"]["row"]["submitter"]} == {"carol", "dave"}


@pytest.mark.parametrize("case", ["unknown-task", "missing-ids", "extra-ids", "not-a-structure"])
def test_bad_submissions_are_rejected_before_upload(hub_on, ref, tmp_path, case):
    task, model = TASK, f"Bad {case}"
    if case == "unknown-task":
        preds, task = predictions(ref, tmp_path / "p.parquet"), "perov-6"
    elif case == "missing-ids":
        preds = predictions(ref, tmp_path / "p.parquet", drop=2)
    elif case == "extra-ids":
        preds = predictions(ref, tmp_path / "p.parquet", extra=True)
    else:
        preds = tmp_path / "p.parquet"
        import pyarrow as pa

        pq.write_table(pa.table({"id": ["x"], "species": [["Xx"]], "frac_coords": [[[0.0, 0.0, 0.0]]],
                                 "lattice": [[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]]}), preds)
    before = len(lb_rows(hub_on))
    proc = dismai(hub_on, tmp_path / "home", hub_on.tokens["carol"], "submit", "--task", task, "--predictions",
                  str(preds), "--model-name", model)
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr
    assert "Traceback" not in err
    if case == "unknown-task":
        assert "--task" in err and "perov-6" in err and "jarvis-supercon-3d" in err
    elif case == "missing-ids":
        assert "2 of the 8 ids" in err and "have no prediction" in err and "add a row for every test id" in err
    elif case == "extra-ids":
        assert "1 prediction ids are not in split 'test'" in err and "not-a-test-id" in err
    else:
        assert "none of the 1 rows is a valid structure" in err
    # nothing uploaded, nothing queued
    st, _, _ = hub_on.request("GET", f"/api/datasets/carol/Bad-{case}-{task}-predictions")
    assert st == 404
    assert len(lb_rows(hub_on)) == before


def test_submission_api_checks_fields(hub_on, ref, tmp_path):
    st, _, body = hub_on.request("POST", "/api/leaderboard/submissions", {"task": TASK})
    assert st == 401
    tok = hub_on.tokens["carol"]
    commit = _upload_raw(hub_on, tmp_path, "carol", "api-check", predictions(ref, tmp_path / "a.parquet"))
    good = {"task": TASK, "predictions_repo": "carol/api-check", "predictions_commit": commit,
            "predictions_path": "predictions/p.parquet", "model_name": "X"}
    cases = [({"task": "nope"}, "task"), ({"predictions_commit": "0" * 40}, "predictions_commit"),
             ({"predictions_repo": "carol/nothing-here"}, "predictions_repo"), ({"model_name": ""}, "model_name"),
             ({"model_repo": "carol/no-such-model"}, "model_repo"),
             ({"predictions_path": "predictions/other.parquet"}, "predictions_path")]
    for change, field in cases:
        st, hdr, body = hub_on.request("POST", "/api/leaderboard/submissions", dict(good, **change), token=tok)
        assert st == 400 and json.loads(body)["field"] == field, (change, body)
        assert f"field '{field}'" in hdr["X-Error-Message"]
    # another user may not submit carol's predictions; a read token may not submit at all
    st, _, body = hub_on.request("POST", "/api/leaderboard/submissions", good, token=hub_on.tokens["dave"])
    assert st == 403
    st, _, body = hub_on.request("POST", "/api/leaderboard/submissions", good, token=hub_on.tokens["carol_read"])
    assert st == 403
    st, _, body = hub_on.request("GET", "/api/leaderboard/submissions/sub-00000000000000000000")
    assert st == 404


def _upload_raw(hub: HubServer, tmp_path: Path, user: str, name: str, preds: Path) -> str:
    code = f"""
    import json
    from huggingface_hub import HfApi
    api = HfApi()
    api.create_repo("{user}/{name}", repo_type="dataset", exist_ok=True)
    info = api.upload_file(path_or_fileobj={str(preds)!r}, path_in_repo="predictions/p.parquet",
                           repo_id="{user}/{name}", repo_type="dataset")
    print(json.dumps(info.oid))
    """
    return last_json(run_client(hub, code, tmp_path / f"h-{name}", hub.tokens[user]))


def _enqueue_raw(hub: HubServer, tmp_path: Path, user: str, name: str, preds: Path) -> str:
    """Upload predictions and POST the submission directly (no client-side validation)."""
    commit = _upload_raw(hub, tmp_path, user, name, preds)
    st, _, body = hub.request("POST", "/api/leaderboard/submissions",
                              {"task": TASK, "predictions_repo": f"{user}/{name}", "predictions_commit": commit,
                               "predictions_path": "predictions/p.parquet", "model_name": name},
                              token=hub.tokens[user])
    assert st == 202, body
    return json.loads(body)["submission_id"]


def test_worker_killed_mid_scoring_resumes(hub_off, ref, tmp_path):
    sid = _enqueue_raw(hub_off, tmp_path, "erin", "killme", predictions(ref, tmp_path / "k.parquet", shift=0.03))
    assert wait_status(hub_off, sid, ("queued",), 5)["status"] == "queued"
    env = client_env(hub_off, tmp_path / "w")
    cmd = [PY, "-m", "dismai_data.cli", "leaderboard", "worker", "--storage", str(hub_off.storage), "--endpoint",
           hub_off.url, "--lease", "2"]
    w = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_status(hub_off, sid, ("scoring",), 60)
        time.sleep(0.5)
    finally:
        os.killpg(w.pid, signal.SIGKILL)  # the worker and its scoring child, mid-scoring
        w.wait()
    assert (hub_off.storage / "leaderboard" / "claimed" / sid).exists()
    assert sid not in [r["submission_id"] for r in lb_rows(hub_off)]
    proc = subprocess.run(cmd + ["--once"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = wait_status(hub_off, sid, timeout=5)
    assert out["status"] == "scored" and out["row"]["attempts"] == 2
    assert [r["submission_id"] for r in lb_rows(hub_off)].count(sid) == 1
    # a second worker run finds nothing to do and duplicates nothing
    proc = subprocess.run(cmd + ["--once"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "finished 0 submissions" in proc.stderr
    assert [r["submission_id"] for r in lb_rows(hub_off)].count(sid) == 1
    done = json.loads((hub_off.storage / "leaderboard" / "done" / sid).read_text())
    assert done["status"] == "scored" and done["attempts"] == 2


def test_failed_scorings_are_recorded_with_their_reason(hub_off, ref, tmp_path):
    from dismai_data.leaderboard.worker import Worker

    # predictions with an id the reference does not have (bypassing the client's check)
    bad = _enqueue_raw(hub_off, tmp_path, "erin", "extra-id", predictions(ref, tmp_path / "x.parquet", extra=True))
    w = Worker(hub_off.storage, hub_off.url, lease_s=30, poll_s=0.2)
    rec = w.run_one()
    assert rec["status"] == "failed" and "not in split 'test'" in rec["reason"] and "not-a-test-id" in rec["reason"]
    # scoring that runs past the timeout
    slow = _enqueue_raw(hub_off, tmp_path, "erin", "too-slow", predictions(ref, tmp_path / "s.parquet", shift=0.04))
    w = Worker(hub_off.storage, hub_off.url, lease_s=30, timeout_s=0.1, poll_s=0.2)
    rec = w.run_one()
    assert rec["status"] == "failed" and rec["reason"].startswith("timeout: scoring ran longer than")
    rows = {r["submission_id"]: r for r in lb_rows(hub_off)}
    assert rows[bad]["status"] == "failed" and "not-a-test-id" in rows[bad]["reason"]
    assert rows[slow]["status"] == "failed" and "timeout" in rows[slow]["reason"]
    assert rows[slow]["model_name"] == "too-slow" and rows[slow]["predictions_commit"]
    st, _, page = hub_off.request("GET", "/leaderboard")
    assert b'id="failed-table"' in page and b"not-a-test-id" in page


def test_queue_claims_are_exclusive_and_stale_claims_return(tmp_path):
    from dismai_data.leaderboard.queue import Queue

    q = Queue(tmp_path)
    job, created = q.enqueue({"task": TASK, "content_sha256": "a" * 64, "model_name": "m"})
    again, created2 = q.enqueue({"task": TASK, "content_sha256": "a" * 64, "model_name": "other"})
    assert created and not created2 and again["id"] == job["id"] and again["model_name"] == "m"
    other, _ = q.enqueue({"task": "perov-5", "content_sha256": "a" * 64, "model_name": "m"})
    assert other["id"] != job["id"]  # same content, another task: a different submission
    got = [q.claim("w1"), q.claim("w2"), q.claim("w3")]
    assert sorted(g[0]["id"] for g in got[:2]) == sorted([job["id"], other["id"]]) and got[2] is None
    assert q.recover(lease_s=60) == []
    old = time.time() - 120
    os.utime(q.root / "claimed" / job["id"], (old, old))
    assert q.recover(lease_s=60) == [job["id"]]
    j, claim = q.claim("w4")
    assert j["id"] == job["id"] and claim["attempts"] == 2
    q.finish(j["id"], {"status": "scored"})
    assert q.state(j["id"])[0] == "scored" and q.counts()["claimed"] == 1


# ---------------------------------------------------------------------------- privacy
# what one identity can read of the leaderboard through the stock clients and the hub's
# pages: the dataset (load_dataset at main, and the parquet of every commit in its history
# with hf_hub_download, the commit titles), the API, the page, the submission status, the
# dataset viewer's preview and the search
LEAK_PROBE = """
import json, os, sys
import datasets
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError
import pyarrow.parquet as pq
tok = os.environ.get("HF_TOKEN") or False
api = HfApi(token=tok)
out = {"loaded": [], "history": [], "titles": []}
try:
    ds = datasets.load_dataset("dismai/leaderboard", split="train")
    out["loaded"] = [[ds[i]["submission_id"], ds[i]["model_name"], ds[i]["submitter"], ds[i]["predictions_repo"]]
                     for i in range(len(ds))]
except Exception as e:
    out["loaded"] = type(e).__name__
for c in api.list_repo_commits("dismai/leaderboard", repo_type="dataset"):
    out["titles"].append(c.title + " " + (c.message or ""))
    if api.file_exists("dismai/leaderboard", "data/leaderboard.parquet", repo_type="dataset", revision=c.commit_id):
        p = hf_hub_download("dismai/leaderboard", "data/leaderboard.parquet", repo_type="dataset",
                            revision=c.commit_id, token=tok, cache_dir=sys.argv[1] + "/" + c.commit_id)
        out["history"] += [[r["submission_id"], r["model_name"], r["predictions_repo"]]
                           for r in pq.read_table(p).to_pylist()]
out["tree"] = [f.path for f in api.list_repo_tree("dismai/leaderboard", repo_type="dataset", recursive=True)]
print(json.dumps(out))
"""


def leaderboard_as(hub: HubServer, home: Path, token: str | None, sid: str) -> dict:
    """Everything ``token`` (None: anonymous) can read about the leaderboard, as text and ids."""
    import uuid

    home = home / uuid.uuid4().hex  # fresh caches: a client falls back to what it cached before
    proc = subprocess.run([PY, "-c", LEAK_PROBE, str(home / "dl")], env=client_env(hub, home, token),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = last_json(proc)
    page = hub.request("GET", "/leaderboard", token=token)[2].decode()
    api = json.loads(hub.request("GET", "/api/leaderboard", token=token)[2])
    st, _, status = hub.request("GET", f"/api/leaderboard/submissions/{sid}", token=token)
    viewer = hub.request("GET", "/datasets/dismai/leaderboard", token=token)[2].decode()
    commits = hub.request("GET", "/datasets/dismai/leaderboard/commits/main", token=token)[2].decode()
    search = hub.request("GET", "/api/datasets?search=SecretSauce", token=token)[2].decode()
    return {"dataset": out, "page": page, "api": [r["submission_id"] for r in api["rows"]], "status": st,
            "status_body": status.decode(), "viewer": viewer, "commits_page": commits, "search": search}


def assert_hidden(seen: dict, sid: str, words: tuple[str, ...], who: str) -> None:
    d = seen["dataset"]
    assert sid not in json.dumps(d), (who, d)
    for w in words:
        for k in ("page", "viewer", "commits_page", "search"):
            assert w not in seen[k], (who, k, w)
        assert w not in json.dumps(d), (who, w, d)
    assert sid not in seen["api"] and sid not in seen["page"], who
    assert seen["status"] == 404 and "SecretSauce" not in seen["status_body"], who


def test_private_predictions_rows_are_readable_only_with_access(hub_on, ref, tmp_path):
    """A private predictions repo (create_repo(private=True), then ``dismai submit``) is scored,
    but its row is withheld from the public ``dismai/leaderboard`` dataset: anonymous, another
    user and a member of the ``dismai`` org read nothing of it through load_dataset,
    hf_hub_download of any commit, the commit titles, the page, the API, the status, the
    viewer or the search; its owner sees it on the page, in the API and the status. Made
    public with update_repo_settings it is published for everyone; made private again it is
    purged from the dataset's whole history; public rows stay as they were throughout."""
    from dismai_data.hub.publish import publisher_token

    owner, other = hub_on.tokens["carol"], hub_on.tokens["dave"]
    member = publisher_token(hub_on.storage)  # may write dismai/leaderboard, not read carol's repos
    repo = f"carol/SecretSauce-{TASK}-predictions"
    words = ("SecretSauce", repo)
    run_client(hub_on, f"""
    from huggingface_hub import HfApi
    HfApi().create_repo({repo!r}, repo_type="dataset", private=True)
    """, tmp_path / "c", owner)
    # a public row of another user, with the public rows of the earlier tests: kept as they are throughout
    open_preds = predictions(ref, tmp_path / "p" / "open.parquet", shift=0.06)
    proc = dismai(hub_on, tmp_path / "home-o", other, "submit", "--task", TASK, "--predictions", str(open_preds),
                  "--model-name", "OpenModel", "--wait", "--timeout", "240")
    assert proc.returncode == 0, proc.stderr[-3000:]
    before = {r["submission_id"] for r in lb_rows(hub_on)}
    assert last_json(proc)["submission_id"] in before
    preds = predictions(ref, tmp_path / "p" / "secret.parquet", shift=0.05)
    proc = dismai(hub_on, tmp_path / "home", owner, "submit", "--task", TASK, "--predictions", str(preds),
                  "--model-name", "SecretSauce", "--wait", "--timeout", "240")
    assert proc.returncode == 0, proc.stderr[-3000:] + hub_on.log.read_text()[-3000:]
    out = last_json(proc)
    sid = out["submission_id"]
    assert out["status"] == "scored" and out["row"]["metrics"]["match_rate"]["value"] == 1.0
    assert out["row"]["predictions_repo"] == repo
    assert json.loads(hub_on.request("GET", f"/api/datasets/{repo}", token=owner)[2])["private"] is True

    def everyone(private: bool):
        for who, tok in (("anon", None), ("dave", other), ("dismai member", member)):
            seen = leaderboard_as(hub_on, tmp_path, tok, sid)
            if private:
                assert_hidden(seen, sid, words, who)
            else:
                assert sid in [r[0] for r in seen["dataset"]["loaded"]] and sid in seen["api"], who
                assert "SecretSauce" in seen["page"] and seen["status"] == 200, who
            assert isinstance(seen["dataset"]["loaded"], list), (who, seen["dataset"]["loaded"])
            public_now = {r[0] for r in seen["dataset"]["loaded"]}
            assert before <= public_now, (who, before - public_now)  # public rows are untouched
        mine = leaderboard_as(hub_on, tmp_path, owner, sid)
        assert "SecretSauce" in mine["page"] and sid in mine["api"] and mine["status"] == 200
        assert json.loads(mine["status_body"])["row"]["metrics"]["match_rate"]["value"] == 1.0
        # the public dataset has it exactly when the repo is public, for its owner too
        assert (sid in [r[0] for r in mine["dataset"]["loaded"]]) is (not private)
        assert (sid in json.dumps(mine["dataset"]["history"])) is (not private)
        return mine

    everyone(private=True)
    # the owner's read token sees it too, the CLI with the token as well
    st, _, body = hub_on.request("GET", f"/api/leaderboard/submissions/{sid}", token=hub_on.tokens["carol_read"])
    assert st == 200 and json.loads(body)["status"] == "scored"
    # the same predictions from another user: refused without naming the earlier submission
    proc = dismai(hub_on, tmp_path / "home-d", other, "submit", "--task", TASK, "--predictions", str(preds),
                  "--model-name", "Lookalike")
    assert proc.returncode == 2 and "409" in proc.stderr and "cannot see" in proc.stderr, proc.stderr[-2000:]
    assert "SecretSauce" not in proc.stderr and "carol" not in proc.stderr and sid not in proc.stderr

    flip = 'from huggingface_hub import HfApi; HfApi().update_repo_settings({repo!r}, repo_type="dataset", {kw})'
    run_client(hub_on, flip.format(repo=repo, kw="private=False"), tmp_path / "c", owner)
    everyone(private=False)
    run_client(hub_on, flip.format(repo=repo, kw='visibility="private"'), tmp_path / "c", owner)
    everyone(private=True)
    run_client(hub_on, flip.format(repo=repo, kw='visibility="public"'), tmp_path / "c", owner)
    everyone(private=False)


def test_withholding_purges_every_commit_and_moves_refs(tmp_path):
    """store.reconcile on the storage alone: a row of a repo made private leaves every commit
    of dismai/leaderboard (on main, under a tag, and those readable only by sha after a
    super-squash), commit titles naming it included; a commit that only added it is dropped
    and its tag moves to the parent; an untouched commit keeps its id; made public again,
    the row is published back in one commit."""
    from dismai_data.hub.storage import HubError, RepoKey, Storage
    from dismai_data.leaderboard import store
    from dismai_data.leaderboard.rows import DATA_PATH, rows_from_bytes, rows_to_bytes

    st = Storage(tmp_path / "hub")
    key = RepoKey("dataset", "dismai", "leaderboard")
    priv = RepoKey("dataset", "a", "priv")
    for k in (key, RepoKey("dataset", "a", "pub"), priv):
        st.create_repo(k, False, "w")
    rows: list[dict] = []

    def add(sid: str, repo: str) -> str:
        rows.append({"submission_id": sid, "status": "scored", "task": "t", "model_name": f"M-{sid}",
                     "predictions_repo": repo, "scored_at": sid})
        data = rows_to_bytes(rows)
        sha = st.put_bytes(data)
        return st.commit(key, "main", [{"op": "add", "path": DATA_PATH, "blob": sha, "size": len(data), "oid": sha,
                                        "lfs": True}], "w", f"scored: M-{sid} on t ({sid})")

    def head_ids() -> list[str]:
        return [r["submission_id"] for r in store.published_rows(st)[1]]

    c1 = add("s1", "a/pub")
    c2 = add("s2", "a/priv")
    st.create_tag(key, "v1", c2)
    c3 = add("s3", "a/pub")
    st.super_squash(key, "main", "w", "squash")  # c1..c3 stay readable by sha
    assert store.reconcile(st) == {"withheld": [], "published": []}
    st.set_private(priv, True)
    assert store.reconcile(st) == {"withheld": ["s2"], "published": []}
    for f in (st.repo_dir(key) / "commits").glob("*.json"):
        c = json.loads(f.read_text())
        assert "s2" not in c["title"] + c["message"]
        e = c["tree"].get(DATA_PATH)
        if e is not None:
            assert "s2" not in [r["submission_id"] for r in rows_from_bytes(st.read_blob(e["blob"]))]
    assert st.resolve(key, c1) == c1
    for gone in (c2, c3):
        with pytest.raises(HubError):
            st.resolve(key, gone)
    assert st.resolve(key, "v1") == c1
    assert head_ids() == ["s1", "s3"]
    assert [r["submission_id"] for r in store.withheld_rows(st.root)] == ["s2"]
    assert store.reconcile(st) == {"withheld": [], "published": []}  # nothing left to do
    st.set_private(priv, False)
    assert store.reconcile(st) == {"withheld": [], "published": ["s2"]}
    assert head_ids() == ["s1", "s3", "s2"] and store.withheld_rows(st.root) == []


def test_shipped_scores_become_a_labelled_row_that_rescore_confirms(hub_on, ref, tmp_path, monkeypatch):
    """Scores computed once by the publisher (scoring too long for the quick start) ship with
    the predictions they are of: the hub takes them from org dismai only, for exactly that
    file and evaluation version; the row says where they were computed; rescore agrees."""
    from dismai_data.hub.publish import publisher_token
    from dismai_data.models import publish

    monkeypatch.setattr(publish, "CHECKPOINTS", tmp_path / "checkpoints")
    b = publish.Baseline("shipcheck", [TASK], f"dismai/{TASK}", shipped=True, generic=False)
    preds = predictions(ref, b.folder / "predictions" / "seed0.parquet", shift=0.25)
    (b.folder / "config.json").write_text('{"baseline": "template"}')
    scores = publish.score_baseline(b, ref.parent)
    (b.folder / "scores.json").write_text(json.dumps(scores))
    f, record = publish.shipped_record(b, TASK)
    assert f == preds and record["predictions_sha256"] == scores[TASK]["predictions_sha256"]

    def submit(token, rec, name, path=f):
        code = f"""
        import json, os
        from dismai_data.leaderboard.client import submit_and_wait, SubmissionError
        try:
            out = submit_and_wait(os.environ["HF_ENDPOINT"], os.environ["HF_TOKEN"], {TASK!r}, {str(path)!r},
                                  {name!r}, timeout=240, shipped=json.loads({json.dumps(json.dumps(rec))}))
        except SubmissionError as exc:
            out = {{"error": str(exc)}}
        print(json.dumps(out, default=str))
        """
        return last_json(run_client(hub_on, code, tmp_path / f"c-{name}", token))

    # not the publisher: refused, naming the field
    out = submit(hub_on.tokens["carol"], record, "Shipped by carol")
    assert "403" in out["error"] and "shipped" in out["error"]
    # scores of other predictions (sha256 differs): refused
    out = submit(publisher_token(hub_on.storage), dict(record, predictions_sha256="0" * 64), "Shipped wrong")
    assert "400" in out["error"] and "predictions_sha256" in out["error"]
    # scores by an evaluation whose numbers for this task have changed since: refused
    out = submit(publisher_token(hub_on.storage), dict(record, evaluation_version="0.1.0"), "Shipped old")
    assert "400" in out["error"] and "0.1.0" in out["error"] and "rescore" in out["error"]
    # the publisher, for this file: a scored row labelled with where the scores were made
    out = submit(publisher_token(hub_on.storage), record, "Shipped check")
    assert out["status"] == "scored", out
    row = out["row"]
    assert row["shipped_from"].startswith(record["hardware"]) and record["command"] in row["shipped_from"]
    assert row["metrics"] == record["metrics"] and row["scored_at"] == record["scored_at"]
    st, _, page = hub_on.request("GET", "/leaderboard")
    assert st == 200 and b'class="badge shipped"' in page
    proc = dismai(hub_on, tmp_path / "home", None, "leaderboard", "rescore", out["submission_id"], "--storage",
                  str(hub_on.storage), "--endpoint", hub_on.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    # the publisher scored in-process and the worker in a single-threaded child: numbers agree
    # to rounding (a near-perfect match's RMSE is rounding noise), not always to the bit
    assert last_json(proc)["agree"] is True and last_json(proc)["differences"] == {}
    assert last_json(proc)["criterion"] == "rounding" and last_json(proc)["scored_on"] == record["hardware"]
    # scores against another reference revision than the hub's: a failed row that says so
    other = predictions(ref, tmp_path / "other" / "seed0.parquet", shift=0.3)
    stale = dict(record, predictions_sha256=hashlib.sha256(other.read_bytes()).hexdigest(), dataset_revision="v0.1-old")
    out = submit(publisher_token(hub_on.storage), stale, "Shipped stale", other)
    assert out["status"] == "failed" and "v0.1-old" in out["row"]["reason"], out


def test_rescore_agreement_is_rounding_not_a_real_difference():
    from dismai_data.leaderboard.cli import _agree

    m = {"rmse": {"value": 2.4511e-07, "n": 8, "unit": "A"}, "match_rate": {"value": 0.5, "n": 8}}
    assert _agree(m, {"rmse": {"value": 2.4505e-07, "n": 8, "unit": "A"}, "match_rate": {"value": 0.5, "n": 8}})
    assert _agree({"x": 0.1234567}, {"x": 0.1234567 * (1 + 1e-9)}) and _agree(None, None)
    assert not _agree({"x": 0.1234}, {"x": 0.1235})          # a real difference
    assert not _agree({"n": 8}, {"n": 7}) and not _agree({"x": 1.0}, {"x": None})
    assert not _agree({"x": 1.0}, {"x": 1.0, "y": 2.0})



def test_rescore_of_a_relaxed_row_from_another_cpu_is_held_to_its_interval():
    """diffcsp-interface's d_all, relaxed on an Intel Xeon (0.5853, interval 0.5321-0.6057) and
    again on an AMD EPYC (0.5839): not equal to rounding, inside the row's interval. Counts and
    metrics outside the interval still disagree; without ``interval`` nothing is relaxed."""
    from dismai_data.leaderboard.cli import _differences, _scored_on
    from dismai_data.physics.cpu import cpu_of, hardware

    def row(d_all, n=2, accepted=2, **extra):
        m = {"d_all": {"value": d_all, "error_low": 0.0532, "error_high": 0.0204, "n": n, "unit": ""},
             "percent_failed": {"value": 98.0, "error_low": None, "error_high": None, "n": 100, "unit": "%"}}
        return {"task": "interface", "status": "scored", "percent_failed": 98.0, "n_accepted": accepted,
                "dataset_commit": "c", "evaluation_version": "0.3.0", "metrics": json.dumps(m), **extra}

    old = row(0.5852863, shipped_from="Intel(R) Xeon(R) Processor, 2 cores, no GPU; 2026-12-06T20:45:50Z; cmd")
    assert _scored_on(old) == "Intel(R) Xeon(R) Processor, 2 cores, no GPU" and _scored_on(row(0.5)) is None
    assert cpu_of(_scored_on(old)) == "Intel(R) Xeon(R) Processor" and cpu_of(hardware()) in hardware()
    assert cpu_of("AMD EPYC (family 26 model 2), 2 cores, no GPU") == "AMD EPYC (family 26 model 2)"
    identical, diffs = _differences(old, row(0.5838503), interval=False)
    assert not identical and set(diffs) == {"d_all"}
    assert _differences(old, row(0.5838503), interval=True) == (False, {})
    assert set(_differences(old, row(0.50), interval=True)[1]) == {"d_all"}            # below 0.5321
    assert set(_differences(old, row(0.61), interval=True)[1]) == {"d_all"}            # above 0.6057
    assert set(_differences(old, row(0.5838503, n=3, accepted=3), interval=True)[1]) == {"d_all", "n_accepted"}
    assert _differences(old, dict(old), interval=False) == (True, {})


def test_a_shipped_score_stays_valid_while_its_task_is_unchanged():
    """Evaluation 0.3.0 changed the interface's relaxation only: a Perov-5 row scored by 0.2.0
    rescores as the same numbers (agrees, and counts as identical), an interface row of 0.2.0 does
    not; the hub and the publisher take shipped scores by the same rule."""
    from dismai_data.evaluation.result import EVALUATION_VERSION, reproduces
    from dismai_data.leaderboard.cli import _differences

    assert EVALUATION_VERSION == "0.3.0"
    assert reproduces("perov-5", "0.2.0") and reproduces("perov-5", "0.3.0") and reproduces("interface", "0.3.0")
    assert not reproduces("interface", "0.2.0") and not reproduces("perov-5", "0.1.0")
    assert not reproduces("perov-5", "0.4.0") and not reproduces("perov-5", "x") and not reproduces("nope", "0.3.0")
    assert not reproduces("perov-5", None)

    def row(task, version):
        return {"task": task, "status": "scored", "percent_failed": 0.0, "n_accepted": 3, "dataset_commit": "c",
                "evaluation_version": version, "metrics": json.dumps({"x": {"value": 0.5, "n": 3}})}

    assert _differences(row("perov-5", "0.2.0"), row("perov-5", EVALUATION_VERSION)) == (True, {})
    assert _differences(row("interface", "0.2.0"), row("interface", EVALUATION_VERSION)) == \
        (False, {"evaluation_version": ("0.2.0", EVALUATION_VERSION)})

def test_reference_is_the_newest_release_not_its_preview():
    from dismai_data.leaderboard.score import _version_key

    tags = ["v1.0", "v1.0-preview", "v0.9", "v1.1-rc1", "v1.0.1"]
    assert sorted(tags, key=_version_key) == ["v0.9", "v1.0-preview", "v1.0", "v1.0.1", "v1.1-rc1"]
    assert max(["v1.0-preview", "v1.0"], key=_version_key) == max(["v1.0", "v1.0-preview"], key=_version_key) == "v1.0"
