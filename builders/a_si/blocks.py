"""256-atom blocks: cut from a big cell the paper's way, relaxed with the same potential, in
checkpointed shards run by parallel worker processes."""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from dismai_data.builders.a_si.params import N_BLOCK_ATOMS
from dismai_data.physics.lammps import minimize, pair_commands, positions_by_id, new_lammps


def _pair_distances(x: np.ndarray, edge: float) -> np.ndarray:
    d = x[:, None, :] - x[None, :, :]
    d -= edge * np.round(d / edge)
    r = np.sqrt((d * d).sum(axis=2))
    np.fill_diagonal(r, np.inf)
    return r


def _face_regions(x: np.ndarray, edge: float, width: float) -> np.ndarray:
    """Boolean (24, n): membership of each atom in the 2 x 2 regions of the 6 faces'
    boundary layers (face k lo/hi; quadrant by the other two coordinates)."""
    out = []
    half = edge / 2.0
    for k in range(3):
        a, b = [j for j in range(3) if j != k]
        for side in (0, 1):
            layer = x[:, k] < width if side == 0 else x[:, k] >= edge - width
            for qa in (0, 1):
                for qb in (0, 1):
                    ina = (x[:, a] >= half) if qa else (x[:, a] < half)
                    inb = (x[:, b] >= half) if qb else (x[:, b] < half)
                    out.append(layer & ina & inb)
    return np.array(out)


def _region_box(r: int, edge: float, width: float) -> tuple[np.ndarray, np.ndarray]:
    k, rest = divmod(r, 8)
    side, q = divmod(rest, 4)
    qa, qb = divmod(q, 2)
    a, b = [j for j in range(3) if j != k]
    lo, hi = np.zeros(3), np.full(3, edge)
    lo[k], hi[k] = (0.0, width) if side == 0 else (edge - width, edge)
    lo[a], hi[a] = (edge / 2, edge) if qa else (0.0, edge / 2)
    lo[b], hi[b] = (edge / 2, edge) if qb else (0.0, edge / 2)
    return lo, hi


def _remove_clashes(x: np.ndarray, edge: float, p: dict, rng) -> tuple[np.ndarray, int]:
    """While a pair is closer than ``clash_distance``, remove one atom (at random) of the closest pair."""
    clashes = 0
    while len(x) > 1:
        r = _pair_distances(x, edge)
        i, j = np.unravel_index(np.argmin(r), r.shape)
        if r[i, j] >= p["clash_distance"]:
            break
        x = np.delete(x, i if rng.random() < 0.5 else j, axis=0)
        clashes += 1
    return x, clashes


def _add_atoms(x: np.ndarray, edge: float, p: dict, rng, block: int) -> tuple[np.ndarray, int]:
    """Up to 256 atoms: each at a random point of a least-populated face region (ties at random),
    at least ``add_min_distance`` from every atom (a region with no room is left out)."""
    width = float(p["boundary_width"])
    added = 0
    excluded: set[int] = set()
    while len(x) < N_BLOCK_ATOMS:
        counts = _face_regions(x, edge, width).sum(axis=1).astype(float)
        counts[list(excluded)] = np.inf
        if np.all(np.isinf(counts)):
            raise RuntimeError(f"block {block}: no room to add atoms {p['add_min_distance']} Å from the others")
        low = np.flatnonzero(counts == counts.min())
        region = int(low[rng.integers(len(low))])
        lo, hi = _region_box(region, edge, width)
        for _ in range(500):
            cand = rng.uniform(lo, hi)
            d = x - cand
            d -= edge * np.round(d / edge)
            if len(x) == 0 or np.sqrt((d * d).sum(axis=1)).min() >= p["add_min_distance"]:
                x = np.vstack([x, cand])
                added += 1
                break
        else:
            excluded.add(region)
    return x, added


def _remove_atoms(x: np.ndarray, edge: float, p: dict, rng) -> tuple[np.ndarray, int]:
    """Down to 256 atoms: each time a random atom of a most-populated face region (ties at random)."""
    width = float(p["boundary_width"])
    removed = 0
    while len(x) > N_BLOCK_ATOMS:
        members = _face_regions(x, edge, width)
        counts = members.sum(axis=1)
        high = np.flatnonzero(counts == counts.max())
        region = int(high[rng.integers(len(high))])
        atoms = np.flatnonzero(members[region])
        x = np.delete(x, int(atoms[rng.integers(len(atoms))]), axis=0)
        removed += 1
    return x, removed


def slice_block(cell_x: np.ndarray, cell_edge_: float, p: dict, block: int) -> dict:
    """Cut block ``block`` from a big cell and bring it to 256 atoms (see the card's procedure).
    Returns positions in the block cube [0, l)^3 and the counts of the fix-ups."""
    rng = np.random.default_rng([int(p["seed"]), 1, int(block)])
    n_cell = len(cell_x)
    edge = cell_edge_ * (N_BLOCK_ATOMS / n_cell) ** (1.0 / 3.0)
    origin = rng.uniform(0.0, cell_edge_, size=3)
    rel = np.mod(cell_x - origin, cell_edge_)
    x = rel[np.all(rel < edge, axis=1)]
    n_sliced = len(x)
    x, clashes = _remove_clashes(x, edge, p, rng)
    x, added = _add_atoms(x, edge, p, rng, block)
    x, removed = _remove_atoms(x, edge, p, rng)
    return {"positions": x, "edge": edge, "origin": origin, "n_sliced": n_sliced, "n_added": added,
            "n_removed": clashes + removed, "n_clash_removed": clashes}


def relax_block(lmp, x: np.ndarray, edge: float, p: dict, pot_path: str) -> dict:
    """Relax one block's positions (cell fixed) with the same potential."""
    n = len(x)
    lmp.command("clear")
    lmp.commands_string("units metal\natom_style atomic\nboundary p p p\natom_modify map array\n"
                        f"region box block 0 {edge!r} 0 {edge!r} 0 {edge!r} units box\ncreate_box 1 box\n")
    lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, x.reshape(-1).tolist())
    lmp.commands_string(pair_commands(p["potential"], Path(pot_path))
                        + "neighbor 1.0 bin\nneigh_modify every 1 delay 0 check yes\n")
    fmax, iters = minimize(lmp, p["fmax"])
    pe = float(lmp.get_thermo("pe")) / n
    return {"positions": np.mod(positions_by_id(lmp), edge), "energy_per_atom": pe, "fmax": fmax,
            "min_iterations": iters}


def shard_task(p: dict, shard: int, pot_path: str, workdir: str) -> str:
    """Slice and relax the blocks of one shard; write ``blocks_{shard}.npz`` atomically."""
    workdir = Path(workdir)
    path = workdir / f"blocks_{shard:05d}.npz"
    if path.is_file():
        return str(path)
    first = shard * p["shard_size"]
    blocks = list(range(first, min(p["n_blocks"], first + p["shard_size"])))
    cells: dict[int, tuple[np.ndarray, float]] = {}
    lmp = new_lammps()
    rec: dict[str, list] = {k: [] for k in ("block", "cell", "positions", "edge", "origin", "n_sliced", "n_added",
                                            "n_removed", "n_clash_removed", "energy_per_atom", "fmax",
                                            "min_iterations", "seconds")}
    try:
        for b in blocks:
            c = b % p["n_cells"]
            t0 = time.perf_counter()
            if c not in cells:
                with np.load(workdir / f"cell_{c:03d}.npz") as z:
                    cells[c] = (z["positions"], float(z["edge"]))
            s = slice_block(*cells[c], p, b)
            r = relax_block(lmp, s["positions"], s["edge"], p, pot_path)
            for k in ("origin", "n_sliced", "n_added", "n_removed", "n_clash_removed", "edge"):
                rec[k].append(s[k])
            for k in ("positions", "energy_per_atom", "fmax", "min_iterations"):
                rec[k].append(r[k])
            rec["block"].append(b)
            rec["cell"].append(c)
            rec["seconds"].append(time.perf_counter() - t0)  # timing only (not part of the data)
    finally:
        lmp.close()
    arrays = {k: np.asarray(v) for k, v in rec.items()}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return str(path)


def run_tasks(fn, tasks: list[tuple], workers: int) -> list:
    """``fn(*task)`` for every task: in this process (``workers`` 1) or in that many spawned
    processes (0: all CPUs); results in task order."""
    if workers == 0:
        workers = os.cpu_count() or 1
    if workers <= 1 or len(tasks) <= 1:
        return [fn(*t) for t in tasks]
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=get_context("spawn")) as ex:
        futures = [ex.submit(fn, *t) for t in tasks]
        return [f.result() for f in futures]
