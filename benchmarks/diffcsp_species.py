"""Does a fixed-composition DiffCSP checkpoint use the species? Prints, per noise level,
its training loss (``DiffCSP.loss``, t and noise fixed) on real rows and on the same noisy
positions with the species shuffled within each cell (a random solid solution of the same
composition).

    .venv/bin/python benchmarks/diffcsp_species.py --checkpoint models/checkpoints/diffcsp-alloy-300k-narrow \
        --dataset DIR/alloy --config 300K_narrow [--rows 16] [--reps 3] [--oracle] [--wc] [--vacuum-axis 2]

A model that has learned the chemical ordering (the alloys' 1NN Warren-Cowley values) has a
lower loss on the real species at the noise levels where atoms choose their sites; a
species-blind one has the same loss on both (``shuffled - real`` = 0), and its samples have
random ordering however well it places atoms on the lattice. ``--oracle`` (rows with every
site of one lattice occupied: the alloys) adds the loss of a predictor that knows the true
sites and frame and averages the target over each atom's posterior over the sites, taken
independently: where it is near 1, the noise is larger than the site spacing and no
denoiser can tell the sites apart; where it is near 0, atoms have already chosen their site.
The same noise draws (seed ``rep``) are used for both species columns.

The first line also gives the species' separation at the denoiser's input
(``DiffCSP.species_separation``, which training logs every epoch): about 1.4 at random
initialisation, small once the denoiser has learned to ignore the species.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="a diffcsp-* checkpoint folder (fixed composition)")
    ap.add_argument("--dataset", required=True, help="the dataset folder written by `dismai build`")
    ap.add_argument("--config", default=None)
    ap.add_argument("--split", default="train")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3, help="noise draws per level")
    ap.add_argument("--steps", default="10,40,70,85,100,115,130,160,190,220,250")
    ap.add_argument("--oracle", action="store_true")
    ap.add_argument("--vacuum-axis", type=int, default=None, help="2 for the interface (as `dismai train diffcsp`)")
    ap.add_argument("--wc", action="store_true", help="alloys: first print the 1NN Warren-Cowley means of the rows "
                    "as read and as the training tensors hold them (the ordering the model is given)")
    a = ap.parse_args()
    torch.set_num_threads(1)

    from chemeleon_dng.diffusion.models.dsm import d_log_p_wrapped_normal

    from dismai_data.models.data import load_split
    from dismai_data.models.diffcsp import collate, load_float, training_batches

    model = load_float(a.checkpoint).eval()
    if model.fixed_lattice is None:
        raise SystemExit(f"{a.checkpoint}: not a fixed-composition checkpoint (no blocks to shuffle)")
    rows = load_split(a.dataset, a.split, config=a.config)[:a.rows]
    items, (blocks, _), _ = training_batches(rows, fixed=True, source=f"{a.dataset} {a.split}",
                                             vacuum_axis=a.vacuum_axis)
    if a.wc:
        _print_wc(rows, items, [sp for sp, n in blocks for _ in range(n)])
    types, frac, lat, num, batch = collate(items, "cpu")
    shuffled = shuffled_species(types, batch)
    sites = items[0][1].double()

    sep = model.species_separation()  # None for one species (a-Si)
    print(f"{a.checkpoint}: {len(items)} {a.split} rows of {a.dataset} ({a.config}), {a.reps} noise draws per level; "
          f"species separation at the input {'n/a' if sep is None else f'{sep:.3f}'}")
    head = "step  sigma(frac)  sigma(A)  loss_real  loss_shuffled  shuffled-real"
    print(head + ("  oracle" if a.oracle else ""))
    scale = float(np.linalg.norm(np.asarray(model.fixed_lattice), axis=1).mean())
    for step in [int(s) for s in a.steps.split(",") if 0 < int(s) <= model.timesteps]:
        t = torch.full((len(items),), step)
        s = float(model.sigmas[step])
        real, shuf = species_losses(model, types, shuffled, frac, lat, num, batch, step, a.reps)
        orc = []
        for rep in range(a.reps if a.oracle else 0):  # the same noise draws as species_losses
            r = torch.randn(frac.shape, generator=torch.Generator().manual_seed(rep))
            target = model.coord_target(r, t, batch).double()
            d = (frac.double() + s * r.double())[:, None, :] - sites[None, :, :]
            d = d - torch.round(d)
            w = torch.softmax(-(d ** 2).sum(-1) / (2 * s * s), dim=1)
            score = torch.nan_to_num(d_log_p_wrapped_normal(d, torch.tensor(s)))  # far sites: 0/0, weight 0
            pred = (w[..., None] * score).sum(1) / float(model.sigmas_norm[step]) ** 0.5
            orc.append(float(((pred - target) ** 2).mean()))
        line = (f"{step:4d}  {s:11.4f}  {s * scale:8.3f}  {np.mean(real):9.4f}  {np.mean(shuf):13.4f}  "
                f"{np.mean(shuf) - np.mean(real):13.5f}")
        print(line + (f"  {np.mean(orc):6.3f}" if a.oracle else ""), flush=True)


def shuffled_species(types: torch.Tensor, batch: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``types`` with the species permuted within each cell (``batch``: cell per atom)."""
    gen = torch.Generator().manual_seed(seed)
    out = types.clone()
    for b in torch.unique(batch).tolist():
        idx = (batch == b).nonzero().flatten()
        out[idx] = types[idx][torch.randperm(len(idx), generator=gen)]
    return out


def species_losses(model, types, shuffled, frac, lat, num, batch, step: int, reps: int) -> tuple[list, list]:
    """The coordinate loss at ``step`` with the real and the shuffled species, the same
    noise draws (seeds ``0..reps-1``) for both: two lists of ``reps`` floats."""
    t = torch.full((lat.shape[0],), step)
    real, shuf = [], []
    for rep in range(reps):
        r = torch.randn(frac.shape, generator=torch.Generator().manual_seed(rep))
        with torch.no_grad():
            real.append(float(model.loss(types, frac, lat, num, batch, t=t, rand_x=r)["loss_coord"]))
            shuf.append(float(model.loss(shuffled, frac, lat, num, batch, t=t, rand_x=r)["loss_coord"]))
    return real, shuf


def _print_wc(rows, items, species) -> None:
    """1NN Warren-Cowley means (the evaluation's site assignment and ``ce.warren_cowley``) of
    ``rows`` and of their training tensors (block-ordered species, ``items``' coordinates)."""
    from dismai_data.evaluation.alloy import assign
    from dismai_data.physics import ce
    from dismai_data.structure import make_row

    tensors = [make_row(species, f.double().numpy(), L.double().numpy(), r["id"], symmetry=False)
               for r, (_, f, L) in zip(rows, items)]
    first = [i for i, lab in enumerate(ce.SRO_LABELS) if lab.startswith("1NN")]
    for label, rs in (("rows", rows), ("training tensors", tensors)):
        wc = ce.warren_cowley(np.stack([assign(r)[0] for r in rs]))[:, first].mean(0)
        print(f"1NN Warren-Cowley, {label}: " + ", ".join(f"{ce.SRO_LABELS[i][4:]} {v:.3f}"
                                                          for i, v in zip(first, wc)))


if __name__ == "__main__":
    main()
