"""The interface rows: candidates generated and relaxed round by round (within the time budget),
the low-energy ones kept; or rows read from the original Dismai-Bench files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from dismai_data.builders.interface.candidates import N_ATOMS, SPECIES_ORDER, generate
from dismai_data.builders.interface.energy import gamma_jm2, interface_energy_terms, reference_structures
from dismai_data.builders.interface.references import references
from dismai_data.builders.interface.relaxation import next_round_fits, relax_batch, relaxation_provenance, run_summaries
from dismai_data.builders.interface.params import torch_device, work_folder
from dismai_data.builders.common import rows_from_files


def _reference_terms(p: dict, potential, folder: Path) -> tuple[dict, dict]:
    """The references relaxed (bulk cells, isolated slabs): their energies and the constant terms of gamma."""
    refs = references()
    area = float(np.linalg.norm(np.cross(refs["lateral"][0], refs["lateral"][1])))
    ref_structs = reference_structures()
    ref_res = relax_batch(list(ref_structs.items()), p, potential, folder / "references")
    bad = [k for k, r in zip(ref_structs, ref_res) if r.error or r.energy is None]
    if bad:
        raise RuntimeError(f"reference relaxations failed: {bad}: {[r.error for r in ref_res]}")
    ref_energies = {k: float(r.energy) for k, r in zip(ref_structs, ref_res)}
    return ref_energies, interface_energy_terms(ref_energies, area)


def _relax_rounds(p: dict, potential, folder: Path, t_build: float, t0: float) -> dict:
    """Candidates 0..n_candidates-1 generated and relaxed in rounds of batch_size x workers; with a
    time budget (counted from ``t_build``) no round after the first once :func:`next_round_fits`
    says no. Returns the (k, info, result) done, the rounds' walls, where it stopped and the
    candidates found relaxed in the work folder before."""
    from dismai_data.physics.relax import checkpoint_index

    refs = references()
    chunk = max(p["batch_size"] * max(p["workers"], 1), 1)
    before = set(checkpoint_index(folder / "candidates"))  # relaxed by earlier runs (resumed here)
    done: list[tuple[int, dict, Any]] = []
    batch_walls: list[float] = []
    stopped_at = None
    budget = p["time_budget_s"]
    for start in range(0, p["n_candidates"], chunk):
        if budget is not None and done:  # the first batch always runs, so a budgeted build has data
            now = time.monotonic() - t_build
            if not next_round_fits(now, batch_walls, budget):
                stopped_at = start
                print(f"interface: time budget {budget:.0f} s: stopping after {len(done)} candidates "
                      f"({now:.0f} s elapsed, batches took {[round(w) for w in batch_walls]} s)", flush=True)
                break
        ks = list(range(start, min(start + chunk, p["n_candidates"])))
        tb = time.monotonic()
        gen = [generate(p["seed"], k, refs) for k in ks]
        res = relax_batch([(f"cand-{k:06d}", s) for k, (s, _) in zip(ks, gen)], p, potential, folder / "candidates")
        batch_walls.append(time.monotonic() - tb)
        done += [(k, info, r) for k, (_, info), r in zip(ks, gen, res)]
        n_conv = sum(1 for _, _, r in done if r.converged and r.error is None)
        print(f"interface: {len(done)} candidates relaxed ({n_conv} converged) in {time.monotonic() - t0:.0f} s; "
              f"last batch {batch_walls[-1]:.0f} s, steps {[int(r.steps) for r in res]}", flush=True)
    return {"done": done, "batch_walls": batch_walls, "stopped_at": stopped_at, "before": before}


def _select(p: dict, done: list, terms: dict) -> tuple[list, list, dict, float, list]:
    """The converged candidates, and those kept: within window_jm2 of the lowest interface energy,
    at most n_structures of them (lowest first), in candidate order; with their gammas and the lowest."""
    relaxed = [(k, info, r) for k, info, r in done if r.converged and r.error is None and r.structure is not None]
    if not relaxed:
        fmaxes = [round(float(r.fmax), 3) for _, _, r in done if r.fmax is not None]
        raise RuntimeError(f"no candidate relaxed to fmax {p['fmax']} eV/Å within {p['max_steps']} steps "
                           f"({len(done)} tried; final fmax: {fmaxes})")
    gammas = {k: gamma_jm2(float(r.energy), terms) for k, _, r in relaxed}
    g_min = min(gammas.values())
    in_window = sorted((x for x in relaxed if gammas[x[0]] <= g_min + p["window_jm2"] + 1e-12),
                       key=lambda x: (gammas[x[0]], x[0]))
    kept = in_window[:p["n_structures"]]
    kept.sort(key=lambda x: x[0])
    return relaxed, in_window, gammas, g_min, kept


def _rows(p: dict, kept: list, gammas: dict, g_min: float) -> list[dict]:
    from dismai_data.structure import row_from_structure

    rows = []
    for i, (k, info, r) in enumerate(kept):
        extra = {"energy": float(r.energy), "interface_energy": gammas[k],
                 "relative_interface_energy": gammas[k] - g_min, "thickness": info["thickness"],
                 "shift_a": info["shift_a"], "shift_b": info["shift_b"], "candidate": k,
                 "relax_steps": int(r.steps), "converged": bool(r.converged), "fmax": float(r.fmax)}
        rows.append(row_from_structure(r.structure, id=f"interface-{p['seed']}-{k:06d}", extra=extra, index=i,
                                       symmetry=False))
    return rows


def generated_rows(p: dict) -> tuple[list[dict], dict]:
    """Rows of the kept candidates (candidate order) and the build's record (counts, energies, walls,
    where the relaxations ran)."""
    from dismai_data.physics.relax import load_potential

    if p["scheduler"] == "local":
        # one LocalCluster for the whole build: its workers keep the potential (and a compiled
        # evaluator) from round to round instead of a new cluster per round
        from dismai_data.physics.relax import local_cluster

        with local_cluster(p["workers"]) as address:
            return generated_rows({**p, "scheduler": address})
    t_build = time.monotonic()  # the time budget counts from here (reference relaxations included)
    folder = work_folder(p)
    folder.mkdir(parents=True, exist_ok=True)
    potential = load_potential(device=torch_device(p))
    ref_energies, terms = _reference_terms(p, potential, folder)
    t0 = time.monotonic()
    ref_wall = t0 - t_build
    rounds = _relax_rounds(p, potential, folder, t_build, t0)
    done, batch_walls = rounds["done"], rounds["batch_walls"]
    relaxed, in_window, gammas, g_min, kept = _select(p, done, terms)
    rows = _rows(p, kept, gammas, g_min)
    here = sum(1 for k, _, _ in done if f"cand-{k:06d}" not in rounds["before"])
    stats = {"tried": len(done), "converged": len(relaxed), "kept": len(kept), "kept_in_window": len(in_window),
             "g_min": g_min,
             "g_max_converged": max(gammas.values()), "terms": terms, "ref_energies": ref_energies,
             "stopped_at": rounds["stopped_at"], "elapsed_s": time.monotonic() - t0, "reference_wall_s": ref_wall,
             "build_wall_s": time.monotonic() - t_build, "batch_walls_s": batch_walls,
             "relaxed_in_this_run": here,
             "wall_s_per_candidate": (sum(batch_walls) / here) if here else None,
             "steps_per_candidate": (sum(int(r.steps) for _, _, r in done) / len(done)) if done else None,
             "potential": getattr(potential, "dismai_source", "M3GNet-MP-2021.2.8-PES"), "folder": str(folder),
             "relaxed_where": relaxation_provenance(folder, {f"cand-{k:06d}" for k, _, _ in done}),
             "relaxation_runs": run_summaries(folder)}
    return rows, stats


_EXTRA_NULL = {"energy": None, "interface_energy": None, "relative_interface_energy": None, "thickness": None,
               "shift_a": None, "shift_b": None, "candidate": None, "relax_steps": None, "converged": None,
               "fmax": None}


def file_rows(p: dict) -> dict[str, list[dict]]:
    """Rows per split of the original extxyz files (``from_files``); the generation columns are null."""

    def extra(path: Path, i: int, row: dict) -> dict:
        if row["num_atoms"] != N_ATOMS or set(row["species"]) != set(SPECIES_ORDER):
            raise ValueError(f"{path} frame {i}: not a Li-Co-O-Sc-Cl interface of {N_ATOMS} atoms "
                             f"({row['formula']}, {row['num_atoms']} atoms)")
        out = dict(_EXTRA_NULL)
        if row.get("energy") is not None:
            out["energy"] = float(row["energy"])
        return out

    return rows_from_files(p["from_files"], extra)
