"""Dismai-Bench Li3ScCl6(100)-LiCoO2(110) disordered interfaces, rebuilt by random generation
and M3GNet relaxation (the paper's Methods 4.1.3 and section 2.1.3).

Procedure (every random number from ``seed``):

1. Bulk cells from published crystallography (``builders/raw/interface/*.json``, sha256
   checked): LiCoO2 R-3m (a = 2.8156, c = 14.0542 Å, O z = 0.2396) and an ordered approximant
   of Li3ScCl6 C2/m (Bohnsack et al. 1997 lattice; Sc 2a, Li 4g + 2d, Cl on ideal cubic
   close-packed 4i/8j sites), both relaxed (cell and positions, fmax 0.01 eV/Å, matgl Relaxer)
   with the same M3GNet potential as the interfaces (:func:`dismai_data.physics.relax.load_potential`,
   with the matgl 4.1.2 message-direction fix): LiCoO2 a = 2.8273, c = 14.3416 Å (+2.9 % volume);
   Li3ScCl6 a = 6.3442, b = 11.2191, c = 6.3710 Å, beta = 108.49° (+1.3 %).
   ``references.json`` (:func:`make_references`, ``bulk_cells = m3gnet``) records the published
   and relaxed lattices, the relaxation steps and final forces, and the slabs cut from them.
2. Slabs: LCO(110) and LSC(100) oriented cells (pymatgen ``SlabGenerator.oriented_unit_cell``),
   lattice-matched with pymatgen's Zur-McGill ``ZSLGenerator``; the match with 9 LCO and 3 LSC
   formula units per atomic plane and the smallest strain is used; the lateral cell is the
   LCO one (LSC strained onto it, as the paper fixes the lateral cell to LCO). LCO: 4 (110)
   planes (each Li9 Co9 O18, non-polar). LSC(100): the stacking is Cl18 | Li9Sc3 | Cl18 | ...
   (Tasker type 3, polar); the slab Cl | cat | Cl | cat | Cl | cat | Cl keeps 9 of the 18 Cl of
   each outer plane, i.e. half of the surface Cl moved to the other surface (Tasker 2b): 7
   layers, Li27 Sc9 Cl54, no dipole along the normal.
3. Candidate k (``numpy.random.default_rng([seed, k])``): interface-region thickness t uniform
   in [4, 6] Å = distance from the top LCO plane to the bottom LSC plane; random lateral shift
   of the LSC slab (fractions of both in-plane vectors, uniform in [0, 1)); the 30 region atoms
   (Cl18, then Sc3, then Li9: most constrained first) placed one by one at uniform random points
   of the layer (z between the two facing planes) at least ``MIN_DISTANCE`` from every atom
   already there (periodic images included; the first allowed point of up to 20000 tried),
   restarting the region when an atom cannot be placed; after 50 failed restarts the thickness is
   redrawn from the same stream (at most 20 draws; ``thickness`` is the one used), so every
   candidate is complete and deterministic;
   14 Å vacuum along the normal (c perpendicular to the interface). 264 atoms, ordered by
   species Li, Co, O, Sc, Cl, and within a species interface region first, then by distance from
   the interface (LCO planes from the top down, LSC planes from the bottom up): the first 72 atoms
   are Li, the first 9 of them in the interface region, the next 9 in the top LCO plane.
4. Relaxation of positions (cell fixed) with M3GNet through :func:`dismai_data.physics.relax.relax_many`
   to max force ``fmax`` (``max_steps`` at most; unconverged structures are not kept).
5. Interface energy (J/m^2) from references relaxed with the same potential in the same lateral
   cell: gamma = [E - E_LCO_slab/2 - 18 e_LCO - E_LSC_slab/2 - 7.5 e_LSC] / A, i.e. E minus the
   bulk energy of its 36 LCO and 12 LSC formula units minus the surface energies of the two free
   faces (one LCO(110), one LSC(100) Tasker-2b), where e_X is the bulk energy per formula unit and
   E_X_slab the relaxed isolated slab (both faces free). Kept: gamma <= min(gamma) + window_jm2
   (0.4 J/m^2, the paper's low-energy criterion); at most n_structures of them, lowest first.
   With ``time_budget_s`` (counted from the start, reference relaxations included) no new batch
   after the first is started once the budget is spent or the next batch would overrun it (its
   length predicted by :func:`next_round_fits` from the last two batches); the dataset
   is then made from the candidates finished (converged ones only) and called v1.0-preview.
6. Split: ``default_rng([seed, 2]).permutation(n)``; the first round(0.8 n) are ``train``, the
   rest ``validation``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dismai_data.build import Column, DatasetBuild, SourceFile
from dismai_data.builders.common import DISMAI_BENCH_CITATION, rows_from_files, seeded_split
from dismai_data.paths import default_home

BUILDER_VERSION = "1.1.0"
DESCRIPTION = ("Dismai-Bench Li3ScCl6(100)-LiCoO2(110) disordered interfaces (264 atoms), rebuilt by random "
               "generation of the interface region and M3GNet relaxation; or read from the original extxyz files")

N_ATOMS = 264
VACUUM = 14.0
THICKNESS_RANGE = (4.0, 6.0)
LCO_LAYERS = 4
LSC_LAYERS = 7
REGION = {"Cl": 18, "Sc": 3, "Li": 9}  # placement order: big anions first
SPECIES_ORDER = ("Li", "Co", "O", "Sc", "Cl")
FORMAL_CHARGE = {"Li": 1, "Co": 3, "O": -2, "Sc": 3, "Cl": -1}
EV_PER_A2_TO_J_PER_M2 = 1.602176634e-19 / 1e-20

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

RAW = Path(__file__).resolve().parent / "raw" / "interface"
#: sha256 of the files in builders/raw/interface (checked before use)
RAW_SHA256 = {
    "LiCoO2_R-3m.json": "fb76ad28094c4972a649fd9eecc843f1c06462603d0e901b32bc644d34a02842",
    "Li3ScCl6_C2m.json": "da3e05b0a5f0bc77231dce7e5e4a5689ca2cff473c0da0e8ac615b48cd72da2a",
    "references.json": None,  # filled below from REFERENCES_SHA256
}
REFERENCES_SHA256 = "bc8e8f9444642aa78885f29082691ab8ef4e31c292624071c03f355831cb1269"

PARAMETERS: dict[str, tuple[Any, str]] = {
    "seed": (2024, "base seed of every random number (candidate k uses default_rng([seed, k]); split: "
                   "default_rng([seed, 2]))"),
    "n_structures": (1500, "structures kept at most (the lowest interface energies within window_jm2 of the "
                           "lowest)"),
    "n_candidates": (3000, "random interfaces generated and relaxed (candidates 0..n-1, in order)"),
    "window_jm2": (0.4, "keep structures with interface energy <= lowest + this (J/m^2; the paper's "
                        "low-interface-energy criterion)"),
    "fmax": (0.05, "relaxation stops when the max atomic force is below this, eV/Å"),
    "max_steps": (1000, "relaxation steps at most; unconverged candidates are not kept"),
    "train_fraction": (0.8, "fraction of rows in the train split (rest: validation)"),
    "time_budget_s": (None, "stop submitting new candidates after this many seconds of wall time and build "
                            "from those relaxed (null: relax all n_candidates); how the preview was made"),
    "batch_size": (8, "structures per relax_many batch / checkpoint shard"),
    "scheduler": (None, "relax_many scheduler: null (in process), 'local' or a Dask scheduler address"),
    "workers": (1, "relax_many workers; does not change the data"),
    "engine": ("fast", "force evaluation of the relaxations: 'fast' (the fast exact M3GNet path) or 'compile' "
                       "(the same path through torch.compile: about 1.15x less CPU per force call after a "
                       "compilation of 10-40 s in each process); float32 rounding differs only"),
    "device": ("auto", "torch device of the relaxations: 'auto' (CUDA where available, else CPU), 'cpu', 'cuda' "
                       "or 'cuda:N'; float32 rounding differs only"),
    "workdir": (None, "folder for checkpoints; a rerun continues there (default: $DISMAI_HOME or the user "
                      "cache dir, under work/interface-<hash of the data parameters>)"),
    "from_files": (None, "instead of generating: a folder, file or comma-separated list of the original "
                         "Dismai-Bench interface extxyz files; split (train/val) from each file name"),
}

#: the ``engine`` parameter's values and the relax_many ``fast`` option each stands for
_ENGINES = {"fast": True, "compile": "compile"}

#: parameters that never change the data
_RUNTIME = ("time_budget_s", "batch_size", "scheduler", "workers", "engine", "device", "workdir", "from_files")

#: version of the candidate generation (bits of the unrelaxed structures): 2 since builder 1.1.0,
#: whose geometry uses no BLAS, so a candidate has the same bits on every CPU (1.0.0's depended
#: on the OpenBLAS kernel); part of the checkpoint parameters
GENERATOR_VERSION = 2

CITATION = DISMAI_BENCH_CITATION + """@article{chen2022m3gnet,
  title   = {A universal graph deep learning interatomic potential for the periodic table},
  author  = {Chen, Chi and Ong, Shyue Ping},
  journal = {Nature Computational Science},
  volume  = {2},
  pages   = {718--728},
  year    = {2022},
  doi     = {10.1038/s43588-022-00349-3}
}
@article{orman1984lco,
  title   = {Cobalt(III) lithium oxide, CoLiO2: structure refinement by powder neutron diffraction},
  author  = {Orman, H. J. and Wiseman, P. J.},
  journal = {Acta Crystallographica Section C},
  volume  = {40},
  pages   = {12--14},
  year    = {1984},
  doi     = {10.1107/S0108270184002833}
}
@article{bohnsack1997lsc,
  title   = {Tern{\\"a}re Halogenide vom Typ A3MX6. VI. Tern{\\"a}re Chloride der Selten-Erd-Elemente mit Lithium,
             Li3MCl6 (M = Tb-Lu, Y, Sc): Synthese, Kristallstrukturen und Ionenbewegung},
  author  = {Bohnsack, Andreas and Balzer-J{\\"o}llenbeck, Gabriele and Meyer, Gerd},
  journal = {Zeitschrift f{\\"u}r anorganische und allgemeine Chemie},
  volume  = {623},
  pages   = {1352--1356},
  year    = {1997},
  doi     = {10.1002/zaac.19976230905}
}
@article{zur1984,
  title   = {Lattice match: an application to heteroepitaxy},
  author  = {Zur, A. and McGill, T. C.},
  journal = {Journal of Applied Physics},
  volume  = {55},
  pages   = {378--386},
  year    = {1984},
  doi     = {10.1063/1.333084}
}"""


# --------------------------------------------------------------------------- raw inputs
def _raw(name: str) -> Path:
    from dismai_data.raw import RawDataError, sha256_file

    path = RAW / name
    if not path.is_file():
        raise RawDataError(f"raw input {path} is missing")
    expected = REFERENCES_SHA256 if name == "references.json" else RAW_SHA256[name]
    got = sha256_file(path)
    if got != expected:
        raise RawDataError(f"raw input {path} has sha256 {got}, expected {expected}")
    return path


def published_bulk(name: str):
    """The bulk cell ``LiCoO2_R-3m`` or ``Li3ScCl6_C2m`` from its crystallography file."""
    from pymatgen.core import Lattice, Structure

    spec = json.loads(_raw(f"{name}.json").read_text())
    lat = spec["lattice"]
    lattice = Lattice.from_parameters(lat["a"], lat["b"], lat["c"], lat["alpha"], lat["beta"], lat["gamma"])
    s = Structure.from_spacegroup(spec["space_group"], lattice, [x["species"] for x in spec["sites"]],
                                  [x["xyz"] for x in spec["sites"]])
    return s


# --------------------------------------------------------------------------- geometry helpers
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


# --------------------------------------------------------------------------- references
def _slabs_to_json(slabs: dict) -> dict:
    def part(p):
        return {"species": p["species"], "cart": np.round(p["cart"], 10).tolist(), "plane": p["plane"].tolist()}
    return {"lateral": np.round(slabs["lateral"], 10).tolist(), "match": slabs["match"],
            "lco": part(slabs["lco"]), "lsc": part(slabs["lsc"])}


@lru_cache(maxsize=1)
def references() -> dict:
    """The cached slabs (``builders/raw/interface/references.json``, sha256 checked)."""
    d = json.loads(_raw("references.json").read_text())
    for k in ("lco", "lsc"):
        d[k]["cart"] = np.array(d[k]["cart"], dtype=float)
        d[k]["plane"] = np.array(d[k]["plane"], dtype=int)
    d["lateral"] = np.array(d["lateral"], dtype=float)
    return d


def _conventional_like(published, relaxed_prim):
    """The relaxed primitive cell expressed in the published conventional cell: the published
    cell's lattice vectors as integer combinations of its primitive ones, applied to the relaxed
    primitive lattice (the relaxation keeps the primitive cell's orientation and setting)."""
    from pymatgen.core import Lattice, Structure

    prim = published.get_primitive_structure()
    m = np.rint(published.lattice.matrix @ np.linalg.inv(prim.lattice.matrix))
    if not np.allclose(m @ prim.lattice.matrix, published.lattice.matrix, atol=1e-4):
        raise RuntimeError("published cell is not an integer supercell of its primitive cell")
    return Structure(Lattice(m @ relaxed_prim.lattice.matrix), [], [])


def make_references(bulk_cells: str = "published", potential=None, path: Path | None = None) -> Path:
    """(Re)write ``references.json``: the bulk cells used (``published`` crystallography, or
    ``m3gnet``: both relaxed, cell and positions, with matgl's Relaxer, fmax 0.01 eV/Å), the
    ZSL match and the two slabs. ``python -m dismai_data.builders.interface`` runs it."""
    lco, lsc = published_bulk("LiCoO2_R-3m"), published_bulk("Li3ScCl6_C2m")
    record: dict[str, Any] = {"bulk_cells": bulk_cells}
    if bulk_cells == "m3gnet":
        from matgl.ext.ase import Relaxer

        if potential is None:
            from dismai_data.physics.relax import load_potential

            potential = load_potential()
        relaxed = []
        record["potential"] = getattr(potential, "dismai_source", "M3GNet-MP-2021.2.8-PES")
        record["bulk_relaxation"] = {}
        for name, s in (("LiCoO2", lco), ("Li3ScCl6", lsc)):
            prim = s.get_primitive_structure()
            r = Relaxer(potential, relax_cell=True).relax(prim, fmax=0.01, steps=2000, verbose=False)
            f = r["final_structure"]
            forces = np.asarray(r["trajectory"].forces[-1])
            fmax = float(np.sqrt((forces ** 2).sum(axis=1)).max())
            n_steps = len(r["trajectory"].energies)
            if fmax > 0.01 + 1e-9:
                raise RuntimeError(f"make_references: {name} bulk relaxation did not reach fmax 0.01 eV/Å in "
                                   f"2000 steps (max force {fmax:.4f})")
            # lattice parameters in the published (conventional) setting, before and after
            conv = {"published": s, "m3gnet": _conventional_like(s, f)}
            record["bulk_relaxation"][name] = {
                "steps": n_steps, "max_force_eV_per_A": round(fmax, 5),
                "energy_eV_per_atom": round(float(r["trajectory"].energies[-1]) / len(f), 5),
                "volume_change": round(f.volume / prim.volume - 1.0, 4),
                **{f"{k}_lattice": {x: round(float(v), 4) for x, v in zip(
                    ("a", "b", "c", "alpha", "beta", "gamma"), c.lattice.parameters)} for k, c in conv.items()}}
            relaxed.append(f)
        lco, lsc = relaxed
    elif bulk_cells != "published":
        raise ValueError(f"bulk_cells must be 'published' or 'm3gnet', got {bulk_cells!r}")
    record["bulk"] = {"LiCoO2": lco.as_dict(), "Li3ScCl6": lsc.as_dict()}
    record.update(_slabs_to_json(make_slabs(lco, lsc)))
    path = Path(path) if path is not None else RAW / "references.json"
    path.write_text(json.dumps(record, indent=None, sort_keys=True) + "\n")
    return path


# --------------------------------------------------------------------------- random interfaces
def _min_dist_table() -> dict[tuple[str, str], float]:
    t = {}
    for (a, b), v in MIN_DISTANCE.items():
        t[(a, b)] = t[(b, a)] = v
    return t


def _periodic_dists(p: np.ndarray, pts: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Distances from p to pts, minimum image in the two lateral directions (none along z:
    the vacuum separates periodic images along the normal)."""
    d = pts - p
    f = _times2(d[:, :2], _inv2(lat2[:, :2]))
    f -= np.rint(f)
    d[:, :2] = _times2(f, lat2[:, :2])
    return np.sqrt((d * d).sum(axis=1))


def _inv2(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x2 matrix by the explicit formula (no LAPACK: see :func:`_times2`)."""
    det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    return np.array([[m[1, 1], -m[0, 1]], [-m[1, 0], m[0, 0]]]) / det


def _lateral_frac(cart: np.ndarray, lat2: np.ndarray, c: float) -> np.ndarray:
    """Fractional coordinates in the cell (lat2[0], lat2[1], (0, 0, c)) without LAPACK (see
    :func:`_times2`); the lateral vectors must lie in the xy plane."""
    if np.any(lat2[:, 2] != 0.0):
        raise RuntimeError("references.json: lateral cell vectors are not in the xy plane")
    return np.column_stack([_times2(cart[:, :2], _inv2(lat2[:, :2])), cart[:, 2] / c])


def _times2(f: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``f @ m`` for f (..., 2) and a 2x2 ``m`` as elementwise products and one sum. ``@`` goes
    to BLAS, whose kernels (chosen per CPU: OpenBLAS Haswell, SkylakeX, Zen, ...) round
    differently in the last bits; elementwise IEEE arithmetic gives the same bits on every CPU,
    so a candidate and its input sha256 are the same wherever it is generated (checkpoint shards
    relaxed on one machine are then accepted on another)."""
    return f[..., 0:1] * m[0] + f[..., 1:2] * m[1]


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
    table = _min_dist_table()
    inv_lat = _inv2(lat2[:, :2])
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
                cand = np.column_stack([_times2(f, lat2[:, :2]), z])
                d = cand[:, None, :] - pts[None, :, :]
                fr = _times2(d[..., :2], inv_lat)
                fr -= np.rint(fr)
                d[..., :2] = _times2(fr, lat2[:, :2])
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
        lsc_cart[:, :2] += _times2(shift, lat2[:, :2])
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
    frac = _lateral_frac(cart, lat2, c)
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


# --------------------------------------------------------------------------- build
def _params(params: dict) -> dict:
    unknown = set(params) - set(PARAMETERS)
    if unknown:
        raise ValueError(f"interface: unknown parameters {sorted(unknown)}; known: {', '.join(PARAMETERS)}")
    p = {k: v for k, (v, _) in PARAMETERS.items()}
    p.update(params)
    for k in ("seed", "n_structures", "n_candidates", "max_steps", "batch_size", "workers"):
        p[k] = int(p[k])
    for k in ("window_jm2", "fmax", "train_fraction"):
        p[k] = float(p[k])
    if p["time_budget_s"] not in (None, "", "null", "None"):
        p["time_budget_s"] = float(p["time_budget_s"])
    else:
        p["time_budget_s"] = None
    if p["scheduler"] in ("", "null", "None"):
        p["scheduler"] = None
    if p["engine"] not in _ENGINES:
        raise ValueError(f"interface: parameter engine must be 'fast' or 'compile', got {p['engine']!r}")
    if not (p["device"] in ("auto", "cpu", "cuda") or str(p["device"]).startswith("cuda:")):
        raise ValueError(f"interface: parameter device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {p['device']!r}")
    if p["n_candidates"] < 1 or p["n_structures"] < 1:
        raise ValueError("interface: n_candidates and n_structures must be >= 1")
    return p


def next_round_fits(elapsed_s: float, round_walls: list[float], budget_s: float) -> bool:
    """Whether a time-budgeted build starts another round of relaxations: not once the budget
    is spent, nor when the next round, predicted to take as long as the longer of the last two,
    would end after it. The last two, not the slowest so far, so that one round slowed by other
    work on a shared machine does not end the build early (the build ends close to the budget,
    not a whole round after it)."""
    if elapsed_s >= budget_s:
        return False
    predicted = max(round_walls[-2:]) if round_walls else 0.0
    return elapsed_s + predicted <= budget_s


def _data_params(p: dict) -> dict:
    return {k: v for k, v in p.items() if k not in _RUNTIME}


def shard_parameters(p: dict) -> dict:
    """What a relaxation checkpoint shard must have been made with to be reused: the data
    parameters that change a relaxation (not n_candidates, n_structures, window_jm2 or
    train_fraction: more candidates continue the same work), the references' sha256 and the
    generator version. Written into every shard; a shard with others is refused."""
    key = dict(_data_params(p))
    for k in ("n_candidates", "n_structures", "window_jm2", "train_fraction"):
        key.pop(k)
    key["references_sha256"] = REFERENCES_SHA256
    key["generator_version"] = GENERATOR_VERSION
    return key


def _workdir(p: dict) -> Path:
    if p["workdir"]:
        return Path(p["workdir"]).expanduser()
    h = hashlib.sha256(json.dumps(shard_parameters(p), sort_keys=True).encode()).hexdigest()[:12]
    return default_home() / "work" / f"interface-{h}"


def _device(p: dict) -> str:
    import torch

    if p["device"] == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return p["device"]


def _shard_metadata(p: dict, device: str) -> dict:
    """Checkpoint metadata: the checked parameters and where the shard was relaxed."""
    return {"parameters": shard_parameters(p),
            "provenance": {"builder_version": BUILDER_VERSION, "engine": p["engine"], "device": device,
                           "machine": _machine(device)}}


def _reference_structures() -> dict:
    """Bulk cells and isolated slabs (14 Å vacuum) whose relaxed energies define the interface
    energy; ids are the relax_many keys."""
    from pymatgen.core import Lattice, Structure

    refs = references()
    lat2 = refs["lateral"]
    out = {}
    for name, key in (("LiCoO2", "lco"), ("Li3ScCl6", "lsc")):
        out[f"ref-{key}-bulk"] = Structure.from_dict(refs["bulk"][name])
        part = refs[key]
        cart = part["cart"] - [0, 0, part["cart"][:, 2].min()]
        c = float(cart[:, 2].max()) + VACUUM
        lat = Lattice(np.array([lat2[0], lat2[1], [0.0, 0.0, c]]))
        # fractional coordinates without BLAS, as in generate(): the same bits on every CPU
        out[f"ref-{key}-slab"] = Structure(lat, list(part["species"]), _lateral_frac(cart, lat2, c))
    return out


def _fu(structure, formula: str) -> float:
    from pymatgen.core import Composition

    comp = structure.composition
    ref = Composition(formula)
    n = comp.get_el_amt_dict()
    return n[ref.elements[0].symbol] / ref.get_el_amt_dict()[ref.elements[0].symbol]


def interface_energy_terms(ref_energies: dict, area: float) -> dict:
    """Constant part of gamma: E_LCO_slab/2 + 18 e_LCO + E_LSC_slab/2 + 7.5 e_LSC (eV), from the
    relaxed reference energies (ids of :func:`_reference_structures`)."""
    structs = _reference_structures()
    e_lco = ref_energies["ref-lco-bulk"] / _fu(structs["ref-lco-bulk"], "LiCoO2")
    e_lsc = ref_energies["ref-lsc-bulk"] / _fu(structs["ref-lsc-bulk"], "Li3ScCl6")
    n_lco_slab = _fu(structs["ref-lco-slab"], "LiCoO2")  # 36
    n_lsc_slab = _fu(structs["ref-lsc-slab"], "Li3ScCl6")  # 9
    sigma_lco = (ref_energies["ref-lco-slab"] - n_lco_slab * e_lco) / (2 * area)
    sigma_lsc = (ref_energies["ref-lsc-slab"] - n_lsc_slab * e_lsc) / (2 * area)
    return {"e_lco_fu": e_lco, "e_lsc_fu": e_lsc, "sigma_lco_jm2": sigma_lco * EV_PER_A2_TO_J_PER_M2,
            "sigma_lsc_jm2": sigma_lsc * EV_PER_A2_TO_J_PER_M2, "area_A2": area,
            "constant_eV": 36 * e_lco + 12 * e_lsc + (sigma_lco + sigma_lsc) * area}


def gamma_jm2(energy: float, terms: dict) -> float:
    """Interface energy (J/m^2) of a relaxed 264-atom interface of total energy ``energy`` (eV)."""
    return (energy - terms["constant_eV"]) / terms["area_A2"] * EV_PER_A2_TO_J_PER_M2


def _relax(items, p: dict, potential, folder: Path, *, progress: bool = True, shard_size: int | None = None):
    from dismai_data.physics.relax import relax_many

    device = getattr(potential, "dismai_device", None) or _device(p)
    return relax_many(items, potential=potential, fmax=p["fmax"], max_steps=p["max_steps"],
                      batch_size=p["batch_size"], checkpoint_dir=folder, scheduler=p["scheduler"],
                      workers=p["workers"], progress=progress, fast=_ENGINES[p["engine"]],
                      shard_size=shard_size, shard_metadata=_shard_metadata(p, device))


def _generated_rows(p: dict) -> tuple[list[dict], dict]:
    from dismai_data.physics.relax import load_potential
    from dismai_data.structure import row_from_structure

    if p["scheduler"] == "local":
        # one LocalCluster for the whole build: its workers keep the potential (and a compiled
        # evaluator) from round to round instead of a new cluster per round
        from dismai_data.physics.relax import local_cluster

        with local_cluster(p["workers"]) as address:
            return _generated_rows({**p, "scheduler": address})
    t_build = time.monotonic()  # the time budget counts from here (reference relaxations included)
    folder = _workdir(p)
    folder.mkdir(parents=True, exist_ok=True)
    potential = load_potential(device=_device(p))
    refs = references()
    area = float(np.linalg.norm(np.cross(refs["lateral"][0], refs["lateral"][1])))
    ref_structs = _reference_structures()
    ref_res = _relax(list(ref_structs.items()), p, potential, folder / "references")
    bad = [k for k, r in zip(ref_structs, ref_res) if r.error or r.energy is None]
    if bad:
        raise RuntimeError(f"reference relaxations failed: {bad}: {[r.error for r in ref_res]}")
    ref_energies = {k: float(r.energy) for k, r in zip(ref_structs, ref_res)}
    terms = interface_energy_terms(ref_energies, area)
    t0 = time.monotonic()
    ref_wall = t0 - t_build
    chunk = max(p["batch_size"] * max(p["workers"], 1), 1)
    from dismai_data.physics.relax import checkpoint_index

    before = set(checkpoint_index(folder / "candidates"))  # relaxed by earlier runs (resumed here)
    done: list[tuple[int, dict, Any]] = []
    batch_walls: list[float] = []
    stopped_at = None
    budget = p["time_budget_s"]
    for start in range(0, p["n_candidates"], chunk):
        if budget is not None and done:  # the first batch always runs, so a budgeted build has data
            now = time.monotonic() - t_build
            if not next_round_fits(now, batch_walls, budget):
                stopped_at = start
                print(f"interface: time budget {budget:.0f} s: stopping after {len(done)} candidates "
                      f"({now:.0f} s elapsed, batches took {[round(w) for w in batch_walls]} s)", flush=True)
                break
        ks = list(range(start, min(start + chunk, p["n_candidates"])))
        tb = time.monotonic()
        gen = [generate(p["seed"], k, refs) for k in ks]
        res = _relax([(f"cand-{k:06d}", s) for k, (s, _) in zip(ks, gen)], p, potential, folder / "candidates")
        batch_walls.append(time.monotonic() - tb)
        done += [(k, info, r) for k, (_, info), r in zip(ks, gen, res)]
        n_conv = sum(1 for _, _, r in done if r.converged and r.error is None)
        print(f"interface: {len(done)} candidates relaxed ({n_conv} converged) in {time.monotonic() - t0:.0f} s; "
              f"last batch {batch_walls[-1]:.0f} s, steps {[int(r.steps) for r in res]}", flush=True)
    relaxed = [(k, info, r) for k, info, r in done if r.converged and r.error is None and r.structure is not None]
    if not relaxed:
        raise RuntimeError(f"no candidate relaxed to fmax {p['fmax']} eV/Å within {p['max_steps']} steps "
                           f"({len(done)} tried; final fmax: {[round(float(r.fmax), 3) for _, _, r in done if r.fmax is not None]})")
    gammas = {k: gamma_jm2(float(r.energy), terms) for k, _, r in relaxed}
    g_min = min(gammas.values())
    in_window = sorted((x for x in relaxed if gammas[x[0]] <= g_min + p["window_jm2"] + 1e-12),
                       key=lambda x: (gammas[x[0]], x[0]))
    kept = in_window[:p["n_structures"]]
    kept.sort(key=lambda x: x[0])
    rows = []
    for i, (k, info, r) in enumerate(kept):
        extra = {"energy": float(r.energy), "interface_energy": gammas[k],
                 "relative_interface_energy": gammas[k] - g_min, "thickness": info["thickness"],
                 "shift_a": info["shift_a"], "shift_b": info["shift_b"], "candidate": k,
                 "relax_steps": int(r.steps), "converged": bool(r.converged), "fmax": float(r.fmax)}
        rows.append(row_from_structure(r.structure, id=f"interface-{p['seed']}-{k:06d}", extra=extra, index=i,
                                       symmetry=False))
    stats = {"tried": len(done), "converged": len(relaxed), "kept": len(kept), "kept_in_window": len(in_window),
             "g_min": g_min,
             "g_max_converged": max(gammas.values()), "terms": terms, "ref_energies": ref_energies,
             "stopped_at": stopped_at, "elapsed_s": time.monotonic() - t0, "reference_wall_s": ref_wall,
             "build_wall_s": time.monotonic() - t_build, "batch_walls_s": batch_walls,
             "relaxed_in_this_run": (here := sum(1 for k, _, _ in done if f"cand-{k:06d}" not in before)),
             "wall_s_per_candidate": (sum(batch_walls) / here) if here else None,
             "steps_per_candidate": (sum(int(r.steps) for _, _, r in done) / len(done)) if done else None,
             "potential": getattr(
                 potential, "dismai_source", "M3GNet-MP-2021.2.8-PES"), "folder": str(folder),
             "relaxed_where": relaxation_provenance(folder, {f"cand-{k:06d}" for k, _, _ in done}),
             "relaxation_runs": _run_summaries(folder)}
    return rows, stats


def relaxation_provenance(folder: Path, ids: set[str]) -> list[dict]:
    """Where the candidates ``ids`` were relaxed, from their checkpoint shards' provenance:
    one entry per (machine, device, engine, builder version) with its candidate count."""
    from collections import Counter

    from dismai_data.physics.relax import checkpoint_index

    counts = Counter((str(prov.get("machine", "not recorded")).split(";")[0], prov.get("device"),
                      prov.get("engine"), prov.get("builder_version"))
                     for key, prov in checkpoint_index(folder / "candidates").items() if key in ids)
    return [{"machine": m, "device": d, "engine": e, "builder_version": v, "candidates": n}
            for (m, d, e, v), n in sorted(counts.items(), key=lambda x: -x[1])]


def _run_summaries(folder: Path) -> list[dict]:
    """The summaries :func:`relax_candidates` left in the work folder (``runs/*.json``)."""
    out = []
    for path in sorted((folder / "runs").glob("relax-*.json")):
        d = json.loads(path.read_text())
        out.append({k: d.get(k) for k in ("started", "machine", "device", "workers", "batch_size",
                                          "candidates_relaxed", "wall_s", "cpu_s", "mean_steps")})
    return out


def _relax_worker(w: int, chunks: list[list[int]], p: dict, shard_size: int, deadline: float, queue,
                  done_ids: frozenset = frozenset()) -> None:
    """One process of :func:`relax_candidates`: its chunks in order, each generated then relaxed
    with relax_many into the build's checkpoint folder; no new chunk once the next one would
    end after ``deadline`` (time.time(), predicted from the longer of the last two chunks)."""
    import time

    import torch

    torch.set_num_threads(1)
    from dismai_data.physics.relax import load_potential

    device = _device(p)
    potential = load_potential(device=device)
    refs = references()
    folder = _workdir(p) / "candidates"
    walls: list[float] = []
    for ks in chunks:
        if all(f"cand-{k:06d}" in done_ids for k in ks):  # relaxed already (a resumed run)
            continue
        if walls and time.time() + max(walls[-2:]) > deadline:
            queue.put(("stopped", w, ks[0]))
            break
        t = time.time()
        items = [(f"cand-{k:06d}", generate(p["seed"], k, refs)[0]) for k in ks]
        res = _relax(items, p, potential, folder, progress=False, shard_size=shard_size)
        walls.append(time.time() - t)
        queue.put(("chunk", w, ks, [int(r.steps) for r in res], [bool(r.converged) for r in res], walls[-1]))
    queue.put(("done", w))


def relax_candidates(n_candidates: int, *, workers: int, deadline_s: float | None = None, chunk: int | None = None,
                     shard_size: int = 16, **params) -> dict:
    """Relax the reference structures and candidates 0..n_candidates-1 into the build's
    checkpoint folder (what ``dismai build interface`` with the same parameters then reads
    instead of relaxing), in ``workers`` processes of this machine that share its device: on a
    GPU host, one batched model call per step in each process (``batch_size`` structures) while
    the others prepare theirs. Candidates go out in chunks (``chunk``, default 2 x batch_size),
    chunk c to process c mod workers, so what is done when ``deadline_s`` stops new chunks is
    nearly a prefix of the candidates. Returns a summary (counts, walls, steps, machine)."""
    import multiprocessing as mp
    import queue as queue_module
    import time

    p = _params({**params, "n_candidates": n_candidates})
    t0 = time.time()
    deadline = t0 + deadline_s if deadline_s else float("inf")
    folder = _workdir(p)
    folder.mkdir(parents=True, exist_ok=True)
    from dismai_data.physics.relax import load_potential

    device = _device(p)
    ref_structs = _reference_structures()
    ref_res = _relax(list(ref_structs.items()), p, load_potential(device=device), folder / "references",
                     progress=False)
    ref_wall = time.time() - t0
    size = int(chunk or 2 * p["batch_size"])
    chunks = [list(range(a, min(a + size, n_candidates))) for a in range(0, n_candidates, size)]
    from dismai_data.physics.relax import checkpoint_index

    done_ids = frozenset(checkpoint_index(folder / "candidates"))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_relax_worker, args=(w, chunks[w::workers], p, int(shard_size), deadline, queue, done_ids), daemon=True)
             for w in range(workers)]
    for proc in procs:
        proc.start()
    done, steps, converged, alive = [], [], 0, workers
    while alive:
        try:
            msg = queue.get(timeout=5.0)
        except queue_module.Empty:  # check that the workers still live
            if not any(proc.is_alive() for proc in procs):
                break
            continue
        if msg[0] == "chunk":
            done += msg[2]
            steps += msg[3]
            converged += sum(msg[4])
            print(f"interface relax: {len(done)} candidates ({converged} converged) in {time.time() - t0:.0f} s; "
                  f"worker {msg[1]} chunk from {msg[2][0]} in {msg[5]:.0f} s", flush=True)
        elif msg[0] == "stopped":
            print(f"interface relax: worker {msg[1]} starts no chunk from {msg[2]} on (deadline)", flush=True)
        elif msg[0] == "done":
            alive -= 1
    for proc in procs:
        proc.join(timeout=30)
    import resource

    cpu = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    done.sort()
    prefix = next((i for i, k in enumerate(done) if k != i), len(done))
    summary = {"candidates_relaxed": len(done), "converged": converged, "complete_prefix": prefix,
               "mean_steps": (sum(steps) / len(steps)) if steps else None, "wall_s": round(time.time() - t0, 1),
               "cpu_s": round(sum(r.ru_utime + r.ru_stime for r in cpu), 1),
               "wall_s_references": round(ref_wall, 1), "reference_energies_eV": {
                   k: r.energy for k, r in zip(ref_structs, ref_res)}, "workers": workers,
               "batch_size": p["batch_size"], "chunk": size, "device": device, "machine": _machine(device),
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)), "folder": str(folder)}
    # the card of the build that reads these shards reports every run that made them
    runs = folder / "runs"
    runs.mkdir(exist_ok=True)
    (runs / f"relax-{int(t0)}.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


_EXTRA_NULL = {"energy": None, "interface_energy": None, "relative_interface_energy": None, "thickness": None,
               "shift_a": None, "shift_b": None, "candidate": None, "relax_steps": None, "converged": None,
               "fmax": None}


def _file_rows(p: dict) -> dict[str, list[dict]]:
    def extra(path: Path, i: int, row: dict) -> dict:
        if row["num_atoms"] != N_ATOMS or set(row["species"]) != set(SPECIES_ORDER):
            raise ValueError(f"{path} frame {i}: not a Li-Co-O-Sc-Cl interface of {N_ATOMS} atoms "
                             f"({row['formula']}, {row['num_atoms']} atoms)")
        out = dict(_EXTRA_NULL)
        if row.get("energy") is not None:
            out["energy"] = float(row["energy"])
        return out

    return rows_from_files(p["from_files"], extra)


def _columns() -> dict[str, Column]:
    from datasets import Value

    return {
        "energy": Column(Value("float64"), "eV", "total energy after relaxation (M3GNet-MP-2021.2.8-PES)"),
        "interface_energy": Column(Value("float64"), "J/m^2", "gamma = [E - E_LCO_slab/2 - 18 e_LCO - "
                                   "E_LSC_slab/2 - 7.5 e_LSC] / A: energy above the bulk of its 36 LCO and 12 "
                                   "LSC formula units, minus the surface energies of the two free faces (see card)"),
        "relative_interface_energy": Column(Value("float64"), "J/m^2", "interface_energy minus the lowest one "
                                            "found in this build (the paper's low-energy criterion: <= 0.4)"),
        "thickness": Column(Value("float64"), "Å", "interface-region thickness drawn in [4, 6] (top LCO plane "
                                                   "to bottom LSC plane, before relaxation)"),
        "shift_a": Column(Value("float64"), "", "lateral shift of the LSC slab along a (fraction)"),
        "shift_b": Column(Value("float64"), "", "lateral shift of the LSC slab along b (fraction)"),
        "candidate": Column(Value("int32"), "", "candidate index k (random stream default_rng([seed, k]))"),
        "relax_steps": Column(Value("int32"), "", "relaxation steps (FIRE, positions only)"),
        "converged": Column(Value("bool"), "", "max force <= fmax at the end (always true when rebuilt)"),
        "fmax": Column(Value("float64"), "eV/Å", "largest atomic force after relaxation"),
    }


def _machine(device: str | None = None) -> str:
    import os

    import torch

    on_gpu = torch.cuda.is_available() if device is None else str(device).startswith("cuda")
    dev = "CUDA GPU " + torch.cuda.get_device_name(0) if on_gpu else "CPU"
    return (f"{dev}; {len(os.sched_getaffinity(0))} CPU cores usable, load average {os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")


def _summary(p: dict, n: int, stats: dict, from_files: bool) -> str:
    if from_files:
        return (f"{n} Li3ScCl6(100)-LiCoO2(110) interface structures of Dismai-Bench (Yong, Su and Ertekin, Digital "
                "Discovery 2024) read from the user's copies of the original Zenodo extxyz files "
                "(10.5281/zenodo.12710372) by dismai-data's interface builder (`--set from_files=...`); structures "
                "and splits are the originals; the generation and interface-energy columns are null.")
    budgeted = stats.get("stopped_at") is not None
    full = ("the full build (n_candidates 3000) is `dismai build interface --out DIR --set scheduler=ADDRESS --set "
            "workers=N` on a Dask cluster, or `dismai build interface --out DIR` on a GPU machine")
    if budgeted or n < p["n_structures"]:
        per = stats.get("wall_s_per_candidate")
        budget = (f"a wall budget of {p['time_budget_s']:.0f} s" if p["time_budget_s"] is not None
                  else "no time budget")
        size = (f"**{n} structures: a time-budgeted v1.0-preview, not the full dataset.** Built with {budget} "
                f"({stats['build_wall_s']:.0f} s used) on {_machine_words()}: {stats['tried']} random candidates "
                f"relaxed ({'%.0f s' % per if per is not None else 'n/a'} wall per candidate relaxation, batches of "
                f"{p['batch_size']}), {stats['converged']} converged to fmax, {n} within {p['window_jm2']} J/m^2 of "
                f"the lowest; the paper has 1500 from about 3000 candidates; {full}")
    else:
        size = (f"{n} structures, the lowest {n} of the {stats['kept_in_window']} within {p['window_jm2']} J/m^2 "
                f"of the lowest interface energy among {stats['converged']} converged of {stats['tried']} random "
                f"candidates (0..{stats['tried'] - 1}; the paper kept 1500 of its own relaxed candidates)"
                ) if stats.get("kept_in_window") else f"{n} structures"
    where = _where_words(stats)
    if where:
        size += f". {where}"
    return (f"{size}. Disordered Li3ScCl6(100)-LiCoO2(110) battery interfaces of 264 atoms, **rebuilt here, not "
            "downloaded**: the Dismai-Bench data (Zenodo 10.5281/zenodo.12710372) cannot be reached from here, so "
            "this builder regenerates them with the paper's recipe (Methods 4.1.3): LCO(110) 4 layers and "
            "Tasker-2b LSC(100) 7 layers lattice-matched with pymatgen's Zur-McGill ZSL "
            f"(mean length strain {100 * references()['match']['mean_length_strain']:.2f} %, paper 2.17 %), an "
            "interface region of 3 LSC formula units placed at random in a 4-6 Å layer, a random lateral shift of "
            "the LSC slab, 14 Å vacuum, positions relaxed to fmax "
            f"{p['fmax']} eV/Å with the lateral cell fixed, and the structures within {p['window_jm2']} J/m^2 of the "
            "lowest interface energy kept. Differences from the paper: the relaxations use the **universal "
            "M3GNet-MP-2021.2.8-PES** through matgl (the paper trained its own M3GNet on DFT of this interface); "
            "the interface energy is defined from our own relaxed bulk and slab references (column "
            "`interface_energy`, J/m^2; the paper normalised with -4.78 eV/atom from its potential), and "
            "`relative_interface_energy` is measured from the lowest structure of this build; the slabs are cut "
            f"from {_bulk_words()} (see provenance); and the size is as stated above.")


def _where_words(stats: dict) -> str:
    """Where the candidates of this build were relaxed (shard provenance), in words."""
    parts = []
    for w in stats.get("relaxed_where") or []:
        on = f"{w['machine']} ({w['device']}, engine {w['engine']})" if w.get("device") else w["machine"]
        parts.append(f"{w['candidates']} on {on}")
    runs = [r for r in stats.get("relaxation_runs") or [] if r.get("candidates_relaxed")]
    text = ("Relaxations (checkpoint shards, reused by a rerun with the same parameters): " + "; ".join(parts)
            if parts else "")
    if any(str(w.get("device") or "").startswith("cuda") for w in stats.get("relaxed_where") or []):
        text += (" (on the GPU: the same fast exact M3GNet function and ASE-FIRE rule as on a CPU, float32 sums "
                 "in another order; `benchmarks/interface_gpu.py` compares the two)")
    if runs:
        text += ". Runs: " + "; ".join(
            f"{r['candidates_relaxed']} candidates in {r['wall_s']:.0f} s wall on {r['machine'].split(';')[0]} "
            f"({r['workers']} processes, batches of {r['batch_size']}"
            + (f", {r['cpu_s'] / 3600:.2f} CPU-hours" if r.get("cpu_s") else "") + f", started {r['started']})"
            for r in runs)
    return text


def _bulk_words() -> str:
    refs = references()
    if refs["bulk_cells"] != "m3gnet":
        return "the published bulk cells (not relaxed with the potential)"
    r = refs["bulk_relaxation"]

    def lat(d, keys):
        return ", ".join(f"{k} = {d[k]:.4g}{'°' if k == 'beta' else ' Å'}" for k in keys)
    lco, lsc = r["LiCoO2"], r["Li3ScCl6"]
    return ("bulk cells relaxed (cell and positions, fmax 0.01 eV/Å) with the same M3GNet potential: LiCoO2 "
            f"{lat(lco['m3gnet_lattice'], ('a', 'c'))} (published {lat(lco['published_lattice'], ('a', 'c'))}), "
            f"Li3ScCl6 {lat(lsc['m3gnet_lattice'], ('a', 'b', 'c', 'beta'))} (published "
            f"{lat(lsc['published_lattice'], ('a', 'b', 'c', 'beta'))}), so the slabs carry no strain from a "
            "lattice mismatch with the potential (LSC is then strained onto the LCO lateral cell as in the paper)")


def _machine_words() -> str:
    import os

    import torch

    if torch.cuda.is_available():
        return "a GPU (" + torch.cuda.get_device_name(0) + ")"
    load, ncpu = os.getloadavg()[0], len(os.sched_getaffinity(0))
    return (f"{ncpu} shared CPU cores (load average {load:.1f} at the end: shared with other jobs)"
            if load > 0.5 * ncpu else f"{ncpu} CPU cores")


def build(**params) -> DatasetBuild:
    """Build the interface dataset (or read the original files with ``from_files``)."""
    from dismai_data.raw import sha256_file

    p = _params(params)
    from_files = p["from_files"] not in (None, "", [])
    stats: dict = {}
    if from_files:
        splits = _file_rows(p)
        checks = [f"every structure has {N_ATOMS} atoms of Li, Co, O, Sc, Cl"]
    else:
        rows, stats = _generated_rows(p)
        splits = seeded_split(rows, p["seed"], p["train_fraction"])
        counts = {"Li": 72, "Co": 36, "O": 72, "Sc": 12, "Cl": 72}
        for r in rows:
            if r["num_atoms"] != N_ATOMS or list(r["species"][:72]) != ["Li"] * 72 or any(
                    list(r["species"]).count(e) != c for e, c in counts.items()):
                raise RuntimeError(f"{r['id']}: wrong composition or atom order")
            if not r["converged"] or r["fmax"] > p["fmax"]:
                raise RuntimeError(f"{r['id']}: not relaxed to fmax")
        checks = [f"all {len(rows)} structures have 264 atoms (Li72 Co36 O72 Sc12 Cl72), the first 72 Li, and max "
                  f"atomic force <= {p['fmax']} eV/Å (largest {max(r['fmax'] for r in rows):.4f})",
                  f"relative interface energies within [0, {p['window_jm2']}] J/m^2 (largest "
                  f"{max(r['relative_interface_energy'] for r in rows):.3f})"]
    n = sum(len(v) for v in splits.values())
    sources = [SourceFile(name=f"interface/{f}", sha256=sha256_file(RAW / f), source=src, licence=lic)
               for f, src, lic in (
                   ("LiCoO2_R-3m.json", "published crystallography (Orman & Wiseman 1984; Akimoto et al. 1998), "
                                        "typed by hand", "facts (no licence needed); file CC BY 4.0"),
                   ("Li3ScCl6_C2m.json", "lattice of Bohnsack et al. 1997; ordered approximant made here",
                    "facts; file CC BY 4.0"),
                   ("references.json", "made by make_references() from the two files above", "CC BY 4.0"))]
    parameters = {} if from_files else dict(_data_params(p))
    version = "1.0"
    if not from_files:
        parameters.update({"time_budget_s": p["time_budget_s"], "potential": stats["potential"],
                           "zsl_match": references()["match"], "bulk_cells": references()["bulk_cells"],
                           "reference_energies_eV": stats["ref_energies"],
                           "surface_energies_jm2": {"LCO(110)": stats["terms"]["sigma_lco_jm2"],
                                                    "LSC(100) Tasker 2b": stats["terms"]["sigma_lsc_jm2"]},
                           "candidates_tried": stats["tried"], "candidates_converged": stats["converged"],
                           "candidates_kept": stats["kept"], "candidates_in_window": stats["kept_in_window"],
                           "candidates_relaxed_in_this_run": stats["relaxed_in_this_run"],
                           "lowest_interface_energy_jm2": stats["g_min"],
                           "stopped_by_time_budget": stats["stopped_at"] is not None,
                           "wall_s_reference_relaxations": round(stats["reference_wall_s"], 1),
                           # walls and machine of this run; a build assembled from checkpoint shards relaxed
                           # elsewhere says so (where they were relaxed: candidates_relaxed_on, relaxation_runs)
                           "wall_s_candidates": (round(sum(stats["batch_walls_s"]), 1) if stats["relaxed_in_this_run"]
                                                 else None),
                           "wall_s_per_candidate_relaxation": (None if stats["wall_s_per_candidate"] is None
                                                               else round(stats["wall_s_per_candidate"], 1)),
                           "mean_steps_per_candidate": (None if stats["steps_per_candidate"] is None
                                                        else round(stats["steps_per_candidate"], 1)),
                           "wall_s_build": round(stats["build_wall_s"], 1),
                           "machine": _machine() + ("" if stats["relaxed_in_this_run"] else
                                                    " (this run only assembled the dataset from checkpoint shards)"),
                           "candidates_relaxed_on": stats["relaxed_where"],
                           "relaxation_runs": stats["relaxation_runs"]})
        if stats["stopped_at"] is not None or n < p["n_structures"]:
            version = "1.0-preview"
    b = DatasetBuild(
        name="interface",
        # the size of a time-budgeted preview goes into the card's first line (the title)
        pretty_name="Dismai-Bench LSC-LCO interfaces" + ("" if from_files else " (rebuilt)")
        + (f": v1.0-preview, {n} structures" if version == "1.0-preview" else ""),
        version=version,
        builder_version=BUILDER_VERSION,
        license="cc-by-4.0",
        summary=_summary(p, n, stats, from_files),
        configs={"default": {s: splits[s] for s in ("train", "validation") if s in splits}},
        columns=_columns(),
        sources=sources,
        parameters=parameters,
        citation=CITATION,
        provenance="" if from_files else (__doc__ or "").split("Procedure (every random number from ``seed``):", 1)[1]
        .strip(),
        split_note=("Split 80/20 train/validation by a seeded permutation (default_rng([seed, 2])) of the kept "
                    "structures." if not from_files else "Splits as in the original files."),
        tags=["materials", "interfaces", "disordered", "battery", "solid-electrolyte", "m3gnet", "generative-models"],
        property_column=None if from_files else "relative_interface_energy",
        property_label="relative interface energy (J/m^2)",
        rebuilt=not from_files,
        checks=checks,
    )
    b.analysis = stats
    return b


def _main(argv: list[str]) -> None:
    """``python -m dismai_data.builders.interface [published|m3gnet]`` rewrites references.json;
    ``... relax N --workers W [--deadline-s S] [--set KEY=VALUE ...]`` runs
    :func:`relax_candidates` (a GPU host's share of a build) and prints its summary as JSON."""
    import argparse

    if not argv or argv[0] != "relax":
        print(make_references(argv[0] if argv else "published"))
        return
    ap = argparse.ArgumentParser(prog="python -m dismai_data.builders.interface relax")
    ap.add_argument("n_candidates", type=int)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--deadline-s", type=float, default=None)
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--shard-size", type=int, default=16)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args(argv[1:])
    params = dict(kv.split("=", 1) for kv in a.set)
    print(json.dumps(relax_candidates(a.n_candidates, workers=a.workers, deadline_s=a.deadline_s, chunk=a.chunk,
                                      shard_size=a.shard_size, **params), indent=1))


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
