"""The a-Si builder's parameters, constants and work folder: what a build's data depend on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from dismai_data.paths import default_home
from dismai_data.physics.lammps import lammps_version

BUILDER_VERSION = "1.1.0"
DESCRIPTION = ("Dismai-Bench amorphous Si (256-atom blocks), rebuilt by LAMMPS melt-quench MD (Stillinger-Weber, "
               "Vink 2001 a-Si parameters) and sliced as the paper; or read from the original extxyz files")

N_BLOCK_ATOMS = 256
SI_MASS = 28.0855  # g/mol
AVOGADRO = 6.02214076e23
TARGET_DENSITY = 2.28  # g/cm^3

PARAMETERS: dict[str, tuple[Any, str]] = {
    "seed": (2024, "base seed of every random number (atom placement, velocities, block origins, atom "
                   "addition/removal, split)"),
    "n_blocks": (1500, "number of 256-atom blocks (train + validation)"),
    "train_fraction": (0.8, "fraction of blocks in the train split (rest: validation)"),
    "potential": ("sw-vink", "sw-vink (Stillinger-Weber, Vink et al. 2001 a-Si parameters), sw (original "
                             "Stillinger-Weber 1985) or tersoff (Tersoff 1988, Si.tersoff)"),
    "n_cells": (4, "independent melt-quench cells; block b is cut from cell b % n_cells"),
    "cell_atoms": (8000, "atoms per melt-quench cell"),
    "density": (TARGET_DENSITY, "density of the melt-quench cells (NVT), g/cm^3; blocks keep it exactly"),
    "melt_temperature": (3500.0, "melt temperature, K"),
    "melt_ps": (10.0, "time in the melt, ps"),
    "quench_rate": (100.0, "linear quench rate, K/ps (100 K/ps = 1e14 K/s)"),
    "final_temperature": (300.0, "end of the quench, K"),
    "anneal_ps": (5.0, "time at final_temperature after the quench, ps"),
    "timestep_fs": (1.0, "MD timestep, fs"),
    "thermostat_damp_ps": (0.1, "Nose-Hoover damping time, ps"),
    "boundary_width": (2.5, "thickness of the face regions (2 x 2 per face) used to add/remove atoms, Å"),
    "clash_distance": (1.7, "after slicing, remove one atom of any pair closer than this (Å)"),
    "add_min_distance": (2.1, "an added atom is at least this far from every atom, Å"),
    "fmax": (0.05, "relaxation stops when the max atomic force is below this, eV/Å"),
    "coordination_cutoff": (None, "bond cutoff for coordination and angles, Å (null: first minimum of the "
                                  "dataset's radial distribution function)"),
    "shard_size": (25, "blocks per checkpointed shard"),
    "checkpoint_ps": (2.0, "write a mid-run checkpoint of each melt-quench cell (LAMMPS restart file) after about "
                           "this much MD time (at the next 1000-step segment boundary; 0: none); does not change "
                           "the data"),
    "workers": (2, "parallel LAMMPS processes (1 = in this process; 0 = all CPUs); does not change the data"),
    "workdir": (None, "folder for checkpoints (big cells, their mid-run MD checkpoints, block shards); a rerun "
                      "continues there (default: $DISMAI_HOME or the user cache dir, under work/a-si-<hash of the "
                      "builder version and parameters>)"),
    "strict_quality": (True, "fail the build if a quality target is missed (density within 3 % of 2.28 "
                             "g/cm^3, >= 80 % four-fold, mean bond angle within 2 deg of 109, no pair < 2.0 Å)"),
    "stop_after": (None, "stop (raise Interrupted) after this stage, leaving the workdir to resume: 'cells', "
                         "a number of block shards, or 'checkpoints:N' (each unfinished cell stops after writing N "
                         "mid-run checkpoints in this run); for tests and operations"),
    "from_files": (None, "instead of MD: a folder, file or comma-separated list of the original Dismai-Bench "
                         "a-Si extxyz files; split (train/val) from each file name"),
}

#: parameters that never change the data (not part of the checkpoint hash nor of the card)
RUNTIME = ("workers", "workdir", "strict_quality", "stop_after", "from_files", "checkpoint_ps")


class Interrupted(RuntimeError):
    """Raised by ``stop_after``: the work folder holds the checkpoints to resume from."""


def parse_params(params: dict) -> dict:
    """The full parameter set: defaults updated with ``params``, typed and checked."""
    unknown = set(params) - set(PARAMETERS)
    if unknown:
        raise TypeError(f"unknown a-si parameter(s): {', '.join(sorted(unknown))}; known: {', '.join(PARAMETERS)}")
    p = {k: v[0] for k, v in PARAMETERS.items()}
    p.update(params)
    for k in ("seed", "n_blocks", "n_cells", "cell_atoms", "shard_size", "workers"):
        p[k] = int(p[k])
    for k in ("train_fraction", "density", "melt_temperature", "melt_ps", "quench_rate", "final_temperature",
              "anneal_ps", "timestep_fs", "thermostat_damp_ps", "boundary_width", "clash_distance",
              "add_min_distance", "fmax", "checkpoint_ps"):
        p[k] = float(p[k])
    p["potential"] = str(p["potential"])
    if p["coordination_cutoff"] in ("", "none", "None"):
        p["coordination_cutoff"] = None
    if p["coordination_cutoff"] is not None:
        p["coordination_cutoff"] = float(p["coordination_cutoff"])
    if isinstance(p["strict_quality"], str):
        p["strict_quality"] = p["strict_quality"].lower() not in ("0", "false", "no")
    _check(p)
    return p


def _check(p: dict) -> None:
    if p["potential"] not in ("sw", "sw-vink", "tersoff"):
        raise ValueError(f"potential must be sw-vink, sw or tersoff, not {p['potential']!r}")
    if not 0 < p["train_fraction"] < 1:
        raise ValueError("train_fraction must be in (0, 1)")
    if p["cell_atoms"] <= N_BLOCK_ATOMS:
        raise ValueError(f"cell_atoms must exceed {N_BLOCK_ATOMS} (blocks are cut from the cells)")
    if p["n_blocks"] < 2 or p["n_cells"] < 1 or p["shard_size"] < 1:
        raise ValueError("need n_blocks >= 2, n_cells >= 1, shard_size >= 1")
    if p["melt_temperature"] <= p["final_temperature"] or p["quench_rate"] <= 0:
        raise ValueError("melt_temperature must exceed final_temperature and quench_rate must be positive")


def data_params(p: dict) -> dict:
    """The parameters the data depend on (the card's, and the work folder's key)."""
    return {k: v for k, v in p.items() if k not in RUNTIME}


def data_key(p: dict) -> str:
    """sha256 of the builder version and the data parameters (names a work folder and its checkpoints)."""
    key = json.dumps({"builder_version": BUILDER_VERSION, "parameters": data_params(p)}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def stop_checkpoints(p: dict) -> int | None:
    """N of ``stop_after='checkpoints:N'``, else None."""
    s = p["stop_after"]
    if isinstance(s, str) and s.startswith("checkpoints:"):
        return int(s.split(":", 1)[1])
    return None


def lammps_seeds(seed: int, *key: int) -> list[int]:
    """The two LAMMPS seeds (atom placement, velocities) of ``SeedSequence([seed, *key])``."""
    return [int(s % 900_000_000) + 1 for s in np.random.SeedSequence([int(seed), *map(int, key)]).generate_state(2)]


def cell_edge(n_atoms: int, density: float) -> float:
    """Edge (Å) of a cube holding ``n_atoms`` Si at ``density`` g/cm^3."""
    return (n_atoms * SI_MASS / AVOGADRO / density * 1e24) ** (1.0 / 3.0)


def default_workdir(p: dict) -> Path:
    digest = data_key(p)[:12]
    return default_home() / "work" / f"a-si-{digest}"


def prepare_workdir(p: dict) -> Path:
    """The work folder (created), stamped with the data parameters; one of another build is refused."""
    workdir = Path(p["workdir"]).expanduser() if p["workdir"] not in (None, "") else default_workdir(p)
    workdir.mkdir(parents=True, exist_ok=True)
    stamp = workdir / "parameters.json"
    data = {"builder_version": BUILDER_VERSION, "lammps": lammps_version(), "parameters": data_params(p)}
    if stamp.is_file():
        old = json.loads(stamp.read_text())
        if old != json.loads(json.dumps(data)):
            raise ValueError(f"{workdir} holds checkpoints of a different build ({stamp}); use another workdir or "
                             "delete it")
    else:
        stamp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return workdir
