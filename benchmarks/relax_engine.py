"""Relaxation engine vs one-structure-at-a-time ASE relaxation, same potential, same structures.

(a) ``dismai_data.physics.relax.relax_ase``: each structure alone, matgl's PESCalculator +
    ase.optimize.FIRE (the standard way);
(b) ``dismai_data.physics.relax.relax_many``: the batched engine (one evaluation per step for
    the whole batch, the fast exact M3GNet path ``dismai_data.physics.fast_m3gnet.FastM3GNetPES``, skin
    neighbour list, per-structure optimizer state: ``--optimizer``, default the engine's
    FIRE = ase.optimize.FIRE's trajectory), in process, or with ``--workers N`` on a Dask
    LocalCluster of N one-thread workers (how the interface builder runs on one machine).

Same thread count for both by default (``--threads``); the whole-machine comparison is
``--workers 2 --batch-size 1 --compile --ase-threads 2`` on 2 cores: each way uses the whole
CPU as it can (the one-at-a-time reference through torch's intra-op threads; the engine as two
one-thread Dask workers that take one structure at a time, so neither idles while the other
still has work, each evaluating through torch.compile). The one-time setup is not timed, the
same way for both engines and both ways of running the engine: the reference's potential is
loaded before its clock; the in-process engine has an untimed warm-up; with ``--workers`` the
Dask cluster is started and every worker imports, loads the potential and (``--compile``)
compiles before the clock (``client.run``), its setup time is printed, and the summary also
gives the speed-up with that setup counted against these few structures (a build pays it once
for thousands). The workers' CPU time is read from the workers (``time.process_time`` before
and after).

Positions only, lattice fixed, fmax 0.05 eV/Å, M3GNet-MP-2021.2.8-PES. Prints
structures/hour each way (wall clock, and CPU time of this process and of the Dask workers;
CPU time is disturbed less by the load of other processes), the
speed-up, |ΔE| max/mean (meV/atom) of (b) against (a), optimizer steps and force
evaluations, and the load average before and after.

Structures (the first that applies; the set used is printed):
1. ``--structures FILE.extxyz`` (every frame, the first ``--n``);
2. ``--n`` unrelaxed LSC-LCO interfaces from
   ``dismai_data.builders.interface.unrelaxed_interfaces(n, seed)`` (264 atoms each);
3. fallback: ``--n`` 216-atom diamond Si supercells, each atom rattled by a Gaussian of
   0.1 Å (seeded).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/relax_engine.py [--n 8] [--max-steps 1000]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/relax_engine.py --n 8 --workers 2 --batch-size 1 --compile \
        --ase-threads 2

Runs in about 10-20 minutes at the default size on the 2 shared cores of the dev machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

OPTIMIZERS = ("FIRE", "LBFGS")


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


def _warm_worker(potential_ref, fast) -> None:
    """On a Dask worker: the engine's own shard task (``relax.cluster.relax_shard_task``: its thread
    and memory settings, the potential loaded and cached, the evaluator built and, with
    --compile, compiled) on a 2-step relaxation of a small cell, so that none of that one-time
    work falls inside the timed run."""
    from dismai_data.physics.relax.cluster import relax_shard_task

    relax_shard_task([(0, "warm-up", fallback_si(1, 99)[0])], potential_ref, 0.05, 2, 1, None, 1, fast=fast)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8, help="number of structures (default 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=1000)
    ap.add_argument("--fmax", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=None, help="batched engine batch size (default: n)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both engines (default 1)")
    ap.add_argument("--structures", help="extxyz file of structures instead of the interface set")
    ap.add_argument("--optimizer", default="FIRE", choices=list(OPTIMIZERS),
                    help="optimizer of the batched engine (default FIRE, as ase.optimize.FIRE)")
    ap.add_argument("--reference-optimizer", default="FIRE", choices=["FIRE", "LBFGS"],
                    help="ase.optimize optimizer of the one-at-a-time reference (default FIRE)")
    ap.add_argument("--matgl-forward", action="store_true",
                    help="batched engine with matgl's own forward instead of the fast exact path")
    ap.add_argument("--compile", action="store_true",
                    help="batched engine with the fast path through torch.compile (relax_many(fast='compile')); "
                         "the compilation runs in the untimed warm-up in process, inside the timed run on Dask "
                         "workers")
    ap.add_argument("--skip-ase", action="store_true", help="time only the batched engine")
    ap.add_argument("--workers", type=int, default=1,
                    help="batched engine on a Dask LocalCluster of this many 1-thread workers (default 1: in "
                         "this process); with --ase-threads = the CPU count, the whole-machine comparison")
    ap.add_argument("--ase-threads", type=int, default=None,
                    help="torch threads of the one-at-a-time reference (default: --threads)")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from dismai_data.physics.relax import load_potential, relax_ase, relax_many

    structures, label = load_structures(args)
    potential = load_potential()
    natoms = [len(s) for s in structures]
    load0 = os.getloadavg()
    print(f"structures: {label}; atoms per structure {min(natoms)}-{max(natoms)}")
    print(f"potential: {potential.dismai_source}; device {potential.dismai_device}; torch threads {args.threads}; "
          f"fmax {args.fmax} eV/Å; max steps {args.max_steps}")
    from _cpu import cpu_line

    print(cpu_line())
    print(f"load average at start (1/5/15 min): {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} on {os.cpu_count()} CPUs")

    fast = False if args.matgl_forward else ("compile" if args.compile else True)
    # warm-up (first-call lazy initialisation; with --compile the compilation) on a small cell, not timed
    tw = time.perf_counter()
    relax_many(fallback_si(1, 99)[:1], potential=potential, max_steps=2, progress=False, fast=fast)
    print(f"warm-up (not timed): {time.perf_counter() - tw:.1f} s wall")

    batch = args.batch_size or -(-len(structures) // args.workers)
    stats: dict = {}
    setup = 0.0

    def engine_run(scheduler=None):
        return relax_many(structures, potential=potential, fmax=args.fmax, max_steps=args.max_steps,
                          batch_size=batch, progress=False, optimizer=args.optimizer, fast=fast, stats=stats,
                          scheduler=scheduler)

    if args.workers > 1:
        from distributed import Client

        from dismai_data.physics.relax import local_cluster
        from dismai_data.physics.relax.cluster import potential_ref

        # the cluster and each worker's one-time work (imports, loading the potential, with
        # --compile the compilation) before the clock, as for the in-process warm-up: the
        # figure is the engine's throughput; the setup is printed and counted separately
        tw = time.perf_counter()
        with local_cluster(args.workers) as address, Client(address) as client:
            client.run(_warm_worker, potential_ref(potential), fast)
            setup = time.perf_counter() - tw
            cpu0 = sum(client.run(time.process_time).values())
            t0, c0 = time.perf_counter(), time.process_time()
            batched = engine_run(address)
            t_b = time.perf_counter() - t0
            c_main = time.process_time() - c0
            c_workers = sum(client.run(time.process_time).values()) - cpu0
            c_b = c_main + c_workers
        print(f"engine CPU: {c_workers:.1f} s in the workers, {c_main:.1f} s in this process (the client)")
        print(f"Dask setup (not timed): {setup:.1f} s wall (LocalCluster of {args.workers} one-thread workers, "
              f"each importing, loading the potential{' and compiling' if args.compile else ''})")
    else:
        t0, c0 = time.perf_counter(), time.process_time()
        batched = engine_run()
        t_b, c_b = time.perf_counter() - t0, time.process_time() - c0
    engine = ("matgl forward" if args.matgl_forward else
              "fast exact M3GNet path" + (" through torch.compile" if args.compile else ""))
    where = f"{args.workers} Dask workers x 1 thread" if args.workers > 1 else f"in process, {args.threads} thread(s)"
    print(f"(b) batched relax_many ({where}), {args.optimizer}, batch {batch}, {engine}: wall {t_b:.1f} s "
          f"({len(structures) / t_b * 3600:.1f} structures/hour), CPU {c_b:.1f} s "
          f"({len(structures) / c_b * 3600:.1f} structures/CPU-hour); {stats.get('model_calls', 0)} batched "
          f"evaluations, {sum(r.steps + 1 for r in batched)} structure force evaluations")
    if args.skip_ase:
        return 0

    ase_threads = args.ase_threads or args.threads
    torch.set_num_threads(ase_threads)
    ase_results = []
    t0, c0 = time.perf_counter(), time.process_time()
    for s in structures:
        ase_results.append(relax_ase(s, potential, fmax=args.fmax, max_steps=args.max_steps,
                                     optimizer=args.reference_optimizer))
    t_a, c_a = time.perf_counter() - t0, time.process_time() - c0
    print(f"(a) one at a time ({ase_threads} torch thread(s)), ase.optimize.{args.reference_optimizer} "
          f"+ matgl PESCalculator: wall {t_a:.1f} s "
          f"({len(structures) / t_a * 3600:.1f} structures/hour), CPU {c_a:.1f} s "
          f"({len(structures) / c_a * 3600:.1f} structures/CPU-hour); "
          f"{sum(r.steps + 1 for r in ase_results)} force evaluations")

    print(f"{'#':>3} {'atoms':>5} {'steps ASE':>9} {'steps batch':>11} {'conv ASE':>8} {'conv batch':>10} "
          f"{'E ASE eV/atom':>14} {'|dE| meV/atom':>13} {'max |dr| Å':>10}")
    des = []
    for i, (a, b, n) in enumerate(zip(ase_results, batched, natoms)):
        de = dr = float("nan")
        if a.energy is not None and b.energy is not None:
            de = abs(a.energy - b.energy) / n * 1000
            des.append(de)
        if a.structure is not None and b.structure is not None:
            d = a.structure.lattice.get_all_distances(a.structure.frac_coords, b.structure.frac_coords)
            dr = float(np.max(np.diag(d)))
        e = a.energy / n if a.energy is not None else float("nan")
        print(f"{i:>3} {n:>5} {a.steps:>9} {b.steps:>11} {a.converged!s:>8} {b.converged!s:>10} "
              f"{e:>14.5f} {de:>13.5f} {dr:>10.2e}")
    load1 = os.getloadavg()
    print("summary:")
    print(f"  structures/hour, wall: (a) {len(structures) / t_a * 3600:.1f}  (b) {len(structures) / t_b * 3600:.1f}  "
          f"speed-up {t_a / t_b:.2f}x")
    print(f"  structures/CPU-hour:   (a) {len(structures) / c_a * 3600:.1f}  (b) {len(structures) / c_b * 3600:.1f}  "
          f"speed-up {c_a / c_b:.2f}x")
    if setup:
        print(f"  with the Dask setup counted ({setup:.1f} s once, for these {len(structures)} structures only): "
              f"(b) {len(structures) / (t_b + setup) * 3600:.1f} structures/hour, speed-up "
              f"{t_a / (t_b + setup):.2f}x")
    if des:
        print(f"  |dE| (b) vs (a): max {max(des):.4f} meV/atom, mean {np.mean(des):.4f} meV/atom "
              f"over {len(des)} structures")
    print(f"  steps: (a) {sum(r.steps for r in ase_results)}, (b) {sum(r.steps for r in batched)}; "
          f"converged: (a) {sum(r.converged for r in ase_results)}/{len(structures)}, "
          f"(b) {sum(r.converged for r in batched)}/{len(structures)}")
    print(f"  force evaluations: (a) {sum(r.steps + 1 for r in ase_results)} single-structure calls, "
          f"(b) {stats.get('model_calls', 0)} batched calls covering {sum(r.steps + 1 for r in batched)} structures")
    print(f"  load average at end (1/5/15 min): {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
