"""Slab geometry: LCO(110) and Tasker-2b LSC(100) slabs cut from the bulk cells, lattice-matched
with pymatgen's Zur-McGill ZSL, in a frame and atom order that are the same on every CPU."""

from __future__ import annotations

import math

import numpy as np


LCO_LAYERS = 4


LSC_LAYERS = 7


FORMAL_CHARGE = {"Li": 1, "Co": 3, "O": -2, "Sc": 3, "Cl": -1}


def _normal_frame(lattice_matrix: np.ndarray) -> np.ndarray:
    """Rotation taking the in-plane vectors a, b to the xy plane (a along x, a x b along +z)."""
    a, b = lattice_matrix[0], lattice_matrix[1]
    x = a / np.linalg.norm(a)
    z = np.cross(a, b)
    z /= np.linalg.norm(z)
    y = np.cross(z, x)
    return np.array([x, y, z])


def _planes(z: np.ndarray, tol: float = 0.6) -> list[np.ndarray]:
    """Indices grouped into atomic planes along z (planes bottom to top; a gap > tol starts a new
    plane). Within a plane the indices are ordered by z rounded to 1e-6 Å, then by index: atoms
    of one flat plane share z up to the last bits, and ordering by raw z let those bits, which
    differ between CPUs and BLAS builds, reorder them (and change the Tasker pick that follows)."""
    order = np.argsort(z, kind="stable")
    groups, cur = [], [order[0]]
    for i, j in zip(order[:-1], order[1:]):
        if z[j] - z[i] > tol:
            groups.append(cur)
            cur = []
        cur.append(j)
    groups.append(cur)
    zr = np.round(z, 6)
    return [np.array(sorted(g, key=lambda i: (zr[i], i))) for g in groups]


def _plane_basis(bulk, hkl):
    """Primitive cell of ``bulk`` (same cartesian frame), the unit normal of plane ``hkl`` of its
    conventional cell and the two shortest non-parallel lattice vectors lying in the plane."""
    import itertools

    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    conv = SpacegroupAnalyzer(bulk, symprec=0.01).get_conventional_standard_structure()
    prim = conv.get_primitive_structure()
    n = conv.lattice.reciprocal_lattice.get_cartesian_coords(hkl)
    n = n / np.linalg.norm(n)
    combos = np.array([c for c in itertools.product(range(-6, 7), repeat=3) if any(c)], dtype=float)
    vecs = combos @ prim.lattice.matrix
    inplane = vecs[np.abs(vecs @ n) < 1e-6]
    inplane = inplane[np.argsort(np.linalg.norm(inplane, axis=1), kind="stable")]
    v1 = inplane[0]
    v2 = next(v for v in inplane if np.linalg.norm(np.cross(v1, v)) > 1e-6)
    return prim, n, np.array([v1, v2])


def _wrap(frac: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Fractional coordinates into [-tol, 1 - tol): an atom on a cell face (0 or 1 up to rounding)
    lands on the same face on every CPU, where ``% 1.0`` sends 1 - 1e-16 and 0 to opposite faces."""
    return frac - np.floor(frac + tol)


def _column(prim, sl: np.ndarray, n_copies: int = 14):
    """Cartesian coordinates (frame: sl[0] along x, in-plane xy, normal +z) and species of a stack
    of ``n_copies`` supercells of ``prim`` with in-plane vectors ``sl`` and the third vector the
    lattice vector with the smallest positive normal component (one plane period)."""
    import itertools

    from pymatgen.core import Structure

    L = prim.lattice.matrix
    normal = np.cross(sl[0], sl[1])
    normal /= np.linalg.norm(normal)
    combos = np.array([c for c in itertools.product(range(-6, 7), repeat=3) if any(c)], dtype=float)
    vecs = combos @ L
    dn = vecs @ normal
    ok = dn > 1e-6
    cand = vecs[ok][np.lexsort((np.linalg.norm(vecs[ok], axis=1), np.round(dn[ok], 6)))]
    s3 = cand[0]
    m = np.rint(np.array([sl[0], sl[1], s3]) @ np.linalg.inv(L)).astype(int)
    sc = Structure(prim.lattice, prim.species, _wrap(prim.frac_coords))
    sc.make_supercell(m)
    rot = _normal_frame(sc.lattice.matrix)
    mat = sc.lattice.matrix @ rot.T
    base = _wrap(sc.frac_coords)
    cart, species = [], []
    for k in range(-1, n_copies):
        cart.append((base + [0, 0, k]) @ mat)
        species += [s.symbol for s in sc.species]
    cart = np.vstack(cart)
    lat2 = mat[:2].copy()
    fr = np.linalg.solve(lat2[:, :2].T, cart[:, :2].T).T
    cart[:, :2] = _wrap(fr) @ lat2[:, :2]
    return cart, species, lat2


def zsl_match(lco_basis, lsc_basis, max_area: float = 260.0) -> dict:
    """The Zur-McGill match of LSC(100) (film) on LCO(110) (substrate) with 9 LCO and 3 LSC formula
    units per atomic plane (in-plane areas 9 and 3 times the primitive plane cells, which hold one
    formula unit per plane) and the smallest mean length strain; pymatgen's ZSLGenerator."""
    from pymatgen.analysis.interfaces.zsl import ZSLGenerator

    sub, film = lco_basis, lsc_basis
    a_sub = np.linalg.norm(np.cross(*sub))
    a_film = np.linalg.norm(np.cross(*film))
    gen = ZSLGenerator(max_area_ratio_tol=0.1, max_area=max_area, max_length_tol=0.05, max_angle_tol=0.03,
                       bidirectional=False)

    def ang(v):
        return math.degrees(math.acos(v[0] @ v[1] / np.prod(np.linalg.norm(v, axis=1))))

    best = None
    for mt in gen(film, sub):
        fs, ss = np.array(mt.film_sl_vectors), np.array(mt.substrate_sl_vectors)
        if round(np.linalg.norm(np.cross(*ss)) / a_sub) != 9 or round(np.linalg.norm(np.cross(*fs)) / a_film) != 3:
            continue
        lf, ls = np.linalg.norm(fs, axis=1), np.linalg.norm(ss, axis=1)
        strain = np.abs(ls / lf - 1.0)
        key = (round(float(strain.mean()), 8), round(abs(ang(ss) - ang(fs)), 6), tuple(np.round(ls, 4)))
        if best is None or key < best[0]:
            best = (key, fs, ss, {
                "substrate_lengths_A": ls.round(4).tolist(), "film_lengths_A": lf.round(4).tolist(),
                "substrate_angle_deg": round(ang(ss), 3), "film_angle_deg": round(ang(fs), 3),
                "length_strain": strain.round(5).tolist(), "mean_length_strain": round(float(strain.mean()), 5),
                "angle_mismatch_deg": round(abs(ang(ss) - ang(fs)), 4),
                "area_A2": round(float(np.linalg.norm(np.cross(*ss))), 4),
                "film_area_A2": round(float(np.linalg.norm(np.cross(*fs))), 4),
            })
    if best is None:
        raise RuntimeError("ZSL found no LSC(100)/LCO(110) match with 9 LCO and 3 LSC formula units per plane")
    return {"film_vectors": best[1], "substrate_vectors": best[2], "record": best[3]}


def _inplane_lengths(dxy: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Lengths of in-plane vectors ``dxy`` (..., 2) taken periodic in the lateral cell ``lat2``
    (each fractional component reduced to [-1/2, 1/2])."""
    f = np.linalg.solve(lat2.T, dxy.reshape(-1, 2).T).T
    f -= np.rint(f)
    return np.linalg.norm(f @ lat2, axis=1).reshape(dxy.shape[:-1])


def _pick_spread(xy: np.ndarray, lat2: np.ndarray, k: int, start: int = 0) -> list[int]:
    """k of the points, chosen greedily farthest-point (periodic in-plane) from ``start``; a tie
    (distances equal to 1e-6 Å, as symmetry-equivalent candidates are) goes to the lowest index,
    never to rounding noise."""
    d = np.round(_inplane_lengths(xy[:, None, :] - xy[None, :, :], lat2), 6)
    chosen = [start]
    while len(chosen) < k:
        rest = [i for i in range(len(xy)) if i not in chosen]
        chosen.append(max(rest, key=lambda i: (d[i, chosen].min(), -i)))
    return sorted(chosen)


def _tasker_start(cart: np.ndarray, lat2: np.ndarray) -> int:
    """Where the Tasker-2b pick of one surface Cl plane starts: of the plane's lowest atoms (z equal
    to 1e-6 Å), the one farthest (periodic in-plane) from the lateral origin. Every start gives an
    equivalent half-plane; this rule is fixed so that the pick is the same on every CPU and is the
    one that ``references.json`` records (made before the plane order was CPU-independent, when
    the start was whichever lowest atom rounding noise put first)."""
    zr = np.round(cart[:, 2], 6)
    low = np.flatnonzero(zr == zr.min())
    r = np.round(_inplane_lengths(cart[low, :2], lat2), 6)
    return int(low[np.lexsort((low, -r))[0]])


def make_slabs(lco_bulk, lsc_bulk) -> dict:
    """LCO(110) 4-plane and Tasker-2b LSC(100) 7-layer slabs in the matched lateral cell (LCO's).

    Returns the lateral cell (2x3, Å), each slab as species + cartesian coords (z from its bottom
    plane) + plane index, and the match record."""
    lco_prim, _, lco_basis = _plane_basis(lco_bulk, (1, 1, 0))
    lsc_prim, _, lsc_basis = _plane_basis(lsc_bulk, (1, 0, 0))
    match = zsl_match(lco_basis, lsc_basis)
    out = {"match": match["record"]}
    # LCO
    cart, sp, lateral = _column(lco_prim, match["substrate_vectors"])
    planes = _planes(cart[:, 2])
    start = next(i for i, p in enumerate(planes) if cart[p[0], 2] >= -1e-6)
    keep = planes[start:start + LCO_LAYERS]
    idx = np.concatenate(keep)
    z0 = cart[keep[0], 2].mean()
    out["lateral"] = lateral
    out["lco"] = {"species": [sp[i] for i in idx], "cart": cart[idx] - [0, 0, z0],
                  "plane": np.concatenate([[k] * len(p) for k, p in enumerate(keep)])}
    # LSC, strained onto the LCO lateral cell (fractional in-plane coordinates kept)
    cart, sp, lat2f = _column(lsc_prim, match["film_vectors"])
    frac = np.linalg.solve(lat2f[:, :2].T, cart[:, :2].T).T
    cart[:, :2] = frac @ lateral[:, :2]
    planes = _planes(cart[:, 2])
    kinds = ["Cl" if all(sp[i] == "Cl" for i in p) else "cat" for p in planes]
    start = next(i for i, p in enumerate(planes) if cart[p[0], 2] >= -1e-6 and kinds[i] == "Cl")
    keep = planes[start:start + LSC_LAYERS]
    if kinds[start:start + LSC_LAYERS] != ["Cl", "cat"] * 3 + ["Cl"]:
        raise RuntimeError("unexpected LSC(100) plane stacking: " + " ".join(kinds[start:start + LSC_LAYERS]))
    # Tasker 2b: of the 7 planes Cl | cat | Cl | cat | Cl | cat | Cl, each outer Cl plane keeps 9 of
    # its 18 Cl (laterally spread): the same as moving half of one surface's Cl to the other surface
    bot, top = keep[0], keep[-1]
    lat2 = lateral[:, :2]
    bot_keep = bot[_pick_spread(cart[bot, :2], lat2, len(bot) // 2, _tasker_start(cart[bot], lat2))]
    top_keep = top[_pick_spread(cart[top, :2], lat2, len(top) // 2, _tasker_start(cart[top], lat2))]
    keep = [bot_keep] + keep[1:-1] + [top_keep]
    idx = np.concatenate(keep)
    z0 = cart[bot_keep, 2].mean()
    out["lsc"] = {"species": [sp[i] for i in idx], "cart": cart[idx] - [0, 0, z0],
                  "plane": np.concatenate([[k] * len(p) for k, p in enumerate(keep)])}
    return out


def dipole_per_area(species, cart, area: float) -> float:
    """Normal component of the formal-charge dipole of a slab per area (e/Å)."""
    q = np.array([FORMAL_CHARGE[s] for s in species], dtype=float)
    if abs(q.sum()) > 1e-9:
        raise ValueError(f"slab is not charge neutral ({q.sum():+g} e)")
    z = np.asarray(cart)[:, 2]
    return float((q * (z - z.mean())).sum() / area)
