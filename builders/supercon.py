"""JARVIS Supercon-3D: 1056 superconductors with DFT Tc, in the JARVIS-Leaderboard
AtomGen split (846/105/105).

Structures are the leaderboard's POSCARs (what the AtomGen task scores against); Tc
comes from the CDVAE CSVs, which store ``prop = -Tc``. The builder checks that both
sources hold the same ids in the same splits and that each CSV CIF and leaderboard
POSCAR describe the same structure (pymatgen StructureMatcher, no supercell or
primitive reduction, no volume scaling).
"""

from __future__ import annotations

import csv
import sys

from datasets import Value

from dismai_data.build import Column, DatasetBuild
from dismai_data.io import row_from_cif, row_from_poscar

from dismai_data.builders.common import SPLITS, UPSTREAM_SPLIT, parse_all, read_atomgen_split, source_file
from dismai_data.raw import raw_file

BUILDER_VERSION = "1.0.0"
DESCRIPTION = "JARVIS Supercon-3D (1056 structures, Tc in K) with the JARVIS-Leaderboard AtomGen split."
PARAMETERS = {"check_structures": (True, "match every CSV CIF against its leaderboard POSCAR")}

SPLIT_FILE = "jarvis_supercon_3d/jarvis_leaderboard_atomgen_split.json.zip"
CSV_SOURCE = ("txie-93/cdvae pull request 47, commit 840cd7050f711e9e58a8fbbb1d5e3aa3bab70599, "
              "data/supercon/{split}.csv")
EXPECTED = {"train": 846, "validation": 105, "test": 105}


def read_csv_split(split: str, raw_root=None) -> list[dict]:
    """Records ``{id, cif, tc}`` of one CDVAE CSV (``val`` is the validation split)."""
    upstream = {v: k for k, v in UPSTREAM_SPLIT.items()}[split]
    name = f"jarvis_supercon_3d/{upstream}.csv"
    path = raw_file(name, raw_root)
    csv.field_size_limit(sys.maxsize)
    out = []
    with open(path, newline="") as fh:
        for i, rec in enumerate(csv.DictReader(fh)):
            try:
                tc = -float(rec["prop"]) + 0.0  # + 0.0 turns -0.0 into 0.0
            except (KeyError, ValueError):
                raise ValueError(f"{name}: row {i} ({rec.get('material_id')!r}): "
                                 "field 'prop' is not a number") from None
            out.append({"id": rec["material_id"], "cif": rec["cif"], "tc": tc, "source": name})
    return out


def build(raw_root=None, check_structures: bool = True) -> DatasetBuild:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from dismai_data.structure import row_to_structure

    poscars = read_atomgen_split(SPLIT_FILE, raw_root)
    matcher = StructureMatcher(primitive_cell=False, scale=False, attempt_supercell=False)
    splits, n_matched = {}, 0
    for split in SPLITS:
        records = read_csv_split(split, raw_root)
        csv_ids = [r["id"] for r in records]
        lb_ids = list(poscars[split])
        if sorted(csv_ids) != sorted(lb_ids):
            raise ValueError(f"supercon {split}: CSV ids and leaderboard ids differ "
                             f"({len(set(csv_ids) ^ set(lb_ids))} ids in one but not the other)")

        def parse(i, rec):
            row = row_from_poscar(poscars[split][rec["id"]], rec["id"], {"tc": rec["tc"]}, index=i,
                                  source=f"{SPLIT_FILE}[{split}]")
            if check_structures:
                from_csv = row_from_cif(rec["cif"], rec["id"], index=i, source=rec["source"], symmetry=False)
                if not matcher.fit(row_to_structure(from_csv), row_to_structure(row)):
                    raise ValueError(f"{rec['source']}: row {rec['id']!r}: field 'cif' does not match the "
                                     f"leaderboard POSCAR of that id")
            return row

        splits[split] = parse_all(records, parse, desc=f"supercon {split}", total=len(records))
        n_matched += len(records) if check_structures else 0
    counts = {s: len(r) for s, r in splits.items()}
    if counts != EXPECTED:
        raise ValueError(f"supercon: split sizes {counts}, expected {EXPECTED}")
    checks = [f"split sizes {counts} equal the JARVIS-Leaderboard AtomGen split",
              "CSV ids equal leaderboard ids in every split"]
    if check_structures:
        checks.append(f"all {n_matched} CSV CIFs match their leaderboard POSCARs (StructureMatcher, "
                      "primitive_cell=False, scale=False, attempt_supercell=False)")
    return DatasetBuild(
        name="jarvis-supercon-3d",
        pretty_name="JARVIS Supercon-3D",
        version="1.0",
        builder_version=BUILDER_VERSION,
        license="mit",
        summary=(
            "JARVIS Supercon-3D: 1056 conventional (electron-phonon) superconductors from the JARVIS-DFT database "
            "with their DFT-computed critical temperature Tc (DFPT electron-phonon coupling and the "
            "McMillan-Allen-Dynes formula, mu* = 0.09), in the train/validation/test split (846/105/105) of the "
            "JARVIS-Leaderboard AtomGen benchmark used by AtomBench. Converted here from the public files without "
            "changing any structure or value (2 of the 1058 upstream entries are absent from the source CSVs)."),
        configs={"default": splits},
        columns={"tc": Column(Value("float64"), "K", "superconducting critical temperature (DFT, "
                                                      "McMillan-Allen-Dynes, mu* = 0.09); the CSVs store -Tc")},
        sources=[source_file(SPLIT_FILE, "usnistgov/jarvis_leaderboard commit "
                                         "57afc55f94c8a6f4562f73a3173968cd4b2f83b1, "
                             "jarvis_leaderboard/benchmarks/AI/AtomGen/dft_3d_Tc_supercon.json.zip", "NIST")]
        + [source_file(f"jarvis_supercon_3d/{s}.csv", CSV_SOURCE.format(split=s),
                       "MIT (repository); JARVIS data public (NIST)") for s in ("train", "val", "test")],
        parameters={"check_structures": check_structures},
        citation=(
            "@article{choudhary2022supercon, title={Designing high-TC superconductors with BCS-inspired screening, "
            "density functional theory, and deep-learning}, author={Choudhary, Kamal and Garrity, Kevin}, "
            "journal={npj Computational Materials}, volume={8}, pages={244}, year={2022}}\n"
            "@article{atombench2025, title={AtomBench: a benchmark for generative atomic structure models using GPT, "
            "diffusion, and flow architectures}, author={Campbell, Charles Rhys and Romero, Aldo H. and Choudhary, "
            "Kamal}, year={2025}}"),
        provenance=(
            "Structures: the POSCAR strings of the JARVIS-Leaderboard AtomGen benchmark file (exact floats), which "
            "is what the leaderboard scores generated structures against. Tc: `-prop` of the CDVAE CSVs (which "
            "store the negated Tc). Row ids are JARVIS ids (JVASP-...)."),
        split_note="Exactly the JARVIS-Leaderboard AtomGen split (its `val` is stored as `validation`), in its order.",
        tags=["superconductors", "jarvis", "atombench", "crystal-structure-generation"],
        property_column="tc",
        property_label="Tc (K)",
        checks=checks,
    )
