"""Library references of the a-Si and interface features, which the fast implementations are
tested against (tests/test_crystalnn.py, tests/test_evaluation_disorder.py; benchmarks/eval_fingerprint.py).

* :func:`rdf_reference` — vasppy's ``RadialDistributionFunction`` over all sites of the 2x2x2
  supercell (also :func:`.disorder.rdf_fast`'s fallback where r_max reaches half a supercell width);
* :func:`bond_angle_distribution_reference` — pymatgen ``CrystalNN`` per site, the reference's
  angles and binning (:mod:`dismai_data.geometry`);
* :func:`crystalnn_fingerprints_reference` / :func:`site_fingerprint` — matminer's
  ``CrystalNNFingerprint`` ("ops"), site by site; :func:`site_fingerprint` also the interface
  variant (``cation_anion=True`` and the fractions of given species per CN, 109 numbers).
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from dismai_data.geometry import angle_histogram, neighbour_angles

from .order_params import MAX_CN

#: the a-Si task's RDF (0-10 A, 0.02 A bins) and bond-angle (0.5 degree bins) definitions
RDF_RMAX = 10.0
RDF_DR = 0.02
ANGLE_BIN = 0.5


def rdf_reference(structure, r_max: float = RDF_RMAX, dr: float = RDF_DR) -> np.ndarray:
    """vasppy RDF of all sites of the 2x2x2 supercell."""
    from vasppy.rdf import RadialDistributionFunction

    sc = structure * (2, 2, 2)
    nbins = int(round(r_max / dr))
    ref = RadialDistributionFunction([sc], list(range(len(sc))), nbins=nbins, r_min=0.0, r_max=r_max)
    return ref.rdf


def bond_angle_distribution_reference(structure, bin_width: float = ANGLE_BIN) -> np.ndarray:
    """The library reference of :func:`bond_angle_distribution` (pymatgen CrystalNN per site)."""
    from pymatgen.analysis.local_env import CrystalNN


    cnn = CrystalNN(distance_cutoffs=None, x_diff_weight=0, porous_adjustment=False)
    angles = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, site in enumerate(structure):
            nn = cnn.get_nn_info(structure, i)
            vecs = np.array([d["site"].coords - site.coords for d in nn])
            if len(vecs) < 2:
                continue
            angles.append(neighbour_angles(vecs, bin_width))
    return angle_histogram(np.concatenate(angles) if angles else np.zeros(0), bin_width)


def crystalnn_fingerprints_reference(structure, indices=None) -> np.ndarray:
    """The library reference of :func:`crystalnn_fingerprints` (matminer, site by site)."""
    from matminer.featurizers.site import CrystalNNFingerprint

    f = CrystalNNFingerprint.from_preset("ops")
    idx = range(len(structure)) if indices is None else indices
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([f.featurize(structure, i) for i in idx], dtype=float)


@lru_cache(maxsize=2)
def _featurizer(cation_anion: bool):
    from matminer.featurizers.site import CrystalNNFingerprint

    return CrystalNNFingerprint.from_preset("ops", cation_anion=cation_anion)


def site_fingerprint(structure, idx: int, cation_anion: bool = False,
                     fraction_species: tuple[str, ...] = ()) -> np.ndarray:
    """matminer ``CrystalNNFingerprint`` ("ops") of one site, computed from one
    ``CrystalNN.get_nn_data`` call exactly as ``featurize`` does, plus (interface) for each
    CN 1..24 the fractions of that CN's neighbours that are each of ``fraction_species``
    (interleaved per CN: Cl_1, O_1, Cl_2, O_2, ...; zeros where the CN weight is 0)."""
    f = _featurizer(cation_anion)
    nndata = f.cnn.get_nn_data(structure, idx)
    out = []
    for cn in range(1, MAX_CN + 1):
        wt = nndata.cn_weights.get(cn, 0)
        for op in f.ops.get(cn, []):
            if op == "wt" or wt == 0:
                out.append(wt)
            else:
                neigh = [d["site"] for d in nndata.cn_nninfo[cn]]
                val = op.get_order_parameters([structure[idx]] + neigh, 0,
                                              indices_neighs=list(range(1, len(neigh) + 1)))[0]
                out.append(wt * (val or 0))
    for cn in range(1, MAX_CN + 1) if fraction_species else ():
        wt = nndata.cn_weights.get(cn, 0)
        neigh = nndata.cn_nninfo.get(cn, [])
        for sp in fraction_species:
            if wt == 0 or not neigh:
                out.append(0.0)
            else:
                out.append(sum(d["site"].specie.symbol == sp for d in neigh) / len(neigh))
    return np.asarray(out, dtype=float)
