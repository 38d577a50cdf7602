"""Reference and predictions as hub dataset ids with @revision, through the stock
`datasets` client against the project's own hub on 127.0.0.1 (HF_ENDPOINT)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dismai_data.io import row_from_poscar
from dismai_data.structure import rows_to_table

ROOT = Path(__file__).resolve().parents[1]
JARVIS_ZIP = ROOT / "builders" / "raw" / "jarvis_supercon_3d" / "jarvis_leaderboard_atomgen_split.json.zip"


def test_hub_id_parsing():
    from dismai_data.evaluation.sources import _HUB_ID, split_hub_id

    assert split_hub_id("dismai/carbon-24@v1.0.0") == ("dismai/carbon-24", "v1.0.0")
    assert split_hub_id("dismai/carbon-24") == ("dismai/carbon-24", None)
    assert _HUB_ID.match("dismai/carbon-24@v1.0.0") and not _HUB_ID.match("/tmp/x y/z.parquet")


@pytest.mark.slow
def test_reference_and_predictions_from_hub(tmp_path):
    pytest.importorskip("dismai_data.hub.publish")
    from dismai_data.hub.publish import publish_dataset, publisher_token, serve_in_background

    with zipfile.ZipFile(JARVIS_ZIP) as z:
        d = json.loads(z.read(z.namelist()[0]))
    folder = tmp_path / "jarvis"
    (folder / "data").mkdir(parents=True)
    for split, n in (("train", 20), ("test", 8)):
        rows = [row_from_poscar(p, i) for i, p in sorted(d[split].items())[:n]]
        pq.write_table(rows_to_table(rows), folder / "data" / f"{split}-00000-of-00001.parquet")
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# test reference\n")
    (folder / "build_info.json").write_text(json.dumps({"name": "jarvis-supercon-3d", "version": "1.0.0"}))
    storage = tmp_path / "hubstore"
    with serve_in_background(storage) as hub:
        token = publisher_token(storage)
        publish_dataset(folder, "dismai/jarvis-test", endpoint=hub.url, token=token)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hfhome"), HF_HUB_DISABLE_TELEMETRY="1",
                   DISMAI_NO_PROGRESS="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1", NO_PROXY="127.0.0.1",
                   no_proxy="127.0.0.1")
        for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.pop(k, None)
        cmd = [sys.executable, "-m", "dismai_data.cli", "evaluate", "--task", "jarvis-supercon-3d",
               "--predictions", "dismai/jarvis-test@v1.0.0", "--reference", "dismai/jarvis-test@v1.0.0",
               "--out", str(tmp_path / "out"), "--no-generic"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        res = json.loads((tmp_path / "out" / "result.json").read_text())
        assert res["metrics"]["match_rate"]["value"] == 1.0
        assert res["reference"]["id"] == "dismai/jarvis-test" and res["reference"]["revision"] == "v1.0.0"
        assert res["predictions"]["revision"] == "v1.0.0" and res["counts"]["accepted"] == 8
        # an unknown revision is a file-level error naming the source, no traceback
        cmd[cmd.index("--reference") + 1] = "dismai/jarvis-test@v9.9.9"
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "dismai/jarvis-test@v9.9.9" in proc.stderr
