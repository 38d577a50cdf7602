"""The committed CryinGAN checkpoints (models/checkpoints/cryingan-*) as they are published:
staged through models/publish.py, the repo folder loads with ``CryinGAN.from_pretrained``
in a fresh process and generates the same structures; the card states the training budget
and labels unrelaxed interface scores; the files stay small (issue 6)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from huggingface_hub import ModelCard

from dismai_data.models import load
from dismai_data.models.publish import BASELINES, stage_baseline

CRYINGAN = [b for b in BASELINES if b.name.startswith("cryingan-")]


@pytest.mark.parametrize("b", CRYINGAN, ids=[b.name for b in CRYINGAN])
def test_staged_cryingan_repo_loads_in_a_fresh_process_and_states_its_budget(b, tmp_path):
    if not (b.folder / "config.json").is_file():
        pytest.skip(f"{b.folder}: no checkpoint committed")
    assert (b.folder / "model.safetensors").stat().st_size < 10 * 2**20
    training = json.loads((b.folder / "training.json").read_text())
    for key in ("epochs_completed", "generator_steps", "batches", "seconds", "command"):
        assert training.get(key) not in (None, ""), key
    scores = json.loads((b.folder / "scores.json").read_text()) if (b.folder / "scores.json").is_file() else None
    repo = stage_baseline(b, scores, tmp_path / "repo")
    here = load(b.folder).sample_frac(3, seed=5)
    code = ("import json, sys; from dismai_data.models.cryingan import CryinGAN; "
            f"m = CryinGAN.from_pretrained({str(repo)!r}); print(json.dumps(m.sample_frac(3, seed=5).tolist()))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_array_equal(np.array(json.loads(proc.stdout.strip().splitlines()[-1])), here)
    card = ModelCard.load(repo / "README.md")
    text = card.text
    assert f"{training['generator_steps']} generator steps" in text and "100 000 epochs" in text
    assert "not* comparable" in text
    if scores:
        names = {r.metric_name for r in card.data.eval_results}
        if b.no_relax and "interface" in b.tasks:
            assert names and all(n.endswith("(unrelaxed)") for n in names), names
            assert all(not s["relaxed"] for s in scores.values())
        for task, s in scores.items():
            assert s["generated"] == b.n and task in b.tasks
