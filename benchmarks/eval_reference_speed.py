"""Speed of the evaluation's reference-procedure metrics against the reference code itself
(the copies in tests/), on the same inputs; prints the figures for RESULTS.md "## Evaluation".

    .venv/bin/python benchmarks/eval_reference_speed.py

* alloy, one 256-atom Fe-Ni-Cr structure with 0.1 A noise and 3 vacancies:
  count.py around actual positions (``--alloy-cleanup none``) and the CryinGAN clean-up +
  count, reference vs ``dismai_data.evaluation.alloy``;
* bond angles of a rattled 64-atom diamond Si: the reference's per-pair loop + pandas.cut
  vs ``crystalnn.bond_angle_distribution`` (both with CrystalNN neighbours: the reference
  through pymatgen, the project through its fast CrystalNN).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("DISMAI_NO_PROGRESS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def best(fn, reps):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return min(ts), out


def main():
    import dismai_bench_alloy_reference as R
    from ase.io import read
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    import test_reference_agreement as T
    from dismai_data.physics import ce
    from dismai_data.evaluation import alloy as A
    from dismai_data.evaluation import crystalnn as C
    from dismai_data.raw import raw_file
    from dismai_data.structure import row_to_structure

    try:
        from _cpu import cpu_line

        print(cpu_line())
    except Exception:
        pass
    row = T._alloy_row(ce.random_occupation(1), "g", noise=0.1, seed=1, drop=3)
    s = row_to_structure(row)
    symeq, pnt = R.setup_clusters()
    ref_struc = AseAtomsAdaptor().get_structure(read(str(raw_file("fenicr_alloy/alloy_ref_struc.extxyz"))))
    A.count_around_positions(s)  # warm (numba, pymatgen)
    t_ref, (cl, _) = best(lambda: R.count_structure(s, 0, symeq, pnt), 1)
    t_ours, (counts, _) = best(lambda: A.count_around_positions(s), 5)
    d = np.max(np.abs(counts[1:] - R.probability_row(cl)[1]))
    print(f"alloy count around positions: reference {t_ref:.2f} s, ours {t_ours:.4f} s, {t_ref / t_ours:.0f}x, "
          f"max |diff| {d:.1e}")

    def ref_clean():
        clean, _ = R.cleanup(s, ref_struc, False)
        return R.count_structure(clean, 0, symeq, pnt)

    def ours_clean():
        return ce.cluster_counts_per_atom(A.cleanup_occupation(row, "cryingan"))

    ours_clean()
    t_ref, (cl, _) = best(ref_clean, 1)
    t_ours, counts = best(ours_clean, 5)
    d = np.max(np.abs(counts[1:] - R.probability_row(cl)[1]))
    print(f"alloy CryinGAN clean-up + count: reference {t_ref:.2f} s, ours {t_ours:.4f} s, {t_ref / t_ours:.0f}x, "
          f"max |diff| {d:.1e}")

    rng = np.random.default_rng(3)
    asi = Structure(Lattice.cubic(5.431), ["Si"] * 8, T.DIAMOND) * (2, 2, 2)
    rattled = Structure(asi.lattice, asi.species, asi.cart_coords + rng.normal(0, 0.15, (len(asi), 3)),
                        coords_are_cartesian=True)
    C.bond_angle_distribution(rattled)
    t_ref, h_ref = best(lambda: T.ref_angle_distribution(rattled), 1)
    t_ours, h = best(lambda: C.bond_angle_distribution(rattled), 5)
    print(f"bond-angle distribution (64 Si): reference {t_ref:.2f} s, ours {t_ours:.4f} s, {t_ref / t_ours:.0f}x, "
          f"max |diff| {np.max(np.abs(h - h_ref)):.1e}")


if __name__ == "__main__":
    main()
