"""Train the DiffCSP baselines on a lent GPU and bring back checkpoints and samples.

Three steps, each a subcommand:

    # here: pack each job's training rows and targets (no dataset reader needed there)
    .venv/bin/python benchmarks/diffcsp_gpu.py prepare --datasets DIR --out .gpuwork/diffcsp
    # on the GPU host (benchmarks/diffcsp_gpu.sh): every job in its own process, sharing the GPU
    python3 benchmarks/diffcsp_gpu.py run --jobs .gpuwork/diffcsp --out $OUT --train-s 300 --deadline-s 480
    # here: unpack into models/checkpoints/diffcsp-*/ (float16 weights, predictions parquet per seed)
    .venv/bin/python benchmarks/diffcsp_gpu.py collect --from DIR

A checkpoint trained elsewhere (``dismai train diffcsp``) is sampled into the same layout with
``sample --checkpoint DIR --name JOB --out OUT --n N``, then collected the same way.

``run`` trains each job for ``--train-s`` seconds (checkpoint every minute), then samples
seed 0, 1, ... (one prediction per target row, or ``n`` structures for the fixed-
composition sets) until ``--deadline-s`` or its ``max_seeds``, re-packing the job's tar in
$OUT after each seed so whatever finished comes back. CPU works too (``--device cpu``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

#: job -> (dataset folder name, config, fixed composition, generated n (fixed) or None, seeds, batch,
#: extra model kwargs)
JOBS = {
    "perov-5": dict(dataset="perov-5", config=None, fixed=False, n=None, max_seeds=20, batch_size=512),
    "jarvis-supercon-3d": dict(dataset="jarvis-supercon-3d", config=None, fixed=False, n=None, max_seeds=20,
                               batch_size=256),
    "alloy-300k-narrow": dict(dataset="alloy", config="300K_narrow", fixed=True, n=200, max_seeds=1, batch_size=4,
                              arch="dismai"),
    "a-si": dict(dataset="a-si", config=None, fixed=True, n=200, max_seeds=1, batch_size=4, arch="dismai"),
    "interface": dict(dataset="interface", config=None, fixed=True, n=200, max_seeds=1, batch_size=4,
                      vacuum_axis=2, arch="dismai"),
}
#: the architecture of every job (DiffCSP's, with hidden width 128 instead of 512: see the cards) ...
ARCH = dict(hidden_dim=128, time_dim=128, num_layers=6, num_freqs=128, timesteps=1000)
#: ... except the Dismai sets', which take Dismai-Bench's (section 4.2.2: 4 layers, 256 hidden states, batch 4;
#: their sigma_T comes with the dataset, ``sigma_end_for``). Their DiffCSP configs keep CSPNet's ``edge_style:
#: fc`` for the 256- and 264-atom cells (models/diffcsp/conf/model/decoder/cspnet.yaml, commit 6393933), so
#: these jobs use all pairs too, not the knn graph the CPU-trained checkpoints use.
ARCHS = {"dismai": dict(ARCH, hidden_dim=256, time_dim=256, num_layers=4, edge_style="fc")}
KNN_ABOVE = 64  # cells of more atoms use knn edges (20 within 7 Å), smaller ones all pairs, unless the arch says
FC_CHUNK_ATOMS = 4096  # sampling all-pairs cells of ~256 atoms: 16 cells, ~1M edges per denoiser call


def prepare(args) -> None:
    import torch

    from dismai_data.models.data import load_split
    from dismai_data.models.diffcsp import ALIGNED_DATASETS, sigma_end_for, step_lr_for, training_batches

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cols = ["id", "species", "atomic_numbers", "frac_coords", "lattice"]
    for name, job in JOBS.items():
        if args.only and name not in args.only:
            continue
        folder = Path(args.datasets) / job["dataset"]
        src = f"{folder} [{job['config'] or 'default'}] train"
        rows = load_split(folder, "train", config=job["config"], columns=cols)
        items, comp, lat = training_batches(rows, fixed=job["fixed"], source=src, vacuum_axis=job.get("vacuum_axis"))
        big = max(len(it[0]) for it in items) > KNN_ABOVE
        arch = dict(ARCHS.get(job.get("arch"), ARCH),
                    **{k: getattr(args, k) for k in ARCH if getattr(args, k) is not None})
        kwargs = dict(arch, edge_style=args.edges or arch.get("edge_style") or ("knn" if big else "fc"),
                      step_lr=step_lr_for(job["dataset"]),
                      sigma_end=sigma_end_for(job["dataset"]),
                      dataset=f"dismai/{job['dataset']}", dataset_config=job["config"],
                      task=f"alloy/{job['config']}" if job["dataset"] == "alloy" else job["dataset"])
        if kwargs["edge_style"] == "knn" and args.knn is not None:
            kwargs["knn"] = args.knn
        if args.batch_size is not None:
            job = dict(job, batch_size=args.batch_size)
        if args.n is not None and job["n"] is not None:
            job = dict(job, n=args.n)
        if job["fixed"]:
            kwargs.update(fixed_lattice=lat.tolist(), blocks=comp[0], block_numbers=comp[1],
                          align_origin=job["dataset"] in ALIGNED_DATASETS)
            targets = None
        else:
            targets = load_split(folder, "test", columns=["id", "species", "atomic_numbers"])
        pack = {"name": name, "kwargs": kwargs, "job": job, "targets": targets,
                "types": torch.cat([it[0] for it in items]).to(torch.int16), "frac": torch.cat([it[1] for it in items]),
                "lattices": torch.stack([it[2] for it in items]),
                "num_atoms": torch.tensor([len(it[0]) for it in items])}
        torch.save(pack, out / f"{name}.pt")
        print(f"{name}: {len(items)} train rows, {int(pack['num_atoms'].sum())} atoms, edges {kwargs['edge_style']}, "
              f"targets {len(targets) if targets is not None else job['n']}")


def _items(pack):
    import torch

    n = pack["num_atoms"].tolist()
    starts = [0]
    for k in n:
        starts.append(starts[-1] + k)
    types = pack["types"].long()
    return [(types[a:b], pack["frac"][a:b], pack["lattices"][i]) for i, (a, b) in
            enumerate(zip(starts[:-1], starts[1:]))] if n else torch.zeros(0)


def _pack_out(folder: Path, out: Path, name: str) -> None:
    """The job folder as $OUT/<name>.tar; the optimiser moments travel as bfloat16 (half the
    bytes: five jobs must fit the 64 MiB that comes back; Adam's load casts them back)."""
    import torch

    tmp = out / f".{name}.tar"
    with tarfile.open(tmp, "w") as tf:
        for f in sorted(folder.iterdir()):
            if f.name == "training_state.pt":
                ck = torch.load(f, weights_only=False)
                for st in ck["optimizer"]["state"].values():
                    for k, v in st.items():
                        if torch.is_tensor(v) and v.is_floating_point() and v.ndim > 0:
                            st[k] = v.to(torch.bfloat16)
                ck["state"]["optimizer_moments"] = "bfloat16 (packed for transfer)"
                half = folder.parent / f".{name}-state.pt"
                torch.save(ck, half)
                tf.add(half, arcname=f"{name}/{f.name}")
                half.unlink()
            else:
                tf.add(f, arcname=f"{name}/{f.name}")
    tmp.replace(out / f"{name}.tar")


def run_one(args) -> None:
    import torch

    from dismai_data.models.diffcsp import DiffCSP, train

    t_start = float(args.t0)
    pack = torch.load(args.job, weights_only=False)
    name, job = pack["name"], pack["job"]
    work = Path(args.work) / name
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    items = _items(pack)
    if args.smoke:  # the whole path in seconds on a CPU: 10 diffusion steps, 64 rows, 2 structures
        pack["kwargs"]["timesteps"] = 10
        job = dict(job, n=2 if job["n"] else None, max_seeds=2, batch_size=8)
        items = items[:64]
        pack["targets"] = pack["targets"][:4] if pack["targets"] else None
    if args.step_lr is not None:  # the corrector step sampling uses; it is stored in the checkpoint's config
        pack["kwargs"]["step_lr"] = args.step_lr
    model = DiffCSP(**pack["kwargs"])
    left = t_start + args.train_s - time.time()
    resume = (work / "training_state.pt").is_file()
    summary = train(model, items, work, max_seconds=max(left, 1.0), batch_size=job["batch_size"], seed=0,
                    save_every=60.0, resume=resume, device=args.device,
                    command="benchmarks/diffcsp_gpu.py " + " ".join(sys.argv[1:]),
                    log=lambda r: print(f"{name} {json.dumps(r)}", flush=True) if r["epoch"] % 10 == 0 else None)
    print(f"{name}: trained {summary['epoch']} epochs, {summary['batches']} batches, {summary['seconds']} s",
          flush=True)
    _pack_out(work, out, name)
    _sample_seeds(model, work, out, name, {"seeds": [], "device": summary["segments"][-1]["device"]},
                  seeds=job["max_seeds"], n=job["n"], targets=pack["targets"], chunk_atoms=args.chunk_atoms,
                  stop_after=t_start + args.deadline_s, deadline=t_start + args.hard_s)


def _sample_seeds(model, work: Path, out: Path, name: str, meta: dict, *, seeds: int, n, targets=None,
                  chunk_atoms: int, stop_after: float | None = None, deadline: float | None = None) -> None:
    """Seeds 0.. of ``model`` into ``work``/samples-seed*.pt + samples.json (``meta`` plus one
    entry per seed), the job re-packed as ``out``/<name>.tar after each seed. ``stop_after``:
    start no seed after it; ``deadline``: start no chunk of cells after it (a seed cut short
    keeps what it finished; an empty one ends the loop)."""
    import torch

    if model.edge_style == "fc" and model.blocks is not None and len(model.species) > KNN_ABOVE:
        chunk_atoms = min(chunk_atoms, FC_CHUNK_ATOMS)  # all pairs: edges grow as atoms per cell squared
    model.eval()
    for seed in range(seeds):
        if stop_after is not None and time.time() > stop_after:
            break
        t = time.time()
        arr = model.sample_arrays(n, seed=seed, targets=targets, chunk_atoms=chunk_atoms, deadline=deadline)
        if not arr:
            break
        torch.save([(rid, sp, f, L) for rid, sp, f, L in arr], work / f"samples-seed{seed}.pt")
        meta["seeds"].append({"seed": seed, "structures": len(arr), "seconds": round(time.time() - t, 1)})
        (work / "samples.json").write_text(json.dumps(meta, indent=1) + "\n")
        _pack_out(work, out, name)
        print(f"{name}: seed {seed}: {len(arr)} structures in {time.time() - t:.1f} s", flush=True)


def run(args) -> None:
    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = sorted(Path(args.jobs).glob("*.pt"))
    procs = []
    for f in jobs:
        if args.only and f.stem not in args.only:
            continue
        cmd = [sys.executable, os.path.abspath(__file__), "run-one", "--job", str(f), "--out", str(out),
               "--work", args.work, "--t0", str(t0), "--train-s", str(args.train_s), "--deadline-s",
               str(args.deadline_s), "--hard-s", str(args.hard_s), "--device", args.device,
               "--chunk-atoms", str(args.chunk_atoms)] + (
                   ["--smoke"] if args.smoke else []) + (
                   ["--step-lr", str(args.step_lr)] if args.step_lr is not None else [])
        procs.append(subprocess.Popen(cmd))
    for p in procs:
        p.wait()
    print(f"all jobs done in {time.time() - t0:.0f} s; return codes {[p.returncode for p in procs]}")


def sample(args) -> None:
    """Seeds 0.. of a trained checkpoint folder into ``samples-seed*.pt`` + ``samples.json``
    there, packed as ``--out``/<name>.tar after each seed (what ``collect`` reads)."""
    from dismai_data.models.diffcsp import _device_name, load_float

    folder, out = Path(args.checkpoint), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_float(folder).to(args.device)
    if args.step_lr is not None:
        model.step_lr = args.step_lr
    meta = {"seeds": [], "device": _device_name(args.device), "step_lr": model.step_lr,
            "command": "benchmarks/diffcsp_gpu.py " + " ".join(sys.argv[1:])}
    _sample_seeds(model, folder, out, args.name, meta, seeds=args.seeds, n=args.n, chunk_atoms=args.chunk_atoms)


def collect(args) -> None:
    """Unpack each job tar into models/checkpoints/diffcsp-<job>/: float16 weights,
    config, training record, and one predictions parquet per sampled seed."""
    import shutil
    import tempfile

    import torch

    from dismai_data.models import write_predictions
    from dismai_data.models.diffcsp import load_float, save_checkpoint
    from dismai_data.structure import make_row

    root = Path(__file__).resolve().parents[1] / "models" / "checkpoints"
    for tar in sorted(Path(args.src).glob("*.tar")):
        name = tar.stem
        tmp = Path(tempfile.mkdtemp())
        with tarfile.open(tar) as tf:
            tf.extractall(tmp, filter="data")
        src = tmp / name
        dst = root / f"diffcsp-{name}"
        keep = Path(args.keep) / name if args.keep else None
        if keep is not None:  # the full-precision weights and optimiser state: what a resume needs
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(src, keep)
        dst.mkdir(parents=True, exist_ok=True)
        model = load_float(src)
        training = json.loads((src / "training.json").read_text())
        save_checkpoint(model, dst, training, half=True)
        if (src / "training_log.jsonl").is_file():
            shutil.copy(src / "training_log.jsonl", dst / "training_log.jsonl")
        meta = json.loads((src / "samples.json").read_text()) if (src / "samples.json").is_file() else {"seeds": []}
        (dst / "predictions").mkdir(exist_ok=True)
        for s in meta["seeds"]:
            arr = torch.load(src / f"samples-seed{s['seed']}.pt", weights_only=False)
            rows = [make_row(sp, f % 1.0, L, rid, symmetry=len(sp) <= 64) for rid, sp, f, L in arr]
            write_predictions(rows, dst / "predictions" / f"seed{s['seed']}.parquet")
        (dst / "generation.json").write_text(json.dumps(meta, indent=1) + "\n")
        print(f"{dst.name}: {training['epoch']} epochs, {len(meta['seeds'])} seeds of predictions")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--datasets", required=True)
    p.add_argument("--out", default=".gpuwork/diffcsp")
    p.add_argument("--only", nargs="*")
    for k in ARCH:
        p.add_argument("--" + k.replace("_", "-"), dest=k, type=int, default=None,
                       help=f"architecture override (default {ARCH[k]})")
    p.add_argument("--edges", choices=("fc", "knn"), default=None,
                   help="edge style of every job (default: the arch's, else knn for cells over 64 atoms)")
    p.add_argument("--knn", type=int, default=None, help="neighbours per atom of the knn graph (default 20)")
    p.add_argument("--batch-size", type=int, default=None, help="training batch (default: the job's)")
    p.add_argument("--n", type=int, default=None, help="structures per seed of a fixed-composition job")
    for cmd in ("run", "run-one"):
        p = sub.add_parser(cmd)
        p.add_argument("--jobs", default=".gpuwork/diffcsp")
        p.add_argument("--job")
        p.add_argument("--out", required=True)
        p.add_argument("--work", default="/tmp/diffcsp-work")
        p.add_argument("--t0", default=None)
        p.add_argument("--train-s", type=float, default=300)
        p.add_argument("--deadline-s", type=float, default=440, help="start no new seed after this")
        p.add_argument("--hard-s", type=float, default=500, help="start no new chunk of cells after this")
        p.add_argument("--device", default="cuda")
        p.add_argument("--chunk-atoms", type=int, default=60000)
        p.add_argument("--step-lr", type=float, default=None,
                       help="Langevin corrector step for sampling (default: DiffCSP's for the dataset)")
        p.add_argument("--only", nargs="*")
        p.add_argument("--smoke", action="store_true", help="a seconds-long run of the whole path (CPU check)")
    p = sub.add_parser("sample")
    p.add_argument("--checkpoint", required=True, help="a trained DiffCSP folder (dismai train diffcsp --out)")
    p.add_argument("--name", required=True, help="the job name: collect writes models/checkpoints/diffcsp-NAME")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=None, help="structures per seed (fixed composition)")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--chunk-atoms", type=int, default=12800)
    p.add_argument("--step-lr", type=float, default=None, help="corrector step (default: the checkpoint's)")
    p = sub.add_parser("collect")
    p.add_argument("--from", dest="src", required=True)
    p.add_argument("--keep", default=None, help="also keep the full-precision job folders here (resume)")
    args = ap.parse_args()
    {"prepare": prepare, "run": run, "run-one": run_one, "sample": sample,
     "collect": collect}[args.cmd](args)


if __name__ == "__main__":
    main()
