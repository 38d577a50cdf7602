"""Relaxation of references and candidates with M3GNet (``relax_many``) into the build's
checkpoint shards: in process or on a Dask cluster, or by ``relax_candidates`` in worker processes
sharing one device (a GPU host's share of a build); where each shard was relaxed, for the card."""

from __future__ import annotations

import json
from pathlib import Path

from dismai_data.builders.interface.candidates import generate
from dismai_data.builders.interface.energy import reference_structures
from dismai_data.builders.interface.params import (BUILDER_VERSION, ENGINES, parse_params, shard_parameters,
                                                   torch_device, work_folder)
from dismai_data.builders.interface.references import references


def next_round_fits(elapsed_s: float, round_walls: list[float], budget_s: float) -> bool:
    """Whether a time-budgeted build starts another round of relaxations: not once the budget
    is spent, nor when the next round, predicted to take as long as the longer of the last two,
    would end after it. The last two, not the slowest so far, so that one round slowed by other
    work on a shared machine does not end the build early (the build ends close to the budget,
    not a whole round after it)."""
    if elapsed_s >= budget_s:
        return False
    predicted = max(round_walls[-2:]) if round_walls else 0.0
    return elapsed_s + predicted <= budget_s


def machine(device: str | None = None) -> str:
    import os

    import torch

    on_gpu = torch.cuda.is_available() if device is None else str(device).startswith("cuda")
    dev = "CUDA GPU " + torch.cuda.get_device_name(0) if on_gpu else "CPU"
    return (f"{dev}; {len(os.sched_getaffinity(0))} CPU cores usable, load average {os.getloadavg()[0]:.1f}, "
            f"torch threads {torch.get_num_threads()}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")


def _shard_metadata(p: dict, device: str) -> dict:
    """Checkpoint metadata: the checked parameters and where the shard was relaxed."""
    return {"parameters": shard_parameters(p),
            "provenance": {"builder_version": BUILDER_VERSION, "engine": p["engine"], "device": device,
                           "machine": machine(device)}}


def relax_batch(items, p: dict, potential, folder: Path, *, progress: bool = True, shard_size: int | None = None):
    from dismai_data.physics.relax import relax_many

    device = getattr(potential, "dismai_device", None) or torch_device(p)
    return relax_many(items, potential=potential, fmax=p["fmax"], max_steps=p["max_steps"],
                      batch_size=p["batch_size"], checkpoint_dir=folder, scheduler=p["scheduler"],
                      workers=p["workers"], progress=progress, fast=ENGINES[p["engine"]],
                      shard_size=shard_size, shard_metadata=_shard_metadata(p, device))


def relaxation_provenance(folder: Path, ids: set[str]) -> list[dict]:
    """Where the candidates ``ids`` were relaxed, from their checkpoint shards' provenance:
    one entry per (machine, device, engine, builder version) with its candidate count."""
    from collections import Counter

    from dismai_data.physics.relax import checkpoint_index

    counts = Counter((str(prov.get("machine", "not recorded")).split(";")[0], prov.get("device"),
                      prov.get("engine"), prov.get("builder_version"))
                     for key, prov in checkpoint_index(folder / "candidates").items() if key in ids)
    return [{"machine": m, "device": d, "engine": e, "builder_version": v, "candidates": n}
            for (m, d, e, v), n in sorted(counts.items(), key=lambda x: -x[1])]


def run_summaries(folder: Path) -> list[dict]:
    """The summaries :func:`relax_candidates` left in the work folder (``runs/*.json``)."""
    out = []
    for path in sorted((folder / "runs").glob("relax-*.json")):
        d = json.loads(path.read_text())
        out.append({k: d.get(k) for k in ("started", "machine", "device", "workers", "batch_size",
                                          "candidates_relaxed", "wall_s", "cpu_s", "mean_steps")})
    return out


def _relax_worker(w: int, chunks: list[list[int]], p: dict, shard_size: int, deadline: float, queue,
                  done_ids: frozenset = frozenset()) -> None:
    """One process of :func:`relax_candidates`: its chunks in order, each generated then relaxed
    with relax_many into the build's checkpoint folder; no new chunk once the next one would
    end after ``deadline`` (time.time(), predicted from the longer of the last two chunks)."""
    import time

    import torch

    torch.set_num_threads(1)
    from dismai_data.physics.relax import load_potential

    device = torch_device(p)
    potential = load_potential(device=device)
    refs = references()
    folder = work_folder(p) / "candidates"
    walls: list[float] = []
    for ks in chunks:
        if all(f"cand-{k:06d}" in done_ids for k in ks):  # relaxed already (a resumed run)
            continue
        if walls and time.time() + max(walls[-2:]) > deadline:
            queue.put(("stopped", w, ks[0]))
            break
        t = time.time()
        items = [(f"cand-{k:06d}", generate(p["seed"], k, refs)[0]) for k in ks]
        res = relax_batch(items, p, potential, folder, progress=False, shard_size=shard_size)
        walls.append(time.time() - t)
        queue.put(("chunk", w, ks, [int(r.steps) for r in res], [bool(r.converged) for r in res], walls[-1]))
    queue.put(("done", w))


def relax_candidates(n_candidates: int, *, workers: int, deadline_s: float | None = None, chunk: int | None = None,
                     shard_size: int = 16, **params) -> dict:
    """Relax the reference structures and candidates 0..n_candidates-1 into the build's
    checkpoint folder (what ``dismai build interface`` with the same parameters then reads
    instead of relaxing), in ``workers`` processes of this machine that share its device: on a
    GPU host, one batched model call per step in each process (``batch_size`` structures) while
    the others prepare theirs. Candidates go out in chunks (``chunk``, default 2 x batch_size),
    chunk c to process c mod workers, so what is done when ``deadline_s`` stops new chunks is
    nearly a prefix of the candidates. Returns a summary (counts, walls, steps, machine)."""
    import multiprocessing as mp
    import queue as queue_module
    import time

    p = parse_params({**params, "n_candidates": n_candidates})
    t0 = time.time()
    deadline = t0 + deadline_s if deadline_s else float("inf")
    folder = work_folder(p)
    folder.mkdir(parents=True, exist_ok=True)
    from dismai_data.physics.relax import load_potential

    device = torch_device(p)
    ref_structs = reference_structures()
    ref_res = relax_batch(list(ref_structs.items()), p, load_potential(device=device), folder / "references",
                     progress=False)
    ref_wall = time.time() - t0
    size = int(chunk or 2 * p["batch_size"])
    chunks = [list(range(a, min(a + size, n_candidates))) for a in range(0, n_candidates, size)]
    from dismai_data.physics.relax import checkpoint_index

    done_ids = frozenset(checkpoint_index(folder / "candidates"))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_relax_worker, daemon=True,
                         args=(w, chunks[w::workers], p, int(shard_size), deadline, queue, done_ids))
             for w in range(workers)]
    for proc in procs:
        proc.start()
    done, steps, converged, alive = [], [], 0, workers
    while alive:
        try:
            msg = queue.get(timeout=5.0)
        except queue_module.Empty:  # check that the workers still live
            if not any(proc.is_alive() for proc in procs):
                break
            continue
        if msg[0] == "chunk":
            done += msg[2]
            steps += msg[3]
            converged += sum(msg[4])
            print(f"interface relax: {len(done)} candidates ({converged} converged) in {time.time() - t0:.0f} s; "
                  f"worker {msg[1]} chunk from {msg[2][0]} in {msg[5]:.0f} s", flush=True)
        elif msg[0] == "stopped":
            print(f"interface relax: worker {msg[1]} starts no chunk from {msg[2]} on (deadline)", flush=True)
        elif msg[0] == "done":
            alive -= 1
    for proc in procs:
        proc.join(timeout=30)
    import resource

    cpu = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    done.sort()
    prefix = next((i for i, k in enumerate(done) if k != i), len(done))
    summary = {"candidates_relaxed": len(done), "converged": converged, "complete_prefix": prefix,
               "mean_steps": (sum(steps) / len(steps)) if steps else None, "wall_s": round(time.time() - t0, 1),
               "cpu_s": round(sum(r.ru_utime + r.ru_stime for r in cpu), 1),
               "wall_s_references": round(ref_wall, 1), "reference_energies_eV": {
                   k: r.energy for k, r in zip(ref_structs, ref_res)}, "workers": workers,
               "batch_size": p["batch_size"], "chunk": size, "device": device, "machine": machine(device),
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)), "folder": str(folder)}
    # the card of the build that reads these shards reports every run that made them
    runs = folder / "runs"
    runs.mkdir(exist_ok=True)
    (runs / f"relax-{int(t0)}.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary
