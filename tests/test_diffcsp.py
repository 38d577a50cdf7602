"""DiffCSP baseline (models/diffcsp.py): edges against pymatgen's neighbour list, the
schedules, a resumed run equal to an uninterrupted one, save/load, generation for both
kinds of task, the CLI, and scoring of shipped predictions with provenance."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from dismai_data.models import load, write_predictions
from dismai_data.models.diffcsp import (DiffCSP, fc_edges, knn_edges, save_checkpoint, sigma_end_for, train,
                                        training_batches)
from dismai_data.structure import make_row, rows_to_table

pytest.importorskip("chemeleon_dng")
torch.set_num_threads(1)
TINY = dict(hidden_dim=16, time_dim=8, num_layers=2, num_freqs=4, timesteps=12)
# a 2 x 2 x 2 FCC cell of 32 sites (a = 3.6 Å): the shape of the alloy rows, small
ALLOY_CELL = np.eye(3) * 7.2
ALLOY_FRAC = np.vstack([(np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]) + np.array(t)) / 2
                        for t in np.ndindex(2, 2, 2)])


def _perovskite(i, a, b, x, lat):
    frac = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return make_row([a, b, x, x, x], frac, np.eye(3) * lat, f"p{i}")


def _write_split(folder, split, rows):
    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(rows_to_table(rows), folder / "data" / f"{split}-00000-of-00001.parquet")


def _perov_folder(tmp_path):
    train_rows = [_perovskite(i, a, b, "O", lat) for i, (a, b, lat) in
                  enumerate([("Sr", "Ti", 3.9), ("Ba", "Ti", 4.0), ("Ca", "Ti", 3.8), ("Sr", "Zr", 4.1)] * 3)]
    test_rows = [_perovskite(100 + i, a, b, "O", lat) for i, (a, b, lat) in
                 enumerate([("Ba", "Zr", 4.2), ("Ca", "Zr", 4.0)])]
    folder = tmp_path / "perov-5"
    _write_split(folder, "train", train_rows)
    _write_split(folder, "test", test_rows)
    return folder, train_rows, test_rows


def test_knn_edges_are_pymatgens_nearest_neighbours():
    from pymatgen.core import Lattice, Structure

    rng = np.random.default_rng(1)
    lat = np.array([[10.0, 0, 0], [0.5, 11.0, 0], [0, 0.3, 10.5]])
    frac = rng.random((30, 3))
    k, cutoff = 6, 4.5  # cutoff under half the shortest cell width: minimum image is exact
    e = knn_edges(torch.tensor(frac), torch.tensor(lat)[None], torch.tensor([30]), k, cutoff)
    s = Structure(Lattice(lat), ["Si"] * 30, frac)
    centre, nb, _, dist = s.get_neighbor_list(cutoff)
    for i in range(30):
        ref = sorted(zip(dist[centre == i], nb[centre == i]))[:k]
        ours = sorted(e[1, e[0] == i].tolist())
        assert ours == sorted(j for _, j in ref), i
    # a cutoff shorter than every distance gives no edges; the same for two cells of different sizes
    assert knn_edges(torch.tensor(frac), torch.tensor(lat)[None], torch.tensor([30]), k, 0.01).shape == (2, 0)
    two = knn_edges(torch.tensor(np.vstack([frac, frac[:10]])), torch.tensor(np.stack([lat, lat])),
                    torch.tensor([30, 10]), k, cutoff)
    assert two[:, two[0] >= 30].min() >= 30  # no edge crosses cells


def test_fc_edges_are_all_pairs_within_each_cell():
    e = fc_edges(torch.tensor([2, 3, 2])).T.tolist()
    want = [(i, j) for s, n in ((0, 2), (2, 3), (5, 2)) for i in range(s, s + n) for j in range(s, s + n)]
    assert sorted(map(tuple, e)) == sorted(want)


def test_schedules_are_diffcsps():
    assert (sigma_end_for("dismai/alloy"), sigma_end_for("a-si"), sigma_end_for("dismai/perov-5")) == (0.1, 0.05, 0.5)
    m = DiffCSP(**TINY)
    assert m.sigmas[0] == 0 and abs(float(m.sigmas[1]) - 0.005) < 1e-7 and abs(float(m.sigmas[-1]) - 0.5) < 1e-6
    assert float(m.alphas_cumprod[0]) == 1.0 and float(m.alphas_cumprod[-1]) < 1e-3
    assert torch.all(m.sigmas_norm[1:] > 0)
    # sigma_norm is drawn from a fixed seed: two models agree whatever the global RNG did
    torch.manual_seed(123)
    assert torch.equal(DiffCSP(**TINY).sigmas_norm, m.sigmas_norm)


def test_resumed_training_equals_an_uninterrupted_run(tmp_path):
    folder, train_rows, _ = _perov_folder(tmp_path)
    items, _, _ = training_batches(train_rows, fixed=False, source="tiny")
    torch.manual_seed(0)
    a = DiffCSP(**TINY)
    b = DiffCSP(**TINY)
    b.load_state_dict(a.state_dict())
    first = train(a, items, tmp_path / "a", epochs=4, batch_size=5, seed=3)
    train(b, items, tmp_path / "b", epochs=2, batch_size=5, seed=3)
    with open(tmp_path / "b" / "training_log.jsonl", "a") as fh:
        fh.write(json.dumps({"epoch": 3, "loss": 0.0}) + "\n")  # logged, then lost in a crash before a save
    torch.manual_seed(99)
    b2 = DiffCSP(**TINY)  # fresh weights: resume must take the checkpoint's
    second = train(b2, items, tmp_path / "b", epochs=4, batch_size=5, seed=3, resume=True)
    assert first["epoch"] == second["epoch"] == 4 and len(second["segments"]) == 2
    for (k, v), (_, w) in zip(a.state_dict().items(), b2.state_dict().items()):
        assert torch.equal(v, w), k
    losses = [json.loads(x)["loss"] for x in (tmp_path / "a" / "training_log.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and all(np.isfinite(losses))
    log_b = [json.loads(x) for x in (tmp_path / "b" / "training_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log_b] == [1, 2, 3, 4] and [r["loss"] for r in log_b] == losses


def test_generation_for_reconstruction_and_fixed_composition(tmp_path):
    folder, train_rows, test_rows = _perov_folder(tmp_path)
    m = DiffCSP(**TINY, dataset="dismai/perov-5")
    m.data_source = str(folder)
    rows = m.generate(seed=0)
    assert [r["id"] for r in rows] == [r["id"] for r in test_rows]
    assert [sorted(r["species"]) for r in rows] == [sorted(r["species"]) for r in test_rows]
    again = m.generate(seed=0)
    assert all(np.array_equal(x["frac_coords"], y["frac_coords"]) for x, y in zip(rows, again))
    assert m.generate(1, seed=1)[0]["frac_coords"] != rows[0]["frac_coords"]

    cell = ALLOY_CELL
    alloy = [make_row(["Ni"] * 16 + ["Fe"] * 16, ALLOY_FRAC, cell, f"a{i}") for i in range(3)]
    items, comp, lat = training_batches(alloy, fixed=True, source="alloy")
    f = DiffCSP(**TINY, edge_style="knn", knn=6, fixed_lattice=lat.tolist(), blocks=comp[0], block_numbers=comp[1])
    train(f, items, tmp_path / "f", epochs=1, batch_size=3)
    # a fixed composition of two species: every epoch logs how far apart the denoiser's input keeps them
    (rec,) = [json.loads(x) for x in (tmp_path / "f" / "training_log.jsonl").read_text().splitlines()]
    assert rec["species_separation"] == round(f.species_separation(), 4) > 0.5
    out = f.generate(3, seed=0)
    assert [r["id"] for r in out] == ["diffcsp-s0-00000", "diffcsp-s0-00001", "diffcsp-s0-00002"]
    assert all(r["species"] == ["Ni"] * 16 + ["Fe"] * 16 and np.allclose(r["lattice"], cell) for r in out)

    # align_origin: the same samples, each translated so its atom nearest the origin sits on it
    g = DiffCSP(**TINY, edge_style="knn", knn=6, fixed_lattice=lat.tolist(), blocks=comp[0], block_numbers=comp[1],
                align_origin=True)
    g.load_state_dict(f.state_dict())
    for raw, moved in zip(f.sample_arrays(3, seed=0), g.sample_arrays(3, seed=0)):
        fr, fm = raw[2], moved[2]
        d = fr - np.round(fr)
        k = int(np.argmin(np.linalg.norm(d @ cell, axis=1)))
        assert np.allclose(fm[k], 0.0) and fm.min() >= 0 and fm.max() < 1
        shift = fm - fr  # one translation for every atom (modulo the cell)
        assert np.allclose((shift - shift[0] + 0.5) % 1.0 - 0.5, 0, atol=1e-9)
    with pytest.raises(ValueError, match="align_origin needs fixed_lattice"):
        DiffCSP(**TINY, align_origin=True)


def test_half_precision_checkpoint_loads_through_the_baseline_loader(tmp_path):
    m = DiffCSP(**TINY, dataset="dismai/perov-5")
    save_checkpoint(m, tmp_path / "h", {"epoch": 0}, half=True)
    got = load(tmp_path / "h")
    assert isinstance(got, DiffCSP) and next(got.parameters()).dtype == torch.float32
    for (k, v), (_, w) in zip(m.named_parameters(), got.named_parameters()):
        assert torch.equal(v.half().float(), w), k
    assert torch.equal(got.sigmas_norm, m.sigmas_norm)  # schedules stay float32


def test_train_cli_and_bad_input(tmp_path):
    from dismai_data.cli import app

    folder, train_rows, _ = _perov_folder(tmp_path)
    out = tmp_path / "ck"
    args = ["train", "diffcsp", "--dataset", str(folder), "--out", str(out), "--epochs", "2", "--batch-size", "6",
            "--hidden-dim", "16", "--num-layers", "2", "--num-freqs", "4", "--time-dim", "8", "--timesteps", "10"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "training.json").read_text())
    assert summary["epoch"] == 2 and summary["segments"][0]["command"].startswith("dismai train diffcsp")
    res = CliRunner().invoke(app, args[:-12] + ["--epochs", "3", "--resume"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "training.json").read_text())["epoch"] == 3
    m = load(out)
    assert m.edge_style == "fc" and m.step_lr == 5e-7  # DiffCSP's Perov-5 corrector step
    bad = tmp_path / "bad"
    _write_split(bad, "train", [make_row(["Og", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * 4, "x1")])
    res = CliRunner().invoke(app, ["train", "diffcsp", "--dataset", str(bad), "--out", str(tmp_path / "o"),
                                   "--epochs", "1"])
    assert res.exit_code != 0 and "x1" in str(res.exception) and "118" in str(res.exception)


def test_train_cli_on_an_alloy_aligns_its_samples(tmp_path):
    from dismai_data.cli import app

    rng = np.random.default_rng(0)
    folder = tmp_path / "alloy"
    _write_split(folder, "train", [make_row(list(rng.permutation(["Ni"] * 16 + ["Fe"] * 16)), ALLOY_FRAC, ALLOY_CELL,
                                            f"a{i}") for i in range(4)])
    out = tmp_path / "ck"
    res = CliRunner().invoke(app, ["train", "diffcsp", "--dataset", str(folder), "--out", str(out), "--epochs", "1",
                                   "--edges", "knn", "--knn", "6", "--hidden-dim", "16", "--num-layers", "2",
                                   "--num-freqs", "4", "--time-dim", "8", "--timesteps", "10"])
    assert res.exit_code == 0, res.output
    m = load(out)
    assert m.align_origin and m.knn == 6 and m.fixed_lattice is not None
    assert m.sigma_end == 0.1 and abs(float(m.sigmas[-1]) - 0.1) < 1e-6  # Dismai-Bench's sigma_T for the alloys
    for r in m.generate(2, seed=0):  # the atom nearest the origin sits on it
        assert min(np.linalg.norm(np.asarray(r["frac_coords"]), axis=1)) < 1e-9
    # a new run from these weights under another sigma_T: the denoiser is copied, the schedule is the new one
    warm = tmp_path / "warm"
    arch = ["--edges", "knn", "--knn", "6", "--hidden-dim", "16", "--num-layers", "2", "--num-freqs", "4",
            "--time-dim", "8", "--timesteps", "10"]
    res = CliRunner().invoke(app, ["train", "diffcsp", "--dataset", str(folder), "--out", str(warm), "--epochs", "1",
                                   "--sigma-end", "0.2", "--init-from", str(out), "--save-every", "1e9", *arch])
    assert res.exit_code == 0, res.output
    w = load(warm)
    assert w.sigma_end == 0.2 and abs(float(w.sigmas[-1]) - 0.2) < 1e-6
    origin = json.loads((warm / "training.json").read_text())["initialised_from"]
    assert origin["folder"] == str(out) and origin["epoch"] == 1 and origin["sigma_end"] == 0.1
    assert origin["weights_sha256"] == hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    assert [g["epochs"] for g in origin["segments"]] == [1]  # the source's own history travels with it
    # another architecture, --resume with it, or a folder without a checkpoint: refused before anything is written
    for extra in (["--hidden-dim", "32"], ["--resume"], ["--init-from", str(tmp_path / "none")]):
        res = CliRunner().invoke(app, ["train", "diffcsp", "--dataset", str(folder), "--out", str(tmp_path / "x"),
                                       "--epochs", "1", "--init-from", str(out), *arch, *extra])
        assert res.exit_code == 2 and "--init-from" in res.output, res.output
    res = CliRunner().invoke(app, ["train", "diffcsp", "--dataset", str(folder), "--out", str(tmp_path / "x"),
                                   "--epochs", "1", "--sigma-end", "0.7", *arch])
    assert res.exit_code == 2 and "--sigma-end" in res.output


def test_shipped_predictions_are_scored_with_their_hashes(tmp_path, monkeypatch):
    from dismai_data.models import publish

    folder, _, test_rows = _perov_folder(tmp_path)
    ck = tmp_path / "checkpoints" / "diffcsp-perov-5"
    m = DiffCSP(**TINY, dataset="dismai/perov-5")
    save_checkpoint(m, ck, {"epoch": 0, "segments": []}, half=True)
    (ck / "predictions").mkdir()
    write_predictions(test_rows, ck / "predictions" / "seed0.parquet")  # exact: matched
    far = [make_row(r["species"], r["frac_coords"], np.eye(3) * 9.0, r["id"]) for r in test_rows]  # unmatched
    write_predictions(far, ck / "predictions" / "seed1.parquet")
    (ck / "generation.json").write_text(json.dumps({"device": "test", "seeds": [{"seed": 0, "seconds": 1.0}]}))
    monkeypatch.setattr(publish, "CHECKPOINTS", tmp_path / "checkpoints")
    b = publish.Baseline("diffcsp-perov-5", ["perov-5"], "dismai/perov-5", shipped=True, generic=False)
    scores = publish.score_baseline(b, tmp_path)["perov-5"]
    assert scores["metrics"]["diffcsp_match_rate"]["value"] == 1.0
    assert scores["metrics"]["diffcsp_match_rate_best_of_k"]["value"] == 1.0
    sp = scores["shipped_predictions"]
    assert sp["seeds"] == 2 and set(sp["files"]) == {"seed0.parquet", "seed1.parquet"} and sp["device"] == "test"
    card = publish.render_card(b, json.loads((ck / "config.json").read_text()), {"perov-5": scores},
                               json.loads((ck / "training.json").read_text()))
    assert "DiffCSP" in card and sp["files"]["seed0.parquet"][:16] in card


def test_species_separation_is_zero_when_the_input_cannot_tell_the_species_apart():
    m = DiffCSP(**TINY, fixed_lattice=ALLOY_CELL.tolist(), blocks=[["Fe", 16], ["Ni", 16]], block_numbers=[26, 28])
    assert m.species_separation() > 0.5  # random initialisation keeps them apart
    with torch.no_grad():
        m.net.node_embedding.weight[27] = m.net.node_embedding.weight[25]  # Ni's row := Fe's
    assert m.species_separation() == 0.0
    assert DiffCSP(**TINY).species_separation() is None  # no fixed composition: nothing to compare
