"""Dismai-Bench Li3ScCl6(100)-LiCoO2(110) disordered interfaces, rebuilt by random generation
and M3GNet relaxation (the paper's Methods 4.1.3 and section 2.1.3).

The paper's structures cannot be reached from here, so candidates are generated from the
published bulk cells (relaxed with the same potential) with the paper's recipe, relaxed with
M3GNet and the low-interface-energy ones kept; the procedure is :data:`card.PROCEDURE`;
``from_files`` reads the original extxyz files instead.

Modules: ``params``, ``references`` (raw inputs, references.json), ``slabs`` (slab geometry,
ZSL match), ``lateral`` (BLAS-free lateral arithmetic), ``candidates`` (random interfaces),
``energy`` (interface energy), ``relaxation`` (relax_many, checkpoint shards, the ``relax``
sub-command's driver), ``rows`` (rounds, selection, rows) and ``card``;
``python -m dismai_data.builders.interface`` runs ``__main__``.
"""

from __future__ import annotations

from dismai_data.build import DatasetBuild
from dismai_data.builders.common import seeded_split
from dismai_data.builders.interface import card
from dismai_data.builders.interface.candidates import (MAX_RESTARTS, MAX_THICKNESS_DRAWS, MIN_DISTANCE, N_ATOMS,
                                                       REGION, SPECIES_ORDER, THICKNESS_RANGE, TRIES_PER_ATOM, VACUUM,
                                                       generate, min_dist_table, unrelaxed_interfaces)
from dismai_data.builders.interface.card import CITATION, PROCEDURE
from dismai_data.builders.interface.energy import (EV_PER_A2_TO_J_PER_M2, gamma_jm2, interface_energy_terms,
                                                   reference_structures)
from dismai_data.builders.interface.lateral import inv2, lateral_frac, times2
from dismai_data.builders.interface.params import (BUILDER_VERSION, DESCRIPTION, ENGINES, GENERATOR_VERSION,
                                                   PARAMETERS, RUNTIME, data_params, parse_params, shard_parameters,
                                                   torch_device, work_folder)
from dismai_data.builders.interface.references import (RAW, RAW_SHA256, REFERENCES_SHA256, conventional_like,
                                                       make_references, published_bulk, raw_input, references,
                                                       slabs_to_json)
from dismai_data.builders.interface.relaxation import (machine, next_round_fits, relax_batch, relax_candidates,
                                                       relaxation_provenance, run_summaries)
from dismai_data.builders.interface.rows import file_rows, generated_rows
from dismai_data.builders.interface.slabs import (FORMAL_CHARGE, LCO_LAYERS, LSC_LAYERS, dipole_per_area,
                                                  make_slabs, zsl_match)

__all__ = ["BUILDER_VERSION", "CITATION", "DESCRIPTION", "ENGINES", "EV_PER_A2_TO_J_PER_M2", "FORMAL_CHARGE",
           "GENERATOR_VERSION", "LCO_LAYERS", "LSC_LAYERS", "MAX_RESTARTS", "MAX_THICKNESS_DRAWS", "MIN_DISTANCE",
           "N_ATOMS", "PARAMETERS", "PROCEDURE", "RAW", "RAW_SHA256", "REFERENCES_SHA256", "REGION", "RUNTIME",
           "SPECIES_ORDER", "THICKNESS_RANGE", "TRIES_PER_ATOM", "VACUUM", "build", "conventional_like",
           "data_params", "dipole_per_area", "file_rows", "gamma_jm2", "generate", "generated_rows",
           "interface_energy_terms", "inv2", "lateral_frac", "machine", "make_references", "make_slabs",
           "min_dist_table", "next_round_fits", "parse_params", "published_bulk", "raw_input", "reference_structures",
           "references", "relax_batch", "relax_candidates", "relaxation_provenance", "run_summaries",
           "shard_parameters", "slabs_to_json", "times2", "torch_device", "unrelaxed_interfaces", "work_folder",
           "zsl_match"]


def _checked_rows(p: dict, rows: list[dict]) -> list[str]:
    """The checks a rebuilt set passed; a row of the wrong composition or atom order, or not
    relaxed to fmax, fails the build."""
    counts = {"Li": 72, "Co": 36, "O": 72, "Sc": 12, "Cl": 72}
    for r in rows:
        if r["num_atoms"] != N_ATOMS or list(r["species"][:72]) != ["Li"] * 72 or any(
                list(r["species"]).count(e) != c for e, c in counts.items()):
            raise RuntimeError(f"{r['id']}: wrong composition or atom order")
        if not r["converged"] or r["fmax"] > p["fmax"]:
            raise RuntimeError(f"{r['id']}: not relaxed to fmax")
    return [f"all {len(rows)} structures have 264 atoms (Li72 Co36 O72 Sc12 Cl72), the first 72 Li, and max "
            f"atomic force <= {p['fmax']} eV/Å (largest {max(r['fmax'] for r in rows):.4f})",
            f"relative interface energies within [0, {p['window_jm2']}] J/m^2 (largest "
            f"{max(r['relative_interface_energy'] for r in rows):.3f})"]


def build(**params) -> DatasetBuild:
    """Build the interface dataset (or read the original files with ``from_files``)."""
    p = parse_params(params)
    from_files = p["from_files"] not in (None, "", [])
    stats: dict = {}
    if from_files:
        splits = file_rows(p)
        checks = [f"every structure has {N_ATOMS} atoms of Li, Co, O, Sc, Cl"]
    else:
        rows, stats = generated_rows(p)
        splits = seeded_split(rows, p["seed"], p["train_fraction"])
        checks = _checked_rows(p, rows)
    n = sum(len(v) for v in splits.values())
    preview = not from_files and (stats["stopped_at"] is not None or n < p["n_structures"])
    version = "1.0-preview" if preview else "1.0"
    b = DatasetBuild(
        name="interface",
        # the size of a time-budgeted preview goes into the card's first line (the title)
        pretty_name="Dismai-Bench LSC-LCO interfaces" + ("" if from_files else " (rebuilt)")
        + (f": v1.0-preview, {n} structures" if version == "1.0-preview" else ""),
        version=version,
        builder_version=BUILDER_VERSION,
        license="cc-by-4.0",
        summary=card.summary(p, n, stats, from_files),
        configs={"default": {s: splits[s] for s in ("train", "validation") if s in splits}},
        columns=card.columns(),
        sources=card.sources(),
        parameters={} if from_files else card.parameters(p, stats),
        citation=CITATION,
        provenance="" if from_files else PROCEDURE,
        split_note=("Split 80/20 train/validation by a seeded permutation (default_rng([seed, 2])) of the kept "
                    "structures." if not from_files else "Splits as in the original files."),
        tags=["materials", "interfaces", "disordered", "battery", "solid-electrolyte", "m3gnet", "generative-models"],
        property_column=None if from_files else "relative_interface_energy",
        property_label="relative interface energy (J/m^2)",
        rebuilt=not from_files,
        checks=checks,
    )
    b.analysis = stats
    return b
