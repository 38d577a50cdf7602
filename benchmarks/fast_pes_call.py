"""CPU time of one batched force call of the fast exact M3GNet path, several ways, on the same
inputs (``--n`` unrelaxed LSC-LCO interfaces of ``builders.interface.unrelaxed_interfaces``,
one torch thread, calls alternated so that load from other work falls on each alike):

* ``33 terms``: ``FastM3GNetPES(potential, onednn=False, threebody_subset=False)``: the three-body
  moments carry only the 33 (column, monomial) terms whose coefficient is non-zero, matrix
  products through torch's ``F.linear`` (MKL's sgemm in this torch build);
* ``90 terms``: the same object with all 9 x 10 terms (the zeros included), which is what it
  evaluated before the ~1e-17 residues of the coefficient solve were zeroed (it kept 33 to 90
  of them depending on the LAPACK thread count);
* ``oneDNN, all bonds``: ``FastM3GNetPES(potential, threebody_subset=False)``, the matrix
  products through oneDNN (``dismai::onednn_linear``) where it is usable, the three-body
  block on every bond;
* ``engine (eager)``: ``FastM3GNetPES(potential)`` as the engine uses it: oneDNN products and
  the three-body block on the bonds within the three-body cutoff only;
* ``--compile``: the same two through ``torch.compile(dynamic=True)`` (inductor's C++ CPU
  kernels around the products): ``compiled, all bonds`` and ``engine (compiled)``, the
  engine's ``fast="compile"`` path, whose products are torch's ``mm`` (MKL) on an Intel CPU and
  oneDNN elsewhere (``dismai_data.physics.cpu.compiled_products_by_mkl``), and the other choice
  (``compiled, oneDNN`` or ``compiled, torch mm``) where oneDNN is usable; the compile time is
  printed and not counted.

Prints the thread CPU time per call (minimum and median over ``--repeats``), each one's
speed-up over the 33-term eager call with F.linear products,
and the largest energy and force differences against the 33-term call.

``--dask-malloc``: instead, the 33-term call in two child processes that run with Dask's
worker environment ``MALLOC_TRIM_THRESHOLD_=65536``, one as it is and one after
``relax.keep_freed_memory()`` (what the engine's Dask task calls): wall, user and system
seconds and minor page faults per call of each.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/fast_pes_call.py [--n 2] [--repeats 6] [--compile]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/fast_pes_call.py --dask-malloc
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--dask-malloc", action="store_true")
    ap.add_argument("--child", choices=["plain", "keep-freed"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.dask_malloc:
        import subprocess

        env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536")
        for how in ("plain", "keep-freed"):
            cmd = [sys.executable, __file__, "--n", str(args.n), "--repeats", str(args.repeats), "--child", how]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            print(out.strip().splitlines()[-1])
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from dismai_data.physics import cpu, relax
    from dismai_data.builders.interface import unrelaxed_interfaces
    from dismai_data.physics.fast_m3gnet import FastM3GNetPES
    from dismai_data.physics.relax.fire import Relaxation

    potential = relax.load_potential()
    new = FastM3GNetPES(potential, onednn=False, threebody_subset=False)
    full = FastM3GNetPES(potential, onednn=False, threebody_subset=False)
    ncol = new._fold.shape[1]
    kern = torch.zeros(ncol, 10, dtype=new._pair_coef.dtype)
    kern[new._pair_col, new._pair_mono] = new._pair_coef
    col, mono = torch.arange(ncol).repeat_interleave(10), torch.arange(10).repeat(ncol)
    full._pair_col, full._pair_mono, full._pair_coef = col, mono, kern[col, mono]
    full._fold = torch.zeros(len(col), ncol, dtype=new._fold.dtype)
    full._fold[torch.arange(len(col)), col] = 1.0

    elements = list(potential.model.element_types)
    cutoff = float(potential.model.cutoff)
    types, srcs, dsts, vecs, graph, start = [], [], [], [], [], 0
    for k, s in enumerate(unrelaxed_interfaces(args.n, args.seed)):
        r = Relaxation(k, str(k), s, torch.tensor([elements.index(x.symbol) for x in s.species]), cutoff,
                       relax.DEFAULT_SKIN)
        src, dst, vec = r.bonds()
        types.append(r.node_type)
        srcs.append(src + start)
        dsts.append(dst + start)
        vecs.append(vec)
        graph.append(np.full(r.n, k))
        start += r.n
    inputs = (torch.cat(types), torch.from_numpy(np.concatenate(srcs)), torch.from_numpy(np.concatenate(dsts)),
              torch.from_numpy(np.concatenate(vecs)), torch.from_numpy(np.concatenate(graph)), args.n)
    offsets = torch.zeros(args.n)
    if args.child:
        import resource

        if args.child == "keep-freed":
            assert relax.keep_freed_memory()
        new.energies_forces(*inputs, offsets=offsets)
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(args.repeats):
            new.energies_forces(*inputs, offsets=offsets)
        r1, k = resource.getrusage(resource.RUSAGE_SELF), args.repeats
        print(f"MALLOC_TRIM_THRESHOLD_={os.environ.get('MALLOC_TRIM_THRESHOLD_')}, {args.child:>10}: per call wall "
              f"{(time.perf_counter() - t0) / k:.3f} s, user {(r1.ru_utime - r0.ru_utime) / k:.3f} s, system "
              f"{(r1.ru_stime - r0.ru_stime) / k:.3f} s, {(r1.ru_minflt - r0.ru_minflt) / k:.0f} minor faults "
              f"({args.n} interfaces, {inputs[1].shape[0]} bonds, load average {os.getloadavg()[0]:.2f})")
        return 0
    from _cpu import cpu_line

    print(cpu_line())
    print(f"{args.n} interfaces, {start} atoms, {inputs[1].shape[0]} bonds; three-body terms: "
          f"{len(new._pair_col)} (as shipped) vs {len(full._pair_col)}; load average {os.getloadavg()[0]:.2f}")

    calls = {"33 terms": new.energies_forces, "90 terms": full.energies_forces}
    engine = FastM3GNetPES(potential)
    print(f"oneDNN products usable here: {engine.onednn}; three-body block on the bonds within its cutoff: "
          f"{engine._tb_subset} ({int((inputs[3].norm(dim=1) <= engine.threebody_cutoff).sum())} of "
          f"{inputs[1].shape[0]} bonds)")
    if engine.onednn:
        calls["oneDNN, all bonds"] = FastM3GNetPES(potential, threebody_subset=False).energies_forces
    calls["engine (eager)"] = engine.energies_forces
    if args.compile:
        variants = [("compiled, all bonds", {"threebody_subset": False}), ("engine (compiled)", {})]
        if engine.onednn:  # the other product choice of the compiled engine than its default
            mkl = cpu.compiled_products_by_mkl()
            variants.append(("compiled, oneDNN" if mkl else "compiled, torch mm", {"onednn": mkl}))
            print(f"compiled engine's matrix products here: {'torch mm (MKL)' if mkl else 'oneDNN'} "
                  f"(CPU vendor {cpu.cpu_vendor() or 'unknown'})")
        for name, kw in variants:
            compiled = FastM3GNetPES(potential, compile=True, **kw)
            t0 = time.perf_counter()
            compiled.energies_forces(*inputs, offsets=offsets)
            print(f"torch.compile ({name}): first call (compilation) {time.perf_counter() - t0:.1f} s wall; "
                  f"compiled: {compiled.compiled}")
            calls[name] = compiled.energies_forces
    e_ref, f_ref = new.energies_forces(*inputs, offsets=offsets)
    times: dict[str, list[float]] = {k: [] for k in calls}
    for name, f in calls.items():  # warm-up and differences
        e, fo = f(*inputs, offsets=offsets)
        print(f"  {name}: max |dE| {float((e - e_ref).abs().max()):.3g} eV, max |dF| "
              f"{float((fo - f_ref).abs().max()):.3g} eV/Å against 33 terms")
    for _ in range(args.repeats):
        for name, f in calls.items():
            t0 = time.thread_time()
            f(*inputs, offsets=offsets)
            times[name].append(time.thread_time() - t0)
    base = min(times["33 terms"])
    for name, ts in times.items():
        print(f"{name:>18}: CPU per call min {min(ts):.4f} s, median {float(np.median(ts)):.4f} s; "
              f"speed-up over 33 terms {base / min(ts):.3f}x")
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
