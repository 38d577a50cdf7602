"""Periodic radial distribution function and bond-angle primitives, shared by builders and the evaluation.

* :func:`pair_distances` / :func:`rdf` — every periodic pair within ``r_max`` (all images,
  pymatgen's ``find_points_in_spheres``, the routine ``Structure.get_neighbor_list`` calls) and
  g(r) in ``dr`` bins from 0 to ``r_max`` with vasppy's normalisation (``hist / rho / (shell
  volume * N)``);
* :func:`neighbour_angles` — the angles between all pairs of neighbour vectors of one atom
  (vectorised; angles at a bin edge recomputed with the Dismai-Bench reference's own per-pair
  formula so that they fall in the reference's bin);
* :func:`angle_histogram` — the reference's binning of angles (``pandas.cut`` closed on the right,
  first bin closed on both sides), normalised to sum 1.

Ground floor of the library: numpy and pymatgen only. Neighbour *selection* (CrystalNN, cut-offs)
belongs to the caller.
"""

from __future__ import annotations

import numpy as np

NEIGHBOUR_TOL = 1e-8  # Structure.get_neighbor_list's numerical_tol: closer = the atom itself


def _cell_arrays(structure_or_positions, cell=None, pbc=None):
    """(cartesian positions, lattice matrix, pbc as int64) of a pymatgen Structure, an ASE Atoms,
    or an (N, 3) array of cartesian positions with ``cell`` (3 x 3, rows are the lattice vectors)."""
    s = structure_or_positions
    if hasattr(s, "lattice") and hasattr(s, "cart_coords"):  # pymatgen Structure
        cart, lat, p = s.cart_coords, s.lattice.matrix, s.lattice.pbc
    elif hasattr(s, "get_positions") and hasattr(s, "get_cell"):  # ASE Atoms
        cart, lat, p = s.get_positions(), np.asarray(s.get_cell()), s.get_pbc()
    else:
        if cell is None:
            raise ValueError("positions need a cell (3 x 3, rows are the lattice vectors)")
        cart, lat, p = s, cell, (True, True, True)
    if pbc is not None:
        p = pbc
    return (np.ascontiguousarray(cart, dtype=float), np.ascontiguousarray(lat, dtype=float),
            np.ascontiguousarray(np.broadcast_to(np.asarray(p, dtype=np.int64), (3,))))


def pair_distances(structure_or_positions, r_max: float, *, cell=None, pbc=None) -> np.ndarray:
    """Distances of every ordered periodic pair (i, j, image) closer than ``r_max``, an atom's own
    position excluded (its periodic images are not): the ``distances`` of
    ``Structure.get_neighbor_list(r_max)``, bit for bit."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    cart, lat, p = _cell_arrays(structure_or_positions, cell, pbc)
    ci, nj, _, d = find_points_in_spheres(cart, cart, r=float(r_max), pbc=p, lattice=lat, tol=NEIGHBOUR_TOL)
    return d[~((ci == nj) & (d <= NEIGHBOUR_TOL))]


def rdf(structure_or_positions, r_max: float = 10.0, dr: float = 0.02, *, cell=None, pbc=None) -> np.ndarray:
    """g(r) of one periodic cell in ``round(r_max / dr)`` bins from 0 to ``r_max``: all periodic
    pairs (:func:`pair_distances`), normalised as vasppy's ``RadialDistributionFunction``
    (``hist / rho / (shell volume * N)``, rho = N / cell volume). Bin k covers [k dr, (k + 1) dr).

    ``structure_or_positions``: a pymatgen Structure, an ASE Atoms, or cartesian positions with
    ``cell``."""
    cart, lat, _ = _cell_arrays(structure_or_positions, cell, pbc)
    n = len(cart)
    vol = abs(np.linalg.det(lat))
    nbins = int(round(r_max / dr))
    edges = np.linspace(0.0, r_max, nbins + 1)
    dists = pair_distances(structure_or_positions, r_max, cell=cell, pbc=pbc)
    hist = np.histogram(dists, bins=nbins, range=(0.0, r_max))[0]
    rho = n / vol
    return hist / rho / (shell_volumes(edges) * n)


def shell_volumes(edges: np.ndarray) -> np.ndarray:
    """Volumes of the spherical shells between consecutive ``edges``."""
    return 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)


def reference_angle(u, v) -> float:
    """One angle (degrees) between vectors u and v exactly as the reference computes it
    (Dismai-Bench ``benchmark/a_Si/bond_angle/get_a_Si_bond_angle.py`` ``get_site_bond_angles``)."""
    cos_angle = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
    with np.errstate(invalid="ignore"):
        angle = np.arccos(cos_angle)
        if np.isnan(angle):  # outside [-1, 1] by rounding: the reference rounds cos to 5 decimals
            angle = np.arccos(round(cos_angle, 5))
    return float(angle * 180 / np.pi)


def neighbour_angles(vectors: np.ndarray, bin_width: float = 0.5) -> np.ndarray:
    """Angles (degrees) between all pairs of neighbour vectors (rows of ``vectors``, centre at the
    origin), in ``np.triu_indices`` order. Vectorised; an angle within 1e-7 degrees of a
    ``bin_width`` edge is recomputed with the reference's per-pair formula (:func:`reference_angle`)
    so that it falls in the reference's bin of :func:`angle_histogram`."""
    vecs = np.asarray(vectors, dtype=float)
    n = np.linalg.norm(vecs, axis=1)
    iu = np.triu_indices(len(vecs), 1)
    cos = np.clip((vecs @ vecs.T)[iu] / (n[iu[0]] * n[iu[1]]), -1.0, 1.0)
    ang = np.arccos(cos) * 180 / np.pi
    pos = ang / bin_width
    for k in np.flatnonzero(np.abs(pos - np.round(pos)) < 1e-7 / bin_width):
        ang[k] = reference_angle(vecs[iu[0][k]], vecs[iu[1][k]])
    return ang


def angle_histogram(angles: np.ndarray, bin_width: float = 0.5) -> np.ndarray:
    """Fractions of ``angles`` in the bins of ``np.arange(0, 180 + bin_width, bin_width)``,
    closed on the right with the first bin closed on both sides: Dismai-Bench
    ``benchmark/a_Si/bond_angle/bin_bond_angles.py`` (``pandas.cut(..., include_lowest=True)``
    then ``value_counts(normalize=True, sort=False)``). Angles outside [0, 180] are not
    counted (the reference asserts there are none)."""
    edges = np.arange(0.0, 180.0 + bin_width, bin_width)
    a = np.asarray(angles, dtype=float)
    idx = np.searchsorted(edges, a, side="left") - 1
    idx[a == edges[0]] = 0
    ok = (idx >= 0) & (idx < len(edges) - 1)
    h = np.bincount(idx[ok], minlength=len(edges) - 1).astype(float)
    return h / h.sum() if h.sum() else h
