"""Fast CrystalNN fingerprints / bond angles (evaluation/crystalnn.py) against the reference
libraries on the same inputs, in the same test: matminer ``CrystalNNFingerprint`` ("ops"),
``disorder_reference.site_fingerprint`` (the 109-number interface version) and pymatgen ``CrystalNN``
bond angles. Agreement: |difference| <= 1e-8 on every entry."""

from __future__ import annotations

import glob
import os
import warnings

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from dismai_data.evaluation import crystalnn as C
from dismai_data.evaluation import crystalnn_neighbours as N
from dismai_data.evaluation.disorder import FRACTION_SPECIES, decorate
from dismai_data.evaluation.disorder_reference import bond_angle_distribution_reference as reference_angle_distribution
from dismai_data.evaluation.disorder_reference import site_fingerprint

TOL = 1e-8
DIAMOND = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.25, 0.25, 0.25], [0.75, 0.75, 0.25],
           [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]]
DATASETS = os.path.join(os.path.expanduser("~"), ".cache", "dismai-data", "datasets")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _rattle(s, sigma, seed):
    rng = np.random.default_rng(seed)
    return Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, sigma, (len(s), 3)),
                     coords_are_cartesian=True)


def _asi(seed=0, noise=0.2):
    s = Structure(Lattice.cubic(5.431), ["Si"] * 8, DIAMOND)
    s.make_supercell([2, 2, 2])
    return _rattle(s, noise, seed)


def _licoo2():
    return Structure.from_spacegroup("R-3m", Lattice.hexagonal(2.816, 14.05), ["Li", "Co", "O"],
                                     [[0, 0, 0], [0, 0, 0.5], [0, 0, 0.2604]])


def _lco_vacancies():
    s = _licoo2() * (2, 2, 1)
    s.remove_sites([0, 5, 13])  # two Li and one Co vacancy
    return _rattle(s, 0.1, 2)


def _licl_sc():
    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.14), ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    s = s * (2, 1, 1)
    s.replace(0, "Sc")
    s.replace(2, "Sc")
    s.remove_sites([4, 5])  # Li vacancies (charge balance does not matter to the fingerprint)
    return _rattle(s, 0.12, 5)


def _mixed_oxide_chloride():
    """Interface-like: LiCoO2 slab + rock-salt Li/Sc chloride slab in one rattled cell."""
    lco = _licoo2()
    lat = Lattice.from_parameters(2 * 2.816, 2 * 2.816, 14.0, 90, 90, 120)
    rng = np.random.default_rng(11)
    species, frac = [], []
    for sp, f in zip([s.specie.symbol for s in lco * (2, 2, 1)], (lco * (2, 2, 1)).frac_coords):
        if f[2] < 0.5:
            species.append(sp)
            frac.append([f[0], f[1], f[2] * 14.05 / 14.0])
    for k in range(10):  # loose Cl / Sc / Li layer above
        species.append(["Cl", "Cl", "Li", "Sc", "Cl"][k % 5])
        frac.append([rng.random(), rng.random(), 0.55 + 0.4 * rng.random()])
    s = Structure(lat, species, frac)
    from dismai_data.evaluation.disorder_prepare import move_apart

    s, ok, _ = move_apart(s)
    assert ok
    return _rattle(s, 0.05, 3)


def _reference_ops(structure, idx, cation_anion=False):
    from matminer.featurizers.site import CrystalNNFingerprint

    f = CrystalNNFingerprint.from_preset("ops", cation_anion=cation_anion)
    return np.array([f.featurize(structure, i) for i in idx], dtype=float)


def _reference_angles(structure, i):
    from pymatgen.analysis.local_env import CrystalNN

    nn = CrystalNN(distance_cutoffs=None, x_diff_weight=0, porous_adjustment=False).get_nn_info(structure, i)
    vecs = np.array([d["site"].coords - structure[i].coords for d in nn])
    if len(vecs) < 2:
        return np.zeros(0)
    u = vecs / np.linalg.norm(vecs, axis=1)[:, None]
    cos = np.clip(u @ u.T, -1.0, 1.0)
    return np.degrees(np.arccos(cos[np.triu_indices(len(u), 1)]))


# --------------------------------------------------------------------------- structures
def _perfect_and_edge_cases():
    lat20 = Lattice.cubic(20.0)
    return {
        "diamond Si": Structure(Lattice.cubic(5.431), ["Si"] * 8, DIAMOND),
        "bcc Fe": Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "fcc Cu": Structure(Lattice.cubic(3.61), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]),
        "hcp Co": Structure(Lattice.hexagonal(2.5, 4.07), ["Co", "Co"], [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]),
        "LiCoO2": _licoo2(),
        # a site that is its own image: one atom per cell (cubic and triclinic)
        "1-atom cubic": Structure(Lattice.cubic(2.5), ["Si"], [[0, 0, 0]]),
        "1-atom triclinic": Structure(Lattice.from_parameters(2.6, 2.9, 3.1, 70, 80, 100), ["Si"], [[0.1, 0.2, 0.3]]),
        # no neighbour within the 7 A search cutoff: VoronoiNN's cutoff doubling (slow path)
        "isolated": Structure(lat20, ["Si", "Si"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        # CN > 12 (bcc: 8 + 6) with the bcc order parameter, rattled
        "bcc rattled": _rattle(Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]]) * (3, 3, 3),
                               0.05, 1),
        # random packings: many CNs, CN > 12 and small CNs
        "dense random": Structure(Lattice.cubic(8.0), ["Si"] * 50, np.random.default_rng(3).random((50, 3))),
        "sparse random": Structure(Lattice.from_parameters(9.0, 10.0, 11.0, 80, 100, 110), ["Si"] * 14,
                                   np.random.default_rng(4).random((14, 3))),
    }


def _dataset_structures(name, n):
    """A few rows of a built dataset (validation split), if this machine has it."""
    import pyarrow.parquet as pq

    from dismai_data.structure import row_to_structure

    files = sorted(glob.glob(os.path.join(DATASETS, name, "data", "**", "*.parquet"), recursive=True))
    return [row_to_structure(r) for r in pq.read_table(files[0]).slice(0, n).to_pylist()] if files else []


# --------------------------------------------------------------------------- tests
def test_generated_interface_equals_reference():
    """A real generated (unrelaxed) interface, cation sites, the 109-number version."""
    from dismai_data.builders.interface import unrelaxed_interfaces

    s = unrelaxed_interfaces(1, 0)[0]
    d = decorate(s)
    cations = [i for i, site in enumerate(s) if site.specie.symbol in ("Li", "Co", "Sc")]
    idx = cations[::6]  # 20 of the 120 cations (Li, Co and Sc)
    ours = C.fingerprints(s, idx, cation_anion=True, oxidation_states=C.OXIDATION_STATES,
                          fraction_species=FRACTION_SPECIES)
    ref = np.array([site_fingerprint(d, i, True, FRACTION_SPECIES) for i in idx])
    assert np.abs(ours - ref).max() <= TOL


def test_labels_are_matminers():
    from matminer.featurizers.site import CrystalNNFingerprint

    assert C.LABELS == CrystalNNFingerprint.from_preset("ops").feature_labels()
    assert len(C.LABELS) == 61 and len(C.feature_labels(FRACTION_SPECIES)) == 109


def test_a_si_fingerprints_equal_matminer():
    structures = [_asi(seed=0), _asi(seed=1, noise=0.35)] + _dataset_structures("a-si", 2)
    for s in structures:
        idx = list(range(0, len(s), max(1, len(s) // 40)))
        ours, ref = C.fingerprints(s, idx), _reference_ops(s, idx)
        assert ours.shape == (len(idx), 61)
        assert np.abs(ours - ref).max() <= TOL
    # a real signal: rattled diamond is mostly 4-coordinated tetrahedral
    fp = C.fingerprints(structures[0])
    assert fp[:, C.LABELS.index("tetrahedral CN_4")].mean() > 0.3


@pytest.mark.parametrize("make", [_lco_vacancies, _licl_sc, _mixed_oxide_chloride])
def test_interface_fingerprints_equal_reference(make):
    s = make()
    d = decorate(s)
    idx = list(range(len(s)))
    ours = C.fingerprints(d, idx, cation_anion=True, fraction_species=FRACTION_SPECIES)
    ref = np.array([site_fingerprint(d, i, True, FRACTION_SPECIES) for i in idx])
    assert ours.shape == (len(idx), 109)
    assert np.abs(ours - ref).max() <= TOL
    # the 61 matminer entries themselves, and the plain (no cation_anion) variant
    assert np.abs(ours[:, :61] - _reference_ops(d, idx, cation_anion=True)).max() <= TOL
    assert np.abs(C.fingerprints(s, idx) - _reference_ops(s, idx)).max() <= TOL
    # undecorated structure + oxidation-state mapping gives the same numbers
    same = C.fingerprints(s, idx, cation_anion=True, oxidation_states=C.OXIDATION_STATES,
                          fraction_species=FRACTION_SPECIES)
    assert np.array_equal(same, ours)
    assert ours[:, 61:].max() > 0  # fraction entries really filled


def test_perfect_crystals_and_edge_cases_equal_matminer():
    seen = np.zeros(61, bool)
    for name, s in _perfect_and_edge_cases().items():
        idx = list(range(min(len(s), 24)))
        ours, ref = C.fingerprints(s, idx), _reference_ops(s, idx)
        assert np.abs(ours - ref).max() <= TOL, name
        seen |= (np.abs(ref) > 0).any(axis=0)
    # the cases exercise many entries: CNs 1..14+ and most order-parameter types
    assert seen.sum() >= 45, [lab for lab, x in zip(C.LABELS, seen) if not x]
    assert seen[C.LABELS.index("body-centered cubic CN_8")] and seen[C.LABELS.index("wt CN_14")]


def _slab():
    """LiCoO2 slab with 15 A of vacuum: surface cells are unbounded within 7 A, so VoronoiNN
    doubles its cutoff (7 -> 14 -> 28 A)."""
    bulk = _licoo2() * (2, 2, 1)
    lat = bulk.lattice.matrix.copy()
    lat[2] = lat[2] / np.linalg.norm(lat[2]) * (14.05 + 15.0)
    keep = [i for i, f in enumerate(bulk.frac_coords) if f[2] < 0.999]
    return _rattle(Structure(lat, [bulk[i].specie for i in keep], bulk.cart_coords[keep],
                             coords_are_cartesian=True), 0.05, 8)


def test_clipped_cells_equal_qhull_cells():
    """The clipped cell (with VoronoiNN's cutoff doubling) has the faces of qhull's cell."""
    cases = _perfect_and_edge_cases()
    for s in (cases["dense random"], cases["isolated"], _slab(), _asi()):
        prep = N.Prepared(s, list(range(len(s))), False, None)
        fast = N.faces_fast(prep)
        assert all(f is not None for f in fast)
        for k, (pts, nj, rows, sa, area) in enumerate(fast):
            pts2, nj2, rows2, sa2, area2 = N.faces_scipy(prep, k)
            a = {(int(nj2[r]), tuple(np.round(pts2[r], 6))): (x, y) for r, x, y in zip(rows2, sa2, area2) if x > 1e-9}
            b = {(int(nj[r]), tuple(np.round(pts[r], 6))): (x, y) for r, x, y in zip(rows, sa, area) if x > 1e-9}
            assert a.keys() == b.keys()
            for key in a:
                assert abs(a[key][0] - b[key][0]) <= 1e-9 and abs(a[key][1] - b[key][1]) <= 1e-9 * max(1.0, a[key][1])


def test_slab_and_exact_path_equal_matminer(monkeypatch):
    s = _slab()
    idx = list(range(len(s)))
    ref = _reference_ops(s, idx)
    assert np.abs(C.fingerprints(s, idx) - ref).max() <= TOL
    d = decorate(s)
    ref_ca = np.array([site_fingerprint(d, i, True, FRACTION_SPECIES) for i in idx])
    assert np.abs(C.fingerprints(d, idx, cation_anion=True, fraction_species=FRACTION_SPECIES) - ref_ca).max() <= TOL
    # every site through the exact (scipy/qhull) path gives the same numbers too
    monkeypatch.setattr(C, "faces_fast", lambda prep: [None] * len(prep.indices))
    assert np.abs(C.fingerprints(s, idx) - ref).max() <= TOL
    a = _asi(seed=3)
    assert np.abs(C.fingerprints(a, range(20)) - _reference_ops(a, range(20))).max() <= TOL


def test_alloy_rows_equal_matminer():
    structures = _dataset_structures("alloy", 1)
    if not structures:
        structures = [_rattle(Structure(Lattice.cubic(3.6), ["Fe", "Ni", "Cr", "Fe"],
                                        [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]) * (2, 2, 2), 0.0, 0)]
    for s in structures:
        idx = list(range(0, len(s), max(1, len(s) // 12)))
        assert np.abs(C.fingerprints(s, idx) - _reference_ops(s, idx)).max() <= TOL


def _assert_same_angles(ours, ref):
    """The same bond angles (degrees, any order): within TOL, except within 1 degree of 0 or
    180, where arccos is ill-conditioned (a rounding of 1e-16 in the cosine moves the angle by
    ~1e-6 degrees) and the cosines are compared instead (within 1e-12)."""
    a, b = np.sort(np.asarray(ours, dtype=float)), np.sort(np.asarray(ref, dtype=float))
    assert a.shape == b.shape
    assert np.abs(np.cos(np.radians(a)) - np.cos(np.radians(b))).max() <= 1e-12
    inner = (b > 1.0) & (b < 179.0)
    assert np.abs(a[inner] - b[inner]).max(initial=0.0) <= TOL


def _assert_same_angle_distribution(s, bin_width: float = 0.5):
    """Our bond-angle histogram equals pymatgen's, except that an angle within 1e-9 degrees of
    a bin edge (perfect crystals: 60, 90, 120, 180 degrees) may fall on either side of it, as
    the last bit of arccos differs between CPUs (both are checked to agree within TOL per
    angle before this)."""
    ours, ref = C.bond_angle_distribution(s), reference_angle_distribution(s)
    assert abs(ours.sum() - ref.sum()) <= TOL
    bad = set(np.flatnonzero(np.abs(ours - ref) > TOL).tolist())
    if bad:
        angles = [_reference_angles(s, i) for i in range(len(s))]
        pos = np.concatenate([a for a in angles if len(a)]) / bin_width
        edges = np.round(pos[np.abs(pos - np.round(pos)) < 1e-9 / bin_width]).astype(int)
        assert bad <= set(edges.tolist()) | set((edges - 1).tolist()), f"bins {sorted(bad)} differ"


def test_bond_angles_equal_pymatgen():
    rattled = [_asi(seed=0), _lco_vacancies(), _licl_sc(), _perfect_and_edge_cases()["dense random"]]
    perfect = [s for k, s in _perfect_and_edge_cases().items() if k != "dense random"]
    for s in rattled + _dataset_structures("a-si", 1):
        ours = C.bond_angles(s)
        for i in range(len(s)):
            ref = _reference_angles(s, i)
            assert len(ours[i]) == len(ref)
            if len(ref):
                _assert_same_angles(ours[i], ref)
        _assert_same_angle_distribution(s)
    # perfect crystals: tied weights (neighbour order = qhull's, taken via the exact path)
    for s in perfect + _dataset_structures("alloy", 1):
        ours = C.bond_angles(s)
        for i in range(len(s)):
            ref = _reference_angles(s, i)
            assert len(ours[i]) == len(ref)
            if len(ref):
                _assert_same_angles(ours[i], ref)
        _assert_same_angle_distribution(s)
    h = C.bond_angle_distribution(Structure(Lattice.cubic(5.431), ["Si"] * 8, DIAMOND))
    assert h[int(109.4712 // 0.5)] == pytest.approx(1.0)


def test_cation_anion_needs_oxidation_states():
    with pytest.raises(ValueError, match="oxidation state"):
        C.fingerprints(_licl_sc(), [0], cation_anion=True)
    assert C.fingerprints(_asi(), []).shape == (0, 61)
