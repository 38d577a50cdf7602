"""The hub's web pages: HTML checks over HTTP, and a headless Chromium run (Debian's chromium
driven by playwright-core) with a screenshot check."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import run_client
from .test_publish import make_folder

HERE = Path(__file__).parent
REPO = "dismai/webtiny"


@pytest.fixture(scope="module")
def web_repo(hub, tmp_path_factory):
    folder = tmp_path_factory.mktemp("webtiny") / "tiny"
    make_folder(folder)
    home = tmp_path_factory.mktemp("webhome")
    code = f"""
    from huggingface_hub import HfApi
    api = HfApi()
    api.create_repo({REPO!r}, repo_type="dataset")
    api.upload_folder(repo_id={REPO!r}, repo_type="dataset", folder_path={str(folder)!r},
                      ignore_patterns=["*.tmp"], commit_message="Publish tiny v1.0")
    api.create_tag({REPO!r}, tag="v1.0", repo_type="dataset")
    api.create_branch({REPO!r}, branch="feat/x", repo_type="dataset")
    """
    run_client(hub, code, home, hub.tokens["alice"])
    return REPO


def test_pages_over_http(hub, web_repo):
    st, hdr, page = hub.request("GET", "/")
    assert st == 200 and web_repo.encode() in page
    assert "script-src" not in hdr["Content-Security-Policy"] and "default-src 'none'" in hdr["Content-Security-Policy"]
    st, _, page = hub.request("GET", f"/datasets/{web_repo}")
    text = page.decode()
    assert st == 200
    assert "<h1>Tiny</h1>" in text
    src = re.search(r'<img alt="Tc" src="([^"]+)"', text).group(1)
    assert re.fullmatch(rf"/datasets/{web_repo}/resolve/[0-9a-f]{{40}}/figures/tc.png", src)
    st, hdr, img = hub.request("GET", src)
    assert st == 200 and img.startswith(b"\x89PNG") and hdr["Content-Type"] == "image/png"
    assert 'data-split="train"' in text and 'data-split="test"' in text and ">m0<" in text
    assert "(50 rows)" in text and "(2 rows)" in text
    st, _, page = hub.request("GET", f"/datasets/{web_repo}/tree/main/data")
    assert st == 200 and b"train-00000-of-00001.parquet" in page
    st, _, page = hub.request("GET", f"/datasets/{web_repo}/refs")
    assert b"feat/x" in page and b"v1.0" in page
    st, _, page = hub.request("GET", f"/datasets/{web_repo}/commits/feat%2Fx")
    assert st == 200 and b"Publish tiny v1.0" in page and b"initial commit" in page
    st, hdr, _ = hub.request("GET", "/datasets/alice/nope")
    assert st == 404 and hdr["X-Error-Code"] == "RepoNotFound"


def _node_path() -> str | None:
    """Where playwright-core can be required from: $NODE_PATH, tests/hub/node_modules or npm's global root."""
    candidates = [p for p in os.environ.get("NODE_PATH", "").split(os.pathsep) if p]
    candidates.append(str(HERE / "node_modules"))
    if shutil.which("npm"):
        try:
            candidates.append(subprocess.run(["npm", "root", "-g"], capture_output=True, text=True,
                                             timeout=30).stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            pass
    for c in candidates:
        if c and (Path(c) / "playwright-core" / "package.json").is_file():
            return c
    return None


def test_pages_in_headless_chromium(hub, web_repo, tmp_path):
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        pytest.skip(f"{chromium} not installed (apt-get install -y chromium)")
    if not shutil.which("node"):
        pytest.skip("node not installed")
    node_path = _node_path()
    if node_path is None:
        pytest.skip("playwright-core not installed for node (npm install -g playwright-core@1.65.1)")
    env = dict(os.environ, NODE_PATH=node_path, CHROMIUM=chromium)
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    proc = subprocess.run(["node", str(HERE / "web_check.js"), hub.url, web_repo, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["errors"] == []
    assert web_repo in out["index"]
    assert web_repo in out["title"]
    assert out["cardHeading"] == "Tiny"
    assert len(out["images"]) == 1 and out["images"][0]["w"] == 1 and out["images"][0]["complete"]
    splits = {s["split"]: s for s in out["splits"]}
    assert splits["train"]["rows"] == 5 and splits["test"]["rows"] == 2
    assert splits["train"]["header"] == ["material_id", "tc"]
    assert out["files"] == ["data/", "figures/", ".gitattributes", "README.md", "build_info.json"]
    assert out["dataFiles"] == ["..", "test-00000-of-00001.parquet", "train-00000-of-00001.parquet"]
    assert out["branches"] == ["feat/x", "main"] and out["tags"] == ["v1.0"]
    assert out["commits"] == ["Publish tiny v1.0", "initial commit"]
    assert "data/train-00000-of-00001.parquet" in out["changes"]
    assert out["tagRev"] == "v1.0"
    # screenshot check: a real rendering (right size, not a blank page, the header bar drawn)
    import numpy as np
    from PIL import Image

    for name in ("repo.png", "repo-v1.png"):
        img = np.asarray(Image.open(tmp_path / name).convert("RGB")).astype(float)
        assert img.shape[1] == 1200 and img.shape[0] >= 1400 - 1
        assert img.std() > 10, f"{name} looks blank"
        assert img[5:30, :, :].mean() < 60, f"{name}: the dark header bar is missing"
        assert (img > 250).all(axis=2).mean() > 0.5, f"{name}: the page background is not white"
