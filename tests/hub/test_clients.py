"""The stock clients (datasets 5.2.0, huggingface_hub 2.4.0, hf-xet 1.8.0) against a real hub,
configured only with HF_ENDPOINT (and HF_TOKEN for writes), with Xet uploads (default)
and with the LFS batch path (HF_HUB_DISABLE_XET=1)."""

from __future__ import annotations

import pytest

from .conftest import last_json, run_client

MODES = [pytest.param(True, id="xet"), pytest.param(False, id="lfs")]


@pytest.mark.parametrize("xet", MODES)
def test_hfapi_roundtrip(hub, client_home, tmp_path, xet):
    mode = "xet" if xet else "lfs"
    folder = tmp_path / "folder"
    (folder / "sub dir").mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# Model ünïcode\n")
    (folder / "sub dir" / "naïve file.txt").write_text("hello wörld\n")
    import os

    (folder / "data" / "weights.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (folder / "data" / "zeros.bin").write_bytes(bytes(2 * 1024 * 1024))
    code = f"""
    import json, os, hashlib
    from pathlib import Path
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download, HfFileSystem
    api = HfApi()
    repo = "alice/model-{mode}"
    url = api.create_repo(repo)
    assert str(url).startswith(os.environ["HF_ENDPOINT"]), url
    api.create_repo(repo, exist_ok=True)
    try:
        api.create_repo(repo)
        raise SystemExit("409 expected")
    except Exception as e:
        assert "409" in str(e), e
    info = api.upload_folder(repo_id=repo, folder_path={str(folder)!r}, commit_message="first")
    c1 = info.oid
    api.create_tag(repo, tag="v1.0")
    api.create_branch(repo, branch="feat/x")
    api.upload_file(path_or_fileobj=b"branch content", path_in_repo="sub dir/naïve file.txt", repo_id=repo,
                    revision="feat/x")
    c2 = api.upload_file(path_or_fileobj=b"second", path_in_repo="second.txt", repo_id=repo).oid
    refs = api.list_repo_refs(repo)
    commits = api.list_repo_commits(repo)
    files_v1 = sorted(api.list_repo_files(repo, revision="v1.0"))
    files_main = sorted(api.list_repo_files(repo))
    src = Path({str(folder)!r})
    out = {{}}
    for rev in ("v1.0", c1, "main"):
        p = hf_hub_download(repo, "data/weights.bin", revision=rev)
        assert Path(p).read_bytes() == (src / "data/weights.bin").read_bytes()
        p = hf_hub_download(repo, "sub dir/naïve file.txt", revision=rev)
        assert Path(p).read_text() == "hello wörld\\n"
    p = hf_hub_download(repo, "sub dir/naïve file.txt", revision="feat/x")
    out["branch_file"] = Path(p).read_text()
    snap = snapshot_download(repo, revision="v1.0")
    out["snapshot"] = sorted(str(p.relative_to(snap)) for p in Path(snap).rglob("*") if p.is_file())
    for f in ("README.md", "data/weights.bin", "data/zeros.bin"):
        assert (Path(snap) / f).read_bytes() == (src / f).read_bytes(), f
    fs = HfFileSystem()
    out["ls"] = sorted(e["name"] for e in fs.ls(repo + "/data", detail=True))
    with fs.open(repo + "/data/weights.bin", "rb") as fh:
        fh.seek(1000)
        chunk = fh.read(100)
    assert chunk == (src / "data/weights.bin").read_bytes()[1000:1100]
    out["glob"] = sorted(fs.glob(repo + "@feat%2Fx/**/*.txt"))
    out["fs_read_branch"] = fs.read_text(repo + "@feat%2Fx/sub dir/naïve file.txt")
    out["refs"] = {{"branches": sorted(b.name for b in refs.branches), "tags": [t.name for t in refs.tags]}}
    out["commit_titles"] = [c.title for c in commits]
    out["c1_in_history"] = c1 in [c.commit_id for c in commits]
    out["files_v1"] = files_v1
    out["files_main"] = files_main
    # unchanged re-upload makes no commit
    again = api.upload_folder(repo_id=repo, folder_path={str(folder)!r}, commit_message="again")
    out["noop"] = again.oid == c2
    api.delete_tag(repo, tag="v1.0")
    api.delete_branch(repo, branch="feat/x")
    refs = api.list_repo_refs(repo)
    out["after_delete"] = [len(refs.tags), sorted(b.name for b in refs.branches)]
    print(json.dumps(out))
    """
    out = last_json(run_client(hub, code, client_home, hub.tokens["alice"], xet=xet))
    assert out["branch_file"] == "branch content"
    assert out["snapshot"] == [".gitattributes", "README.md", "data/weights.bin", "data/zeros.bin",
                               "sub dir/naïve file.txt"]
    assert out["ls"] == [f"alice/model-{mode}/data/weights.bin", f"alice/model-{mode}/data/zeros.bin"]
    assert out["glob"] == [f"alice/model-{mode}@feat%2Fx/sub dir/naïve file.txt"]
    assert out["fs_read_branch"] == "branch content"
    assert out["refs"] == {"branches": ["feat/x", "main"], "tags": ["v1.0"]}
    assert out["commit_titles"][:2] == ["Upload second.txt with huggingface_hub", "first"]
    assert out["commit_titles"][-1] == "initial commit"
    assert out["c1_in_history"]
    assert "second.txt" not in out["files_v1"] and "second.txt" in out["files_main"]
    assert out["noop"] is True
    assert out["after_delete"] == [0, ["main"]]


@pytest.mark.parametrize("xet", MODES)
def test_push_to_hub_and_load_dataset(hub, client_home, xet):
    mode = "xet" if xet else "lfs"
    code = f"""
    import json
    import datasets
    from datasets import Dataset, DatasetDict, load_dataset
    from huggingface_hub import HfApi
    repo = "dismai/tiny-{mode}"
    api = HfApi()
    v1 = DatasetDict(train=Dataset.from_dict({{"x": list(range(500)), "formula": ["Si"] * 500}}),
                     test=Dataset.from_dict({{"x": list(range(100)), "formula": ["C"] * 100}}))
    v1.push_to_hub(repo)
    api.create_tag(repo, tag="v1.0", repo_type="dataset")
    v2 = Dataset.from_dict({{"x": list(range(1000, 1300)), "formula": ["Fe"] * 300}})
    v2.push_to_hub(repo, split="train")
    api.create_tag(repo, tag="v2.0", repo_type="dataset")
    d1 = load_dataset(repo, revision="v1.0")
    d2 = load_dataset(repo)
    s = load_dataset(repo, revision="v1.0", split="train", streaming=True)
    first = [r["x"] for _, r in zip(range(5), s)]
    print(json.dumps({{"v1": {{k: d1[k].num_rows for k in d1}}, "v1_first": d1["train"][0],
                      "v2": {{k: d2[k].num_rows for k in d2}}, "v2_first": d2["train"][0], "stream": first}}))
    """
    out = last_json(run_client(hub, code, client_home, hub.tokens["alice"], xet=xet))
    assert out["v1"] == {"train": 500, "test": 100}
    assert out["v1_first"] == {"x": 0, "formula": "Si"}
    assert out["v2"]["train"] == 300 and out["v2_first"] == {"x": 1000, "formula": "Fe"}
    assert out["stream"] == [0, 1, 2, 3, 4]
