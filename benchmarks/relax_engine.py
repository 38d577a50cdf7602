"""Relaxation engine vs one-structure-at-a-time ASE relaxation, same potential, same structures.

(a) ``dismai_data.relax.relax_ase``: each structure alone, matgl's PESCalculator +
    ase.optimize.FIRE (the standard way);
(b) ``dismai_data.relax.relax_many``: the batched engine (one model call per step for
    the whole batch, ASE's FIRE update per structure, skin neighbour list), in process.

Positions only, lattice fixed, fmax 0.05 eV/Å, M3GNet-MP-2021.2.8-PES. Prints
structures/hour for each, the speed-up, max |ΔE| (meV/atom) between the two, and steps.

Structures (the first that applies; the set used is printed):
1. ``--structures FILE.extxyz`` (every frame, the first ``--n``);
2. ``--n`` unrelaxed LSC-LCO interfaces from
   ``dismai_data.builders.interface.unrelaxed_interfaces(n, seed)`` (264 atoms each);
3. fallback: ``--n`` 216-atom diamond Si supercells, each atom rattled by a Gaussian of
   0.1 Å (seeded).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/relax_engine.py [--n 8] [--max-steps 1000]

Runs in about 10-20 minutes at the default size on the 2 shared cores of the dev machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def fallback_si(n: int, seed: int):
    from pymatgen.core import Lattice, Structure

    base = Structure(Lattice.cubic(5.431), ["Si"] * 8,
                     [[0, 0, 0], [.25, .25, .25], [.5, .5, 0], [.75, .75, .25],
                      [.5, 0, .5], [.75, .25, .75], [0, .5, .5], [.25, .75, .75]])
    base.make_supercell([3, 3, 3])
    rng = np.random.default_rng(seed)
    return [Structure(base.lattice, base.species, base.cart_coords + rng.normal(0, 0.1, (len(base), 3)),
                      coords_are_cartesian=True) for _ in range(n)]


def load_structures(args):
    if args.structures:
        from ase.io import read
        from pymatgen.io.ase import AseAtomsAdaptor

        frames = read(args.structures, index=":")[: args.n]
        return [AseAtomsAdaptor.get_structure(a) for a in frames], f"{len(frames)} frames of {args.structures}"
    try:
        from dismai_data.builders.interface import unrelaxed_interfaces
    except ImportError:
        unrelaxed_interfaces = None
    why = "dismai_data.builders.interface is not installed"
    if unrelaxed_interfaces is not None:
        try:
            return (unrelaxed_interfaces(args.n, args.seed),
                    f"{args.n} unrelaxed LSC-LCO interfaces (builders.interface.unrelaxed_interfaces, "
                    f"seed {args.seed})")
        except Exception as exc:  # the generator could not make them: say so and use the fallback
            why = f"unrelaxed_interfaces({args.n}, {args.seed}) failed: {type(exc).__name__}: {exc}"
    return (fallback_si(args.n, args.seed),
            f"fallback ({why}): {args.n} rattled (0.1 Å) 216-atom Si cells, seed {args.seed}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8, help="number of structures (default 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=1000)
    ap.add_argument("--fmax", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=None, help="batched engine batch size (default: n)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both engines (default 1)")
    ap.add_argument("--structures", help="extxyz file of structures instead of the interface set")
    ap.add_argument("--optimizer", default="FIRE", choices=["FIRE", "LBFGS"],
                    help="optimizer of both engines (default FIRE, as ase.optimize.FIRE)")
    ap.add_argument("--skip-ase", action="store_true", help="time only the batched engine")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from dismai_data.relax import load_potential, relax_ase, relax_many

    structures, label = load_structures(args)
    potential = load_potential()
    natoms = [len(s) for s in structures]
    print(f"structures: {label}; atoms per structure {min(natoms)}-{max(natoms)}")
    print(f"potential: {potential.dismai_source}; device {potential.dismai_device}; torch threads {args.threads}; "
          f"fmax {args.fmax} eV/Å; max steps {args.max_steps}; optimizer {args.optimizer}")

    # warm-up (first-call lazy initialisation) on a small cell, not timed
    relax_many(fallback_si(1, 99)[:1], potential=potential, max_steps=2, progress=False)

    batch = args.batch_size or len(structures)
    t0 = time.perf_counter()
    batched = relax_many(structures, potential=potential, fmax=args.fmax, max_steps=args.max_steps,
                         batch_size=batch, progress=False, optimizer=args.optimizer)
    t_batched = time.perf_counter() - t0
    print(f"(b) batched relax_many (batch {batch}): {t_batched:.1f} s, "
          f"{len(structures) / t_batched * 3600:.1f} structures/hour")
    if args.skip_ase:
        return 0

    ase_results = []
    t0 = time.perf_counter()
    for s in structures:
        ase_results.append(relax_ase(s, potential, fmax=args.fmax, max_steps=args.max_steps, optimizer=args.optimizer))
    t_ase = time.perf_counter() - t0
    print(f"(a) one at a time, ASE {args.optimizer} + matgl PESCalculator: {t_ase:.1f} s, "
          f"{len(structures) / t_ase * 3600:.1f} structures/hour")
    print(f"speed-up (b)/(a) in structures/hour: {t_ase / t_batched:.2f}x")

    print(f"{'#':>3} {'atoms':>5} {'steps ASE':>9} {'steps batch':>11} {'conv ASE':>8} {'conv batch':>10} "
          f"{'E ASE eV/atom':>14} {'|dE| meV/atom':>13} {'max |dr| Å':>10}")
    worst = 0.0
    for i, (a, b, n) in enumerate(zip(ase_results, batched, natoms)):
        de = dr = float("nan")
        if a.energy is not None and b.energy is not None:
            de = abs(a.energy - b.energy) / n * 1000
            worst = max(worst, de)
        if a.structure is not None and b.structure is not None:
            d = a.structure.lattice.get_all_distances(a.structure.frac_coords, b.structure.frac_coords)
            dr = float(np.max(np.diag(d)))
        e = a.energy / n if a.energy is not None else float("nan")
        print(f"{i:>3} {n:>5} {a.steps:>9} {b.steps:>11} {a.converged!s:>8} {b.converged!s:>10} "
              f"{e:>14.5f} {de:>13.5f} {dr:>10.2e}")
    print(f"max |dE| = {worst:.5f} meV/atom; total steps ASE {sum(r.steps for r in ase_results)}, "
          f"batched {sum(r.steps for r in batched)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
