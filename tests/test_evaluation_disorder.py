"""a-Si / interface pieces: move-apart rule, fast RDF equal to vasppy (<= 1e-8),
bond-angle distribution, CrystalNN fingerprint length."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from dismai_data.evaluation.disorder import bond_angle_distribution, crystalnn_fingerprints, rdf_fast
from dismai_data.evaluation.disorder_prepare import move_apart
from dismai_data.evaluation.disorder_reference import rdf_reference

DIAMOND = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.25, 0.25, 0.25], [0.75, 0.75, 0.25],
           [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]]


def _asi(seed=0, noise=0.2, reps=(4, 4, 2)):
    s = Structure(Lattice.cubic(5.431), ["Si"] * 8, DIAMOND)
    s.make_supercell(list(reps))
    rng = np.random.default_rng(seed)
    return Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, noise, (len(s), 3)),
                     coords_are_cartesian=True)


def test_rdf_fast_equals_vasppy_on_amorphous_like_cells():
    s = _asi()  # 256 Si, 21.7 x 21.7 x 10.9 A: 2x2x2 supercell is 21.7 A wide, fast path used
    a, b = rdf_reference(s), rdf_fast(s)
    assert a.shape == (500,) and np.abs(a - b).max() <= 1e-8
    assert a.max() > 1.0  # a real RDF, not zeros
    # a triclinic cell too
    t = Structure(Lattice.from_parameters(12.0, 12.5, 13.0, 80, 95, 105), ["Si"] * 60,
                  np.random.default_rng(2).random((60, 3)))
    assert np.abs(rdf_reference(t) - rdf_fast(t)).max() <= 1e-8


def test_rdf_small_cell_falls_back_to_reference():
    s = Structure(Lattice.cubic(5.431), ["Si"] * 8, DIAMOND)  # 2x2x2 = 10.9 A: fast path not valid
    assert np.array_equal(rdf_fast(s), rdf_reference(s))


def test_move_apart_rule():
    s = Structure(Lattice.cubic(10.0), ["Si", "Si", "Si"], [[0.1, 0.1, 0.1], [0.2, 0.1, 0.1], [0.5, 0.5, 0.5]])
    out, ok, it = move_apart(s)
    assert ok and it == 1
    assert out.get_distance(0, 1) == pytest.approx(1.6, abs=1e-12)
    assert np.allclose(out.cart_coords[0], s.cart_coords[0])  # the first atom of the pair stays
    assert np.allclose(out.cart_coords[2], s.cart_coords[2])
    # across the periodic boundary
    s = Structure(Lattice.cubic(10.0), ["Si", "Si"], [[0.01, 0.5, 0.5], [0.95, 0.5, 0.5]])
    out, ok, _ = move_apart(s)
    assert ok and out.get_distance(0, 1) == pytest.approx(1.6, abs=1e-12)
    # a crowded cell that cannot be fixed within the limit
    dense = Structure(Lattice.cubic(3.0), ["Si"] * 27, np.random.default_rng(0).random((27, 3)))
    out, ok, it = move_apart(dense, max_iter=5)
    assert not ok and it == 5
    # a-Si-like cell after the rule: no pair below 1.5 A
    out, ok, _ = move_apart(_asi(noise=0.5))
    assert ok and np.sort(out.distance_matrix + 100 * np.eye(len(out)), axis=None)[0] >= 1.5 - 1e-9


def test_bond_angles_and_fingerprint_of_diamond():
    s = Structure(Lattice.cubic(5.431), ["Si"] * 8, DIAMOND)
    h = bond_angle_distribution(s)
    assert h.shape == (360,) and h.sum() == pytest.approx(1.0)
    assert h[int(109.4712 // 0.5)] == pytest.approx(1.0)  # every angle tetrahedral
    fp = crystalnn_fingerprints(s, [0])
    assert fp.shape == (1, 61)
    from matminer.featurizers.site import CrystalNNFingerprint

    labels = CrystalNNFingerprint.from_preset("ops").feature_labels()
    assert fp[0, labels.index("wt CN_4")] == pytest.approx(1.0)
    assert fp[0, labels.index("tetrahedral CN_4")] == pytest.approx(1.0)


# --------------------------------------------------------------------------- tasks
import json  # noqa: E402
import os  # noqa: E402

import pyarrow.parquet as pq  # noqa: E402

os.environ.setdefault("DISMAI_NO_PROGRESS", "1")

from dismai_data.evaluation import evaluate  # noqa: E402
from dismai_data.evaluation.disorder_reference import site_fingerprint  # noqa: E402
from dismai_data.evaluation.sources import EvaluationInputError  # noqa: E402
from dismai_data.structure import make_row, row_from_structure, rows_to_table  # noqa: E402


def _ref_folder(root, rows):
    (root / "data").mkdir(parents=True)
    pq.write_table(rows_to_table(rows), root / "data" / "train-00000-of-00001.parquet")
    (root / "build_info.json").write_text(json.dumps({"name": root.name, "version": "0.0.1"}))
    return root


def _small_asi(seed, noise=0.08):
    return _asi(seed=seed, noise=noise, reps=(2, 1, 1))  # 16 Si


def test_site_fingerprint_equals_matminer():
    from matminer.featurizers.site import CrystalNNFingerprint

    f = CrystalNNFingerprint.from_preset("ops")
    s = _small_asi(3, noise=0.2)
    for i in (0, 5, 11):
        assert np.abs(site_fingerprint(s, i) - np.array(f.featurize(s, i))).max() <= 1e-12
    # interface flavour: oxidation states, cation_anion, 61 + 48 numbers
    s = _interface_like(0)
    d = s.copy()
    d.add_oxidation_state_by_element({"Li": 1, "Sc": 3, "Co": 3, "Cl": -1, "O": -2})
    fa = CrystalNNFingerprint.from_preset("ops", cation_anion=True)
    fp = site_fingerprint(d, 0, True, ("Cl", "O"))
    assert fp.shape == (109,)
    assert np.abs(fp[:61] - np.array(fa.featurize(d, 0))).max() <= 1e-12
    cn = int(np.argmax(fp[[k for k, lab in enumerate(fa.feature_labels()) if lab.startswith("wt ")]])) + 1
    assert fp[61 + 2 * (cn - 1)] + fp[61 + 2 * (cn - 1) + 1] == pytest.approx(1.0)  # neighbours are Cl or O


def _interface_like(seed):
    """16-atom rock-salt cell: cations Li4 Co2 Sc2 on one sublattice, O6 Cl2 on the other."""
    base = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.2), ["Li", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    base.make_supercell([1, 1, 2])
    rng = np.random.default_rng(seed)
    cations = ["Li"] * 4 + ["Co"] * 2 + ["Sc"] * 2
    anions = ["O"] * 6 + ["Cl"] * 2
    rng.shuffle(cations)
    rng.shuffle(anions)
    species = []
    for site in base:
        species.append(cations.pop() if site.specie.symbol == "Li" else anions.pop())
    coords = base.cart_coords + rng.normal(0, 0.05, (len(base), 3))
    return Structure(base.lattice, species, coords, coords_are_cartesian=True)


def test_asi_task_self_random_and_failures(tmp_path):
    train = [row_from_structure(_small_asi(s), f"t{s}") for s in range(3)]
    ref = _ref_folder(tmp_path / "a-si", train)
    p = tmp_path / "self.parquet"
    pq.write_table(rows_to_table(train), p)
    with pytest.raises(EvaluationInputError, match="lammps_potential"):
        evaluate("a-si", str(p), reference=str(ref), lammps_potential="gap18")
    with pytest.raises(EvaluationInputError, match="lammps_potential"):
        evaluate("interface", str(p), reference=str(ref), lammps_potential="sw")
    r = evaluate("a-si", str(p), reference=str(ref), no_relax=True, out=str(tmp_path / "o"))
    assert r.relaxed is False and "NOT relaxed" in r.relaxation_note
    for k in ("d_motif", "d_rdf", "d_angle"):
        assert r.metrics[k].value == pytest.approx(0.0, abs=1e-12), k
    assert os.path.getsize(r.files["figure_rdf"]) > 1000
    # randomised positions (same composition) score far worse; a Ge row fails
    rng = np.random.default_rng(5)
    rand = [make_row(["Si"] * 16, rng.random((16, 3)), train[0]["lattice"], f"r{i}", symmetry=False)
            for i in range(3)]
    ge = make_row(["Ge"] + ["Si"] * 15, train[0]["frac_coords"], train[0]["lattice"], "ge", symmetry=False)
    p2 = tmp_path / "rand.parquet"
    pq.write_table(rows_to_table(rand + [ge]), p2)
    r2 = evaluate("a-si", str(p2), reference=str(ref), no_relax=True, out=str(tmp_path / "o2"))
    assert r2.metrics["d_motif"].value > 0.1 and r2.metrics["d_rdf"].value > 1.0 and r2.metrics["d_angle"].value > 0.05
    assert r2.counts.failed == 1 and r2.counts.percent_failed == pytest.approx(25.0)
    import pandas as pd

    t = pd.read_csv(tmp_path / "o2" / "rows.csv").set_index("id")
    assert "composition" in t.loc["ge", "reason"]
    assert (t.loc[["r0", "r1", "r2"], "move_apart_iterations"] >= 0).all()


def test_interface_task_self_score(tmp_path):
    train = [row_from_structure(_interface_like(s), f"t{s}") for s in range(2)]
    ref = _ref_folder(tmp_path / "interface", train)
    p = tmp_path / "self.parquet"
    pq.write_table(rows_to_table(train), p)
    r = evaluate("interface", str(p), reference=str(ref), no_relax=True)
    for k in ("d_Li", "d_Co", "d_Sc", "d_all", "cos_d_all"):
        assert r.metrics[k].value == pytest.approx(0.0, abs=1e-9), k
    other = [row_from_structure(_interface_like(s), f"o{s}") for s in (7, 8)]
    pq.write_table(rows_to_table(other), p)
    r2 = evaluate("interface", str(p), reference=str(ref), no_relax=True)
    assert r2.metrics["d_all"].value > 0.0
