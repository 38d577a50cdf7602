"""publish_dataset + serve_in_background on a tiny built-dataset folder."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq

from .conftest import client_env


def make_folder(root, version="1.0", n=50):
    (root / "data").mkdir(parents=True)
    (root / "figures").mkdir()
    pq.write_table(pa.table({"material_id": [f"m{i}" for i in range(n)], "tc": [float(i) for i in range(n)]}),
                   root / "data" / "train-00000-of-00001.parquet")
    pq.write_table(pa.table({"material_id": ["t0", "t1"], "tc": [1.0, 2.0]}),
                   root / "data" / "test-00000-of-00001.parquet")
    # a 1x1 PNG
    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                        "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
    (root / "figures" / "tc.png").write_bytes(png)
    (root / "README.md").write_text(textwrap.dedent("""\
        ---
        license: mit
        configs:
        - config_name: default
          data_files:
          - split: train
            path: data/train-*.parquet
          - split: test
            path: data/test-*.parquet
        ---
        # Tiny

        ![Tc](figures/tc.png)
        """))
    (root / "build_info.json").write_text(json.dumps({"name": "tiny", "version": version}))
    (root / "scratch.tmp").write_text("not published")


def test_publish_is_idempotent_and_tagged(tmp_path):
    folder = tmp_path / "tiny"
    make_folder(folder)
    code = f"""
    import json, os
    from pathlib import Path
    from dismai_data.hub.publish import serve_in_background, publisher_token, publish_dataset
    hub = serve_in_background({str(tmp_path / 'store')!r})
    os.environ["HF_ENDPOINT"] = hub.url
    token = publisher_token({str(tmp_path / 'store')!r})
    out = {{}}
    out["first"] = publish_dataset({str(folder)!r}, "dismai/tiny", endpoint=hub.url, token=token)
    out["again"] = publish_dataset({str(folder)!r}, "dismai/tiny", endpoint=hub.url, token=token)
    import pyarrow as pa, pyarrow.parquet as pq
    f = Path({str(folder)!r})
    pq.write_table(pa.table({{"material_id": ["x"], "tc": [9.0]}}), f / "data/test-00000-of-00001.parquet")
    try:
        publish_dataset(f, "dismai/tiny", endpoint=hub.url, token=token)
        out["conflict"] = "no error"
    except ValueError as e:
        out["conflict"] = "ValueError"
    (f / "build_info.json").write_text(json.dumps({{"name": "tiny", "version": "1.1"}}))
    out["v11"] = publish_dataset(f, "dismai/tiny", endpoint=hub.url, token=token)
    import datasets
    from huggingface_hub import HfApi
    d = datasets.load_dataset("dismai/tiny", revision="v1.0")
    out["rows_v10"] = {{k: d[k].num_rows for k in d}}
    out["test_v11"] = list(datasets.load_dataset("dismai/tiny", revision="v1.1", split="test")["material_id"])
    out["files"] = sorted(HfApi().list_repo_files("dismai/tiny", repo_type="dataset"))
    out["ncommits"] = len(HfApi().list_repo_commits("dismai/tiny", repo_type="dataset"))
    hub.stop()
    print(json.dumps(out))
    """

    class _H:  # client_env only needs .url; HF_ENDPOINT is set inside once the port is known
        url = "http://127.0.0.1:9"

    env = client_env(_H(), tmp_path / "hf_home")
    env.pop("HF_ENDPOINT")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    first, again = out["first"], out["again"]
    assert first["changed"] is True and first["tag"] == "v1.0"
    assert first["url"].endswith("/datasets/dismai/tiny")
    assert again["changed"] is False and again["commit"] == first["commit"]
    assert out["conflict"] == "ValueError"
    assert out["v11"]["changed"] is True and out["v11"]["tag"] == "v1.1"
    assert out["rows_v10"] == {"train": 50, "test": 2}
    assert out["test_v11"] == ["x"]
    assert out["files"] == [".gitattributes", "README.md", "build_info.json", "data/test-00000-of-00001.parquet",
                            "data/train-00000-of-00001.parquet", "figures/tc.png"]
    assert out["ncommits"] == 3  # initial, v1.0, v1.1: neither the no-op nor the refused publish committed


def test_cli_publish_twice(tmp_path):
    from .conftest import HubServer

    folder = tmp_path / "tiny"
    make_folder(folder, version="2.0")
    hub = HubServer(tmp_path / "store").start()
    try:
        token = hub.token("pub", "write", ("dismai",))
        outs = []
        for _ in range(2):
            proc = subprocess.run([sys.executable, "-m", "dismai_data.hub.cli", "publish", str(folder), "--repo",
                                   "dismai/clipub", "--endpoint", hub.url, "--token", token],
                                  env=client_env(hub, tmp_path / "home"), capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr[-3000:]
            outs.append(json.loads(proc.stdout))
        assert outs[0]["changed"] is True and outs[0]["tag"] == "v2.0"
        assert outs[1]["changed"] is False and outs[1]["commit"] == outs[0]["commit"]
        refs = json.loads(hub.request("GET", "/api/datasets/dismai/clipub/refs")[2])
        assert [t["name"] for t in refs["tags"]] == ["v2.0"]
    finally:
        hub.stop()


def test_main_job_publishes_the_kept_earlier_version_under_its_own_tag(tmp_path):
    """An earlier shipped version (prebuilt/previous/<tag>/NAME) is published under its own tag
    before the current build, so both revisions load; publishing again changes nothing."""
    import os

    from dismai_data import prebuilt

    root = tmp_path / "prebuilt"
    make_folder(tmp_path / "old" / "tiny", version="0.9-preview", n=5)
    (tmp_path / "old" / "tiny" / "scratch.tmp").unlink()
    prebuilt.ship(tmp_path / "old" / "tiny", root=root / "previous" / "v0.9-preview")
    assert prebuilt.previous("tiny", root) == [root / "previous" / "v0.9-preview" / "tiny"]
    current = tmp_path / "new" / "tiny"
    make_folder(current, version="1.0", n=50)
    code = f"""
    import json
    from pathlib import Path
    from huggingface_hub import HfApi, hf_hub_download
    from rich.console import Console
    from dismai_data import prebuilt
    from dismai_data.mainjob import publish_all
    from dismai_data.hub.publish import publisher_token, serve_in_background
    prebuilt.PREBUILT_DIR = Path({str(root)!r})
    storage = {str(tmp_path / 'store')!r}
    with serve_in_background(storage) as hub:
        token = publisher_token(storage)
        console = Console(file=open({str(tmp_path / 'log.txt')!r}, "w"))
        first = publish_all([Path({str(current)!r})], hub.url, token, console)
        api = HfApi(endpoint=hub.url, token=token)
        commits = len(api.list_repo_commits("dismai/tiny", repo_type="dataset"))
        again = publish_all([Path({str(current)!r})], hub.url, token, console)
        out = {{"first": first[0], "again": again[0], "commits": commits,
               "commits_after": len(api.list_repo_commits("dismai/tiny", repo_type="dataset")),
               "tags": sorted(t.name for t in api.list_repo_refs("dismai/tiny", repo_type="dataset").tags)}}
        for rev in ("v0.9-preview", "v1.0", "main"):
            path = hf_hub_download("dismai/tiny", "build_info.json", repo_type="dataset", revision=rev,
                                   endpoint=hub.url, token=token, cache_dir={str(tmp_path / 'cache')!r})
            out[rev] = json.loads(open(path).read())["version"]
    print(json.dumps(out))
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HF_HOME=str(tmp_path / "hfhome"), HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["first"]["tag"] == "v1.0" and out["first"]["changed"] and not out["again"]["changed"]
    assert out["commits_after"] == out["commits"] and out["tags"] == ["v0.9-preview", "v1.0"]
    assert (out["v0.9-preview"], out["v1.0"], out["main"]) == ("0.9-preview", "1.0", "1.0")
