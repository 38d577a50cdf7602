"""Does more training make a fixed-composition DiffCSP denoiser use the species? Trains a
copy of a checkpoint (or a fresh model of its configuration) on the training split, with the
noise step t drawn from ``--window`` with probability ``--p-window`` and uniformly otherwise,
and every ``--every`` epochs prints the mean training loss, the species separation at the
input and the species gap (``shuffled - real`` loss on validation rows at ``--steps``), both
as ``diffcsp_species.py`` defines them.

    # the site-choice window of the sigma_T 0.1 schedule (steps 130-200 of 250), 80 % of the draws
    .venv/bin/python benchmarks/diffcsp_window.py --checkpoint CKPT --dataset DIR/alloy --config 300K_narrow \
        --window 120 210 --p-window 0.8 --lr 5e-4 --minutes 17
    # a fresh model of CKPT's configuration under DiffCSP's uniform t (what does early training do?)
    .venv/bin/python benchmarks/diffcsp_window.py --checkpoint CKPT --fresh --dataset DIR/alloy \
        --config 300K_narrow --p-window 0 --lr 1e-3 --minutes 17

A probe, not a training command: it writes nothing unless ``--out`` is given, and the
trainer of the baselines is ``dismai train diffcsp`` (t uniform, as DiffCSP).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="a fixed-composition diffcsp checkpoint folder")
    ap.add_argument("--fresh", action="store_true", help="train a freshly initialised model of its configuration")
    ap.add_argument("--sigma-end", type=float, default=None, help="with --fresh: sigma_T (default: the checkpoint's)")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--config", default=None)
    ap.add_argument("--window", type=int, nargs=2, default=(120, 210), metavar=("LO", "HI"))
    ap.add_argument("--p-window", type=float, default=0.8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--minutes", type=float, default=17)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--steps", default="150,165,180")
    ap.add_argument("--rows", type=int, default=16, help="validation rows for the species gap")
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="save the trained weights here at the end")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from _cpu import cpu_line  # benchmarks/ is on sys.path when a script there runs
    from diffcsp_species import shuffled_species, species_losses

    from dismai_data.models.data import load_split
    from dismai_data.models.diffcsp import (DiffCSP, collate, load_float, run_epoch, save_checkpoint,
                                            training_batches)

    if a.fresh:
        cfg = json.loads((Path(a.checkpoint) / "config.json").read_text())
        if a.sigma_end is not None:
            cfg["sigma_end"] = a.sigma_end
        torch.manual_seed(a.seed)
        model = DiffCSP(**cfg)
    else:
        model = load_float(a.checkpoint)
    if model.species_separation() is None:
        raise SystemExit(f"{a.checkpoint}: not a fixed-composition checkpoint of two or more species")
    cols = ["id", "species", "atomic_numbers", "frac_coords", "lattice"]
    items, _, _ = training_batches(load_split(a.dataset, "train", config=a.config, columns=cols), fixed=True,
                                   source=f"{a.dataset} train")
    val, _, _ = training_batches(load_split(a.dataset, "validation", config=a.config, columns=cols)[:a.rows],
                                 fixed=True, source=f"{a.dataset} validation")
    vt, vf, vl, vn, vb = collate(val, "cpu")
    vs = shuffled_species(vt, vb)
    steps = [int(s) for s in a.steps.split(",")]
    lo, hi = a.window
    print(cpu_line())
    print(f"{a.checkpoint}{' (fresh, sigma_T %g)' % model.sigma_end if a.fresh else ''}: {len(items)} train rows, "
          f"t in [{lo}, {hi}] with p {a.p_window} else uniform in 1..{model.timesteps}, Adam lr {a.lr}, "
          f"batch {a.batch_size}, {a.threads} threads; gap on {len(val)} validation rows, {a.reps} draws")
    print("epoch  seconds  train_loss  separation  " + "  ".join(f"loss@{s}  gap@{s}" for s in steps), flush=True)

    def report(epoch: int, seconds: float, loss: float) -> None:
        model.eval()
        cells = []
        for s in steps:
            real, shuf = species_losses(model, vt, vs, vf, vl, vn, vb, s, a.reps)
            cells.append(f"{np.mean(real):8.4f}  {np.mean(shuf) - np.mean(real):+8.5f}")
        model.train()
        sep = model.species_separation()
        print(f"{epoch:5d}  {seconds:7.0f}  {loss:10.4f}  {sep:10.3f}  " + "  ".join(cells), flush=True)

    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    gen = torch.Generator().manual_seed(a.seed)
    report(0, 0.0, float("nan"))
    model.train()
    def draw_t(cells: int, gen: torch.Generator) -> torch.Tensor:
        uniform = torch.randint(1, model.timesteps + 1, (cells,), generator=gen)
        focus = torch.randint(lo, hi + 1, (cells,), generator=gen)
        return torch.where(torch.rand(cells, generator=gen) < a.p_window, focus, uniform)

    t0, epoch, state = time.perf_counter(), 0, {"batches": 0}
    while time.perf_counter() - t0 < 60 * a.minutes:  # whole epochs: the step is the baselines' (run_epoch)
        total, count, _ = run_epoch(model, items, opt, gen, a.batch_size, "cpu", lambda: False, state, draw_t)
        epoch += 1
        if epoch % a.every == 0:
            report(epoch, time.perf_counter() - t0, total / count)
    if epoch % a.every:
        report(epoch, time.perf_counter() - t0, total / count)
    if a.out:
        save_checkpoint(model, a.out, {"epoch": epoch, "window": [lo, hi], "p_window": a.p_window, "lr": a.lr})


if __name__ == "__main__":
    main()
