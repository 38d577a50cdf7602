"""The client contract: every keyword argument of the HfApi methods for the operations this
hub serves, with what the hub does with it:

* ``honoured``: sent to the hub and acted on; the named test calls the method with it
  through the stock client (huggingface_hub 2.4.0, only HF_ENDPOINT and a token set),
* ``refused``: sent to the hub and answered with a 4xx whose message names the option; the
  named test checks that through the stock client,
* ``client-side``: never reaches the hub (or only as the Authorization header / a local
  setting); the entry says why.

``test_table_matches_the_pinned_client`` fails when the installed client grows, renames or
drops an argument (the table then needs a decision), and ``test_every_entry_is_exercised``
fails when an honoured or refused entry's test does not call that method with that
argument. Pull requests and discussions are refused (see server.PR_REFUSAL).
"""

from __future__ import annotations

import inspect
import json
import os

import pytest

from .conftest import last_json, run_client

H, R = "honoured", "refused"
AUTH = ("client-side", "sent as the Authorization header; what a token may see and change is test_visibility's")
POS = {"repo_id", "repo_type", "path_in_repo", "path_or_fileobj", "operations", "filename", "branch", "tag", "paths",
       "from_id", "to_id", "folder_path", "discussion_num", "title", "revision", "commit_message"}


def cs(why: str) -> tuple[str, str]:
    return ("client-side", why)


HONOURED_T = "test_honoured_options"
REFUSED_T = "test_refused_options"
COMMIT_KW = {"commit_message": (H, HONOURED_T), "commit_description": (H, HONOURED_T),
             "revision": (H, HONOURED_T), "parent_commit": (H, HONOURED_T), "create_pr": (R, REFUSED_T),
             "token": AUTH, "repo_type": (H, HONOURED_T)}

CONTRACT: dict[str, dict[str, tuple[str, str]]] = {
    "create_repo": {"repo_id": (H, HONOURED_T), "token": AUTH, "private": (H, "test_visibility"),
                    "visibility": (H, "test_visibility"), "repo_type": (H, HONOURED_T),
                    "exist_ok": (H, HONOURED_T), "resource_group_id": (R, REFUSED_T), "region": (R, REFUSED_T),
                    "space_sdk": (H, HONOURED_T), "space_hardware": (R, REFUSED_T),
                    "space_sleep_time": (R, REFUSED_T), "space_secrets": (R, REFUSED_T),
                    "space_variables": (R, REFUSED_T), "space_volumes": (R, REFUSED_T),
                    "space_template": (R, REFUSED_T)},
    "delete_repo": {"repo_id": (H, HONOURED_T), "token": AUTH, "repo_type": (H, HONOURED_T),
                    "missing_ok": cs("the client swallows the 404 the hub answers for a missing repo; "
                                     "test_honoured_options calls it with missing_ok=True")},
    "update_repo_settings": {"repo_id": (H, "test_visibility"), "gated": (R, REFUSED_T),
                             "private": (H, "test_visibility"), "visibility": (H, "test_visibility"),
                             "token": AUTH, "repo_type": (H, "test_visibility")},
    "move_repo": {"from_id": (H, HONOURED_T), "to_id": (H, HONOURED_T), "repo_type": (H, HONOURED_T),
                  "token": AUTH},
    "repo_info": {"repo_id": (H, HONOURED_T), "revision": (H, HONOURED_T), "repo_type": (H, HONOURED_T),
                  "timeout": cs("the client's own HTTP timeout"), "files_metadata": (H, HONOURED_T),
                  "expand": (H, HONOURED_T), "token": AUTH},
    "model_info": {"repo_id": (H, HONOURED_T), "revision": (H, HONOURED_T),
                   "timeout": cs("the client's own HTTP timeout"), "securityStatus": (R, REFUSED_T),
                   "files_metadata": (H, HONOURED_T), "expand": (H, HONOURED_T), "token": AUTH},
    "dataset_info": {"repo_id": (H, HONOURED_T), "revision": (H, HONOURED_T),
                     "timeout": cs("the client's own HTTP timeout"), "files_metadata": (H, HONOURED_T),
                     "expand": (H, HONOURED_T), "token": AUTH},
    "repo_exists": {"repo_id": (H, HONOURED_T), "repo_type": (H, HONOURED_T), "token": AUTH},
    "revision_exists": {"repo_id": (H, HONOURED_T), "revision": (H, HONOURED_T), "repo_type": (H, HONOURED_T),
                        "token": AUTH},
    "file_exists": {"repo_id": (H, HONOURED_T), "filename": (H, HONOURED_T), "repo_type": (H, HONOURED_T),
                    "revision": (H, HONOURED_T), "token": AUTH},
    "list_repo_files": {"repo_id": (H, HONOURED_T), "revision": (H, HONOURED_T), "repo_type": (H, HONOURED_T),
                        "token": AUTH},
    "list_repo_tree": {"repo_id": (H, HONOURED_T), "path_in_repo": (H, HONOURED_T), "recursive": (H, HONOURED_T),
                       "expand": (H, HONOURED_T), "revision": (H, HONOURED_T), "repo_type": (H, HONOURED_T),
                       "token": AUTH},
    "get_paths_info": {"repo_id": (H, HONOURED_T), "paths": (H, HONOURED_T), "expand": (H, HONOURED_T),
                       "revision": (H, HONOURED_T), "repo_type": (H, HONOURED_T), "token": AUTH},
    "list_repo_refs": {"repo_id": (H, HONOURED_T), "repo_type": (H, HONOURED_T),
                       "include_pull_requests": (H, HONOURED_T), "token": AUTH},
    "list_repo_commits": {"repo_id": (H, HONOURED_T), "repo_type": (H, HONOURED_T), "token": AUTH,
                          "revision": (H, HONOURED_T), "formatted": (H, HONOURED_T)},
    "super_squash_history": {"repo_id": (H, HONOURED_T), "branch": (H, HONOURED_T),
                             "commit_message": (H, HONOURED_T), "repo_type": (H, HONOURED_T), "token": AUTH},
    "create_commit": {"repo_id": (H, HONOURED_T), "operations": (H, HONOURED_T), **COMMIT_KW,
                      "num_threads": cs("the client's upload threads"),
                      "run_as_future": cs("runs the call in a client thread"), "_hot_reload": (R, REFUSED_T)},
    "upload_file": {"path_or_fileobj": (H, HONOURED_T), "path_in_repo": (H, HONOURED_T),
                    "repo_id": (H, HONOURED_T), **COMMIT_KW, "run_as_future": cs("runs the call in a client thread"),
                    "_hot_reload": (R, REFUSED_T)},
    "upload_folder": {"repo_id": (H, HONOURED_T), "folder_path": (H, HONOURED_T), "path_in_repo": (H, HONOURED_T),
                      **COMMIT_KW, "allow_patterns": cs("filters the local files to upload"),
                      "ignore_patterns": cs("filters the local files to upload"),
                      "delete_patterns": (H, HONOURED_T), "run_as_future": cs("runs the call in a client thread")},
    "delete_file": {"path_in_repo": (H, HONOURED_T), "repo_id": (H, HONOURED_T), **COMMIT_KW},
    "delete_files": {"repo_id": (H, HONOURED_T), "delete_patterns": (H, HONOURED_T), **COMMIT_KW},
    "delete_folder": {"path_in_repo": (H, HONOURED_T), "repo_id": (H, HONOURED_T), **COMMIT_KW},
    "preupload_lfs_files": {"repo_id": (H, HONOURED_T), "additions": (H, HONOURED_T), "token": AUTH,
                            "repo_type": (H, HONOURED_T), "revision": (H, HONOURED_T), "create_pr": (R, REFUSED_T),
                            "num_threads": cs("the client's upload threads"),
                            "free_memory": cs("the client frees its buffers"),
                            "gitignore_content": (H, HONOURED_T)},
    "create_branch": {"repo_id": (H, HONOURED_T), "branch": (H, HONOURED_T), "revision": (H, HONOURED_T),
                      "token": AUTH, "repo_type": (H, HONOURED_T), "exist_ok": (H, HONOURED_T)},
    "delete_branch": {"repo_id": (H, HONOURED_T), "branch": (H, HONOURED_T), "token": AUTH,
                      "repo_type": (H, HONOURED_T)},
    "create_tag": {"repo_id": (H, HONOURED_T), "tag": (H, HONOURED_T), "tag_message": (H, HONOURED_T),
                   "revision": (H, HONOURED_T), "token": AUTH, "repo_type": (H, HONOURED_T),
                   "exist_ok": (H, HONOURED_T)},
    "delete_tag": {"repo_id": (H, HONOURED_T), "tag": (H, HONOURED_T), "token": AUTH, "repo_type": (H, HONOURED_T)},
    "list_models": {"filter": (H, HONOURED_T), "author": (H, HONOURED_T), "apps": (R, REFUSED_T),
                    "gated": (H, HONOURED_T), "inference": (R, REFUSED_T), "inference_provider": (R, REFUSED_T),
                    "trained_dataset": (H, HONOURED_T), "search": (H, HONOURED_T), "pipeline_tag": (H, HONOURED_T),
                    "num_parameters": (R, REFUSED_T),
                    "emissions_thresholds": cs("filtered by the client on the cardData it asks for (cardData=True)"),
                    "sort": (H, HONOURED_T), "limit": (H, HONOURED_T), "expand": (H, HONOURED_T),
                    "full": (H, HONOURED_T), "cardData": (H, HONOURED_T), "fetch_config": (R, REFUSED_T),
                    "token": AUTH},
    "list_datasets": {"filter": (H, HONOURED_T), "author": (H, HONOURED_T), "benchmark": (H, HONOURED_T),
                      "dataset_name": (H, HONOURED_T), "gated": (H, HONOURED_T),
                      "language_creators": (H, HONOURED_T), "language": (H, HONOURED_T),
                      "multilinguality": (H, HONOURED_T), "size_categories": (H, HONOURED_T),
                      "task_categories": (H, HONOURED_T), "task_ids": (H, HONOURED_T), "search": (H, HONOURED_T),
                      "sort": (H, HONOURED_T), "limit": (H, HONOURED_T), "expand": (H, HONOURED_T),
                      "full": (H, HONOURED_T), "token": AUTH},
    "list_spaces": {"filter": (H, HONOURED_T), "author": (H, HONOURED_T), "search": (H, HONOURED_T),
                    "datasets": (R, REFUSED_T), "models": (R, REFUSED_T), "linked": (R, REFUSED_T),
                    "sort": (H, HONOURED_T), "limit": (H, HONOURED_T), "expand": (H, HONOURED_T),
                    "full": (H, HONOURED_T), "token": AUTH},
    "hf_hub_download": {"repo_id": (H, HONOURED_T), "filename": (H, HONOURED_T), "subfolder": (H, HONOURED_T),
                        "repo_type": (H, HONOURED_T), "revision": (H, HONOURED_T),
                        "cache_dir": cs("where the client stores the file"),
                        "local_dir": cs("where the client stores the file"),
                        "force_download": cs("the client ignores its cache"),
                        "etag_timeout": cs("the client's own HTTP timeout"), "token": AUTH,
                        "local_files_only": cs("the client does not contact the hub"),
                        "tqdm_class": cs("client progress bars"), "dry_run": cs("the client only reports")},
    "snapshot_download": {"repo_id": (H, HONOURED_T), "repo_type": (H, HONOURED_T), "revision": (H, HONOURED_T),
                          "cache_dir": cs("where the client stores the files"),
                          "local_dir": cs("where the client stores the files"),
                          "etag_timeout": cs("the client's own HTTP timeout"),
                          "force_download": cs("the client ignores its cache"), "token": AUTH,
                          "local_files_only": cs("the client does not contact the hub"),
                          "allow_patterns": cs("the client filters the repo's file list"),
                          "ignore_patterns": cs("the client filters the repo's file list"),
                          "max_workers": cs("the client's download threads"),
                          "tqdm_class": cs("client progress bars"), "dry_run": cs("the client only reports")},
    "create_pull_request": {"repo_id": (R, REFUSED_T), "title": (R, REFUSED_T), "token": AUTH,
                            "description": (R, REFUSED_T), "repo_type": (R, REFUSED_T)},
    "get_repo_discussions": {"repo_id": (R, REFUSED_T), "author": (R, REFUSED_T),
                             "discussion_type": (R, REFUSED_T), "discussion_status": (R, REFUSED_T),
                             "repo_type": (R, REFUSED_T), "token": AUTH},
    "merge_pull_request": {"repo_id": (R, REFUSED_T), "discussion_num": (R, REFUSED_T), "token": AUTH,
                           "comment": (R, REFUSED_T), "repo_type": (R, REFUSED_T)},
}


def test_table_matches_the_pinned_client():
    """Every argument of every listed method has a status, and nothing else is listed."""
    from huggingface_hub import HfApi

    for method, table in CONTRACT.items():
        params = [p for p in inspect.signature(getattr(HfApi, method)).parameters if p != "self"]
        assert set(params) == set(table), (method, "client has", sorted(set(params) - set(table)),
                                           "table has", sorted(set(table) - set(params)))
        for kw, (status, where) in table.items():
            assert status in (H, R, "client-side"), (method, kw)
            assert where, (method, kw)


def _test_sources() -> dict[str, str]:
    import ast
    from pathlib import Path

    out = {}
    for f in Path(__file__).parent.glob("test_*.py"):
        text = f.read_text()
        tree = ast.parse(text)
        # module-level client scripts (NAME = """...""") count as part of the tests that use them
        scripts = {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                   and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                   for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                out[node.name] = ast.get_source_segment(text, node) + "".join(
                    "\n" + scripts[n] for n in sorted(used & set(scripts)))
    # test_visibility's checks live in its module (the stock-client probe and the tests)
    out["test_visibility"] = (Path(__file__).parent / "test_visibility.py").read_text()
    return out


def test_every_entry_is_exercised():
    """An honoured or refused entry names a test that calls ``method(`` with ``kwarg=`` (or
    positionally, for the arguments every call passes)."""
    sources = _test_sources()
    missing = []
    for method, table in CONTRACT.items():
        for kw, (status, where) in table.items():
            if status == "client-side":
                continue
            src = sources.get(where)
            if src is None:
                missing.append(f"{method}({kw}): no test {where}")
                continue
            calls = [seg for seg in src.split(f".{method}(")[1:]] + [seg for seg in src.split(f" {method}(")[1:]]
            if not calls:
                missing.append(f"{method}: {where} never calls it")
            elif kw not in POS and not any(f"{kw}=" in seg.split("\n\n")[0][:600] for seg in calls):
                missing.append(f"{method}({kw}=): not passed in {where}")
    assert not missing, "\n".join(missing)


@pytest.fixture(scope="module")
def chub(tmp_path_factory):
    from .test_leaderboard import start_hub

    hub = start_hub(tmp_path_factory.mktemp("contract") / "hub", worker=False)
    hub.tok = hub.token("alice", "write", ("lab",))
    yield hub
    hub.stop()
    log = hub.log.read_text()
    assert "Traceback" not in log, log[-4000:]


HONOURED = r"""
import json, os
from pathlib import Path
from huggingface_hub import HfApi, CommitOperationAdd, CommitOperationCopy, CommitOperationDelete, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError
api = HfApi()
out = {}
r = "alice/contract"
api.create_repo(r, repo_type="model", exist_ok=False)
api.create_repo(r, repo_type="model", exist_ok=True)
api.create_repo("alice/space", repo_type="space", space_sdk="static")
out["space_sdk"] = api.repo_info("alice/space", repo_type="space").sdk
card = b"---\nlicense: mit\npipeline_tag: text-generation\ndatasets: [alice/cards]\ntags: [chem]\n---\n# c\n"
c1 = api.create_commit(r, repo_type="model", revision="main", commit_message="one", commit_description="first body",
                       num_threads=2, operations=[
    CommitOperationAdd("README.md", card), CommitOperationAdd("a.txt", b"A"),
    CommitOperationAdd("big.bin", os.urandom(3000)), CommitOperationAdd("dir/x.txt", b"X"),
    CommitOperationAdd("dir/y.txt", b"Y"), CommitOperationAdd("gone/z.txt", b"Z")]).oid
out["description"] = api.list_repo_commits(r)[0].message
c2 = api.create_commit(r, commit_message="two", parent_commit=c1, operations=[
    CommitOperationCopy("a.txt", "a-copy.txt"), CommitOperationCopy("big.bin", "big-copy.bin"),
    CommitOperationDelete("dir/y.txt"), CommitOperationDelete("gone/", is_folder=True),
    CommitOperationAdd("a.txt", b"A2")]).oid
c3 = api.create_commit(r, commit_message="three", operations=[
    CommitOperationCopy("a.txt", "a-v1.txt", src_revision=c1)]).oid
try:
    api.create_commit(r, commit_message="stale", parent_commit=c1, operations=[CommitOperationAdd("s.txt", b"s")])
    out["stale"] = "landed"
except HfHubHTTPError as e:
    out["stale"] = e.response.status_code
api.create_repo("alice/other", exist_ok=True)
api.upload_file(path_or_fileobj=b"from other", path_in_repo="o.txt", repo_id="alice/other")
other_bin = os.urandom(5000)
api.upload_file(path_or_fileobj=other_bin, path_in_repo="o.bin", repo_id="alice/other")
api.create_commit(r, commit_message="cross", operations=[  # a regular file, and an LFS one (lfs-files/duplicate)
    CommitOperationCopy("o.txt", "o-copy.txt", src_repo_id="alice/other", src_repo_type="model"),
    CommitOperationCopy("o.bin", "o-copy.bin", src_repo_id="alice/other", src_repo_type="model")])
out["cross_lfs_same"] = Path(hf_hub_download(r, "o-copy.bin")).read_bytes() == other_bin
files = {p: Path(hf_hub_download(r, p, revision="main")).read_bytes() for p in ("a.txt", "a-copy.txt", "a-v1.txt",
                                                                               "o-copy.txt")}
out["copies"] = {k: v.decode() for k, v in files.items()}
out["big_copy_same"] = (Path(hf_hub_download(r, "big.bin")).read_bytes()
                        == Path(hf_hub_download(r, "big-copy.bin")).read_bytes())
out["files_c2"] = sorted(api.list_repo_files(r, revision=c2, repo_type="model"))
api.create_branch(r, branch="feat", revision=c1, repo_type="model")
api.create_branch(r, branch="feat", revision=c1, exist_ok=True)
api.upload_file(path_or_fileobj=b"on feat", path_in_repo="f.txt", repo_id=r, repo_type="model", revision="feat",
                commit_message="feat file", commit_description="fd", parent_commit=c1)
api.create_tag(r, tag="v1", tag_message="first tag", revision=c1, repo_type="model")
api.create_tag(r, tag="v1", exist_ok=True)
refs = api.list_repo_refs(r, repo_type="model", include_pull_requests=True)
out["refs"] = [sorted(b.name for b in refs.branches), [(t.name, t.target_commit == c1) for t in refs.tags],
               refs.pull_requests]
src = Path(os.environ["SRC"])
(src / "sub").mkdir(parents=True)
(src / "sub" / "n.txt").write_text("new")
(src / "sub" / "skip.txt").write_text("skip")
(src / "sub" / "w.md").write_text("not allowed")
api.upload_file(path_or_fileobj=b"old", path_in_repo="sub/stale.old", repo_id=r)
api.upload_folder(repo_id=r, folder_path=str(src / "sub"), path_in_repo="sub", allow_patterns=["*.txt"],
                  ignore_patterns=["skip*"], delete_patterns=["*.old"], commit_message="folder",
                  commit_description="fb", revision="main", repo_type="model", parent_commit=api.repo_info(r).sha)
out["sub"] = sorted(p for p in api.list_repo_files(r) if p.startswith("sub/"))
api.upload_file(path_or_fileobj=b"t", path_in_repo="t1.tmp", repo_id=r)
api.upload_file(path_or_fileobj=b"t", path_in_repo="t2.tmp", repo_id=r)
api.delete_files(r, delete_patterns=["*.tmp"], commit_message="rm tmp", commit_description="d", revision="main",
                 repo_type="model", parent_commit=api.repo_info(r).sha)
api.delete_file("a-v1.txt", r, commit_message="rm one", commit_description="d", revision="main", repo_type="model",
                parent_commit=api.repo_info(r).sha)
api.delete_folder("dir", r, commit_message="rm dir", commit_description="d", revision="main", repo_type="model",
                  parent_commit=api.repo_info(r).sha)
out["after_deletes"] = sorted(api.list_repo_files(r))
tree = list(api.list_repo_tree(r, path_in_repo="sub", recursive=True, expand=True, revision="main",
                               repo_type="model"))
out["tree"] = [(e.path, e.last_commit.title if e.last_commit else None) for e in tree]
out["tree_plain"] = [e.last_commit for e in api.list_repo_tree(r, recursive=False)]
info = api.get_paths_info(r, ["a.txt", "sub", "nope"], expand=True, revision="main", repo_type="model")
out["paths"] = [(e.path, e.last_commit.title if e.last_commit else None) for e in info]
commits = api.list_repo_commits(r, revision="main", formatted=True, repo_type="model")
out["formatted"] = commits[0].formatted_title
out["squash"] = [len(api.list_repo_commits(r, revision="feat")), None]
api.super_squash_history(r, branch="feat", commit_message="squashed", repo_type="model")
sq = api.list_repo_commits(r, revision="feat")
out["squash"][1] = [len(sq), sq[0].title, sorted(api.list_repo_files(r, revision="feat"))]
out["exists"] = [api.file_exists(r, "f.txt", revision="feat", repo_type="model"),
                 api.file_exists(r, "f.txt", revision="main"), api.repo_exists(r, repo_type="model"),
                 api.repo_exists(r, repo_type="dataset"), api.revision_exists(r, revision="v1", repo_type="model"),
                 api.revision_exists(r, revision="nope")]
mi = api.model_info(r, revision="v1", files_metadata=True)
out["model_info"] = [mi.sha == c1, sorted(s.rfilename for s in mi.siblings)[:2], mi.siblings[0].size is not None,
                     mi.pipeline_tag, sorted(mi.tags)]
ri = api.repo_info(r, repo_type="model", revision="main", files_metadata=True)
out["repo_info"] = ri.sha == api.list_repo_commits(r)[0].commit_id
ex = api.repo_info(r, expand=["sha", "tags", "downloadsAllTime"])
out["expand"] = [ex.sha is not None, ex.siblings, ex.downloads_all_time]
ex = api.model_info(r, expand=["lastModified"], revision="main")
out["expand_model"] = [ex.last_modified is not None, ex.sha]
api.create_repo("alice/cards", repo_type="dataset")
api.upload_file(repo_id="alice/cards", repo_type="dataset", path_in_repo="README.md", path_or_fileobj=(
    b"---\nlicense: cc-by-4.0\nlanguage: [en]\ntask_categories: [other]\ntask_ids: [tabular]\n"
    b"size_categories: [n<1K]\nmultilinguality: [monolingual]\nlanguage_creators: [found]\ntags: [materials]\n---\n"))
di = api.dataset_info("alice/cards", revision="main", files_metadata=True)
out["dataset_info"] = [sorted(di.tags), di.siblings[0].size is not None,
                       api.dataset_info("alice/cards", expand=["tags"]).tags == di.tags]
L = lambda it: sorted(x.id for x in it)
out["datasets"] = [
    L(api.list_datasets(author="alice", language="en", task_categories="other", size_categories="n<1K",
                        task_ids="tabular", multilinguality="monolingual", language_creators="found")),
    L(api.list_datasets(author="alice", language="fr")), L(api.list_datasets(filter="license:cc-by-4.0")),
    L(api.list_datasets(dataset_name="card", search="alice")), L(api.list_datasets(benchmark=True)),
    L(api.list_datasets(gated=False, author="alice")), L(api.list_datasets(gated=True)),
    [d.card_data is not None for d in api.list_datasets(author="alice", full=True)],
    [d.tags for d in api.list_datasets(author="alice", expand=["tags"])],
    L(api.list_datasets(author="alice", sort="last_modified", limit=1))]
out["models"] = [
    L(api.list_models(author="alice")), L(api.list_models(search="contr")), L(api.list_models(filter="chem")),
    L(api.list_models(filter=["chem", "license:mit"])), L(api.list_models(filter="nope")),
    L(api.list_models(trained_dataset="alice/cards")), L(api.list_models(pipeline_tag="text-generation")),
    L(api.list_models(gated=False, author="alice")),
    [m.id for m in api.list_models(author="alice", sort="created_at", limit=1)],
    [m.id for m in api.list_models(author="alice", sort="last_modified")],
    [m.siblings is not None and len(m.siblings) > 0 for m in api.list_models(search="contract", full=True)],
    [m.card_data is not None for m in api.list_models(search="contract", cardData=True)],
    [(m.sha is None, m.tags is not None) for m in api.list_models(search="contract", expand=["tags"])]]
out["spaces"] = [L(api.list_spaces(author="alice", search="spa", filter=[], sort="createdAt", limit=5)),
                 [s.sdk for s in api.list_spaces(author="alice", full=True, expand=None)],
                 [s.sdk for s in api.list_spaces(author="alice", expand=["sdk"])]]
api.delete_tag(r, tag="v1", repo_type="model")
api.delete_branch(r, branch="feat", repo_type="model")
api.move_repo(from_id="alice/other", to_id="lab/moved", repo_type="model")
out["moved"] = [api.repo_exists("alice/other"), Path(hf_hub_download("lab/moved", "o.txt")).read_text()]
out["download"] = [Path(api.hf_hub_download(r, "n.txt", subfolder="sub", revision="main",
                                            repo_type="model")).read_text(),
                   sorted(p.name for p in Path(api.snapshot_download(r, revision=c1, repo_type="model",
                                                                     allow_patterns=["*.txt"])).rglob("*.txt"))]
api.delete_repo("lab/moved", repo_type="model")
api.delete_repo("lab/moved", repo_type="model", missing_ok=True)
from huggingface_hub import CommitOperationAdd as Add
ops = [Add("pre.bin", os.urandom(100))]
api.preupload_lfs_files(r, additions=ops, repo_type="model", revision="main")
api.create_commit(r, operations=ops, commit_message="preuploaded")
out["preuploaded"] = api.file_exists(r, "pre.bin")
# .gitignore: the rules sent with the upload (a .gitignore in the folder), then the repo's own
(src / "ign").mkdir()
(src / "ign" / ".gitignore").write_text("*.log\nbuild/\n!keep.log\n")
for name in ("a.log", "keep.log", "b.txt"):
    (src / "ign" / name).write_text(name)
(src / "ign" / "build").mkdir()
(src / "ign" / "build" / "x.txt").write_text("x")
api.create_repo("alice/ign")
api.upload_folder(repo_id="alice/ign", folder_path=str(src / "ign"))
after_folder = sorted(api.list_repo_files("alice/ign"))
api.upload_file(path_or_fileobj=b"late", path_in_repo="late.log", repo_id="alice/ign")
ops = [Add("w.bin", b"w" * 10), Add("v.txt", b"v")]
api.preupload_lfs_files("alice/ign", additions=ops, gitignore_content="*.bin\n")
api.create_commit("alice/ign", operations=ops, commit_message="with rules")
out["gitignore"] = [after_folder, sorted(api.list_repo_files("alice/ign"))]
print(json.dumps(out))
"""


def test_honoured_options(chub, tmp_path):
    env_src = tmp_path / "src"
    os.environ["SRC"] = str(env_src)
    try:
        out = last_json(run_client(chub, HONOURED, tmp_path / "h", chub.tok, timeout=600))
    finally:
        os.environ.pop("SRC", None)
    assert out["space_sdk"] == "static"
    assert out["description"] == "first body"
    assert out["stale"] == 412
    assert out["copies"] == {"a.txt": "A2", "a-copy.txt": "A", "a-v1.txt": "A", "o-copy.txt": "from other"}
    assert out["big_copy_same"] is True
    assert out["cross_lfs_same"] is True
    assert out["files_c2"] == [".gitattributes", "README.md", "a-copy.txt", "a.txt", "big-copy.bin", "big.bin",
                               "dir/x.txt"]
    assert out["refs"] == [["feat", "main"], [["v1", True]], []]
    assert out["sub"] == ["sub/n.txt"]
    assert out["after_deletes"] == [".gitattributes", "README.md", "a-copy.txt", "a.txt", "big-copy.bin", "big.bin",
                                    "o-copy.bin", "o-copy.txt", "sub/n.txt"]
    assert out["tree"] == [["sub/n.txt", "folder"]]
    assert all(lc is None for lc in out["tree_plain"])
    assert out["paths"] == [["a.txt", "two"], ["sub", "folder"]]
    assert out["formatted"] == "rm dir"
    assert out["squash"][0] == 3 and out["squash"][1] == [1, "squashed", [
        ".gitattributes", "README.md", "a.txt", "big.bin", "dir/x.txt", "dir/y.txt", "f.txt", "gone/z.txt"]]
    assert out["exists"] == [True, False, True, False, True, False]
    assert out["model_info"] == [True, [".gitattributes", "README.md"], True, "text-generation",
                                 ["chem", "dataset:alice/cards", "license:mit", "text-generation"]]
    assert out["repo_info"] is True
    assert out["expand"] == [True, None, 0]
    assert out["expand_model"] == [True, None]
    assert out["dataset_info"][0] == sorted(["materials", "license:cc-by-4.0", "language:en", "task_categories:other",
                                             "task_ids:tabular", "size_categories:n<1K",
                                             "multilinguality:monolingual", "language_creators:found"])
    assert out["dataset_info"][1:] == [True, True]
    d = out["datasets"]
    assert d[0] == ["alice/cards"] and d[1] == [] and d[2] == ["alice/cards"] and d[3] == ["alice/cards"]
    assert d[4] == [] and d[5] == ["alice/cards"] and d[6] == [] and d[7] == [True]
    assert [sorted(t) for t in d[8]] == [out["dataset_info"][0]] and d[9] == ["alice/cards"]
    m = out["models"]
    assert m[0] == ["alice/contract", "alice/other"] and m[1] == ["alice/contract"] and m[2] == ["alice/contract"]
    assert m[3] == ["alice/contract"] and m[4] == [] and m[5] == ["alice/contract"] and m[6] == ["alice/contract"]
    assert m[7] == ["alice/contract", "alice/other"] and m[8] == ["alice/other"]
    assert m[9] == ["alice/contract", "alice/other"]
    assert m[10] == [True] and m[11] == [True] and m[12] == [[True, True]]
    assert out["spaces"] == [["alice/space"], ["static"], ["static"]]
    assert out["moved"] == [False, "from other"]
    assert out["download"] == ["new", ["a.txt", "x.txt", "y.txt", "z.txt"]]
    assert out["preuploaded"] is True
    assert out["gitignore"] == [[".gitattributes", ".gitignore", "b.txt", "keep.log"],
                                [".gitattributes", ".gitignore", "b.txt", "keep.log", "v.txt"]]


REFUSED = r"""
import json, os
from huggingface_hub import HfApi, CommitOperationAdd
from huggingface_hub.errors import HfHubHTTPError
api = HfApi()
r = "alice/refusals"
api.create_repo(r, exist_ok=True)
out = {}
def refused(name, fn):
    try:
        fn()
        out[name] = "accepted"
    except HfHubHTTPError as e:
        out[name] = [e.response.status_code, e.response.headers.get("X-Error-Code"), str(e)]
refused("resource_group_id", lambda: api.create_repo("alice/rg", resource_group_id="66670e5163145ca562cb1988"))
refused("region", lambda: api.create_repo("alice/rg", region="eu"))
refused("space_hardware", lambda: api.create_repo("alice/sp", repo_type="space", space_sdk="gradio",
                                                  space_hardware="cpu-upgrade"))
refused("space_sleep_time", lambda: api.create_repo("alice/sp", repo_type="space", space_sdk="gradio",
                                                    space_sleep_time=3600))
refused("space_secrets", lambda: api.create_repo("alice/sp", repo_type="space", space_sdk="gradio",
                                                 space_secrets=[{"key": "K", "value": "V"}]))
refused("space_variables", lambda: api.create_repo("alice/sp", repo_type="space", space_sdk="gradio",
                                                   space_variables=[{"key": "K", "value": "V"}]))
from huggingface_hub import Volume
volumes = [Volume(type="dataset", source="alice/x", mount_path="/d")]
refused("space_volumes", lambda: api.create_repo("alice/sp", repo_type="space", space_sdk="docker",
                                                 space_volumes=volumes))
refused("space_template", lambda: api.create_repo("alice/sp", repo_type="space", space_template="JupyterLab"))
refused("protected", lambda: api.create_repo("alice/sp", repo_type="space", space_sdk="static", visibility="protected"))
refused("gated", lambda: api.update_repo_settings(r, gated="manual"))
refused("securityStatus", lambda: api.model_info(r, securityStatus=True))
refused("expand_unknown", lambda: api.model_info(r, expand=["evalResults"]))
refused("create_commit.create_pr", lambda: api.create_commit(r, operations=[CommitOperationAdd("p.txt", b"p")],
                                                             commit_message="pr", create_pr=True))
refused("upload_file.create_pr", lambda: api.upload_file(path_or_fileobj=b"p", path_in_repo="p.txt", repo_id=r,
                                                         create_pr=True))
os.makedirs(os.environ["SRC"], exist_ok=True)
open(os.path.join(os.environ["SRC"], "q.txt"), "w").write("q")
refused("upload_folder.create_pr", lambda: api.upload_folder(repo_id=r, folder_path=os.environ["SRC"], create_pr=True))
api.upload_file(path_or_fileobj=b"d", path_in_repo="d/d.txt", repo_id=r)
refused("delete_file.create_pr", lambda: api.delete_file("d/d.txt", r, create_pr=True))
refused("delete_files.create_pr", lambda: api.delete_files(r, delete_patterns=["d/*"], create_pr=True))
refused("delete_folder.create_pr", lambda: api.delete_folder("d", r, create_pr=True))
refused("preupload.create_pr", lambda: api.preupload_lfs_files(r, additions=[CommitOperationAdd("x.bin", b"x" * 10)],
                                                               create_pr=True))
refused("_hot_reload", lambda: api.create_commit(r, operations=[CommitOperationAdd("h.txt", b"h")],
                                                 commit_message="h", _hot_reload=True))
refused("upload_file._hot_reload", lambda: api.upload_file(path_or_fileobj=b"h", path_in_repo="h.txt", repo_id=r,
                                                           _hot_reload=True))
refused("create_pull_request", lambda: api.create_pull_request(r, title="t", description="d", repo_type="model"))
refused("get_repo_discussions", lambda: list(api.get_repo_discussions(r, author="alice", discussion_type="pull_request",
                                                                      discussion_status="open", repo_type="model")))
refused("merge_pull_request", lambda: api.merge_pull_request(r, 1, comment="c", repo_type="model"))
refused("list_models.apps", lambda: list(api.list_models(apps="ollama")))
refused("list_models.inference", lambda: list(api.list_models(inference="warm")))
refused("list_models.inference_provider", lambda: list(api.list_models(inference_provider="all")))
refused("list_models.num_parameters", lambda: list(api.list_models(num_parameters="min:1B")))
refused("list_models.fetch_config", lambda: list(api.list_models(fetch_config=True)))
refused("list_spaces.datasets", lambda: list(api.list_spaces(datasets="alice/x")))
refused("list_spaces.models", lambda: list(api.list_spaces(models="alice/x")))
refused("list_spaces.linked", lambda: list(api.list_spaces(linked=True)))
print(json.dumps(out))
"""

# what each refusal's message must name
REFUSED_NAMES = {"resource_group_id": "resourceGroupId", "region": "region", "space_hardware": "hardware",
                 "space_sleep_time": "sleepTimeSeconds", "space_secrets": "secrets", "space_variables": "variables",
                 "space_volumes": "volumes", "space_template": "templates", "protected": "protected",
                 "gated": "gated", "securityStatus": "securityStatus", "expand_unknown": "evalResults",
"_hot_reload": "hot_reload", "upload_file._hot_reload": "hot_reload",
                 "list_models.fetch_config": "config"}


def test_refused_options(chub, tmp_path):
    os.environ["SRC"] = str(tmp_path / "src")
    try:
        out = last_json(run_client(chub, REFUSED, tmp_path / "r", chub.tok, timeout=600))
    finally:
        os.environ.pop("SRC", None)
    for name, got in out.items():
        assert got != "accepted", name
        status, code, msg = got
        assert 400 <= status < 500 and code, (name, got)
        is_pr = any(x in name for x in ("create_pr", "pull_request", "discussions"))
        want = REFUSED_NAMES.get(name, "pull request" if is_pr else name.split(".")[-1])
        assert want.lower() in msg.lower(), (name, want, msg)
    files = json.loads(chub.request("GET", "/api/models/alice/refusals/tree/main?recursive=true")[2])
    # nothing refused landed
    assert sorted(e["path"] for e in files if e["type"] == "file") == [".gitattributes", "d/d.txt"]
    assert chub.request("GET", "/api/spaces/alice/sp")[0] == 404
    assert chub.request("GET", "/api/models/alice/rg")[0] == 404
