"""Time a medium a-Si build and extrapolate the full (1500-block) build on this machine.

Usage: python benchmarks/a_si_build.py [--blocks 60] [--cells 2] [--cell-atoms 2000]
           [--workers 2] [--workdir DIR] [--checkpoint-ps 2.0] [--full]

The medium build uses the default MD protocol (melt, quench rate, anneal, relaxation)
on smaller/fewer cells. The melt-quench costs N_atoms x MD steps, so its measured
microseconds per atom-step scale it to the default cells (n_cells x cell_atoms); block
relaxations are timed per block. With ``--full`` the default (full) build runs instead.
The cells write a mid-run checkpoint about every ``--checkpoint-ps`` ps of MD: rerunning
with the same ``--workdir`` after an interruption continues where it stopped (the timing
of a resumed cell covers only the MD steps run in the last invocation).
Prints the timings, the extrapolation and the quality figures of what was built, and
writes the dataset folder (card, figures) under the work folder.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from dismai_data.build import summarize
from dismai_data.builders.write import write_dataset
from dismai_data.builders import a_si


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=60)
    ap.add_argument("--cells", type=int, default=2)
    ap.add_argument("--cell-atoms", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--checkpoint-ps", type=float, default=None, help="MD time between a cell's mid-run "
                    "checkpoints (default: the builder's; 0: none); does not change the data")
    ap.add_argument("--full", action="store_true", help="run the default full-size build")
    args = ap.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="a-si-bench-"))
    params = {"workers": args.workers, "workdir": str(workdir / "work")}
    if args.checkpoint_ps is not None:
        params["checkpoint_ps"] = args.checkpoint_ps
    if not args.full:
        params.update(n_blocks=args.blocks, n_cells=args.cells, cell_atoms=args.cell_atoms)
    t0 = time.perf_counter()
    b = a_si.build(**params)
    t_build = time.perf_counter() - t0
    out = write_dataset(b, workdir / "dataset")
    t_write = time.perf_counter() - t0 - t_build
    p = a_si.parse_params(params)

    cells = [np.load(workdir / "work" / f"cell_{c:03d}.npz") for c in range(p["n_cells"])]
    cell_s = np.array([float(z["seconds"]) for z in cells])
    steps = np.array([int(z["md_steps"]) for z in cells])
    run_steps = np.array([int(z["md_steps_this_run"]) for z in cells])  # a resumed cell ran only the rest
    resumed = [c for c, z in enumerate(cells) if int(z["resumed"]) > 0]
    us_per_atom_step = float(np.mean(cell_s / (np.maximum(run_steps, 1) * p["cell_atoms"]))) * 1e6
    shards = sorted((workdir / "work").glob("blocks_*.npz"))
    block_s = np.concatenate([np.load(f)["seconds"] for f in shards])
    iters = np.concatenate([np.load(f)["min_iterations"] for f in shards])

    d = {k: v[0] for k, v in a_si.PARAMETERS.items()}
    full_steps = sum(int(round(x / (d["timestep_fs"] / 1000))) for x in (
        d["melt_ps"], (d["melt_temperature"] - d["final_temperature"]) / d["quench_rate"], d["anneal_ps"]))
    w = max(1, args.workers)
    full_cells_s = us_per_atom_step * 1e-6 * d["cell_atoms"] * full_steps * math.ceil(d["n_cells"] / w)
    full_blocks_s = float(block_s.mean()) * d["n_blocks"] / w
    print(f"built {b.num_rows()} blocks from {p['n_cells']} cells of {p['cell_atoms']} atoms with {w} workers "
          f"in {t_build:.0f} s (+ {t_write:.0f} s writing card, figures, parquet)")
    print(f"melt-quench: {steps[0]} MD steps per cell, {cell_s.mean():.0f} s per cell (last run), "
          f"{us_per_atom_step:.2f} us per atom-step (one serial LAMMPS process); "
          + (f"cells {resumed} resumed from mid-run checkpoints (MD steps run last: {run_steps.tolist()})"
             if resumed else "no cell resumed"))
    print(f"blocks: {block_s.mean():.2f} s per block (slice + CG relaxation, {iters.mean():.0f} CG iterations on "
          f"average), {block_s.sum():.0f} s in all")
    print(f"extrapolated full build ({d['n_cells']} x {d['cell_atoms']} atoms, {full_steps} steps; "
          f"{d['n_blocks']} blocks; {w} workers): cells {full_cells_s / 3600:.2f} h + blocks "
          f"{full_blocks_s / 3600:.2f} h = {(full_cells_s + full_blocks_s) / 3600:.2f} h")
    an = b.analysis
    print(f"quality: cutoff {an['cutoff']:.3f} A, four-fold {100 * an['fraction_4fold']:.1f} %, "
          f"coordination histogram (0..6) {an['cn_hist'][:7].tolist()}, mean coordination "
          f"{an['mean_coordination']:.3f}, mean bond angle {an['mean_bond_angle']:.2f} deg, density "
          f"{an['density_min']:.4f}-{an['density_max']:.4f} g/cm^3, shortest distance {an['min_distance']:.3f} A")
    rows = [r for rs in b.configs["default"].values() for r in rs]
    e = np.array([r["energy_per_atom"] for r in rows])
    print(f"energy after relaxation {e.mean():.4f} +- {e.std():.4f} eV/atom; atoms added per block "
          f"{np.mean([r['n_added'] for r in rows]):.1f}, removed {np.mean([r['n_removed'] for r in rows]):.1f}; "
          f"largest fmax {max(r['fmax'] for r in rows):.4f} eV/A")
    for c, ok in a_si.quality_checks(an):
        print(("PASS " if ok else "FAIL ") + c)
    s = summarize(out)
    print(f"dataset folder {out}: {s['num_rows']}, parquet {s['parquet_bytes'] / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
