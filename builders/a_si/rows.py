"""The a-Si rows: melt-quench cells and block shards run (or reused) in the work folder and read
back as rows, or rows read from the original Dismai-Bench files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dismai_data.builders.a_si.blocks import run_tasks, shard_task
from dismai_data.builders.a_si.md import cell_task
from dismai_data.builders.a_si.params import Interrupted, prepare_workdir, stop_checkpoints
from dismai_data.builders.common import rows_from_files
from dismai_data.physics.lammps import potential_file


def _run_shards(p: dict, pot: str, workdir: Path, n_shards: int) -> None:
    """Slice and relax the shards not in the work folder yet (a number of them with ``stop_after``)."""
    todo = [s for s in range(n_shards) if not (workdir / f"blocks_{s:05d}.npz").is_file()]
    shard_limit = p["stop_after"] not in (None, "", "cells") and stop_checkpoints(p) is None
    if shard_limit:
        limit = int(p["stop_after"])
        done = n_shards - len(todo)
        todo = todo[:max(0, limit - done)]
    run_tasks(shard_task, [(p, s, pot, str(workdir)) for s in todo], p["workers"])
    if shard_limit and any(
            not (workdir / f"blocks_{s:05d}.npz").is_file() for s in range(n_shards)):
        raise Interrupted(f"stopped after {p['stop_after']} block shards in {workdir}")


def _shard_rows(path: Path) -> list[dict]:
    from dismai_data.structure import make_row

    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    rows = []
    for k in range(len(d["block"])):
        b, edge = int(d["block"][k]), float(d["edge"][k])
        frac = np.mod(d["positions"][k] / edge, 1.0)
        extra = {"energy_per_atom": float(d["energy_per_atom"][k]), "source_cell": int(d["cell"][k]),
                 "block_index": b, "block_origin": [float(v) for v in d["origin"][k]],
                 "n_sliced": int(d["n_sliced"][k]), "n_added": int(d["n_added"][k]),
                 "n_removed": int(d["n_removed"][k]), "fmax": float(d["fmax"][k])}
        rows.append(make_row(["Si"] * len(frac), frac, np.diag([edge] * 3), f"a-si-{b:05d}", extra,
                             symmetry=False))
    return rows


def md_rows(p: dict) -> tuple[list[dict], dict]:
    """Rows of every block, in block order, and the cells' records (energies, melt MSD, resumes)."""
    workdir = prepare_workdir(p)
    pot = str(potential_file(p["potential"], workdir))
    run_tasks(cell_task, [(p, c, pot, str(workdir)) for c in range(p["n_cells"])], p["workers"])
    if p["stop_after"] == "cells":
        raise Interrupted(f"stopped after the melt-quench checkpoints in {workdir}")
    n_shards = math.ceil(p["n_blocks"] / p["shard_size"])
    _run_shards(p, pot, workdir, n_shards)
    cells = []
    for c in range(p["n_cells"]):
        with np.load(workdir / f"cell_{c:03d}.npz") as z:
            cells.append({k: z[k].item() if z[k].ndim == 0 else None for k in z.files if k != "positions"})
    rows = [r for s in range(n_shards) for r in _shard_rows(workdir / f"blocks_{s:05d}.npz")]
    stats = {"workdir_checkpoints": {"cells": p["n_cells"], "shards": n_shards}, "cells": cells,
             "potential_path": Path(pot)}
    return rows, stats


def file_rows(p: dict) -> dict[str, list[dict]]:
    """Rows per split of the original extxyz files (``from_files``); the MD columns are null."""
    def extra(path: Path, i: int, row: dict) -> dict:
        if set(row["species"]) != {"Si"}:
            raise ValueError(f"{path} frame {i}: not a pure Si structure ({row['formula']})")
        return {"energy_per_atom": None, "source_cell": None, "block_index": None, "block_origin": None,
                "n_sliced": None, "n_added": None, "n_removed": None, "fmax": None}

    return rows_from_files(p["from_files"], extra)
