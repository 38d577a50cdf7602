"""Alexandria superconductors DS-A + DS-B (8253 structures) with Tc, lambda,
omega_log, Debye temperature and DOS at the Fermi level, in the AtomBench protocol's
80/10/10 split.

The split is made once by :func:`make_split` (``numpy.random.default_rng(7)``
permutation of the DS-A then DS-B rows; 825 test, 825 validation, the rest train)
and frozen in ``raw/alexandria_ds_ab/split_seed7.json``, so it never changes between
builds or numpy versions; the builder refuses a split file that disagrees with the data.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
from datasets import Value

from dismai_data.build import Column, DatasetBuild
from dismai_data.raw import raw_file
from dismai_data.structure import row_from_structure

from dismai_data.builders.common import SPLITS, parse_all, source_file

BUILDER_VERSION = "1.0.0"
DESCRIPTION = "Alexandria superconductors DS-A + DS-B (8253 structures; Tc, lambda, omega_log, Debye T, DOS(E_F))."
PARAMETERS: dict = {}

FILES = {"DS-A": "alexandria_ds_ab/DS-A.jsonl.gz", "DS-B": "alexandria_ds_ab/DS-B.jsonl.gz"}
SPLIT_FILE = "alexandria_ds_ab/split_seed7.json"
SPLIT_SEED = 7
N_TEST = N_VALIDATION = 825
EXPECTED = {"DS-A": 7220, "DS-B": 1033}
SOURCE = ("hyllios/utils commit 2d8b8ff801c7e90468e6556517571be1e7955832, models/supercond_modnet_model/{file}.pk.bz2, "
          "converted row by row to JSON lines without changing a value")

COLUMNS = {
    "tc": Column(Value("float64"), "K", "superconducting critical temperature (McMillan-Allen-Dynes, mu* = 0.10)"),
    "lambda": Column(Value("float64"), "dimensionless", "electron-phonon coupling constant (upstream `la`)"),
    "omega_log": Column(Value("float64"), "K", "logarithmic average phonon frequency (upstream `wlog`)"),
    "debye_temperature": Column(Value("float64"), "K", "Debye temperature (upstream `debye`)"),
    "dos_fermi": Column(Value("float64"), "states/eV/cell (upstream units)",
                        "electronic density of states at the Fermi level (upstream `dosef`)"),
    "subset": Column(Value("string"), "", "`DS-A` or `DS-B`: the upstream file the row comes from"),
}
_UPSTREAM = {"tc": "Tc", "lambda": "la", "omega_log": "wlog", "debye_temperature": "debye", "dos_fermi": "dosef"}


def read_records(raw_root=None) -> list[dict]:
    """All records, DS-A then DS-B, in file order, with ``subset`` added."""
    out = []
    for subset, name in FILES.items():
        path = raw_file(name, raw_root)
        with gzip.open(path, "rt") as fh:
            for i, line in enumerate(fh):
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{name}: line {i + 1}: not JSON ({exc})") from None
                rec["subset"] = subset
                rec["_source"] = name
                rec["_line"] = i
                out.append(rec)
        n = sum(1 for r in out if r["subset"] == subset)
        if n != EXPECTED[subset]:
            raise ValueError(f"{name}: {n} records, expected {EXPECTED[subset]}")
    return out


def make_split(ids: list[str], seed: int = SPLIT_SEED) -> dict[str, str]:
    """The seeded 80/10/10 assignment id -> split (test and validation 825 each)."""
    order = np.random.default_rng(seed).permutation(len(ids))
    out = {}
    for rank, idx in enumerate(order):
        out[ids[idx]] = "test" if rank < N_TEST else "validation" if rank < N_TEST + N_VALIDATION else "train"
    return out


def frozen_split(raw_root=None) -> dict[str, str]:
    return json.loads(raw_file(SPLIT_FILE, raw_root).read_text())["assignment"]


def build(raw_root=None) -> DatasetBuild:
    from pymatgen.core import Structure

    records = read_records(raw_root)
    ids = [r["mat_id"] for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("alexandria: duplicate mat_id across DS-A/DS-B")
    assignment = frozen_split(raw_root)
    if set(assignment) != set(ids):
        raise ValueError(f"{SPLIT_FILE}: its ids differ from the data's ({len(set(assignment) ^ set(ids))} differ)")

    def parse(i, rec):
        extra = {}
        for col, key in _UPSTREAM.items():
            value = rec.get(key)
            if not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"{rec['_source']}: line {rec['_line'] + 1} ({rec['mat_id']!r}): field {key!r} is "
                                 f"{value!r}, not a finite number")
            extra[col] = float(value)
        extra["subset"] = rec["subset"]
        structure = Structure.from_dict(rec["structure"])
        return row_from_structure(structure, rec["mat_id"], extra, index=i)

    rows = parse_all(records, parse, desc="alexandria", total=len(records))
    splits = {s: [r for r in rows if assignment[r["id"]] == s] for s in SPLITS}
    counts = {s: len(v) for s, v in splits.items()}
    return DatasetBuild(
        name="alexandria-ds-ab",
        pretty_name="Alexandria superconductors DS-A/B",
        version="1.0",
        builder_version=BUILDER_VERSION,
        license="cc-by-4.0",
        summary=(
            "Alexandria superconductors DS-A + DS-B: 8253 conventional superconductors (at most 8 atoms per cell, "
            "space group >= 100 upstream) from the Alexandria database's electron-phonon study (Cerqueira et al., "
            "Adv. Funct. Mater. 2024), with Tc (McMillan-Allen-Dynes, mu* = 0.10), lambda, omega_log, Debye "
            "temperature and DOS at the Fermi level, in a seeded 80/10/10 split with 825 test structures as in "
            "AtomBench. Converted here from the public files without changing any structure or value."),
        configs={"default": splits},
        columns=COLUMNS,
        sources=[source_file(name, SOURCE.format(file=subset), "MIT (repository); Alexandria data CC BY 4.0")
                 for subset, name in FILES.items()]
        + [source_file(SPLIT_FILE, "this project: make_split(seed=7), frozen", "CC BY 4.0 (derived)")],
        parameters={"split_seed": SPLIT_SEED, "n_test": N_TEST, "n_validation": N_VALIDATION},
        citation=(
            "@article{cerqueira2024alexandria, title={Sampling the Materials Space for Conventional "
            "Superconducting Compounds}, author={Cerqueira, Tiago F. T. and Fang, Yue-Wen and Errea, Ion and "
            "Sanna, Antonio and Marques, Miguel A. L.}, journal={Advanced Functional Materials}, volume={34}, "
            "pages={2404043}, year={2024}}\n"
            "@article{atombench2025, title={AtomBench: a benchmark for generative atomic structure models using GPT, "
            "diffusion, and flow architectures}, author={Campbell, Charles Rhys and Romero, Aldo H. and Choudhary, "
            "Kamal}, year={2025}}"),
        provenance=(
            "Each JSON line holds a pymatgen Structure dict (read with Structure.from_dict; site properties such as "
            "magnetic moments are not kept) and the upstream property values, which are stored unchanged under the "
            "column names below. Row ids are Alexandria ids (agm...)."),
        split_note=(
            f"DS-A rows then DS-B rows in file order are permuted with numpy.random.default_rng({SPLIT_SEED}); the "
            f"first {N_TEST} of the permutation are test, the next {N_VALIDATION} validation, the rest train "
            f"({counts}). The assignment is frozen in {SPLIT_FILE} (its sha256 is listed below), so it never "
            "changes between builds; rows keep file order within each split."),
        tags=["superconductors", "alexandria", "atombench", "crystal-structure-generation"],
        property_column="tc",
        property_label="Tc (K)",
        checks=[f"{EXPECTED} records read", "mat_id unique", f"split sizes {counts}",
                f"frozen split {SPLIT_FILE} covers exactly the data's ids"],
    )


def write_split_file(path, raw_root=None) -> None:
    """(Re)create the frozen split file; used once, kept for reproducibility."""
    ids = [r["mat_id"] for r in read_records(raw_root)]
    assignment = make_split(ids)
    doc = {"description": f"Alexandria DS-A+DS-B 80/10/10 split: numpy.random.default_rng({SPLIT_SEED}).permutation "
                          f"of DS-A then DS-B rows in file order; first {N_TEST} test, next {N_VALIDATION} "
                          "validation, rest train.",
           "seed": SPLIT_SEED, "assignment": assignment}
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=0, sort_keys=False)
        fh.write("\n")


if __name__ == "__main__":
    import sys

    write_split_file(sys.argv[1])
