"""CrystalNN fingerprint timings: matminer (reference) vs evaluation/crystalnn.py, same sites.

    nice .venv/bin/python benchmarks/eval_fingerprint.py [--sites 40] [--structures 3] [--full N]

Prints, for an a-Si-like cell (256 Si: diamond 4x4x2 with 0.15 Å Gaussian noise) and for
interface structures (``dismai_data.builders.interface.unrelaxed_interfaces`` when that
module is importable, otherwise a hand-made LiCoO2 slab + Li/Sc chloride cell, said in the
output), matminer ``CrystalNNFingerprint.featurize`` ms/site and ``crystalnn.fingerprints``
ms/site on the same sites (interface: oxidation states, ``cation_anion=True`` + Cl/O
fractions, the 109-number version, against ``disorder_reference.site_fingerprint``), the speed-up
and the max |difference|; then the time for all 120 cation sites of 1000 interface
structures, measured on ``--structures`` structures and extrapolated (``--full N`` measures
N structures end to end with 1 and 2 worker processes instead), and the bond-angle
distribution (pymatgen CrystalNN vs fast) and RDF (vasppy vs neighbour list) of the
a-Si-like cell.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from pymatgen.core import Lattice, Structure

DIAMOND = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.25, 0.25, 0.25], [0.75, 0.75, 0.25],
           [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]]
CATIONS = ("Li", "Co", "Sc")


def _asi():
    s = Structure(Lattice.cubic(5.431), ["Si"] * 8, DIAMOND)
    s.make_supercell([4, 4, 2])
    rng = np.random.default_rng(0)
    return Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, 0.15, (len(s), 3)), coords_are_cartesian=True)


def _handmade_interfaces(n):
    lco = Structure.from_spacegroup("R-3m", Lattice.hexagonal(2.816, 14.05), ["Li", "Co", "O"],
                                    [[0, 0, 0], [0, 0, 0.5], [0, 0, 0.2604]]) * (3, 3, 1)
    out = []
    for k in range(n):
        rng = np.random.default_rng(k)
        lat = lco.lattice.matrix.copy()
        lat[2] = [0, 0, 14.05 + 10.0 + 14.0]
        species = [x.specie.symbol for x in lco]
        cart = list(lco.cart_coords)
        for j in range(60):  # chloride region: Cl / Li / Sc on a jittered grid above the slab
            species.append(["Cl", "Cl", "Li", "Cl", "Sc", "Cl"][j % 6])
            g = np.array([j % 5, (j // 5) % 4, j // 20], float)
            cart.append(g[0] / 5 * lat[0] + g[1] / 4 * lat[1] + [0, 0, 15.0 + 3.0 * g[2]] + rng.normal(0, 0.2, 3))
        s = Structure(lat, species, cart, coords_are_cartesian=True)
        out.append(Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, 0.05, (len(s), 3)),
                             coords_are_cartesian=True))
    return out


def interfaces(n):
    try:
        from dismai_data.builders.interface import unrelaxed_interfaces
    except ImportError:
        return _handmade_interfaces(n), "hand-made LiCoO2 slab + Li/Sc chloride (builders.interface not available)"
    return unrelaxed_interfaces(n, 0), "dismai_data.builders.interface.unrelaxed_interfaces(n, seed=0) (real generated)"


def _cation_fps(s):
    """All cation fingerprints of one interface structure (what the interface task computes)."""
    from dismai_data.evaluation.crystalnn import OXIDATION_STATES, fingerprints
    from dismai_data.evaluation.disorder import FRACTION_SPECIES

    idx = [i for i, site in enumerate(s) if site.specie.symbol in CATIONS]
    return fingerprints(s, idx, cation_anion=True, oxidation_states=OXIDATION_STATES,
                        fraction_species=FRACTION_SPECIES), len(idx)


def _timed(fn, *a):
    t0 = time.perf_counter()
    r = fn(*a)
    return r, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=40, help="sites per structure timed with matminer")
    ap.add_argument("--structures", type=int, default=3, help="interface structures for the 120-cation timing")
    ap.add_argument("--full", type=int, default=0, help="measure N structures x 120 cations with 1 and 2 workers")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from matminer.featurizers.site import CrystalNNFingerprint

    from dismai_data.evaluation import crystalnn as C
    from dismai_data.evaluation.disorder import FRACTION_SPECIES, decorate, rdf_fast
    from dismai_data.evaluation.disorder_reference import (bond_angle_distribution_reference, rdf_reference,
                                                           site_fingerprint)

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    # ---------------------------------------------------------------- a-Si-like
    s = _asi()
    f = CrystalNNFingerprint.from_preset("ops")
    f.featurize(s, 0)
    C.fingerprints(s, [0])  # numba compile / cache load
    idx = list(range(args.sites))
    ref, t_ref = _timed(lambda: np.array([f.featurize(s, i) for i in idx]))
    ours, t_ours = _timed(C.fingerprints, s, idx)
    _, t_all = _timed(C.fingerprints, s)
    print(f"\na-Si-like cell, {len(s)} Si, {len(idx)} sites (61-number 'ops' fingerprint)")
    print(f"  matminer CrystalNNFingerprint: {1000 * t_ref / len(idx):7.2f} ms/site")
    print(f"  crystalnn.fingerprints:        {1000 * t_ours / len(idx):7.3f} ms/site   speed-up "
          f"{t_ref / t_ours:5.1f}x   max |diff| {np.abs(ref - ours).max():.1e}")
    print(f"  crystalnn.fingerprints, all {len(s)} sites: {1000 * t_all / len(s):.3f} ms/site")
    # ---------------------------------------------------------------- interface
    structs, source = interfaces(max(args.structures, 1))
    print(f"\ninterface structures: {source}; {len(structs[0])} atoms")
    s = structs[0]
    d = decorate(s)
    cat = [i for i, site in enumerate(s) if site.specie.symbol in CATIONS]
    step = max(1, len(cat) // args.sites)
    idx = cat[::step][:args.sites]
    site_fingerprint(d, idx[0], True, FRACTION_SPECIES)
    fca = CrystalNNFingerprint.from_preset("ops", cation_anion=True)
    ref, t_ref = _timed(lambda: np.array([site_fingerprint(d, i, True, FRACTION_SPECIES) for i in idx]))
    ref61, t_ref61 = _timed(lambda: np.array([fca.featurize(d, i) for i in idx]))
    ours, t_ours = _timed(lambda: C.fingerprints(d, idx, cation_anion=True, fraction_species=FRACTION_SPECIES))
    print(f"  {len(idx)} cation sites (cation_anion=True, oxidation states {C.OXIDATION_STATES})")
    print(f"  matminer CrystalNNFingerprint (61):        {1000 * t_ref61 / len(idx):7.2f} ms/site")
    print(f"  disorder.site_fingerprint (109, reference): {1000 * t_ref / len(idx):7.2f} ms/site")
    print(f"  crystalnn.fingerprints (109):               {1000 * t_ours / len(idx):7.3f} ms/site   speed-up "
          f"{t_ref61 / t_ours:5.1f}x vs matminer   max |diff| "
          f"{max(np.abs(ref - ours).max(), np.abs(ref61 - ours[:, :61]).max()):.1e}")
    # ---------------------------------------------------------------- 120 cations x 1000 structures
    n = args.full or args.structures
    structs = structs[:n] if len(structs) >= n else interfaces(n)[0]
    ncat = 0
    t0 = time.perf_counter()
    for x in structs:
        ncat += _cation_fps(x)[1]
    t1 = time.perf_counter() - t0
    per_struct = t1 / len(structs)
    print(f"\nall cation sites ({ncat // len(structs)} per structure), {len(structs)} structures, 1 process: "
          f"{per_struct:.3f} s/structure ({1000 * t1 / ncat:.3f} ms/site)")
    print(f"  1000 structures, --workers 1: {1000 * per_struct / 60:.1f} min ("
          + ("extrapolated" if not args.full else "per-structure rate measured end to end") + ")")
    with ProcessPoolExecutor(2) as ex:
        list(ex.map(_cation_fps, structs[:2]))  # warm both workers (imports, numba cache)
        t0 = time.perf_counter()
        list(ex.map(_cation_fps, structs))
        t2 = time.perf_counter() - t0
    print(f"  2 worker processes: {t2 / len(structs):.3f} s/structure -> 1000 structures, --workers 2: "
          f"{1000 * t2 / len(structs) / 60:.1f} min (2 cores shared with other jobs; load {os.getloadavg()[0]:.1f})")
    # ---------------------------------------------------------------- bond angles, RDF (a-Si)
    s = _asi()
    a, t_a = _timed(bond_angle_distribution_reference, s)
    b, t_b = _timed(C.bond_angle_distribution, s)
    print(f"\nbond-angle distribution, {len(s)} Si: pymatgen CrystalNN {1000 * t_a:.0f} ms, "
          f"crystalnn {1000 * t_b:.0f} ms "
          f"(speed-up {t_a / t_b:.0f}x, max |diff| {np.abs(a - b).max():.1e})")
    a, t_a = _timed(rdf_reference, s)
    b, t_b = _timed(rdf_fast, s)
    print(f"RDF 2x2x2, 0-10 A, 0.02 A: vasppy {1000 * t_a:.0f} ms, neighbour list {1000 * t_b:.0f} ms "
          f"(speed-up {t_a / t_b:.0f}x, max |diff| {np.abs(a - b).max():.1e})")


if __name__ == "__main__":
    main()
