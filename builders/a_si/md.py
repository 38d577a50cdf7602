"""The melt-quench LAMMPS MD of one big a-Si cell, in fixed segments, checkpointed and resumable.

Each cell runs in its own serial LAMMPS instance, so it depends only on the parameters. The MD
runs in ``run`` commands of at most ``MD_SEGMENT_STEPS`` steps (see there), and checkpoints are
written only at segment boundaries: a resumed cell is bit-identical to an uninterrupted one
with the same LAMMPS binary.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from dismai_data.builders.a_si.checkpoint import CellCheckpoint
from dismai_data.builders.a_si.params import Interrupted, cell_edge, lammps_seeds, stop_checkpoints
from dismai_data.physics.lammps import minimize, pair_commands, positions_by_id, new_lammps

#: the MD runs in LAMMPS ``run`` commands of at most this many steps, each stage (melt,
#: quench, anneal) cut at multiples of it from its own start. Fixed (not ``checkpoint_ps``):
#: every ``run`` re-sorts the atoms and rebuilds the neighbour lists, which changes the
#: last bits of the forces, so the segment boundaries are part of the trajectory.
#: Checkpoints are written only at segment boundaries, so where (and whether) a run is
#: checkpointed or resumed does not change the data.
MD_SEGMENT_STEPS = 1000

_log = logging.getLogger(__name__)


def md_stages(p: dict) -> list[tuple[str, int, int, float, float]]:
    """(fix id, first step, last step, T start, T stop) of the melt, quench and anneal."""
    dt = p["timestep_fs"] / 1000.0
    steps = lambda ps: max(0, int(round(ps / dt)))  # noqa: E731
    tm, tf = p["melt_temperature"], p["final_temperature"]
    n_melt, n_quench, n_anneal = steps(p["melt_ps"]), steps((tm - tf) / p["quench_rate"]), steps(p["anneal_ps"])
    return [("melt", 0, n_melt, tm, tm), ("quench", n_melt, n_melt + n_quench, tm, tf),
            ("anneal", n_melt + n_quench, n_melt + n_quench + n_anneal, tf, tf)]


def md_segments(p: dict) -> list[tuple[int, int, int]]:
    """(stage index, first step, last step) of every MD ``run`` (see ``MD_SEGMENT_STEPS``)."""
    out = []
    for k, (_, s0, s1, _, _) in enumerate(md_stages(p)):
        for a in range(s0, s1, MD_SEGMENT_STEPS):
            out.append((k, a, min(a + MD_SEGMENT_STEPS, s1)))
    return out


def unwrapped_by_id(lmp, edge: float) -> np.ndarray:
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


def md_setup_commands(p: dict, pot_path: str) -> str:
    """Pair style, neighbour lists and timestep: what a restart file does not carry."""
    return (pair_commands(p["potential"], Path(pot_path))
            + "neighbor 1.0 bin\nneigh_modify every 1 delay 0 check yes\n"
            f"timestep {p['timestep_fs'] / 1000.0!r}\n")


def _resume(lmp, p: dict, state: dict, pot_path: str, ck: CellCheckpoint):
    """LAMMPS reads the checkpoint's restart file: (lmp, state); (a fresh lmp, None) when the
    file is unusable (the checkpoint is then discarded)."""
    try:
        lmp.commands_string(f"atom_modify map array\nread_restart {state['restart_path']}\n"
                            + md_setup_commands(p, pot_path))
        got = (int(lmp.get_natoms()), int(lmp.get_thermo("step")))
        if got != (p["cell_atoms"], state["step"]):
            raise ValueError(f"restart holds {got[0]} atoms at step {got[1]}, the state says "
                             f"{p['cell_atoms']} at {state['step']}")
        return lmp, state
    except Exception as exc:  # noqa: BLE001 - LAMMPS raises a plain Exception on a bad file
        ck.discard(exc)
        lmp.close()
        return new_lammps(), None


def _start(lmp, p: dict, cell: int, pot_path: str, L: float) -> dict:
    """Random atoms, a short CG against contacts, velocities: the run state at step 0."""
    place_seed, vel_seed = lammps_seeds(p["seed"], 0, cell)
    stages = md_stages(p)
    lmp.commands_string(
        "units metal\natom_style atomic\nboundary p p p\natom_modify map array\n"
        f"region box block 0 {L!r} 0 {L!r} 0 {L!r} units box\ncreate_box 1 box\n"
        f"create_atoms 1 random {p['cell_atoms']} {place_seed} NULL overlap 2.0 maxtry 1000 units box\n"
        + pair_commands(p["potential"], Path(pot_path))
        + "neighbor 1.0 bin\nneigh_modify every 1 delay 0 check yes\n")
    if lmp.get_natoms() != p["cell_atoms"]:
        raise RuntimeError(f"cell {cell}: placed {lmp.get_natoms()} of {p['cell_atoms']} atoms")
    lmp.commands_string("min_style cg\nminimize 0.0 1.0 200 2000\nreset_timestep 0\n"
                        f"timestep {p['timestep_fs'] / 1000.0!r}\n"
                        f"velocity all create {stages[0][3]!r} {vel_seed} mom yes rot yes dist gaussian\n")
    x0, melt = unwrapped_by_id(lmp, L), {}
    if stages[0][2] == 0:  # no melt
        melt = {"melt_msd": 0.0, "melt_energy_per_atom": float(lmp.get_thermo("pe")) / p["cell_atoms"]}
    return {"step": 0, "x0": x0, "melt": melt, "info": {"resumed": 0, "checkpoints_written": 0}}


def _resumed(state: dict, cell: int, total: int) -> dict:
    """The run state of a checkpoint that LAMMPS has read."""
    _log.info("a-si cell %d: resuming the melt-quench at MD step %d of %d", cell, state["step"], total)
    return {"step": state["step"], "x0": state["x0"],
            "melt": {k: state[k] for k in ("melt_msd", "melt_energy_per_atom") if k in state},
            "info": {"resumed": int(state["resumed"]) + 1, "checkpoints_written": int(state["checkpoints_written"])}}


def _run_segments(lmp, p: dict, run: dict, L: float, ck: CellCheckpoint | None,
                  stop_after_checkpoints: int | None) -> None:
    """The MD segments after ``run['step']``, each stage with its own Nose-Hoover fix; a
    checkpoint about every ``checkpoint_ps`` (at a segment boundary). Updates ``run``."""
    stages = md_stages(p)
    total = stages[-1][2]
    dt = p["timestep_fs"] / 1000.0
    every = max(1, int(round(p["checkpoint_ps"] / dt))) if p["checkpoint_ps"] > 0 else None
    step = last_ck = run["step"]
    written, fix = 0, None
    for k, a, b in md_segments(p):
        if b <= step:
            continue
        name, s0, s1, t0, t1 = stages[k]
        if fix != name:  # same id and style as before a checkpoint: LAMMPS restores its Nose-Hoover state
            lmp.command(f"fix {name} all nvt temp {t0!r} {t1!r} {p['thermostat_damp_ps']!r}")
            fix = name
        lmp.command(f"run {b - step} start {s0} stop {s1}")
        step = run["step"] = b
        if step == s1:
            if name == "melt":
                run["melt"] = {"melt_msd": mean_squared_displacement(run["x0"], unwrapped_by_id(lmp, L)),
                               "melt_energy_per_atom": float(lmp.get_thermo("pe")) / p["cell_atoms"]}
            lmp.command(f"unfix {name}")
            fix = None
        if ck is not None and every is not None and step < total and step - last_ck >= every:
            run["info"]["checkpoints_written"] += 1
            ck.save(lmp, p, step, run["x0"], {**run["info"], **run["melt"]})
            last_ck, written = step, written + 1
            if stop_after_checkpoints is not None and written >= stop_after_checkpoints:
                raise Interrupted(f"cell {ck.cell}: stopped after {written} checkpoints (MD step {step} of "
                                  f"{total}) in {ck.dir}")


def melt_quench(p: dict, cell: int, pot_path: str, workdir: str | Path | None = None,
                stop_after_checkpoints: int | None = None) -> dict:
    """One big a-Si cell: random start, melt, quench, anneal, relax (see the card's procedure).

    With ``workdir`` the MD is checkpointed every ``checkpoint_ps`` (at the next segment
    boundary, see ``MD_SEGMENT_STEPS``) and continues from a valid checkpoint found there;
    ``stop_after_checkpoints`` raises ``Interrupted`` after writing that many checkpoints
    in this call (tests, operations)."""
    L = cell_edge(p["cell_atoms"], p["density"])
    total = md_stages(p)[-1][2]
    ck = CellCheckpoint(Path(workdir), cell) if workdir is not None else None
    state = ck.load(p) if ck is not None else None
    lmp = new_lammps()
    try:
        if state is not None:
            lmp, state = _resume(lmp, p, state, pot_path, ck)
        run = _start(lmp, p, cell, pot_path, L) if state is None else _resumed(state, cell, total)
        first_step = run["step"]
        _run_segments(lmp, p, run, L, ck, stop_after_checkpoints)
        fmax, iters = minimize(lmp, p["fmax"])
        pe = float(lmp.get_thermo("pe")) / p["cell_atoms"]
        x = positions_by_id(lmp)
    finally:
        lmp.close()
    melt, info = run["melt"], run["info"]
    return {"positions": np.mod(x, L), "edge": np.float64(L), "energy_per_atom": np.float64(pe),
            "melt_msd": np.float64(melt["melt_msd"]), "melt_energy_per_atom": np.float64(melt["melt_energy_per_atom"]),
            "fmax": np.float64(fmax), "min_iterations": np.int64(iters), "md_steps": np.int64(total),
            "md_steps_this_run": np.int64(total - first_step), "resumed": np.int64(info["resumed"]),
            "resumed_at_step": np.int64(first_step), "checkpoints_written": np.int64(info["checkpoints_written"]),
            "discarded_checkpoints": np.int64(ck.discarded if ck is not None else 0)}


def cell_task(p: dict, cell: int, pot_path: str, workdir: str) -> str:
    """Melt-quench one cell (continuing from its mid-run checkpoint if there is a valid one);
    write ``cell_{cell}.npz`` atomically, then delete the checkpoint files."""
    path = Path(workdir) / f"cell_{cell:03d}.npz"
    ck = CellCheckpoint(Path(workdir), cell)
    if path.is_file():
        ck.remove()
        return str(path)
    t0 = time.perf_counter()
    res = melt_quench(p, cell, pot_path, workdir, stop_after_checkpoints=stop_checkpoints(p))
    res["seconds"] = np.float64(time.perf_counter() - t0)  # timing of this (last) run only, not part of the data
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **res)
    os.replace(tmp, path)
    ck.remove()
    return str(path)
