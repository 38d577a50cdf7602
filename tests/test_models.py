"""Baseline models without a hub: CryinGAN pieces against brute force, training really
changes the generator, save/load round trip, random baselines' invariants, template
substitution, ``dismai generate`` on a local folder, clear errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from dismai_data.errors import StructureError
from dismai_data.models import load, write_predictions
from dismai_data.models.cryingan import CryinGAN, neighbor_distances, save_checkpoint, train, training_tensor
from dismai_data.models.random_baselines import RandomPacking, RandomSolidSolution, fcc_sites
from dismai_data.models.template import TemplateBaseline
from dismai_data.structure import make_row, rows_to_table

torch.set_num_threads(1)
TINY = dict(gen_channels=[8, 8, 8, 8], disc_channels=[8, 8, 8], disc_hidden=[8, 8], latent_dim=8)


def tiny_model(**kw) -> CryinGAN:
    torch.manual_seed(0)
    args = dict(blocks=[["Cr", 4], ["Fe", 8]], lattice=[[5.0, 0, 0], [0.3, 5.5, 0], [0, 0, 6.0]], lam=0.1, **TINY)
    args.update(kw)
    return CryinGAN(**args)


def test_neighbor_distances_match_brute_force():
    # minimum image: exact while the 6 neighbours lie within half the cell's narrowest width
    rng = np.random.default_rng(1)
    lat = np.array([[10.0, 0, 0], [0.3, 10.5, 0], [0, 0.2, 11.0]])
    n = 64
    frac = rng.random((2, n, 3))
    got = neighbor_distances(torch.tensor(frac), torch.tensor(lat), 6).numpy()
    assert got.max() < 0.5 * 10.0 * 0.99
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    for b in range(2):
        cart = frac[b] @ lat
        for i in range(0, n, 7):
            d = []
            for j in range(n):
                for s in shifts:
                    if i == j and not s.any():
                        continue
                    d.append(np.linalg.norm(cart[j] + s @ lat - cart[i]))
            np.testing.assert_allclose(got[b, i], np.sort(d)[:6], atol=1e-6)


def test_discriminators_are_invariant_within_species_blocks_only():
    m = tiny_model()
    x = torch.rand(3, 12, 3)
    perm_within = torch.cat([torch.randperm(4), 4 + torch.randperm(8)])
    with torch.no_grad():
        a = m.d_coord(x)
        assert torch.allclose(a, m.d_coord(x[:, perm_within]), atol=1e-6)
        assert torch.allclose(m.d_bond(m.bonds(x)), m.d_bond(m.bonds(x[:, perm_within])), atol=1e-5)
        swap = torch.arange(12)
        swap[[0, 11]] = swap[[11, 0]]  # a Cr and an Fe trade places: not the same structure
        assert not torch.allclose(a, m.d_coord(x[:, swap]), atol=1e-6)


def test_generator_outputs_fractional_coordinates_in_block_order():
    m = tiny_model()
    f = m.sample_frac(5, seed=3)
    assert f.shape == (5, 12, 3) and f.dtype == np.float64 and f.min() >= 0 and f.max() <= 1
    rows = m.generate(2, seed=3)
    assert rows[0]["species"] == ["Cr"] * 4 + ["Fe"] * 8
    # the same draw: a batch of 2 and a batch of 5 through the generator agree to float32
    # rounding (the matrix-product blocking may depend on the batch size)
    np.testing.assert_allclose(np.array(rows[0]["frac_coords"]), f[0] % 1.0, rtol=0, atol=1e-6)
    assert not np.array_equal(m.sample_frac(1, seed=4), f[:1])


def test_training_changes_the_generator_and_round_trips(tmp_path):
    m = tiny_model()
    rng = np.random.default_rng(0)
    data = torch.tensor(rng.random((20, 12, 3)), dtype=torch.float32)
    before = m.sample_frac(4, seed=7)
    summary = train(m, data, epochs=2, batch_size=4, seed=0)
    assert summary["epochs_completed"] == 2 and summary["batches"] == 10 and summary["generator_steps"] == 2
    assert summary["last_losses"] and all(np.isfinite(v) for v in summary["last_losses"].values())
    after = m.sample_frac(4, seed=7)
    assert not np.allclose(before, after)
    save_checkpoint(m, tmp_path / "ck", summary)
    assert {p.name for p in (tmp_path / "ck").iterdir()} == {"config.json", "model.safetensors", "training.json"}
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert cfg["baseline"] == "cryingan" and cfg["blocks"] == [["Cr", 4], ["Fe", 8]] and cfg["lam"] == 0.1
    m2 = load(tmp_path / "ck")
    assert isinstance(m2, CryinGAN)
    np.testing.assert_array_equal(m2.sample_frac(4, seed=7), after)


def test_training_is_deterministic_for_a_seed():
    rng = np.random.default_rng(0)
    data = torch.tensor(rng.random((8, 12, 3)), dtype=torch.float32)
    outs = []
    for _ in range(2):
        m = tiny_model()
        train(m, data, max_batches=5, batch_size=4, seed=11, translations=2)
        outs.append(m.sample_frac(2, seed=1))
    np.testing.assert_array_equal(outs[0], outs[1])


def _fcc_row(i, species, rng=None, a=3.6):
    frac, lat = fcc_sites(a, 2)
    if rng is not None:
        frac = (frac + rng.normal(0, 0.002, frac.shape)) % 1.0
    return make_row(species, frac, lat, f"r{i}", symmetry=False)


def test_training_tensor_sorts_blocks_and_names_bad_rows():
    sp = ["Ni", "Fe"] * 16
    rows = [_fcc_row(i, sp) for i in range(3)]
    data, blocks, lat = training_tensor(rows)
    assert blocks == [("Ni", 16), ("Fe", 16)] and data.shape == (3, 32, 3)
    frac = np.array(rows[0]["frac_coords"])
    np.testing.assert_allclose(data[0, :16].numpy(), frac[0::2], atol=1e-6)
    bad = rows + [_fcc_row(9, ["Ni"] * 17 + ["Fe"] * 15)]
    with pytest.raises(StructureError, match=r"row 'r9' \(index 3\).*field 'species'"):
        training_tensor(bad, source="x.parquet")
    other = rows + [_fcc_row(8, sp, a=3.7)]
    with pytest.raises(StructureError, match=r"row 'r8'.*field 'lattice'"):
        training_tensor(other)


def test_random_solid_solution_fills_the_fcc_lattice():
    m = RandomSolidSolution(composition={"Cr": 51, "Fe": 154, "Ni": 51})
    rows = m.generate(3, seed=5)
    sites, _ = fcc_sites()
    key = {tuple(np.round(s, 6)) for s in sites}
    for r in rows:
        assert r["formula"] == "Cr51 Fe154 Ni51"
        assert {tuple(np.round(s, 6)) for s in r["frac_coords"]} == key
    assert rows[0]["frac_coords"] != rows[1]["frac_coords"]
    assert m.generate(1, seed=5)[0]["frac_coords"] == rows[0]["frac_coords"]
    with pytest.raises(ValueError, match="must fill the 256 FCC sites"):
        RandomSolidSolution(composition={"Fe": 100})


def test_random_packing_respects_min_distance_and_density():
    m = RandomPacking(n_atoms=64, density=2.28, min_distance=2.2)
    r = m.generate(1, seed=2)[0]
    assert abs(r["density"] - 2.28) < 1e-6 and r["num_atoms"] == 64
    d = neighbor_distances(torch.tensor([r["frac_coords"]]), torch.tensor(r["lattice"]), 1).numpy()
    assert d.min() >= 2.2 - 1e-9
    with pytest.raises(RuntimeError, match="placed only"):
        RandomPacking(n_atoms=64, density=2.28, min_distance=4.0).generate(1)


def _rocksalt(i, a, b, lat):
    frac = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5],
            [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]]
    return make_row([a] * 4 + [b] * 4, frac, np.eye(3) * lat, f"{a}{b}-{i}")


def _write_split(folder, split, rows):
    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(rows_to_table(rows), folder / "data" / f"{split}-00000-of-00001.parquet")


def test_template_substitutes_species_and_scales_volume(tmp_path):
    train = [_rocksalt(0, "Na", "Cl", 5.64), _rocksalt(1, "Mg", "O", 4.21)]
    test = [_rocksalt(2, "K", "Cl", 6.29), _rocksalt(3, "Na", "Cl", 5.64)]
    _write_split(tmp_path, "train", train)
    _write_split(tmp_path, "test", test)
    m = TemplateBaseline(dataset="dismai/tiny", use_tc=False)
    m.data_source = str(tmp_path)
    rows = m.generate(seed=0)
    assert [r["id"] for r in rows] == ["KCl-2", "NaCl-3"]
    kcl, nacl = rows
    assert sorted(kcl["species"]) == sorted(test[0]["species"])
    assert kcl["volume"] > train[0]["volume"]  # K is larger than Na
    assert nacl["frac_coords"] == train[0]["frac_coords"] and nacl["species"] == train[0]["species"]
    np.testing.assert_allclose(nacl["lattice"], train[0]["lattice"])  # exact composition: template unchanged
    assert m.generate(1, seed=0)[0]["id"] == "KCl-2"


def test_generate_cli_writes_predictions_the_evaluation_reads(tmp_path):
    from dismai_data.cli import app
    from dismai_data.evaluation.sources import read_predictions

    folder = tmp_path / "rss"
    RandomSolidSolution(composition={"Cr": 51, "Fe": 154, "Ni": 51}).save_pretrained(folder)
    out = tmp_path / "preds.parquet"
    res = CliRunner().invoke(app, ["generate", "--model", str(folder), "-n", "4", "--out", str(out), "--seed", "1"])
    assert res.exit_code == 0, res.output
    preds = read_predictions(str(out), symmetry=False)
    assert len(preds.items) == 4 and all(it.ok for it in preds.items)
    again = tmp_path / "again.parquet"
    CliRunner().invoke(app, ["generate", "--model", str(folder), "-n", "4", "--out", str(again), "--seed", "1"])
    assert pq.read_table(out).equals(pq.read_table(again))


def test_load_rejects_folders_without_a_baseline(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load(tmp_path)
    (tmp_path / "config.json").write_text('{"foo": 1}')
    with pytest.raises(ValueError, match="no field 'baseline'"):
        load(tmp_path)
    (tmp_path / "config.json").write_text('{"baseline": "nope"}')
    with pytest.raises(ValueError, match="'baseline' is 'nope'"):
        load(tmp_path)


def test_write_predictions_keeps_only_structure_columns(tmp_path):
    rows = RandomSolidSolution().generate(2, seed=0)
    rows[0]["extra"] = 1
    p = write_predictions(rows, tmp_path / "p.parquet")
    assert "extra" not in pq.read_table(p).column_names


def test_train_cli_on_a_local_folder(tmp_path):
    from dismai_data.cli import app

    rng = np.random.default_rng(0)
    sp = ["Ni"] * 16 + ["Fe"] * 16
    folder = tmp_path / "alloy"
    _write_split(folder, "train", [_fcc_row(i, sp, rng) for i in range(6)])
    out = tmp_path / "ck"
    res = CliRunner().invoke(app, ["train", "cryingan", "--dataset", str(folder), "--lambda", "0.1", "--out", str(out),
                                   "--epochs", "2", "--batch-size", "4", "--gen-channels", "4,4,4,4",
                                   "--disc-channels", "4,4,4", "--disc-hidden", "4,4", "--latent-dim", "4"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "training.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_completed"] == 2
    assert summary["translations_per_axis"] == 4  # the alloy default (64 lattice translations)
    assert len((out / "training_log.jsonl").read_text().splitlines()) == 2
    m = load(out)
    assert m.blocks == [("Ni", 16), ("Fe", 16)] and m.dataset == "dismai/alloy"
