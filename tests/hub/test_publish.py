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
