"""``dismai train cryingan ...`` and ``dismai generate --model REPO ...`` (mounted by
``dismai_data.cli``). Heavy imports (torch, datasets) happen inside the commands."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import typer

from dismai_data.tasks import ALLOY_CONFIGS, FIXED_CELL_DATASETS

_CONFIG_HELP = f"dataset config (alloy: {', '.join(ALLOY_CONFIGS)})"

train_app = typer.Typer(help="Train a baseline model (CryinGAN) on a dataset.", no_args_is_help=True)


def _ints(text: str, field: str, n: int) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected {n} comma-separated integers", param_hint=field) from None
    if len(vals) != n or min(vals) <= 0:
        raise typer.BadParameter(f"{text!r}: expected {n} positive comma-separated integers", param_hint=field)
    return vals


@train_app.command("cryingan")
def train_cryingan(
    dataset: str = typer.Option(..., "--dataset", help="hub id (dismai/interface, dismai/alloy) or a dataset folder"),
    config: str = typer.Option(None, "--config", help=_CONFIG_HELP),
    revision: str = typer.Option(None, "--revision", help="dataset revision (tag/branch/commit)"),
    lam: float = typer.Option(0.05, "--lambda", help="weight of the bond-distance discriminator (paper: "
                                                     "0.05 interface, 0.1 alloys)"),
    out: Path = typer.Option(..., "--out", help="checkpoint folder (config.json, model.safetensors, training.json)"),
    epochs: int = typer.Option(None, "--epochs", help="stop after this many epochs (paper: 100000)"),
    max_minutes: float = typer.Option(None, "--max-minutes", help="stop after this wall time"),
    translations: int = typer.Option(None, "--translations", help="lattice translations per axis for "
                                     "augmentation (default: 4 for alloy, i.e. 64 = identity + 63; else 0)"),
    batch_size: int = typer.Option(32, "--batch-size"),
    latent_dim: int = typer.Option(64, "--latent-dim"),
    gen_channels: str = typer.Option("128,256,512,256", "--gen-channels", help="generator widths c0,c1,c2,c3"),
    disc_channels: str = typer.Option("512,512,256", "--disc-channels", help="discriminator per-atom widths"),
    disc_hidden: str = typer.Option("1000,200", "--disc-hidden", help="discriminator MLP widths"),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads (1 was fastest per batch on a shared "
                                                     "2-core machine: benchmarks/RESULTS.md)"),
    vacuum_axis: int = typer.Option(None, "--vacuum-axis", help="slabs whose cells differ only in the length "
                                    "of this lattice vector (default: 2 for interface, none otherwise): train in "
                                    "the longest cell, Cartesian positions kept"),
    save_every: float = typer.Option(60.0, "--save-every", help="seconds between checkpoints written at epoch "
                                     "ends (and one at the end)"),
    resume: bool = typer.Option(False, "--resume", help="continue from the checkpoint in --out (its config.json, "
                                "model.safetensors, training.json); the earlier optimizer state was not saved, "
                                "so Adam restarts from zero moments"),
):
    """Train CryinGAN (paper 000, 2.4 / 4.2.5) on the train split of a fixed-composition,
    fixed-lattice dataset; writes a checkpoint after every epoch."""
    import torch

    from .cryingan import CryinGAN, save_checkpoint, train, training_tensor
    from .data import dataset_name, load_split

    if epochs is None and max_minutes is None:
        raise typer.BadParameter("give --epochs or --max-minutes", param_hint="--epochs")
    torch.set_num_threads(threads)
    name = dataset_name(dataset)
    rows = load_split(dataset, "train", config=config, revision=revision,
                      columns=["id", "species", "frac_coords", "lattice"])
    vax = vacuum_axis if vacuum_axis is not None else (2 if name == "interface" else None)
    data, blocks, lat = training_tensor(rows, source=f"{dataset} [{config or 'default'}] train", vacuum_axis=vax)
    nt = translations if translations is not None else (4 if name == "alloy" else 0)
    prev: dict = {}
    if resume:
        model, prev = _resume_cryingan(out, blocks, lat, lam)
        nt = model.translations
        cfg = json.loads((out / "config.json").read_text())
        gen_channels, disc_channels, disc_hidden = (",".join(str(x) for x in cfg[k]) for k in (
            "gen_channels", "disc_channels", "disc_hidden"))
    else:
        model = CryinGAN(blocks=blocks, lattice=lat.tolist(), latent_dim=latent_dim,
                         gen_channels=_ints(gen_channels, "--gen-channels", 4),
                         disc_channels=_ints(disc_channels, "--disc-channels", 3),
                         disc_hidden=_ints(disc_hidden, "--disc-hidden", 2), lam=lam, translations=nt,
                         dataset=f"dismai/{name}" if Path(dataset).is_dir() else dataset, dataset_config=config,
                         dataset_revision=revision, task=f"alloy/{config}" if name == "alloy" else name)
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    load_start = [round(v, 2) for v in os.getloadavg()]
    segments, base = _earlier_segments(prev)

    def save_running(rec: dict) -> None:
        save_checkpoint(model, out, {"status": "running", "started": started, **rec})
        model.train()

    with open(out / "training_log.jsonl", "a" if resume else "w") as logf:
        log = _EpochLog(logf, base, len(segments) + 1 if segments else None, save_running, save_every)
        typer.echo(f"CryinGAN on {dataset} [{config}] train: {data.shape[0]} structures, blocks {blocks}, "
                   f"lambda {lam}, translations {nt}^3, {sum(p.numel() for p in model.parameters())} parameters")
        summary = train(model, data, epochs=epochs, max_seconds=None if max_minutes is None else 60 * max_minutes,
                        batch_size=batch_size, seed=seed, log=log)
        command = "dismai train cryingan " + " ".join(
            f"{k} {v}" for k, v in (("--dataset", dataset), ("--config", config), ("--lambda", lam),
                                    ("--epochs", epochs), ("--max-minutes", max_minutes),
                                    ("--gen-channels", gen_channels), ("--disc-channels", disc_channels),
                                    ("--disc-hidden", disc_hidden), ("--seed", seed), ("--threads", threads),
                                    ("--out", out)) if v is not None) + (" --resume" if resume else "")
        summary.update(status="finished", started=started, threads=threads, dataset=dataset, config=config,
                       revision=revision, vacuum_axis=vax, command=command)
        _finish_summary(summary, load_start, rows, vax, segments, base)
        save_checkpoint(model, out, summary)
    typer.echo(f"wrote {out} ({summary['epochs_completed']} epochs, {summary['batches']} batches, "
               f"{summary['seconds']} s)")


def _resume_cryingan(out: Path, blocks: list, lat, lam: float):
    """(model, earlier training.json) of the checkpoint in ``out``, checked against the
    training data's composition and lattice and the given lambda."""
    import numpy as np

    from .cryingan import CryinGAN

    if not (out / "config.json").is_file() or not (out / "model.safetensors").is_file():
        raise typer.BadParameter(f"{out} holds no checkpoint (config.json + model.safetensors) to resume",
                                 param_hint="--resume")
    model = CryinGAN.from_pretrained(out)
    if [tuple(b) for b in model.blocks] != [tuple(b) for b in blocks] or \
            not np.allclose(np.asarray(model.lattice_list), lat, atol=1e-4):
        raise typer.BadParameter(f"{out}: the checkpoint's composition/lattice ({model.blocks}) differ from "
                                 f"the training data's ({blocks})", param_hint="--resume")
    if abs(model.lam - lam) > 1e-12:
        raise typer.BadParameter(f"the checkpoint was trained with lambda {model.lam}, not {lam}",
                                 param_hint="--lambda")
    prev = json.loads((out / "training.json").read_text()) if (out / "training.json").is_file() else {}
    return model, prev


def _earlier_segments(prev: dict) -> tuple[list[dict], dict]:
    """The segments of an earlier training.json (a run never resumed is one segment) and
    their totals (epoch, batches, generator_steps, seconds): what a resumed run counts on from."""
    segments = list(prev.get("segments", [])) or ([{k: prev.get(k) for k in (
        "epochs_completed", "batches", "generator_steps", "seconds", "command", "seed", "threads", "started")}]
        if prev else [])
    base = {"epoch": sum(int(g.get("epochs_completed") or 0) for g in segments),
            "batches": sum(int(g.get("batches") or 0) for g in segments),
            "generator_steps": sum(int(g.get("generator_steps") or 0) for g in segments),
            "seconds": sum(float(g.get("seconds") or 0) for g in segments)}
    return segments, base


class _EpochLog:
    """The per-epoch callback of :func:`dismai_data.models.cryingan.train`: counts continued
    from earlier segments (``base``), one line to ``training_log.jsonl`` and stdout, and a
    checkpoint (``save(rec)``) when ``save_every`` seconds have passed (small datasets: an
    epoch can be one batch)."""

    def __init__(self, logf, base: dict, segment: int | None, save, save_every: float):
        self.logf, self.base, self.segment, self.save, self.save_every = logf, base, segment, save, save_every
        self.last_save = time.perf_counter()

    def __call__(self, rec: dict) -> None:
        base = self.base
        rec = {**rec, "epoch": rec["epoch"] + base["epoch"], "batches": rec["batches"] + base["batches"],
               "generator_steps": rec["generator_steps"] + base["generator_steps"],
               "seconds": round(rec["seconds"] + base["seconds"], 1),
               **({"segment": self.segment} if self.segment else {})}
        self.logf.write(json.dumps(rec) + "\n")
        self.logf.flush()
        typer.echo(json.dumps(rec))
        if time.perf_counter() - self.last_save >= self.save_every:
            self.save(rec)
            self.last_save = time.perf_counter()


def _finish_summary(summary: dict, load_start: list, rows: list[dict], vax: int | None, segments: list[dict],
                    base: dict) -> None:
    """Add the load averages, niceness, the vacuum-axis lattice note and, for a resumed run,
    the segments and the totals over them to ``summary`` (training.json)."""
    import numpy as np

    summary["load_average"] = {"start": load_start, "end": [round(v, 2) for v in os.getloadavg()],
                               "note": "1/5/15-minute load averages of the (shared, 2-core) machine"}
    summary["niceness"] = os.nice(0)
    summary.pop("history", None)  # the per-epoch records are in training_log.jsonl
    if vax is not None:
        clens = sorted({round(float(np.linalg.norm(np.asarray(r["lattice"], dtype=float)[vax])), 4) for r in rows})
        summary["lattice_note"] = (f"train rows differ in the length of lattice vector {vax} ({clens[0]} to "
                                   f"{clens[-1]} Å, the vacuum direction); all expressed in the {clens[-1]} Å cell "
                                   "with their Cartesian positions kept (only the vacuum grows)")
    if segments:
        seg = {k: summary[k] for k in ("epochs_completed", "batches", "generator_steps", "seconds", "command",
                                      "seed", "threads", "started", "load_average")}
        segments.append(seg)
        summary.update(segments=segments, resumed=True, epochs_completed=summary["epochs_completed"] + base["epoch"],
                       batches=summary["batches"] + base["batches"],
                       generator_steps=summary["generator_steps"] + base["generator_steps"],
                       seconds=round(summary["seconds"] + base["seconds"], 1),
                       resume_note="continued from the earlier checkpoint's weights; its Adam state was not saved, "
                                   "so the optimizer restarted from zero moments (the weights carry over)")


def generate(
    model: str = typer.Option(..., "--model", help="hub model repo (dismai/cryingan-interface) or a local folder"),
    n: int = typer.Option(1000, "-n", "--n", help="number of structures (template baseline: ignored, one per "
                                                  "test row unless smaller)"),
    out: Path = typer.Option(..., "--out", help="predictions parquet to write"),
    seed: int = typer.Option(0, "--seed"),
    revision: str = typer.Option(None, "--revision", help="model repo revision"),
):
    """Generate structures with a baseline model repo; writes a predictions parquet in the
    structure-row schema that ``dismai evaluate`` reads."""
    from . import load, write_predictions

    if n <= 0:
        raise typer.BadParameter("must be positive", param_hint="-n")
    m = load(model, revision=revision)
    t0 = time.perf_counter()
    rows = m.generate(n, seed=seed)
    path = write_predictions(rows, out)
    typer.echo(f"wrote {len(rows)} structures to {path} ({time.perf_counter() - t0:.1f} s)")


@train_app.command("diffcsp")
def train_diffcsp(
    dataset: str = typer.Option(..., "--dataset", help="hub id (dismai/perov-5, dismai/alloy) or a dataset folder"),
    config: str = typer.Option(None, "--config", help=_CONFIG_HELP),
    revision: str = typer.Option(None, "--revision", help="dataset revision (tag/branch/commit)"),
    out: Path = typer.Option(..., "--out", help="checkpoint folder (config.json, model.safetensors, "
                                                "training.json, training_state.pt)"),
    epochs: int = typer.Option(None, "--epochs", help="stop after this many epochs in all (DiffCSP: 1000-3500)"),
    max_minutes: float = typer.Option(None, "--max-minutes", help="stop after this wall time (this run)"),
    fixed: bool = typer.Option(None, "--fixed/--no-fixed", help="fixed composition and cell (default: yes for "
                               "alloy, a-si, interface): the lattice is not diffused, n structures are generated"),
    hidden_dim: int = typer.Option(512, "--hidden-dim"),
    num_layers: int = typer.Option(6, "--num-layers"),
    num_freqs: int = typer.Option(128, "--num-freqs"),
    time_dim: int = typer.Option(256, "--time-dim"),
    timesteps: int = typer.Option(1000, "--timesteps"),
    sigma_end: float = typer.Option(None, "--sigma-end", help="sigma_T of the coordinates' noise (fractional; "
                                    "default 0.1 for alloy and interface, 0.05 for a-si as Dismai-Bench, else 0.5)"),
    init_from: Path = typer.Option(None, "--init-from", help="start from this checkpoint's denoiser weights (same "
                                   "architecture and composition; new optimiser and schedules), recorded in "
                                   "training.json"),
    edges: str = typer.Option(None, "--edges", help="fc (all pairs) or knn (--knn within 7 Å); default knn for "
                              "cells over 64 atoms"),
    knn: int = typer.Option(20, "--knn", help="neighbours per atom of the knn graph (DiffCSP: 20)"),
    batch_size: int = typer.Option(None, "--batch-size", help="default 512 (cells up to 20 atoms), 256, or 32 "
                                   "for cells over 64 atoms"),
    lr: float = typer.Option(1e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads"),
    save_every: float = typer.Option(120.0, "--save-every", help="seconds between checkpoints"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out: weights, optimiser, "
                                "scheduler and RNG state from its training_state.pt"),
):
    """Train DiffCSP (Jiao et al. 2023; chemeleon-dng's CSPNet) on the train split of a
    dataset: crystal-structure prediction for the reconstruction sets, fixed-composition
    generation in the training cell for the Dismai sets. Checkpointed and resumable."""
    import torch

    from .data import dataset_name, load_split
    from .diffcsp import (ALIGNED_DATASETS, DiffCSP, load_float, sigma_end_for, step_lr_for, train,
                          training_batches, warm_start)

    if epochs is None and max_minutes is None:
        raise typer.BadParameter("give --epochs or --max-minutes", param_hint="--epochs")
    if edges not in (None, "fc", "knn"):
        raise typer.BadParameter(f"{edges!r}: fc or knn", param_hint="--edges")
    if resume and init_from is not None:
        raise typer.BadParameter("--resume continues a run; --init-from starts a new one", param_hint="--init-from")
    if sigma_end is not None and not 0 < sigma_end <= 0.5:
        raise typer.BadParameter(f"{sigma_end}: sigma_T is a fractional noise in (0, 0.5]", param_hint="--sigma-end")
    if threads:
        torch.set_num_threads(threads)
    name = dataset_name(dataset)
    fixed = name in FIXED_CELL_DATASETS if fixed is None else fixed
    rows = load_split(dataset, "train", config=config, revision=revision,
                      columns=["id", "species", "atomic_numbers", "frac_coords", "lattice"])
    items, comp, lat = training_batches(rows, fixed=fixed, source=f"{dataset} [{config or 'default'}] train",
                                        vacuum_axis=2 if name == "interface" else None)
    big = max(len(it[0]) for it in items) > 64
    if resume:
        if not (out / "config.json").is_file():
            raise typer.BadParameter(f"{out} holds no checkpoint to resume", param_hint="--resume")
        model = load_float(out)
    else:
        kw = dict(hidden_dim=hidden_dim, num_layers=num_layers, num_freqs=num_freqs, time_dim=time_dim,
                  timesteps=timesteps, edge_style=edges or ("knn" if big else "fc"), knn=knn, step_lr=step_lr_for(name),
                  sigma_end=sigma_end_for(name) if sigma_end is None else sigma_end,
                  dataset=f"dismai/{name}" if Path(dataset).is_dir() else dataset, dataset_config=config,
                  dataset_revision=revision, task=f"alloy/{config}" if name == "alloy" else name)
        if fixed:
            kw.update(fixed_lattice=lat.tolist(), blocks=comp[0], block_numbers=comp[1],
                      align_origin=name in ALIGNED_DATASETS)
        model = DiffCSP(**kw)
    origin = None
    if init_from is not None:
        try:
            origin = warm_start(model, init_from)
        except (FileNotFoundError, ValueError) as e:
            raise typer.BadParameter(str(e), param_hint="--init-from") from None
    bs = batch_size or (32 if big else 512 if max(len(it[0]) for it in items) <= 20 else 256)
    typer.echo(f"DiffCSP on {dataset} [{config}] train: {len(items)} structures, edges {model.edge_style}, "
               f"{sum(p.numel() for p in model.parameters())} parameters, batch {bs}, device {device}")
    summary = train(model, items, out, epochs=epochs, max_seconds=None if max_minutes is None else 60 * max_minutes,
                    batch_size=bs, lr=lr, seed=seed, save_every=save_every, resume=resume, device=device,
                    log=lambda r: typer.echo(json.dumps(r)), command="dismai train diffcsp " + " ".join(sys.argv[3:]),
                    initialised_from=origin)
    typer.echo(f"wrote {out} ({summary['epoch']} epochs, {summary['batches']} batches, {summary['seconds']} s)")
