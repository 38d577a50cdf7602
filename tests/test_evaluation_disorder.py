"""a-Si / interface pieces: move-apart rule, fast RDF equal to vasppy (<= 1e-8),
bond-angle distribution, CrystalNN fingerprint length."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from dismai_data.evaluation.disorder import (bond_angle_distribution, crystalnn_fingerprints, move_apart,
                                             rdf_fast, rdf_reference)

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
