"""The relaxation engine on a GPU against the same engine on the CPU, on interface candidates.

Prints, for the first ``--n`` candidates of the interface builder (seed 2024):

* energies and forces of one batched call of the fast exact M3GNet path
  (``FastM3GNetPES``) on the GPU against the same call on the CPU and against matgl's own
  forward on the GPU (max |dE| in meV/atom, max |dF| in eV/Å);
* GPU time and peak GPU memory of one force call of ``--batch`` candidates, per structure;
* ``batch_size=B``: the largest batch per process (a multiple of 8, at most 64) that keeps
  ``--workers`` processes within ``--memory-fraction`` of the GPU's memory, for
  ``python -m dismai_data.builders.interface relax`` (last line, so a script can read it).

    python benchmarks/interface_gpu.py --n 4 --batch 32 --workers 10

Needs a CUDA device; exits with a message where there is none.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--memory-fraction", type=float, default=0.7)
    a = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit("interface_gpu: no CUDA device here")
    from dismai_data.builders.interface import generate, references
    from dismai_data.physics.relax import load_potential
    from dismai_data.physics.relax.fire import Relaxation
    from dismai_data.physics.relax.forces import evaluate, evaluate_matgl

    refs = references()
    structs = [generate(2024, k, refs)[0] for k in range(max(a.n, a.batch))]
    pots = {dev: load_potential(device=dev) for dev in ("cpu", "cuda")}
    el = {e: i for i, e in enumerate(pots["cpu"].model.element_types)}
    cutoff = float(pots["cpu"].model.cutoff)

    def batch(ss):
        return [Relaxation(i, f"c{i}", s, torch.tensor([el[x.specie.symbol] for x in s]), cutoff, 1.0)
                for i, s in enumerate(ss)]

    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    e_cpu, f_cpu = evaluate(pots["cpu"], batch(structs[:a.n]))
    e_gpu, f_gpu = evaluate(pots["cuda"], batch(structs[:a.n]))
    e_mg, f_mg = evaluate_matgl(pots["cuda"], batch(structs[:a.n]))
    n_at = len(structs[0])
    for name, (e, f) in {"fast GPU vs fast CPU": (e_gpu, f_gpu), "matgl GPU vs fast CPU": (e_mg, f_mg)}.items():
        de = np.max(np.abs(np.asarray(e, dtype=float) - np.asarray(e_cpu, dtype=float))) / n_at * 1000
        df = max(float(np.abs(x - y).max()) for x, y in zip(f, f_cpu))
        print(f"{name}: max |dE| {de:.4f} meV/atom, max |dF| {df:.2e} eV/A ({a.n} candidates)")

    rs = batch(structs[:a.batch])
    evaluate(pots["cuda"], rs)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    t = time.perf_counter()
    for _ in range(3):
        evaluate(pots["cuda"], rs)
    torch.cuda.synchronize()
    per_call = (time.perf_counter() - t) / 3
    peak = torch.cuda.max_memory_allocated() - base
    per_struct = peak / a.batch
    total = torch.cuda.get_device_properties(0).total_memory
    print(f"force call of {a.batch} candidates: {per_call * 1000:.1f} ms wall (host work included), "
          f"peak {peak / 2**30:.2f} GiB ({per_struct / 2**20:.0f} MiB per structure); GPU {total / 2**30:.0f} GiB")
    fit = int(a.memory_fraction * total / a.workers / per_struct) // 8 * 8
    print(f"batch_size={max(8, min(64, fit))}")


if __name__ == "__main__":
    main()
