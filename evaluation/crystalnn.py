"""Fast CrystalNN fingerprints and CrystalNN bond angles, equal to the reference libraries.

The reference is matminer's ``CrystalNNFingerprint.from_preset("ops")`` (pymatgen
``CrystalNN`` + ``VoronoiNN`` + ``LocalStructOrderParams``), site by site. This module gives
the same numbers (tested to <= 1e-8 against the libraries on the same inputs,
tests/test_crystalnn.py) for many sites of one structure at once: the neighbours and their
CrystalNN weights from :mod:`.crystalnn_neighbours`, the order parameters from
:mod:`.order_params`, the bond angles and their histogram from :mod:`dismai_data.geometry`.
"""

from __future__ import annotations

import numpy as np

from dismai_data.geometry import angle_histogram, neighbour_angles

from .crystalnn_neighbours import Prepared, faces_fast, near_ties, nn_data
from .order_params import LABELS, MAX_CN, N_OPS, feature_labels, fill_order_params

__all__ = ["LABELS", "MAX_CN", "N_OPS", "OXIDATION_STATES", "bond_angle_distribution", "bond_angles",
           "feature_labels", "fingerprints"]

OXIDATION_STATES = {"Li": 1, "Sc": 3, "Co": 3, "Cl": -1, "O": -2}


def fingerprints(structure, indices=None, *, cation_anion: bool = False, oxidation_states=None,
                 fraction_species=()) -> np.ndarray:
    """CrystalNN fingerprints (matminer ``CrystalNNFingerprint.from_preset("ops",
    cation_anion=...)``: 61 numbers) of the given sites, plus for each CN 1..24 the
    fraction of that CN's neighbours that are each of ``fraction_species`` (interleaved
    per CN; 0 where the CN weight is 0), as ``disorder_reference.site_fingerprint`` computes them.

    ``cation_anion=True`` restricts neighbours to opposite (or zero) charge; oxidation
    states come from the structure's species or, if undecorated, ``oxidation_states``
    (element -> charge). Returns an array (len(indices), 61 + 24 * len(fraction_species))."""
    idx = list(range(len(structure))) if indices is None else [int(i) for i in indices]
    nfeat = N_OPS + MAX_CN * len(fraction_species)
    out = np.zeros((len(idx), nfeat))
    if not idx:
        return out
    prep = Prepared(structure, idx, cation_anion, oxidation_states)
    faces = faces_fast(prep)
    cn_wt = np.zeros(MAX_CN + 1)
    for s in range(len(idx)):
        kw = dict(porous_adjustment=True, x_diff_weight=3.0, distance_cutoffs=(0.5, 1))
        nbc, nbi, cn_weights, raw = nn_data(prep, s, faces[s], **kw)
        if faces[s] is not None and cn_weights.get(8, 0) != 0 and near_ties(raw[:8]):
            # the bcc order parameter depends on the order of the CN-8 neighbours; with
            # (near-)tied weights that order is qhull's ridge order: take the exact path
            nbc, nbi, cn_weights, raw = nn_data(prep, s, None, **kw)
        cn_wt[:] = 0.0
        for cn, w in cn_weights.items():
            if 1 <= cn <= MAX_CN:
                cn_wt[cn] = w
        nb = np.ascontiguousarray(nbc[:MAX_CN]) if len(nbc) else np.zeros((0, 3))
        fill_order_params(prep.cart[idx[s]], nb, cn_wt, out[s, :N_OPS])
        if fraction_species:
            col = N_OPS
            nbsym = [prep.symbols[prep.spec[j]] for j in nbi]
            for cn in range(1, MAX_CN + 1):
                wt = cn_weights.get(cn, 0)
                for sp in fraction_species:
                    if wt == 0 or cn > len(nbsym):
                        out[s, col] = 0.0
                    else:
                        out[s, col] = sum(x == sp for x in nbsym[:cn]) / cn
                    col += 1
    return out


def bond_angles(structure, indices=None) -> list[np.ndarray]:
    """Per site, the angles (degrees) between all pairs of neighbour bonds, neighbours from
    ``CrystalNN(distance_cutoffs=None, x_diff_weight=0, porous_adjustment=False).get_nn_info``
    (the CN of largest weight), pairs in ``np.triu_indices`` order, computed as
    ``disorder.bond_angle_distribution`` computes them. Sites whose neighbours have
    (near-)tied CrystalNN weights (perfect crystals) go through the exact VoronoiNN path so
    that their neighbour order, hence every rounding, is the reference's."""
    idx = list(range(len(structure))) if indices is None else [int(i) for i in indices]
    if not idx:
        return []
    prep = Prepared(structure, idx, False, None)
    faces = faces_fast(prep)
    out = []
    for s in range(len(idx)):
        kw = dict(porous_adjustment=False, x_diff_weight=0, distance_cutoffs=None)
        nbc, _, cn_weights, raw = nn_data(prep, s, faces[s], **kw)
        max_key = max(cn_weights, key=lambda k: cn_weights[k])
        if faces[s] is not None and max_key >= 2 and near_ties(raw[:max_key]):
            # (near-)tied weights: the reference orders these neighbours in qhull's ridge
            # order, and the BLAS product u @ u.T rounds by row position (one ulp at
            # 180 degrees is 1e-6 degrees after arccos): take the exact path
            nbc, _, cn_weights, raw = nn_data(prep, s, None, **kw)
            max_key = max(cn_weights, key=lambda k: cn_weights[k])
        vecs = nbc[:max_key] - prep.cart[idx[s]]
        if max_key < 2 or len(vecs) < 2:
            out.append(np.zeros(0))
            continue
        out.append(neighbour_angles(vecs))
    return out


def bond_angle_distribution(structure, bin_width: float = 0.5) -> np.ndarray:
    """Normalised histogram (sum 1) of :func:`bond_angles` over all sites, 0-180° in
    ``bin_width`` bins closed on the right as ``pandas.cut`` closes them
    (:func:`dismai_data.geometry.angle_histogram`)."""
    angles = [a for a in bond_angles(structure) if len(a)]
    return angle_histogram(np.concatenate(angles) if angles else np.zeros(0), bin_width)
