"""Per-site fingerprint and per-structure RDF timings, reference libraries side by side.

    nice .venv/bin/python benchmarks/eval_fingerprint.py [--sites 40]

Structure: an a-Si-like cell (256 Si: diamond 4x4x2 with 0.15 Å Gaussian noise).
Prints ms per site for matminer ``CrystalNNFingerprint.featurize`` ("ops") and for
``dismai_data.evaluation.disorder.site_fingerprint`` (which, in this version, runs the
same pymatgen CrystalNN + LocalStructOrderParams code: no fast fingerprint yet, so the
ratio is ~1x, printed as measured), and the RDF of the 2x2x2 supercell by vasppy vs the
neighbour-list version.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from pymatgen.core import Lattice, Structure

DIAMOND = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.25, 0.25, 0.25], [0.75, 0.75, 0.25],
           [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=40)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from matminer.featurizers.site import CrystalNNFingerprint

    from dismai_data.evaluation.disorder import rdf_fast, rdf_reference, site_fingerprint

    s = Structure(Lattice.cubic(5.431), ["Si"] * 8, DIAMOND)
    s.make_supercell([4, 4, 2])
    rng = np.random.default_rng(0)
    s = Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, 0.15, (len(s), 3)), coords_are_cartesian=True)
    f = CrystalNNFingerprint.from_preset("ops")
    f.featurize(s, 0)
    site_fingerprint(s, 0)
    idx = list(range(args.sites))
    t0 = time.perf_counter()
    ref = [f.featurize(s, i) for i in idx]
    t_ref = (time.perf_counter() - t0) / len(idx)
    t0 = time.perf_counter()
    ours = [site_fingerprint(s, i) for i in idx]
    t_ours = (time.perf_counter() - t0) / len(idx)
    diff = float(np.abs(np.array(ref) - np.array(ours)).max())
    print(f"a-Si-like cell, {len(s)} Si; {len(idx)} sites timed")
    print(f"matminer CrystalNNFingerprint: {1000 * t_ref:.1f} ms/site")
    print(f"evaluation site_fingerprint:   {1000 * t_ours:.1f} ms/site  (speed-up {t_ref / t_ours:.2f}x, "
          f"max |diff| {diff:.1e})")
    t0 = time.perf_counter()
    a = rdf_reference(s)
    t_a = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = rdf_fast(s)
    t_b = time.perf_counter() - t0
    print(f"RDF 2x2x2, 0-10 A, 0.02 A: vasppy {1000 * t_a:.0f} ms, neighbour list {1000 * t_b:.0f} ms "
          f"(speed-up {t_a / t_b:.0f}x, max |diff| {np.abs(a - b).max():.1e})")


if __name__ == "__main__":
    main()
