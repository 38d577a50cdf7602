"""Random candidate interfaces: the LSC slab shifted over the LCO slab, the interface region filled
atom by atom at random (every random number from ``default_rng([seed, k])``), a fixed atom order."""

from __future__ import annotations

import numpy as np

from dismai_data.builders.interface.lateral import inv2, lateral_frac, times2
from dismai_data.builders.interface.references import references


N_ATOMS = 264


VACUUM = 14.0


THICKNESS_RANGE = (4.0, 6.0)


REGION = {"Cl": 18, "Sc": 3, "Li": 9}  # placement order: big anions first


SPECIES_ORDER = ("Li", "Co", "O", "Sc", "Cl")


#: shortest allowed distance (Å) between a placed interface atom and any other atom: about 0.75
#: of the bulk LCO/LSC bond lengths for cation-anion pairs (Li-Cl 2.55, Sc-Cl 2.5, Li-O 2.09,
#: Co-O 1.92 Å) and of the bulk anion-anion and cation-cation contacts (Cl-Cl 3.6, O-O 2.6-2.8 Å);
#: loose on purpose (CALYPSO-like random starts), the structures are relaxed afterwards.
MIN_DISTANCE = {
    ("Cl", "Cl"): 2.6, ("Cl", "O"): 2.4, ("O", "O"): 2.2,
    ("Li", "Cl"): 1.9, ("Sc", "Cl"): 1.9, ("Co", "Cl"): 1.9,
    ("Li", "O"): 1.6, ("Sc", "O"): 1.7, ("Co", "O"): 1.6,
    ("Li", "Li"): 2.2, ("Li", "Sc"): 2.4, ("Li", "Co"): 2.2,
    ("Sc", "Sc"): 2.8, ("Sc", "Co"): 2.4, ("Co", "Co"): 2.2,
}


def min_dist_table() -> dict[tuple[str, str], float]:
    t = {}
    for (a, b), v in MIN_DISTANCE.items():
        t[(a, b)] = t[(b, a)] = v
    return t


#: random filling of the interface region (see :func:`generate`): restarts of the whole region per
#: thickness, random points tried per atom (250 at a time), thickness draws per candidate
MAX_RESTARTS = 50


TRIES_PER_ATOM = 20000


MAX_THICKNESS_DRAWS = 20


def _fill_region(rng, base, base_sp, lat2, z_lo, t, max_restarts, tries):
    """Place the REGION atoms (in REGION order) one by one at uniform random points of the layer
    z_lo < z < z_lo + t, each at least MIN_DISTANCE from every atom already there (lateral periodic
    images included): the first allowed point of up to ``tries`` random points (250 at a time) is
    taken; an atom with no allowed point restarts the whole region. Returns (points, species,
    restarts) or None after ``max_restarts`` failed fillings."""
    table = min_dist_table()
    inv_lat = inv2(lat2[:, :2])
    order = [s for s, n in REGION.items() for _ in range(n)]
    n_batches = max(1, tries // 250)
    for restart in range(max_restarts):
        pts, sps = base.copy(), list(base_sp)
        for s in order:
            lim2 = np.array([table[(s, o)] for o in sps]) ** 2
            placed = False
            for _ in range(n_batches):
                f = rng.uniform(0.0, 1.0, size=(250, 2))
                z = z_lo + rng.uniform(0.0, 1.0, size=250) * t
                cand = np.column_stack([times2(f, lat2[:, :2]), z])
                d = cand[:, None, :] - pts[None, :, :]
                fr = times2(d[..., :2], inv_lat)
                fr -= np.rint(fr)
                d[..., :2] = times2(fr, lat2[:, :2])
                good = np.flatnonzero(np.all((d * d).sum(axis=2) >= lim2, axis=1))
                if len(good):
                    pts = np.vstack([pts, cand[good[0]]])
                    sps.append(s)
                    placed = True
                    break
            if not placed:
                break
        else:
            return pts, sps, restart
    return None


def generate(seed: int, k: int, refs: dict | None = None, max_restarts: int = MAX_RESTARTS,
             tries: int = TRIES_PER_ATOM, max_draws: int = MAX_THICKNESS_DRAWS):
    """Candidate ``k`` of ``seed``: (pymatgen Structure, info dict).

    Random stream ``default_rng([seed, k])``: thickness t in THICKNESS_RANGE, lateral shift (2
    fractions), then the region filling (:func:`_fill_region`). Rule when the region cannot be
    filled (a thin layer where the first atoms jam the rest): after ``max_restarts`` failed
    fillings the thickness is redrawn from the same stream (uniform in THICKNESS_RANGE, shift
    kept), at most ``max_draws`` thicknesses in all; ``info['thickness_draws']`` counts them (1:
    the first draw worked). Every candidate is therefore deterministic and complete; a
    RuntimeError names the candidate if no thickness works."""
    from pymatgen.core import Lattice, Structure

    refs = refs if refs is not None else references()
    rng = np.random.default_rng([int(seed), int(k)])
    lat2 = refs["lateral"]
    t = float(rng.uniform(*THICKNESS_RANGE))
    shift = rng.uniform(0.0, 1.0, size=2)
    lco, lsc = refs["lco"], refs["lsc"]
    z_lco_top = lco["cart"][:, 2].max()
    base_sp = list(lco["species"]) + list(lsc["species"])
    n_atoms = len(base_sp) + sum(REGION.values())
    if n_atoms != N_ATOMS:
        raise RuntimeError(f"references.json slabs + region give {n_atoms} atoms, expected {N_ATOMS}")
    filled = None
    for draw in range(max(1, int(max_draws))):
        if draw:
            t = float(rng.uniform(*THICKNESS_RANGE))
        lsc_cart = lsc["cart"].copy()
        lsc_cart[:, :2] += times2(shift, lat2[:, :2])
        lsc_cart[:, 2] += z_lco_top + t
        base = np.vstack([lco["cart"], lsc_cart])
        filled = _fill_region(rng, base, base_sp, lat2, z_lco_top, t, max_restarts, tries)
        if filled is not None:
            break
    if filled is None:
        raise RuntimeError(f"candidate {k} (seed {seed}): could not place the {sum(REGION.values())} interface "
                           f"atoms with {max_draws} thickness draws x {max_restarts} restarts x {tries} points "
                           f"per atom")
    pts, sps, restart = filled
    if len(pts) != N_ATOMS:  # cannot happen: _fill_region returns complete fillings only
        raise RuntimeError(f"candidate {k} (seed {seed}): {len(pts)} atoms placed, expected {N_ATOMS}")
    n_base = len(base)
    region_pts, region_sp = pts[n_base:], sps[n_base:]
    # ordering: species; interface first, then by distance from the interface
    z_int = z_lco_top + t / 2
    entries = []
    for i, s in enumerate(region_sp):
        entries.append((SPECIES_ORDER.index(s), 0, 0, *np.round(region_pts[i], 6), region_pts[i]))
    for i, s in enumerate(lco["species"]):
        plane_from_top = lco["plane"].max() - lco["plane"][i]
        entries.append((SPECIES_ORDER.index(s), 1, int(plane_from_top), *np.round(lco["cart"][i], 6), lco["cart"][i]))
    for i, s in enumerate(lsc["species"]):
        entries.append((SPECIES_ORDER.index(s), 2, int(lsc["plane"][i]), *np.round(lsc_cart[i], 6), lsc_cart[i]))
    entries.sort(key=lambda e: e[:6])
    species = [SPECIES_ORDER[e[0]] for e in entries]
    part = np.array([e[1] for e in entries])
    cart = np.array([e[6] for e in entries])
    height = lsc_cart[:, 2].max() - lco["cart"][:, 2].min()
    c = height + VACUUM
    matrix = np.array([lat2[0], lat2[1], [0.0, 0.0, c]])
    cart[:, 2] -= lco["cart"][:, 2].min()
    frac = lateral_frac(cart, lat2, c)
    frac[:, :2] = np.mod(frac[:, :2], 1.0)
    s = Structure(Lattice(matrix), species, frac)
    info = {"candidate": int(k), "thickness": t, "shift_a": float(shift[0]), "shift_b": float(shift[1]),
            "restarts": restart, "thickness_draws": draw + 1, "z_interface": float(z_int),
            "region_indices": np.flatnonzero(part == 0).tolist(), "lco_indices": np.flatnonzero(part == 1).tolist(),
            "lsc_indices": np.flatnonzero(part == 2).tolist()}
    return s, info


def unrelaxed_interfaces(n: int, seed: int) -> list:
    """``n`` random unrelaxed interfaces (pymatgen Structures, 264 atoms, first 72 Li),
    candidates 0..n-1 of ``seed``; deterministic."""
    refs = references()
    return [generate(seed, k, refs)[0] for k in range(int(n))]
