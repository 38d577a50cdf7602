"""Pieces of the interface and a-Si tasks (benchmark-definitions 3.1, 3.2).

* :func:`move_apart` — the 1.5 Å rule: per iteration find all unique pairs closer than
  1.5 Å (periodic images included) and, pair by pair in (i, j) order, move the second
  atom along the bond to 1.6 Å from the first (positions updated as it goes); at most
  100 iterations, still too close -> not ok.
* :func:`rdf_reference` / :func:`rdf_fast` — the Si-Si RDF of the 2x2x2 supercell, r in
  0-10 Å with 0.02 Å bins, ``vasppy.rdf.RadialDistributionFunction``'s normalisation
  (``hist / rho / (shell volume * N)``). The fast version counts every periodic pair of
  the *original* cell within r_max once (a KD-tree neighbour list) instead of all
  (8N)^2 minimum-image distances of the supercell: both give the same histogram when
  r_max is below half of every supercell width (checked; otherwise it falls back to
  the reference computation). Equal to vasppy to <= 1e-8 (tested).
* :func:`bond_angle_distribution` — neighbours from ``CrystalNN(distance_cutoffs=None,
  x_diff_weight=0, porous_adjustment=False)``, all angles between pairs of neighbour
  bonds of each atom, 0-180° in 0.5° bins, normalised to sum 1.
* :func:`crystalnn_fingerprints` — the 61-number matminer ``CrystalNNFingerprint``
  ("ops" preset: CrystalNN weights and wt x order parameters per CN 1-24), per site, by
  the reference library (no fast implementation in this version).

Relaxation is not part of this module: tasks label results ``relaxed: false``.
"""

from __future__ import annotations

import warnings

import numpy as np

RDF_RMAX = 10.0
RDF_DR = 0.02
ANGLE_BIN = 0.5


def move_apart(structure, min_dist: float = 1.5, target: float = 1.6, max_iter: int = 100):
    """Copy of ``structure`` with close pairs pushed apart. Returns ``(structure, ok, iterations)``."""
    s = structure.copy()
    lat = s.lattice.matrix
    for it in range(max_iter + 1):
        centers, nbrs, images, dists = s.get_neighbor_list(min_dist)
        pairs = sorted({(int(i), int(j), tuple(int(x) for x in im)) for i, j, im, d in
                        zip(centers, nbrs, images, dists) if (i < j) and d < min_dist})
        if not pairs:
            return s, True, it
        if it == max_iter:
            return s, False, it
        cart = s.cart_coords.copy()
        for i, j, im in pairs:
            vj = cart[j] + np.asarray(im, float) @ lat
            v = vj - cart[i]
            d = float(np.linalg.norm(v))
            if d < 1e-12:
                v, d = np.array([1.0, 0.0, 0.0]), 1.0
            cart[j] = cart[i] + v / d * target - np.asarray(im, float) @ lat
        s = type(s)(s.lattice, s.species, cart, coords_are_cartesian=True)
    return s, False, max_iter


def _shell_volumes(edges):
    return 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)


def rdf_reference(structure, r_max: float = RDF_RMAX, dr: float = RDF_DR) -> np.ndarray:
    """vasppy RDF of all sites of the 2x2x2 supercell."""
    from vasppy.rdf import RadialDistributionFunction

    sc = structure * (2, 2, 2)
    nbins = int(round(r_max / dr))
    rdf = RadialDistributionFunction([sc], list(range(len(sc))), nbins=nbins, r_min=0.0, r_max=r_max)
    return rdf.rdf


def rdf_fast(structure, r_max: float = RDF_RMAX, dr: float = RDF_DR) -> np.ndarray:
    """Same numbers as :func:`rdf_reference`, from the original cell's neighbour list."""
    lat = structure.lattice
    m = lat.matrix
    vol = abs(np.linalg.det(m))
    # widths of the 2x2x2 supercell (distance between opposite faces)
    widths = 2 * vol / np.linalg.norm(np.cross(m[[1, 2, 0]], m[[2, 0, 1]]), axis=1)
    if r_max >= widths.min() / 2:
        return rdf_reference(structure, r_max, dr)
    nbins = int(round(r_max / dr))
    edges = np.linspace(0.0, r_max, nbins + 1)
    n = len(structure)
    _, _, _, dists = structure.get_neighbor_list(r_max, exclude_self=True)
    hist = np.histogram(dists, bins=nbins, range=(0.0, r_max))[0]
    rho = n / vol
    return hist / rho / (_shell_volumes(edges) * n)


def bond_angle_distribution(structure, bin_width: float = ANGLE_BIN) -> np.ndarray:
    """Normalised histogram (sum 1) of neighbour-bond angles, 0-180° in ``bin_width`` bins."""
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
            u = vecs / np.linalg.norm(vecs, axis=1)[:, None]
            cos = np.clip(u @ u.T, -1.0, 1.0)
            iu = np.triu_indices(len(u), 1)
            angles.append(np.degrees(np.arccos(cos[iu])))
    nb = int(round(180.0 / bin_width))
    a = np.concatenate(angles) if angles else np.zeros(0)
    h = np.histogram(a, bins=nb, range=(0.0, 180.0))[0].astype(float)
    return h / h.sum() if h.sum() else h


def crystalnn_fingerprints(structure, indices=None) -> np.ndarray:
    """61-number CrystalNN fingerprints (matminer "ops" preset) of the given sites."""
    from matminer.featurizers.site import CrystalNNFingerprint

    f = CrystalNNFingerprint.from_preset("ops")
    idx = range(len(structure)) if indices is None else indices
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([f.featurize(structure, i) for i in idx], dtype=float)
