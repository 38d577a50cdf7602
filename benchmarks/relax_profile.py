"""Where the time of one batched M3GNet force call goes, and how close it is to this CPU's
matrix-multiply ceiling.

One call of the relaxation engine's fast exact path (``dismai_data.physics.fast_m3gnet.FastM3GNetPES`` through
``relax.forces.evaluate``: energies and forces of a batch) on ``--n`` unrelaxed LSC-LCO interfaces
(264 atoms each), one torch thread. Prints

* bonds and three-body counts of the batch;
* FLOPs of the call by operator (``torch.utils.flop_counter.FlopCounterMode``: matrix
  products, forward and backward);
* CPU time by operator group (``torch.profiler``): matrix products vs everything else;
* the single-thread float32 GEMM rate of this CPU on the call's own largest matrix shape, so
  the time the matrix products alone must take is known;

and from these the speed-up that would remain if everything but the matrix products took no
time at all (the ceiling of any exact per-call optimisation on this CPU).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/relax_profile.py [--n 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(1)
    from dismai_data.builders.interface import unrelaxed_interfaces
    from dismai_data.physics.relax import DEFAULT_SKIN, load_potential
    from dismai_data.physics.relax.fire import Relaxation
    from dismai_data.physics.relax.forces import evaluate
    from dismai_data.physics.relax.potential import no_stress

    structures = unrelaxed_interfaces(args.n, args.seed)
    potential = no_stress(load_potential())
    element_index = {el: i for i, el in enumerate(potential.model.element_types)}
    cutoff = float(potential.model.cutoff)
    batch = [Relaxation(i, f"s{i}", s, torch.tensor([element_index[x.specie.symbol] for x in s]),
                        cutoff, DEFAULT_SKIN, "FIRE") for i, s in enumerate(structures)]
    evaluate(potential, batch)  # warm-up, lazy initialisation
    nb = sum(len(r.bonds()[0]) for r in batch)
    print(f"batch: {args.n} interfaces, {sum(r.n for r in batch)} atoms, {nb} directed bonds within "
          f"{cutoff} Å ({nb / sum(r.n for r in batch):.1f} per atom); load average {os.getloadavg()[0]:.2f}")

    times = []
    for _ in range(args.repeats):
        c0 = time.process_time()
        evaluate(potential, batch)
        times.append(time.process_time() - c0)
    t_call = min(times)
    print(f"one call (energies + forces): CPU {t_call:.3f} s (min of {args.repeats}: "
          f"{', '.join(f'{t:.3f}' for t in times)})")

    fc = FlopCounterMode(display=False)
    with fc:
        evaluate(potential, batch)
    flops = fc.get_total_flops()
    by_op = defaultdict(int)
    for mod_counts in [fc.get_flop_counts().get("Global", {})]:
        for op, n in mod_counts.items():
            by_op[str(op)] += n
    print(f"matrix-product FLOPs of the call: {flops / 1e9:.2f} GFLOP "
          + "(" + ", ".join(f"{k} {v / 1e9:.2f}" for k, v in
                            sorted(by_op.items(), key=lambda x: -x[1])) + ")")

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        evaluate(potential, batch)
    mm_names = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm")
    self_us = defaultdict(float)
    for ev in prof.key_averages():
        self_us[ev.key] += ev.self_cpu_time_total
    total = sum(self_us.values())
    mm = sum(v for k, v in self_us.items() if k in mm_names)
    print(f"profiled call: {total / 1e6:.3f} s self CPU; matrix products {mm / 1e6:.3f} s "
          f"({100 * mm / total:.0f} %), everything else {(total - mm) / 1e6:.3f} s")
    print("  largest self-CPU operators: " + ", ".join(
        f"{k} {v / 1e3:.0f} ms" for k, v in sorted(self_us.items(), key=lambda x: -x[1])[:10]))

    # this CPU's single-thread GEMM rate at the call's typical shape: (bonds x 64) @ (64 x 64)
    a = torch.randn(nb, 64)
    w = torch.randn(64, 64)
    for _ in range(2):
        a @ w
    reps = 10
    c0 = time.process_time()
    for _ in range(reps):
        a @ w
    dt = (time.process_time() - c0) / reps
    rate = 2 * nb * 64 * 64 / dt
    print(f"float32 GEMM, 1 thread, ({nb} x 64) @ (64 x 64): {rate / 1e9:.1f} GFLOP/s")
    floor = flops / rate
    print(f"matrix products alone at that rate: {floor:.3f} s per call; the call takes {t_call:.3f} s: "
          f"even with all other work removed a call could be at most {t_call / floor:.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
