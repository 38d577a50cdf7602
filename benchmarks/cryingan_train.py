"""Seconds per CryinGAN training batch, this checkout against an earlier git revision of
``models/cryingan.py`` (the figures quoted in issue 6).

    nice -n 10 .venv/bin/python benchmarks/cryingan_train.py --against 10b75bd --rounds 5

One "batch" is what :func:`dismai_data.models.cryingan.train` does per batch of 32: the
discriminator step (generator forward, neighbour distances of the generated structures,
both discriminators on real and generated inputs, both gradient penalties, Adam) and,
every 5th batch, the generator step; timed as ``train(max_batches=10)`` / 10 after two
warm-up batches. Systems: the alloy cell (Cr51 Fe154 Ni51, 14.4 Å cube, 64
translations, lambda 0.1) and the interface cell (Li72 Co36 O72 Sc12 Cl72 in the
interface build's 12.39 x 17.01 x 33.2 Å cell, lambda 0.05), with the widths of the
committed checkpoints (generator 64,64,128,64; discriminator 128,128,64; MLP 256,64) and
random training coordinates (speed does not depend on them). The two versions run in
alternation, ``rounds`` times each, so both see the same machine load; the minimum and
median over rounds and the load average are printed (the machine is shared).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SYSTEMS = {
    "alloy": dict(blocks=[["Cr", 51], ["Fe", 154], ["Ni", 51]], lattice=(np.eye(3) * 14.4).tolist(), lam=0.1,
                  translations=4),
    "interface": dict(blocks=[["Li", 72], ["Co", 36], ["O", 72], ["Sc", 12], ["Cl", 72]],
                      lattice=[[12.3860624813, 0.0, 0.0], [3.4998064498, 17.010454565, 0.0], [0.0, 0.0, 33.2]],
                      lam=0.05, translations=0),
}
WIDTHS = dict(gen_channels=[64, 64, 128, 64], disc_channels=[128, 128, 64], disc_hidden=[256, 64], latent_dim=64)


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _old_module(rev: str, tmp: Path):
    repo = HERE.parent
    text = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:models/cryingan.py"], check=True,
                          capture_output=True, text=True).stdout
    path = tmp / f"cryingan_{rev}.py"
    path.write_text(text)
    return _module(path, f"cryingan_{rev}")


def seconds_per_batch(mod, system: str, batches: int = 10) -> float:
    torch.manual_seed(0)
    m = mod.CryinGAN(**SYSTEMS[system], **WIDTHS)
    data = torch.rand(64, m.n_atoms, 3, generator=torch.Generator().manual_seed(1))
    mod.train(m, data, max_batches=2, seed=0)  # warm-up
    t = time.perf_counter()
    mod.train(m, data, max_batches=batches, seed=0)
    return (time.perf_counter() - t) / batches


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", default=None, help="git revision of models/cryingan.py to compare with")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--systems", default="alloy,interface")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from dismai_data.models import cryingan as new

    with tempfile.TemporaryDirectory() as tmp:
        versions = {"this checkout": new}
        if args.against:
            versions = {f"git {args.against}": _old_module(args.against, Path(tmp)), **versions}
        print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, "
              f"load average before: {os.getloadavg()[0]:.2f}")
        for system in args.systems.split(","):
            times: dict[str, list[float]] = {k: [] for k in versions}
            for _ in range(args.rounds):
                for k, mod in versions.items():
                    times[k].append(seconds_per_batch(mod, system))
            for k, ts in times.items():
                print(f"{system:9s} {k:16s} s/batch: min {min(ts):.3f}  median {statistics.median(ts):.3f}  "
                      f"({args.rounds} rounds of 10 batches)")
            if len(times) == 2:
                (ka, a), (kb, b) = times.items()
                print(f"{system:9s} speed-up (median / median): {statistics.median(a) / statistics.median(b):.2f}x,"
                      f" (min / min): {min(a) / min(b):.2f}x")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
