"""Quality of a set of a-Si structures: radial distribution function, bond cutoff, coordination,
bond angles, shortest distances, and the issue's quality targets."""

from __future__ import annotations

import math

import numpy as np

from dismai_data import geometry
from dismai_data.builders.a_si.params import TARGET_DENSITY


def _atoms(row_or_atoms):
    from ase import Atoms

    if isinstance(row_or_atoms, Atoms):
        return row_or_atoms
    from dismai_data.structure import row_to_atoms

    return row_to_atoms(row_or_atoms)


def rdf(structures, r_max: float = 8.0, dr: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Mean radial distribution function of rows/Atoms: (bin centres, g(r)), g the average of
    :func:`dismai_data.geometry.rdf` (all periodic pairs, bins of ``dr`` Å from 0 to ``r_max``)."""
    edges = np.linspace(0.0, r_max, int(round(r_max / dr)) + 1)  # geometry.rdf's bins
    centres = 0.5 * (edges[1:] + edges[:-1])
    g = np.zeros(len(centres))
    count = 0
    for s in structures:
        g += geometry.rdf(_atoms(s), r_max, dr)
        count += 1
    return centres, g / max(count, 1)


def first_minimum(r: np.ndarray, g: np.ndarray, lo: float = 2.5, hi: float = 3.4) -> float:
    """r of the first minimum of g(r) after the first peak (searched in [lo, hi] Å; the
    middle of a flat minimum)."""
    m = (r >= lo) & (r <= hi)
    rr, gg = r[m], np.convolve(g, np.ones(5) / 5, mode="same")[m]
    low = np.flatnonzero(gg <= gg.min() + 1e-12)
    return float(rr[low].mean())


def local_structure(atoms, cutoff: float) -> dict:
    """Coordination numbers, bond angles (degrees) and the shortest distance of one cell."""
    from ase.neighborlist import neighbor_list

    atoms = _atoms(atoms)
    n = len(atoms)
    i, D = neighbor_list("iD", atoms, cutoff)
    cn = np.bincount(i, minlength=n)
    kmax = int(cn.max()) if len(cn) else 0
    angles = np.zeros(0)
    if kmax >= 2:
        start = np.concatenate([[0], np.cumsum(cn)[:-1]])
        slot = np.arange(len(i)) - start[i]
        vec = np.zeros((n, kmax, 3))
        mask = np.zeros((n, kmax), bool)
        vec[i, slot] = D / np.linalg.norm(D, axis=1)[:, None]
        mask[i, slot] = True
        cos = np.einsum("nad,nbd->nab", vec, vec)
        a_idx, b_idx = np.triu_indices(kmax, 1)
        pair_mask = mask[:, a_idx] & mask[:, b_idx]
        angles = np.degrees(np.arccos(np.clip(cos[:, a_idx, b_idx][pair_mask], -1.0, 1.0)))
    dmin = neighbor_list("d", atoms, 3.0)
    return {"cn": cn, "angles": angles, "min_distance": float(dmin.min()) if len(dmin) else math.inf}


def analyse(rows, cutoff: float | None = None) -> dict:
    """Quality figures of a set of a-Si rows: RDF, cutoff (first RDF minimum unless given),
    coordination histogram, four-fold fraction, bond angles, densities, shortest distance,
    and per-row values (in row order)."""
    r, g = rdf(rows)
    cut = first_minimum(r, g) if cutoff is None else float(cutoff)
    per_row, cns, angles = [], [], []
    for row in rows:
        ls = local_structure(row, cut)
        cns.append(ls["cn"])
        angles.append(ls["angles"])
        per_row.append({"fraction_4fold": float(np.mean(ls["cn"] == 4)),
                        "mean_coordination": float(np.mean(ls["cn"])),
                        "mean_bond_angle": float(np.mean(ls["angles"])) if len(ls["angles"]) else 0.0,
                        "min_distance": ls["min_distance"]})
    cn_all = np.concatenate(cns) if cns else np.zeros(0, int)
    ang_all = np.concatenate(angles) if angles else np.zeros(0)
    dens = np.array([row["density"] for row in rows], dtype=float)
    return {"r": r, "g": g, "cutoff": cut, "cn_hist": np.bincount(cn_all, minlength=7),
            "fraction_4fold": float(np.mean(cn_all == 4)) if len(cn_all) else 0.0,
            "mean_coordination": float(cn_all.mean()) if len(cn_all) else 0.0,
            "angles": ang_all, "mean_bond_angle": float(ang_all.mean()) if len(ang_all) else 0.0,
            "density_mean": float(dens.mean()), "density_min": float(dens.min()), "density_max": float(dens.max()),
            "min_distance": float(min(x["min_distance"] for x in per_row)), "per_row": per_row}


def quality_checks(an: dict) -> list[tuple[str, bool]]:
    """The issue's targets: (description with the measured value, passed)."""
    dev = max(abs(an["density_min"] - TARGET_DENSITY), abs(an["density_max"] - TARGET_DENSITY)) / TARGET_DENSITY
    return [
        (f"density of every block {an['density_min']:.4f}-{an['density_max']:.4f} g/cm^3, within 3 % of 2.28 "
         f"(max deviation {100 * dev:.2f} %)", dev <= 0.03),
        (f"{100 * an['fraction_4fold']:.1f} % of atoms four-fold coordinated (>= 80 %; bond cutoff "
         f"{an['cutoff']:.2f} Å = first RDF minimum)", an["fraction_4fold"] >= 0.80),
        (f"mean bond angle {an['mean_bond_angle']:.2f} deg, within 2 deg of 109", abs(an["mean_bond_angle"] - 109.0)
         <= 2.0),
        (f"shortest interatomic distance {an['min_distance']:.3f} Å (>= 2.0 Å)", an["min_distance"] >= 2.0),
    ]
