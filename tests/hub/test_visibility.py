"""Private repos, made through every client path (create_repo(private=True),
create_repo(visibility="private"), Dataset.push_to_hub(private=True), an organisation's
repo) and switched public -> private -> public with update_repo_settings(private=...) and
update_repo_settings(visibility=...): who sees what, endpoint by endpoint, as anonymous,
another user, a read token of another organisation, a member of the owning organisation,
the owner's read token and the owner. The API checks run through the stock client (one
HfApi per identity); web pages, Xet and LFS endpoints, which no client method reads, are
probed with plain requests (the Xet read grant's scope is test_xet_download's)."""

from __future__ import annotations

import json
import urllib.parse
import uuid

import pytest

from .conftest import last_json, run_client
from .test_leaderboard import leaderboard_as, start_hub

IDENTITIES = ("anon", "bob", "carol_other_org_read", "dan_lab_read", "alice_read", "alice")

# one stock-client probe per (identity, repo): every read API the clients use
PROBE = """
import json, sys
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
tokens = json.loads(sys.argv[1]); repos = json.loads(sys.argv[2])
def attempt(fn):
    try:
        fn()
        return "ok"
    except RepositoryNotFoundError:
        return "404"
    except HfHubHTTPError as e:
        return str(e.response.status_code)
out = {}
for who, tok in tokens.items():
    api = HfApi(token=tok if tok else False)
    for repo_id, rt, fname in repos:
        ns, name = repo_id.split("/")
        lister = {"model": api.list_models, "dataset": api.list_datasets}[rt]
        out[f"{who} {repo_id}"] = {
            "info": attempt(lambda: api.repo_info(repo_id, repo_type=rt)),
            "repo_exists": api.repo_exists(repo_id, repo_type=rt),
            "file_exists": api.file_exists(repo_id, fname, repo_type=rt),
            "revision_exists": api.revision_exists(repo_id, "main", repo_type=rt),
            "resolve": attempt(lambda: hf_hub_download(repo_id, fname, repo_type=rt, token=tok if tok else False,
                                                       cache_dir=sys.argv[3] + "/" + who)),
            "tree": attempt(lambda: list(api.list_repo_tree(repo_id, repo_type=rt, recursive=True))),
            "paths_info": attempt(lambda: api.get_paths_info(repo_id, [fname], repo_type=rt)),
            "refs": attempt(lambda: api.list_repo_refs(repo_id, repo_type=rt)),
            "commits": attempt(lambda: api.list_repo_commits(repo_id, repo_type=rt)),
            "listed_author": repo_id in [r.id for r in lister(author=ns)],
            "listed_search": repo_id in [r.id for r in lister(search=name)],
        }
print(json.dumps(out))
"""
SEEN = {"info": "ok", "repo_exists": True, "file_exists": True, "revision_exists": True, "resolve": "ok",
        "tree": "ok", "paths_info": "ok", "refs": "ok", "commits": "ok", "listed_author": True, "listed_search": True}
HIDDEN = {"info": "404", "repo_exists": False, "file_exists": False, "revision_exists": False, "resolve": "404",
          "tree": "404", "paths_info": "404", "refs": "404", "commits": "404", "listed_author": False,
          "listed_search": False}


@pytest.fixture(scope="module")
def vis(tmp_path_factory):
    root = tmp_path_factory.mktemp("vis")
    hub = start_hub(root / "hub", worker=False)
    hub.tokens = {"anon": None, "alice": hub.token("alice", "write", ("lab",)),
                  "alice_read": hub.token("alice", "read"),
                  "bob": hub.token("bob", "write"), "carol_other_org_read": hub.token("carol", "read", ("other",)),
                  "dan_lab_read": hub.token("dan", "read", ("lab",))}
    hub.root = root
    yield hub
    hub.stop()


def probe(hub, home, repos) -> dict:
    import subprocess
    import sys
    import textwrap

    from .conftest import client_env

    # a fresh download cache each time: on a 404 hf_hub_download falls back to a file it cached earlier
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(PROBE), json.dumps(hub.tokens), json.dumps(repos),
                           str(home / f"dl-{uuid.uuid4().hex}")],
                          env=client_env(hub, home), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return last_json(proc)


def web_and_upload_endpoints(hub, repo_id: str, rt: str, fname: str, tok: str | None) -> dict:
    """What plain requests (a browser, the Xet and LFS upload paths) see of a repo."""
    prefix = "" if rt == "model" else f"{rt}s/"
    ns, name = repo_id.split("/")
    out = {}
    for page in ("", "/tree/main", "/commits/main", "/refs", f"/resolve/main/{fname}"):
        out[f"page{page}"] = hub.request("GET", f"/{prefix}{repo_id}{page}", token=tok)[0]
    out["front_page_lists_it"] = repo_id.encode() in hub.request("GET", "/", token=tok)[2]
    out["type_page_lists_it"] = repo_id.encode() in hub.request("GET", f"/{rt}s", token=tok)[2]
    listing = json.loads(hub.request("GET", f"/api/{rt}s?search={urllib.parse.quote(name)}", token=tok)[2])
    out["api_search"] = repo_id in [r["id"] for r in listing]
    out["xet_token"] = hub.request("GET", f"/api/{rt}s/{repo_id}/xet-write-token/main", token=tok)[0]
    out["xet_read_token"] = hub.request("GET", f"/api/{rt}s/{repo_id}/xet-read-token/main", token=tok)[0]
    batch = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": "ab" * 32, "size": 3}]}
    out["lfs_batch"] = hub.request("POST", f"/{prefix}{repo_id}.git/info/lfs/objects/batch", batch, token=tok)[0]
    return out


def expect_web(visible: bool, who: str) -> dict:
    code = 200 if visible else 404
    writes = 200 if who == "alice" and visible else (403 if visible else 404)
    if who == "anon" and visible:
        writes = 401
    return {"page": code, "page/tree/main": code, "page/commits/main": code, "page/refs": code,
            "page/resolve/main/" + "{fname}": code, "front_page_lists_it": visible, "type_page_lists_it": visible,
            "api_search": visible, "xet_token": writes, "xet_read_token": code, "lfs_batch": writes}


def check(hub, home, repos: list, seen_by: dict[str, set]):
    """repos: [(id, type, file)]; seen_by: repo id -> identities that must see it."""
    got = probe(hub, home, repos)
    for repo_id, rt, fname in repos:
        for who in IDENTITIES:
            visible = who in seen_by[repo_id]
            assert got[f"{who} {repo_id}"] == (SEEN if visible else HIDDEN), (who, repo_id, got[f"{who} {repo_id}"])
            want = {k.replace("{fname}", fname): v for k, v in expect_web(visible, who).items()}
            assert web_and_upload_endpoints(hub, repo_id, rt, fname, hub.tokens[who]) == want, (who, repo_id)


OWNER = {"alice", "alice_read"}
EVERYONE = set(IDENTITIES)


def test_private_repos_from_every_client_path(vis, tmp_path):
    code = """
    from datasets import Dataset
    from huggingface_hub import HfApi
    api = HfApi()
    api.create_repo("alice/p-private", repo_type="dataset", private=True)
    api.upload_file(path_or_fileobj=b"top secret", path_in_repo="s.txt", repo_id="alice/p-private", repo_type="dataset")
    api.create_repo("alice/p-visibility", repo_type="dataset", visibility="private")
    api.upload_file(path_or_fileobj=b"top secret", path_in_repo="s.txt", repo_id="alice/p-visibility",
                    repo_type="dataset")
    Dataset.from_dict({"x": [1, 2, 3]}).push_to_hub("alice/p-push", private=True)
    api.create_repo("lab/p-org", private=True)
    api.upload_file(path_or_fileobj=b"weights", path_in_repo="w.bin", repo_id="lab/p-org")
    api.create_repo("alice/p-public", repo_type="dataset", private=False)
    api.upload_file(path_or_fileobj=b"open", path_in_repo="s.txt", repo_id="alice/p-public", repo_type="dataset")
    print([api.repo_info(r, repo_type=t).private for r, t in (("alice/p-private", "dataset"),
          ("alice/p-visibility", "dataset"), ("alice/p-push", "dataset"), ("lab/p-org", "model"),
          ("alice/p-public", "dataset"))])
    """
    out = run_client(vis, code, tmp_path / "c", vis.tokens["alice"]).stdout.strip().splitlines()[-1]
    assert out == "[True, True, True, True, False]"
    repos = [["alice/p-private", "dataset", "s.txt"], ["alice/p-visibility", "dataset", "s.txt"],
             ["alice/p-push", "dataset", "README.md"], ["lab/p-org", "model", "w.bin"],
             ["alice/p-public", "dataset", "s.txt"]]
    check(vis, tmp_path, repos, {"alice/p-private": OWNER, "alice/p-visibility": OWNER, "alice/p-push": OWNER,
                                 "lab/p-org": OWNER | {"dan_lab_read"}, "alice/p-public": EVERYONE})
    # the dataset's viewer preview and the loader: nothing for others, the rows for the owner
    page = vis.request("GET", "/datasets/alice/p-push", token=vis.tokens["alice"])[2]
    assert b'id="preview"' in page
    load = """
    import json
    from datasets import load_dataset
    try:
        print(json.dumps(list(load_dataset("alice/p-push", split="train")["x"])))
    except Exception as e:
        print(json.dumps(type(e).__name__))
    """
    assert last_json(run_client(vis, load, tmp_path / "l1", vis.tokens["alice_read"])) == [1, 2, 3]
    assert last_json(run_client(vis, load, tmp_path / "l2", vis.tokens["bob"])) == "DatasetNotFoundError"


def test_public_private_public(vis, tmp_path):
    repo = ["alice/flip", "dataset", "s.txt"]
    switch = """
    import sys
    from huggingface_hub import HfApi
    api = HfApi()
    {call}
    print(api.dataset_info("alice/flip").private)
    """
    run_client(vis, """
    from huggingface_hub import HfApi
    api = HfApi()
    api.create_repo("alice/flip", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"was public", path_in_repo="s.txt", repo_id="alice/flip", repo_type="dataset")
    """, tmp_path / "c", vis.tokens["alice"])
    check(vis, tmp_path, [repo], {"alice/flip": EVERYONE})
    for call, private in (('api.update_repo_settings("alice/flip", repo_type="dataset", private=True)', True),
                          ('api.update_repo_settings("alice/flip", repo_type="dataset", visibility="public")', False),
                          ('api.update_repo_settings("alice/flip", repo_type="dataset", visibility="private")', True),
                          ('api.update_repo_settings("alice/flip", repo_type="dataset", private=False)', False)):
        out = run_client(vis, switch.replace("{call}", call), tmp_path / "c", vis.tokens["alice"])
        assert out.stdout.strip().splitlines()[-1] == str(private)
        if call.endswith("private=True)") or call.endswith('visibility="public")'):
            check(vis, tmp_path, [repo], {"alice/flip": OWNER if private else EVERYONE})
    check(vis, tmp_path, [repo], {"alice/flip": EVERYONE})


def test_only_the_owner_changes_visibility(vis, tmp_path):
    code = """
    import json
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    out = []
    for kw in ({"private": True}, {"visibility": "private"}):
        try:
            HfApi().update_repo_settings("alice/p-public", repo_type="dataset", **kw)
            out.append("changed")
        except HfHubHTTPError as e:
            out.append(e.response.status_code)
    print(json.dumps(out))
    """
    assert last_json(run_client(vis, code, tmp_path / "b", vis.tokens["bob"])) == [403, 403]
    assert last_json(run_client(vis, code, tmp_path / "r", vis.tokens["alice_read"])) == [403, 403]
    assert json.loads(vis.request("GET", "/api/datasets/alice/p-public")[2])["private"] is False


def test_private_predictions_leave_the_leaderboard(vis, tmp_path):
    """A scored row whose predictions repo is made private disappears from /leaderboard and
    /api/leaderboard for everyone but those who may read the repo, and comes back with it."""
    from dismai_data.hub.publish import publisher_token

    run_client(vis, """
    from huggingface_hub import HfApi
    api = HfApi()
    api.create_repo("alice/preds", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"x", path_in_repo="p.parquet", repo_id="alice/preds", repo_type="dataset")
    """, tmp_path / "c", vis.tokens["alice"])
    row = {"submission_id": "hidden-1", "status": "scored", "task": "perov-5", "model_name": "SecretModel",
           "submitter": "alice", "predictions_repo": "alice/preds", "predictions_commit": "0" * 40,
           "dataset_repo": "dismai/perov-5", "dataset_revision": "v1.0", "relaxed": False,
           "metrics": json.dumps({"match_rate": {"value": 0.5, "error_low": None, "error_high": None}})}
    run_client(vis, """
    from huggingface_hub import HfApi
    api = HfApi()
    api.create_repo("bob/open-preds", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"x", path_in_repo="p.parquet", repo_id="bob/open-preds", repo_type="dataset")
    """, tmp_path / "b", vis.tokens["bob"])
    other = dict(row, submission_id="open-1", model_name="OpenModel", submitter="bob",
                 predictions_repo="bob/open-preds")
    run_client(vis, f"""
    import os
    from huggingface_hub import HfApi
    from dismai_data.leaderboard.rows import append_row
    append_row(HfApi(token=os.environ["HF_TOKEN"]), {other!r})
    append_row(HfApi(token=os.environ["HF_TOKEN"]), {row!r})
    """, tmp_path / "p", publisher_token(vis.storage))

    def shown(tok):
        page = vis.request("GET", "/leaderboard", token=tok)[2]
        api = json.loads(vis.request("GET", "/api/leaderboard", token=tok)[2])
        return b"SecretModel" in page, any(r["model_name"] == "SecretModel" for r in api["rows"])

    def in_dataset(tok) -> bool:
        """Whether the row is anywhere in dismai/leaderboard (load_dataset, any commit's file
        or title) for ``tok``, through the stock clients."""
        seen = leaderboard_as(vis, tmp_path, tok, "hidden-1")["dataset"]
        assert isinstance(seen["loaded"], list) and "open-1" in [r[0] for r in seen["loaded"]], seen
        return "hidden-1" in json.dumps(seen) or "SecretModel" in json.dumps(seen)

    def call(code):
        run_client(vis, "from huggingface_hub import HfApi; api = HfApi(); " + code, tmp_path / "c",
                   vis.tokens["alice"])

    assert shown(None) == (True, True) and in_dataset(None)
    call('api.update_repo_settings("alice/preds", repo_type="dataset", private=True)')
    for who in ("anon", "bob", "carol_other_org_read", "dan_lab_read"):
        assert shown(vis.tokens[who]) == (False, False), who
    assert shown(vis.tokens["alice_read"]) == (True, True)
    # gone from the public dataset for everyone (the dismai org that holds it included)
    for tok in (None, vis.tokens["bob"], publisher_token(vis.storage), vis.tokens["alice"]):
        assert not in_dataset(tok)
    call('api.update_repo_settings("alice/preds", repo_type="dataset", visibility="public")')
    assert shown(None) == (True, True) and in_dataset(vis.tokens["bob"])
    # renamed, the row names a repo that is not there: off the page and out of the dataset;
    # renamed back, it returns
    call('api.move_repo("alice/preds", "alice/preds-renamed", repo_type="dataset")')
    assert shown(None) == (False, False) and not in_dataset(None)
    call('api.move_repo("alice/preds-renamed", "alice/preds", repo_type="dataset")')
    assert shown(None) == (True, True) and in_dataset(None)


def test_writes_by_others_do_not_reveal_a_private_repo(vis, tmp_path):
    """Another user's write calls answer 404 on a private repo (as if it did not exist) and
    403 on a public one; nothing changes in either."""
    code = """
    import json
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    api = HfApi()
    out = {}
    for repo in ("alice/p-private", "alice/p-public"):
        calls = {
            "upload_file": lambda: api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo,
                                                   repo_type="dataset"),
            "create_branch": lambda: api.create_branch(repo, branch="b", repo_type="dataset"),
            "create_tag": lambda: api.create_tag(repo, tag="t", repo_type="dataset"),
            "update_repo_settings": lambda: api.update_repo_settings(repo, repo_type="dataset", private=False),
            "super_squash_history": lambda: api.super_squash_history(repo, repo_type="dataset"),
            "move_repo": lambda: api.move_repo(from_id=repo, to_id="bob/stolen", repo_type="dataset"),
            "delete_repo": lambda: api.delete_repo(repo, repo_type="dataset"),
        }
        for name, fn in calls.items():
            try:
                fn()
                out[f"{repo} {name}"] = "done"
            except HfHubHTTPError as e:
                out[f"{repo} {name}"] = e.response.status_code
    print(json.dumps(out))
    """
    before = {r: json.loads(vis.request("GET", f"/api/datasets/{r}/refs", token=vis.tokens["alice"])[2])
              for r in ("alice/p-private", "alice/p-public")}
    out = last_json(run_client(vis, code, tmp_path / "b", vis.tokens["bob"]))
    for key, status in out.items():
        assert status == (404 if "p-private" in key else 403), (key, status)
    for r, refs in before.items():
        assert json.loads(vis.request("GET", f"/api/datasets/{r}/refs", token=vis.tokens["alice"])[2]) == refs
    assert json.loads(vis.request("GET", "/api/datasets/alice/p-private", token=vis.tokens["alice"])[2])["private"]
    assert vis.request("GET", "/api/datasets/bob/stolen", token=vis.tokens["bob"])[0] == 404
