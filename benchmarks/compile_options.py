"""Inductor options for the engine's compiled force call, measured side by side: what
``FastM3GNetPES(potential, compile=True)`` uses (``torch.compile(dynamic=True)``, default mode)
against the same function compiled with

* ``max-autotune``: ``mode="max-autotune-no-cudagraphs"``, dynamic shapes;
* ``cpp-gemm-static``: ``max_autotune`` with the ``CPP,ATEN`` GEMM backends (inductor's C++
  GEMM template with fused epilogues), static shapes (the template's best case; a relaxation
  changes the bond count at every step, so static shapes would recompile);
* ``cpp-wrapper``: ``cpp_wrapper=True`` (the graph's host code in C++ instead of Python).

Same products as the engine's default on this CPU (``dismai_data.physics.cpu.compiled_products_by_mkl``).
One unrelaxed LSC-LCO interface (``builders.interface.unrelaxed_interfaces(1, seed)``), one
torch thread, calls alternated. Prints the compilation time (first call, wall), the thread CPU
time per call (minimum and median of ``--repeats``) and the largest energy and force
differences against the engine's own compiled call.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/compile_options.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from _cpu import cpu_line
    from dismai_data.physics import relax
    from dismai_data.builders.interface import unrelaxed_interfaces
    from dismai_data.physics.fast_m3gnet import FastM3GNetPES
    from dismai_data.physics.relax.fire import Relaxation
    from dismai_data.physics.relax.potential import no_stress

    print(cpu_line())
    potential = no_stress(relax.load_potential())
    s = unrelaxed_interfaces(1, args.seed)[0]
    elements = list(potential.model.element_types)
    r = Relaxation(0, "0", s, torch.tensor([elements.index(x.symbol) for x in s.species]),
                   float(potential.model.cutoff), relax.DEFAULT_SKIN)
    src, dst, vec = r.bonds()
    inputs = (r.node_type, torch.from_numpy(src), torch.from_numpy(dst), torch.from_numpy(vec),
              torch.zeros(r.n, dtype=torch.long), 1)

    def variant(**compile_kwargs):
        f = FastM3GNetPES(potential, compile=True)
        if compile_kwargs:  # the same private model copy, compiled another way
            f._forward = torch.compile(f._atomic, **compile_kwargs)
        return f

    calls = {
        "engine (compiled)": variant(),
        "max-autotune": variant(dynamic=True, mode="max-autotune-no-cudagraphs"),
        "cpp-gemm-static": variant(dynamic=False, options={"max_autotune": True,
                                                           "max_autotune_gemm_backends": "CPP,ATEN"}),
        "cpp-wrapper": variant(dynamic=True, options={"cpp_wrapper": True}),
    }
    print(f"1 interface, {r.n} atoms, {len(src)} bonds; products: "
          f"{'oneDNN' if calls['engine (compiled)'].onednn else 'torch mm (MKL)'}")
    ref = None
    for name, f in calls.items():
        t0 = time.perf_counter()
        e, fo = f.energies_forces(*inputs)
        print(f"  {name}: compilation (first call) {time.perf_counter() - t0:.1f} s wall; compiled: {f.compiled}")
        if ref is None:
            ref = (e, fo)
        else:
            print(f"    max |dE| {float((e - ref[0]).abs().max()):.3g} eV, max |dF| "
                  f"{float((fo - ref[1]).abs().max()):.3g} eV/Å against the engine's call")
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(args.repeats):
        for name, f in calls.items():
            t0 = time.thread_time()
            f.energies_forces(*inputs)
            times[name].append(time.thread_time() - t0)
    base = min(times["engine (compiled)"])
    for name, ts in times.items():
        print(f"{name:>18}: CPU per call min {min(ts):.4f} s, median {float(np.median(ts)):.4f} s; "
              f"{base / min(ts):.3f}x the engine's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
