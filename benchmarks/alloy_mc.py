"""Speed of the alloy Monte Carlo: dismai_data.physics.ce.run_mc vs icet/mchammer, and a full build.

Usage::

    nice .venv/bin/python benchmarks/alloy_mc.py [--icet-trials 20000] [--passes 4000] [--full-build]

1. An icet ``ClusterExpansion`` equivalent to fenicr_ce_eci.json: icet's ternary pair
   basis to 7.0 Å (FCC shells 1-7) has 24 parameters, the same number of independent
   parameters as the JSON's 46 indicator-count ECIs (3 point fractions sum to 1; per
   shell 6 pair counts with 3 composition constraints). The icet parameters are the
   least-squares solution on 80 random occupations of the 256-site cell (random
   compositions) of our CE energies; the script prints the largest energy difference
   on 40 *other* random structures (it is at round-off level, so both MC codes sample
   the same energy function on the same cell).
2. icet's ``mchammer.ensembles.CanonicalEnsemble`` (``ClusterExpansionCalculator``, no
   data-container file) and our ``run_mc`` run at 300 K and 1500 K on the same
   starting configuration; one trial = one proposed swap of two unlike atoms in both.
   Times are wall clock and process CPU time (the machine is shared: the CPU-time ratio
   is the fairer figure); compilation is excluded (warm-up call first).
3. ``--full-build``: ``alloy.build()`` with the default (paper-size) parameters plus
   ``write_dataset`` (no figures), wall time and CPU time of this process and its workers.

icet is used only here (``pip install icet``); it is not a dependency of dismai-data.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time

import numpy as np

from dismai_data.physics import ce


def _atoms(occ, lat):
    from ase import Atoms

    return Atoms(symbols=ce.decode(occ), scaled_positions=lat.frac, cell=lat.cell, pbc=True)


def icet_equivalent(lat, cex, seed=0):
    from ase.build import bulk
    from icet import ClusterExpansion, ClusterSpace

    prim = bulk("Ni", "fcc", a=3.6)
    cs = ClusterSpace(prim, cutoffs=[7.0], chemical_symbols=list(ce.SPECIES))
    rng = np.random.default_rng(seed)

    def random_structures(n):
        occs = []
        for _ in range(n):
            p = rng.dirichlet(np.ones(3))
            occs.append(rng.choice(3, size=lat.n_sites, p=p).astype(np.int8))
        return np.array(occs)

    fit = random_structures(80)
    x = np.array([cs.get_cluster_vector(_atoms(o, lat)) for o in fit])
    y = ce.formation_energy(fit, lat, cex)
    params, *_ = np.linalg.lstsq(x, y, rcond=None)
    icet_ce = ClusterExpansion(cs, params)
    test = np.concatenate([random_structures(30), [ce.random_occupation(s, lat) for s in range(10)]])
    dev = max(abs(icet_ce.predict(_atoms(o, lat)) - ce.formation_energy(o, lat, cex)) for o in test)
    return icet_ce, float(dev), len(params)


def time_icet(icet_ce, occ0, lat, temperature, trials, seed=1):
    import logging

    from mchammer.calculators import ClusterExpansionCalculator
    from mchammer.ensembles import CanonicalEnsemble

    logging.getLogger("mchammer").setLevel(logging.WARNING)
    atoms = _atoms(occ0, lat)
    calc = ClusterExpansionCalculator(atoms, icet_ce)
    ens = CanonicalEnsemble(structure=atoms, calculator=calc, temperature=temperature, random_seed=seed,
                            dc_filename=None, ensemble_data_write_interval=10 ** 9,
                            trajectory_write_interval=10 ** 9)
    ens.run(200)  # warm-up
    w0, c0 = time.perf_counter(), time.process_time()
    ens.run(trials)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    final = ce.encode(ens.structure.get_chemical_symbols())
    return wall, cpu, ens._accepted_trials if hasattr(ens, "_accepted_trials") else None, final


def time_ours(occ0, lat, cex, temperature, passes, seed=1):
    ce.run_mc(occ0, temperature, 10, 10, seed, lat, cex)  # compile / load cache
    w0, c0 = time.perf_counter(), time.process_time()
    res = ce.run_mc(occ0, temperature, passes, passes, seed, lat, cex)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return wall, cpu, res


def full_build():
    from dismai_data.builders.write import write_dataset
    from dismai_data.builders import alloy

    w0 = time.perf_counter()
    c0 = time.process_time()
    ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b = alloy.build()
    t_build = time.perf_counter() - w0
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(b, f"{tmp}/alloy", figures=False)
    wall = time.perf_counter() - w0
    ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c0 + (ch1.ru_utime + ch1.ru_stime - ch0.ru_utime - ch0.ru_stime)
    return b, t_build, wall, cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--icet-trials", type=int, default=20_000)
    ap.add_argument("--passes", type=int, default=4000, help="passes of our MC per temperature (x256 trials)")
    ap.add_argument("--full-build", action="store_true", help="also time the full four-config build")
    ap.add_argument("--skip-icet", action="store_true")
    args = ap.parse_args(argv)

    lat = ce.reference_lattice()
    cex = ce.load_cluster_expansion()
    occ0 = ce.random_occupation(42, lat)
    print(f"cell: {lat.n_sites} sites, Fe154 Ni51 Cr51, shells 1-7 ({lat.neighbors.shape[1]} neighbours/site)")
    if not args.skip_icet:
        import icet

        icet_ce, dev, npar = icet_equivalent(lat, cex)
        print(f"icet {icet.__version__}: ClusterSpace cutoff 7.0 Å, {npar} parameters fitted to the JSON CE; "
              f"max |E_icet - E_ours| on 40 unseen structures = {dev:.2e} eV/atom")
    rows = []
    for temp in (300.0, 1500.0):
        w, c, res = time_ours(occ0, lat, cex, temp, args.passes)
        ours = (res.trials / w, res.trials / c, res.accepted / res.trials)
        line = {"T": temp, "ours_wall": ours[0], "ours_cpu": ours[1], "ours_acc": ours[2]}
        if not args.skip_icet:
            wi, ci, acc_i, final_i = time_icet(icet_ce, occ0, lat, temp, args.icet_trials)
            line.update(icet_wall=args.icet_trials / wi, icet_cpu=args.icet_trials / ci,
                        icet_acc=(acc_i / (args.icet_trials + 200)) if acc_i else float("nan"))
            # sanity: icet's MC conserved the composition and lowered/kept a sensible energy
            assert np.array_equal(np.bincount(final_i, minlength=3), np.bincount(occ0, minlength=3))
        rows.append(line)
    print()
    print(f"{'T (K)':>7} {'ours trials/s (wall)':>21} {'(cpu)':>11} {'acc':>6}", end="")
    if not args.skip_icet:
        print(f" {'icet trials/s (wall)':>21} {'(cpu)':>9} {'acc':>6} {'speed-up wall':>14} {'cpu':>7}", end="")
    print()
    for r in rows:
        print(f"{r['T']:7.0f} {r['ours_wall']:21.3e} {r['ours_cpu']:11.3e} {r['ours_acc']:6.3f}", end="")
        if "icet_wall" in r:
            print(f" {r['icet_wall']:21.3e} {r['icet_cpu']:9.3e} {r['icet_acc']:6.3f} "
                  f"{r['ours_wall'] / r['icet_wall']:13.0f}x {r['ours_cpu'] / r['icet_cpu']:6.0f}x", end="")
        print()
    if args.full_build:
        b, t_build, wall, cpu = full_build()
        sizes = {c: {s: len(v) for s, v in sp.items()} for c, sp in b.configs.items()}
        print(f"\nfull build (4 configs, {b.parameters['runs']} runs x {b.parameters['passes']} passes per T, "
              f"workers={b.parameters['workers']}): build {t_build:.1f} s, with parquet {wall:.1f} s wall, "
              f"{cpu:.1f} s CPU (this process + workers); load average now {open('/proc/loadavg').read().split()[0]}")
        print(f"sizes: {sizes}")
        for t, s in b.parameters["statistics"].items():
            print(f"  {t}: pool {s['pool_snapshots']}, narrow-eligible {s['narrow_eligible']}, acceptance "
                  f"{s['acceptance_rate']}, mean E {s['pool_mean_ce_energy']} eV/atom")
    return 0


if __name__ == "__main__":
    sys.exit(main())
