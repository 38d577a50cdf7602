"""The interface card: citation, columns, summary, procedure and where the relaxations ran."""

from __future__ import annotations

from dismai_data.build import Column, SourceFile
from dismai_data.builders.common import DISMAI_BENCH_CITATION
from dismai_data.builders.interface.params import data_params
from dismai_data.builders.interface.references import RAW, references
from dismai_data.builders.interface.relaxation import machine


CITATION = DISMAI_BENCH_CITATION + """@article{chen2022m3gnet,
  title   = {A universal graph deep learning interatomic potential for the periodic table},
  author  = {Chen, Chi and Ong, Shyue Ping},
  journal = {Nature Computational Science},
  volume  = {2},
  pages   = {718--728},
  year    = {2022},
  doi     = {10.1038/s43588-022-00349-3}
}
@article{orman1984lco,
  title   = {Cobalt(III) lithium oxide, CoLiO2: structure refinement by powder neutron diffraction},
  author  = {Orman, H. J. and Wiseman, P. J.},
  journal = {Acta Crystallographica Section C},
  volume  = {40},
  pages   = {12--14},
  year    = {1984},
  doi     = {10.1107/S0108270184002833}
}
@article{bohnsack1997lsc,
  title   = {Tern{\\"a}re Halogenide vom Typ A3MX6. VI. Tern{\\"a}re Chloride der Selten-Erd-Elemente mit Lithium,
             Li3MCl6 (M = Tb-Lu, Y, Sc): Synthese, Kristallstrukturen und Ionenbewegung},
  author  = {Bohnsack, Andreas and Balzer-J{\\"o}llenbeck, Gabriele and Meyer, Gerd},
  journal = {Zeitschrift f{\\"u}r anorganische und allgemeine Chemie},
  volume  = {623},
  pages   = {1352--1356},
  year    = {1997},
  doi     = {10.1002/zaac.19976230905}
}
@article{zur1984,
  title   = {Lattice match: an application to heteroepitaxy},
  author  = {Zur, A. and McGill, T. C.},
  journal = {Journal of Applied Physics},
  volume  = {55},
  pages   = {378--386},
  year    = {1984},
  doi     = {10.1063/1.333084}
}"""


#: how the rebuilt data are made (the card's provenance; every random number from ``seed``)
PROCEDURE = """1. Bulk cells from published crystallography (``builders/raw/interface/*.json``, sha256
   checked): LiCoO2 R-3m (a = 2.8156, c = 14.0542 Å, O z = 0.2396) and an ordered approximant
   of Li3ScCl6 C2/m (Bohnsack et al. 1997 lattice; Sc 2a, Li 4g + 2d, Cl on ideal cubic
   close-packed 4i/8j sites), both relaxed (cell and positions, fmax 0.01 eV/Å, matgl Relaxer)
   with the same M3GNet potential as the interfaces (:func:`dismai_data.physics.relax.load_potential`,
   with the matgl 4.1.2 message-direction fix): LiCoO2 a = 2.8273, c = 14.3416 Å (+2.9 % volume);
   Li3ScCl6 a = 6.3442, b = 11.2191, c = 6.3710 Å, beta = 108.49° (+1.3 %).
   ``references.json`` (:func:`make_references`, ``bulk_cells = m3gnet``) records the published
   and relaxed lattices, the relaxation steps and final forces, and the slabs cut from them.
2. Slabs: LCO(110) and LSC(100) oriented cells (pymatgen ``SlabGenerator.oriented_unit_cell``),
   lattice-matched with pymatgen's Zur-McGill ``ZSLGenerator``; the match with 9 LCO and 3 LSC
   formula units per atomic plane and the smallest strain is used; the lateral cell is the
   LCO one (LSC strained onto it, as the paper fixes the lateral cell to LCO). LCO: 4 (110)
   planes (each Li9 Co9 O18, non-polar). LSC(100): the stacking is Cl18 | Li9Sc3 | Cl18 | ...
   (Tasker type 3, polar); the slab Cl | cat | Cl | cat | Cl | cat | Cl keeps 9 of the 18 Cl of
   each outer plane, i.e. half of the surface Cl moved to the other surface (Tasker 2b): 7
   layers, Li27 Sc9 Cl54, no dipole along the normal.
3. Candidate k (``numpy.random.default_rng([seed, k])``): interface-region thickness t uniform
   in [4, 6] Å = distance from the top LCO plane to the bottom LSC plane; random lateral shift
   of the LSC slab (fractions of both in-plane vectors, uniform in [0, 1)); the 30 region atoms
   (Cl18, then Sc3, then Li9: most constrained first) placed one by one at uniform random points
   of the layer (z between the two facing planes) at least ``MIN_DISTANCE`` from every atom
   already there (periodic images included; the first allowed point of up to 20000 tried),
   restarting the region when an atom cannot be placed; after 50 failed restarts the thickness is
   redrawn from the same stream (at most 20 draws; ``thickness`` is the one used), so every
   candidate is complete and deterministic;
   14 Å vacuum along the normal (c perpendicular to the interface). 264 atoms, ordered by
   species Li, Co, O, Sc, Cl, and within a species interface region first, then by distance from
   the interface (LCO planes from the top down, LSC planes from the bottom up): the first 72 atoms
   are Li, the first 9 of them in the interface region, the next 9 in the top LCO plane.
4. Relaxation of positions (cell fixed) with M3GNet through :func:`dismai_data.physics.relax.relax_many`
   to max force ``fmax`` (``max_steps`` at most; unconverged structures are not kept).
5. Interface energy (J/m^2) from references relaxed with the same potential in the same lateral
   cell: gamma = [E - E_LCO_slab/2 - 18 e_LCO - E_LSC_slab/2 - 7.5 e_LSC] / A, i.e. E minus the
   bulk energy of its 36 LCO and 12 LSC formula units minus the surface energies of the two free
   faces (one LCO(110), one LSC(100) Tasker-2b), where e_X is the bulk energy per formula unit and
   E_X_slab the relaxed isolated slab (both faces free). Kept: gamma <= min(gamma) + window_jm2
   (0.4 J/m^2, the paper's low-energy criterion); at most n_structures of them, lowest first.
   With ``time_budget_s`` (counted from the start, reference relaxations included) no new batch
   after the first is started once the budget is spent or the next batch would overrun it (its
   length predicted by :func:`next_round_fits` from the last two batches); the dataset
   is then made from the candidates finished (converged ones only) and called v1.0-preview.
6. Split: ``default_rng([seed, 2]).permutation(n)``; the first round(0.8 n) are ``train``, the
   rest ``validation``."""


def columns() -> dict[str, Column]:
    from datasets import Value

    return {
        "energy": Column(Value("float64"), "eV", "total energy after relaxation (M3GNet-MP-2021.2.8-PES)"),
        "interface_energy": Column(Value("float64"), "J/m^2", "gamma = [E - E_LCO_slab/2 - 18 e_LCO - "
                                   "E_LSC_slab/2 - 7.5 e_LSC] / A: energy above the bulk of its 36 LCO and 12 "
                                   "LSC formula units, minus the surface energies of the two free faces (see card)"),
        "relative_interface_energy": Column(Value("float64"), "J/m^2", "interface_energy minus the lowest one "
                                            "found in this build (the paper's low-energy criterion: <= 0.4)"),
        "thickness": Column(Value("float64"), "Å", "interface-region thickness drawn in [4, 6] (top LCO plane "
                                                   "to bottom LSC plane, before relaxation)"),
        "shift_a": Column(Value("float64"), "", "lateral shift of the LSC slab along a (fraction)"),
        "shift_b": Column(Value("float64"), "", "lateral shift of the LSC slab along b (fraction)"),
        "candidate": Column(Value("int32"), "", "candidate index k (random stream default_rng([seed, k]))"),
        "relax_steps": Column(Value("int32"), "", "relaxation steps (FIRE, positions only)"),
        "converged": Column(Value("bool"), "", "max force <= fmax at the end (always true when rebuilt)"),
        "fmax": Column(Value("float64"), "eV/Å", "largest atomic force after relaxation"),
    }


def summary(p: dict, n: int, stats: dict, from_files: bool) -> str:
    if from_files:
        return (f"{n} Li3ScCl6(100)-LiCoO2(110) interface structures of Dismai-Bench (Yong, Su and Ertekin, Digital "
                "Discovery 2024) read from the user's copies of the original Zenodo extxyz files "
                "(10.5281/zenodo.12710372) by dismai-data's interface builder (`--set from_files=...`); structures "
                "and splits are the originals; the generation and interface-energy columns are null.")
    budgeted = stats.get("stopped_at") is not None
    full = ("the full build (n_candidates 3000) is `dismai build interface --out DIR --set scheduler=ADDRESS --set "
            "workers=N` on a Dask cluster, or `dismai build interface --out DIR` on a GPU machine")
    if budgeted or n < p["n_structures"]:
        per = stats.get("wall_s_per_candidate")
        budget = (f"a wall budget of {p['time_budget_s']:.0f} s" if p["time_budget_s"] is not None
                  else "no time budget")
        size = (f"**{n} structures: a time-budgeted v1.0-preview, not the full dataset.** Built with {budget} "
                f"({stats['build_wall_s']:.0f} s used) on {_machine_words()}: {stats['tried']} random candidates "
                f"relaxed ({'%.0f s' % per if per is not None else 'n/a'} wall per candidate relaxation, batches of "
                f"{p['batch_size']}), {stats['converged']} converged to fmax, {n} within {p['window_jm2']} J/m^2 of "
                f"the lowest; the paper has 1500 from about 3000 candidates; {full}")
    else:
        size = (f"{n} structures, the lowest {n} of the {stats['kept_in_window']} within {p['window_jm2']} J/m^2 "
                f"of the lowest interface energy among {stats['converged']} converged of {stats['tried']} random "
                f"candidates (0..{stats['tried'] - 1}; the paper kept 1500 of its own relaxed candidates)"
                ) if stats.get("kept_in_window") else f"{n} structures"
    where = _where_words(stats)
    if where:
        size += f". {where}"
    return (f"{size}. Disordered Li3ScCl6(100)-LiCoO2(110) battery interfaces of 264 atoms, **rebuilt here, not "
            "downloaded**: the Dismai-Bench data (Zenodo 10.5281/zenodo.12710372) cannot be reached from here, so "
            "this builder regenerates them with the paper's recipe (Methods 4.1.3): LCO(110) 4 layers and "
            "Tasker-2b LSC(100) 7 layers lattice-matched with pymatgen's Zur-McGill ZSL "
            f"(mean length strain {100 * references()['match']['mean_length_strain']:.2f} %, paper 2.17 %), an "
            "interface region of 3 LSC formula units placed at random in a 4-6 Å layer, a random lateral shift of "
            "the LSC slab, 14 Å vacuum, positions relaxed to fmax "
            f"{p['fmax']} eV/Å with the lateral cell fixed, and the structures within {p['window_jm2']} J/m^2 of the "
            "lowest interface energy kept. Differences from the paper: the relaxations use the **universal "
            "M3GNet-MP-2021.2.8-PES** through matgl (the paper trained its own M3GNet on DFT of this interface); "
            "the interface energy is defined from our own relaxed bulk and slab references (column "
            "`interface_energy`, J/m^2; the paper normalised with -4.78 eV/atom from its potential), and "
            "`relative_interface_energy` is measured from the lowest structure of this build; the slabs are cut "
            f"from {_bulk_words()} (see provenance); and the size is as stated above.")


def _where_words(stats: dict) -> str:
    """Where the candidates of this build were relaxed (shard provenance), in words."""
    parts = []
    for w in stats.get("relaxed_where") or []:
        on = f"{w['machine']} ({w['device']}, engine {w['engine']})" if w.get("device") else w["machine"]
        parts.append(f"{w['candidates']} on {on}")
    runs = [r for r in stats.get("relaxation_runs") or [] if r.get("candidates_relaxed")]
    text = ("Relaxations (checkpoint shards, reused by a rerun with the same parameters): " + "; ".join(parts)
            if parts else "")
    if any(str(w.get("device") or "").startswith("cuda") for w in stats.get("relaxed_where") or []):
        text += (" (on the GPU: the same fast exact M3GNet function and ASE-FIRE rule as on a CPU, float32 sums "
                 "in another order; `benchmarks/interface_gpu.py` compares the two)")
    if runs:
        text += ". Runs: " + "; ".join(
            f"{r['candidates_relaxed']} candidates in {r['wall_s']:.0f} s wall on {r['machine'].split(';')[0]} "
            f"({r['workers']} processes, batches of {r['batch_size']}"
            + (f", {r['cpu_s'] / 3600:.2f} CPU-hours" if r.get("cpu_s") else "") + f", started {r['started']})"
            for r in runs)
    return text


def _bulk_words() -> str:
    refs = references()
    if refs["bulk_cells"] != "m3gnet":
        return "the published bulk cells (not relaxed with the potential)"
    r = refs["bulk_relaxation"]

    def lat(d, keys):
        return ", ".join(f"{k} = {d[k]:.4g}{'°' if k == 'beta' else ' Å'}" for k in keys)
    lco, lsc = r["LiCoO2"], r["Li3ScCl6"]
    return ("bulk cells relaxed (cell and positions, fmax 0.01 eV/Å) with the same M3GNet potential: LiCoO2 "
            f"{lat(lco['m3gnet_lattice'], ('a', 'c'))} (published {lat(lco['published_lattice'], ('a', 'c'))}), "
            f"Li3ScCl6 {lat(lsc['m3gnet_lattice'], ('a', 'b', 'c', 'beta'))} (published "
            f"{lat(lsc['published_lattice'], ('a', 'b', 'c', 'beta'))}), so the slabs carry no strain from a "
            "lattice mismatch with the potential (LSC is then strained onto the LCO lateral cell as in the paper)")


def _machine_words() -> str:
    import os

    import torch

    if torch.cuda.is_available():
        return "a GPU (" + torch.cuda.get_device_name(0) + ")"
    load, ncpu = os.getloadavg()[0], len(os.sched_getaffinity(0))
    return (f"{ncpu} shared CPU cores (load average {load:.1f} at the end: shared with other jobs)"
            if load > 0.5 * ncpu else f"{ncpu} CPU cores")


def sources() -> list[SourceFile]:
    """The raw inputs (``builders/raw/interface``) with their sha256."""
    from dismai_data.raw import sha256_file

    return [SourceFile(name=f"interface/{f}", sha256=sha256_file(RAW / f), source=src, licence=lic)
            for f, src, lic in (
                ("LiCoO2_R-3m.json", "published crystallography (Orman & Wiseman 1984; Akimoto et al. 1998), "
                                     "typed by hand", "facts (no licence needed); file CC BY 4.0"),
                ("Li3ScCl6_C2m.json", "lattice of Bohnsack et al. 1997; ordered approximant made here",
                 "facts; file CC BY 4.0"),
                ("references.json", "made by make_references() from the two files above", "CC BY 4.0"))]


def parameters(p: dict, stats: dict) -> dict:
    """The card's parameters of a rebuilt set: the data parameters, the references, the candidates'
    counts, and the walls and machines of the relaxations."""
    out = dict(data_params(p))
    out.update({"time_budget_s": p["time_budget_s"], "potential": stats["potential"],
                "zsl_match": references()["match"], "bulk_cells": references()["bulk_cells"],
                "reference_energies_eV": stats["ref_energies"],
                "surface_energies_jm2": {"LCO(110)": stats["terms"]["sigma_lco_jm2"],
                                         "LSC(100) Tasker 2b": stats["terms"]["sigma_lsc_jm2"]},
                "candidates_tried": stats["tried"], "candidates_converged": stats["converged"],
                "candidates_kept": stats["kept"], "candidates_in_window": stats["kept_in_window"],
                "candidates_relaxed_in_this_run": stats["relaxed_in_this_run"],
                "lowest_interface_energy_jm2": stats["g_min"],
                "stopped_by_time_budget": stats["stopped_at"] is not None,
                "wall_s_reference_relaxations": round(stats["reference_wall_s"], 1),
                # walls and machine of this run; a build assembled from checkpoint shards relaxed
                # elsewhere says so (where they were relaxed: candidates_relaxed_on, relaxation_runs)
                "wall_s_candidates": (round(sum(stats["batch_walls_s"]), 1) if stats["relaxed_in_this_run"]
                                      else None),
                "wall_s_per_candidate_relaxation": (None if stats["wall_s_per_candidate"] is None
                                                    else round(stats["wall_s_per_candidate"], 1)),
                "mean_steps_per_candidate": (None if stats["steps_per_candidate"] is None
                                             else round(stats["steps_per_candidate"], 1)),
                "wall_s_build": round(stats["build_wall_s"], 1),
                "machine": machine() + ("" if stats["relaxed_in_this_run"] else
                                        " (this run only assembled the dataset from checkpoint shards)"),
                "candidates_relaxed_on": stats["relaxed_where"],
                "relaxation_runs": stats["relaxation_runs"]})
    return out
