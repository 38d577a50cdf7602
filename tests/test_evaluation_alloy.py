"""Alloy task: lattice-site assignment (shifted, rotated, noisy, vacancies), failures,
d_cluster self-score vs a segregated set."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

os.environ.setdefault("DISMAI_NO_PROGRESS", "1")

from dismai_data.physics import ce  # noqa: E402
from dismai_data.evaluation import evaluate  # noqa: E402
from dismai_data.evaluation.alloy import assign  # noqa: E402
from dismai_data.structure import make_row, rows_to_table  # noqa: E402


def _row(occ, rid, frac=None, cell=None):
    species, f, c = ce.structure_arrays(occ)
    return make_row(species, f if frac is None else frac, c if cell is None else cell, rid, symmetry=False)


@pytest.fixture(scope="module")
def train_rows():
    return [_row(ce.random_occupation(s), f"train-{s}") for s in range(16)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, train_rows):
    root = tmp_path_factory.mktemp("alloyref") / "alloy"
    d = root / "data" / "300K_wide"
    d.mkdir(parents=True)
    pq.write_table(rows_to_table(train_rows), d / "train-00000-of-00001.parquet")
    pq.write_table(rows_to_table(train_rows[:4]), d / "validation-00000-of-00001.parquet")
    (root / "build_info.json").write_text(json.dumps({"name": "alloy", "version": "1.0.0"}))
    return root


def _rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_assignment_handles_shift_rotation_noise(train_rows):
    row = train_rows[0]
    occ0 = ce.occupation_from_row(row)[0]
    frac = np.asarray(row["frac_coords"])
    cell = np.asarray(row["lattice"])
    # shifted: every atom moved by the same non-lattice vector
    shifted = make_row(row["species"], (frac + np.array([0.11, 0.05, -0.07])) % 1.0, cell, "s", symmetry=False)
    occ, un, how = assign(shifted)
    # a translated copy: the same configuration up to a lattice translation (sites relabelled)
    assert un == 0 and (occ >= 0).all() and "translation" in how
    assert np.allclose(ce.cluster_probabilities(occ), ce.cluster_probabilities(occ0), atol=1e-12)
    assert ce.formation_energy(occ) == pytest.approx(ce.formation_energy(occ0), abs=1e-12)
    # rigidly rotated cell and atoms: same fractional coordinates, rotated lattice vectors
    rot = _rotation([1, 2, 3], 0.7)
    rotated = make_row(row["species"], frac, cell @ rot.T, "r", symmetry=False)
    occ, un, how = assign(rotated)
    assert un == 0 and np.array_equal(occ, occ0)
    # the same lattice described by another (sheared) cell, rotated in space: 2NN-direction alignment
    tmat = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1]], float)
    cell2 = (tmat @ cell) @ _rotation([0.3, -1, 0.5], 1.1).T
    cart2 = (frac @ cell) @ _rotation([0.3, -1, 0.5], 1.1).T
    other = make_row(row["species"], np.linalg.solve(cell2.T, cart2.T).T % 1.0, cell2, "o", symmetry=False)
    occ, un, how = assign(other)
    assert un == 0 and "2NN" in how
    assert np.allclose(ce.cluster_probabilities(occ), ce.cluster_probabilities(occ0), atol=1e-12)
    # noisy positions (0.2 A) still map; two atoms pushed to octahedral holes leave 2 vacancies
    rng = np.random.default_rng(0)
    cart = frac @ cell + rng.normal(0, 0.1, frac.shape)
    cart[:2] += np.array([1.8, 0, 0])
    noisy = make_row(row["species"], np.linalg.solve(cell.T, cart.T).T % 1.0, cell, "n", symmetry=False)
    occ, un, how = assign(noisy)
    assert un == 2 and (occ < 0).sum() == 2


def test_alloy_scores(reference, train_rows, tmp_path):
    # self-score
    p = tmp_path / "self.parquet"
    pq.write_table(rows_to_table(train_rows), p)
    r = evaluate("alloy/300K_wide", str(p), reference=str(reference), out=str(tmp_path / "o1"))
    assert r.metrics["d_cluster"].value == pytest.approx(0.0, abs=1e-12)
    assert r.metrics["percent_with_vacancies"].value == 0.0 and r.counts.failed == 0
    assert r.metrics["wasserstein_energy"].value == pytest.approx(0.0, abs=1e-12)
    for f in ("figure_sro", "figure_energy", "figure_cluster_fingerprint"):
        assert os.path.getsize(r.files[f]) > 1000
    # segregated (layers by species): large d_cluster
    seg = []
    lat = ce.reference_lattice()
    order = np.argsort(lat.frac[:, 0], kind="stable")
    for s in range(6):
        occ = np.empty(lat.n_sites, np.int8)
        occ[order] = np.sort(ce.random_occupation(s))
        seg.append(_row(occ, f"seg-{s}"))
    p2 = tmp_path / "seg.parquet"
    pq.write_table(rows_to_table(seg), p2)
    r2 = evaluate("alloy/300K_wide", str(p2), reference=str(reference))
    assert r2.metrics["d_cluster"].value > 0.2
    assert r2.metrics["energy_mean"].value != pytest.approx(r.metrics["energy_mean"].value)


def test_alloy_row_failures(reference, train_rows, tmp_path):
    good = train_rows[0]
    frac = np.asarray(good["frac_coords"])
    cell = np.asarray(good["lattice"])
    rows = [make_row(good["species"], frac, cell, "ok", symmetry=False)]
    rows.append(make_row(good["species"][:-3], frac[:-3], cell, "short", symmetry=False))
    sp = list(good["species"])
    sp[0] = "Cu"
    rows.append(make_row(sp, frac, cell, "copper", symmetry=False))
    sp = list(good["species"])
    sp[sp.index("Fe")] = "Ni"
    rows.append(make_row(sp, frac, cell, "composition", symmetry=False))
    cart = frac @ cell
    cart[:60] += np.array([1.8, 0.0, 0.0])  # 60 atoms into octahedral holes
    rows.append(make_row(good["species"], np.linalg.solve(cell.T, cart.T).T % 1.0, cell, "holes", symmetry=False))
    p = tmp_path / "bad.parquet"
    pq.write_table(rows_to_table(rows), p)
    r = evaluate("alloy/300K_wide", str(p), reference=str(reference), out=str(tmp_path / "o"))
    import pandas as pd

    t = pd.read_csv(tmp_path / "o" / "rows.csv").set_index("id")
    assert t.loc["ok", "status"] == "accepted"
    assert "Cu" in t.loc["copper", "reason"]
    # the reference (remove_atoms_not_on_lattice_cryingan.py, count.py) rejects none of these: 3 atoms
    # missing are 3 vacancies, 60 atoms off the lattice leave 60 vacancies, another composition is scored
    assert t.loc["short", "status"] == "accepted" and t.loc["short", "n_vacancies"] == 3
    assert t.loc["holes", "status"] == "accepted" and t.loc["holes", "n_vacancies"] == 60
    assert t.loc["composition", "status"] == "accepted" and bool(t.loc["composition", "wrong_composition"])
    assert t.loc["holes", "n_unassigned"] == 60  # the per-site variant leaves it out (> 50 unassigned)
    assert r.counts.failed == 1 and r.counts.percent_failed == pytest.approx(20.0)
    assert r.metrics["percent_with_vacancies"].value == pytest.approx(50.0)
    assert r.metrics["percent_wrong_composition"].value == pytest.approx(50.0)  # short and composition
    assert r.metrics["d_cluster"].n == 4 and r.metrics["d_cluster_per_site"].n == 3


def test_alloy_cleanup_options(reference, train_rows, tmp_path):
    """diffcsp translates the reference lattice onto the atom nearest the origin; none keeps positions."""
    row = train_rows[1]
    frac = np.asarray(row["frac_coords"])
    cell = np.asarray(row["lattice"])
    shifted = make_row(row["species"], (frac + np.array([0.03, 0.02, -0.025])) % 1.0, cell, "shift", symmetry=False)
    p = tmp_path / "shift.parquet"
    pq.write_table(rows_to_table([shifted]), p)
    scores = {}
    for cleanup in ("cryingan", "diffcsp", "none"):
        r = evaluate("alloy/300K_wide", str(p), reference=str(reference), figures=False, alloy_cleanup=cleanup)
        scores[cleanup] = r
        assert r.settings["cleanup"] == cleanup and r.counts.failed == 0
    # a 0.63 A shift: the fixed reference lattice still finds every atom within 0.8 A; diffcsp and none
    # give the unshifted structure's fingerprint exactly
    fp0 = ce.fingerprint_from_counts(ce.cluster_counts_per_atom(ce.occupation_from_row(row)[0]))
    for c in ("diffcsp", "none"):
        assert scores[c].metrics["percent_with_vacancies"].value == 0.0
    assert scores["diffcsp"].metrics["d_cluster"].value == pytest.approx(scores["none"].metrics["d_cluster"].value,
                                                                         abs=1e-12)
    assert fp0.shape == (45,)
    with pytest.raises(Exception, match="clean-up"):
        evaluate("alloy/300K_wide", str(p), reference=str(reference), figures=False, alloy_cleanup="snap")


def _mc_rows(temperature, seed, prefix, n_keep=6):
    """Snapshots of a short canonical MC run (annealed from 1500 K) on the CE, as the builder."""
    res = ce.run_mc(ce.random_occupation(seed), temperature, n_passes=2400, snapshot_every=200, seed=seed,
                    anneal_from=1500.0 if temperature < 1500 else None, anneal_passes=600)
    return [_row(o, f"{prefix}-{k}") for k, o in enumerate(res.snapshots[-n_keep:])]


def test_alloy_done_when_validation_small_random_and_wrong_temperature_large(tmp_path):
    """Done-when pair: 300 K MC snapshots scored against other 300 K snapshots (the
    validation-vs-train situation) give a small d_cluster; a random solid solution and a
    1500 K set (wrong temperature) give several times larger ones."""
    root = tmp_path / "alloy"
    d = root / "data" / "300K_wide"
    d.mkdir(parents=True)
    pq.write_table(rows_to_table(_mc_rows(300.0, 11, "train")), d / "train-00000-of-00001.parquet")
    (root / "build_info.json").write_text(json.dumps({"name": "alloy", "version": "1.0.0"}))
    scores = {}
    for name, rows in (("validation", _mc_rows(300.0, 12, "val")),
                       ("random", [_row(ce.random_occupation(100 + s), f"rand-{s}") for s in range(6)]),
                       ("1500K", _mc_rows(1500.0, 13, "hot"))):
        p = tmp_path / f"{name}.parquet"
        pq.write_table(rows_to_table(rows), p)
        r = evaluate("alloy/300K_wide", str(p), reference=str(root), figures=False)
        assert r.counts.failed == 0
        scores[name] = r.metrics["d_cluster"].value
    assert scores["random"] > 3 * scores["validation"], scores
    assert scores["1500K"] > 2 * scores["validation"], scores
