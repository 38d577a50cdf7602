"""The one representation of a structure row: an Arrow schema and the matching
``datasets.Features``.

Every dataset, prediction file and submission in dismai-data uses these columns. A
dataset adds its own property columns (``tc``, ``temperature``...) after them; use
:func:`features` / :func:`arrow_schema` with ``extra`` to declare those.

Columns and units: :data:`COLUMN_DOCS` (rendered into every dataset card).
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
from datasets import Features, List, Value

#: spglib settings used for the derived symmetry columns (pymatgen's defaults).
SYMPREC = 0.01
ANGLE_TOLERANCE = 5.0

#: (column, Arrow type, meaning with unit) of every structure column.
COLUMN_DOCS: tuple[tuple[str, str, str], ...] = (
    ("id", "string", "row id (the upstream id where one exists)"),
    ("species", "list<string>", "element symbol of each site, in site order"),
    ("atomic_numbers", "list<int32>", "atomic number of each site, same order"),
    ("frac_coords", "list<fixed_size_list<float64, 3>>", "fractional coordinates, N x 3"),
    ("lattice", "fixed_size_list<fixed_size_list<float64, 3>, 3>", "lattice vectors as rows, 3 x 3, Å"),
    ("formula", "string", "full formula, e.g. `Ba2 Li1 Sn1`"),
    ("reduced_formula", "string", "reduced formula, e.g. `Ba2LiSn`"),
    ("elements", "list<string>", "sorted distinct elements"),
    ("nelements", "int32", "number of distinct elements"),
    ("num_atoms", "int32", "number of sites N"),
    ("a, b, c", "float64", "lattice lengths, Å"),
    ("alpha, beta, gamma", "float64", "lattice angles, degrees"),
    ("volume", "float64", "cell volume, Å^3"),
    ("density", "float64", "mass density, g/cm^3"),
    ("spacegroup_number", "int32 (null if spglib fails)", "spglib, symprec 0.01 Å, angle tolerance 5°"),
    ("crystal_system", "string (null if spglib fails)", "from the space-group number"),
)

STRUCTURE_COLUMNS: tuple[str, ...] = (
    "id",
    "species",
    "atomic_numbers",
    "frac_coords",
    "lattice",
)

DERIVED_COLUMNS: tuple[str, ...] = (
    "formula",
    "reduced_formula",
    "elements",
    "nelements",
    "num_atoms",
    "a",
    "b",
    "c",
    "alpha",
    "beta",
    "gamma",
    "volume",
    "density",
    "spacegroup_number",
    "crystal_system",
)


def _structure_features() -> dict:
    return {
        "id": Value("string"),
        "species": List(Value("string")),
        "atomic_numbers": List(Value("int32")),
        "frac_coords": List(List(Value("float64"), length=3)),
        "lattice": List(List(Value("float64"), length=3), length=3),
        "formula": Value("string"),
        "reduced_formula": Value("string"),
        "elements": List(Value("string")),
        "nelements": Value("int32"),
        "num_atoms": Value("int32"),
        "a": Value("float64"),
        "b": Value("float64"),
        "c": Value("float64"),
        "alpha": Value("float64"),
        "beta": Value("float64"),
        "gamma": Value("float64"),
        "volume": Value("float64"),
        "density": Value("float64"),
        "spacegroup_number": Value("int32"),
        "crystal_system": Value("string"),
    }


def features(extra: Mapping[str, object] | None = None) -> Features:
    """``datasets.Features`` of a structure row, with dataset-specific ``extra`` columns
    (name -> ``datasets`` feature) appended in the given order."""
    f = _structure_features()
    for name, feat in (extra or {}).items():
        if name in f:
            raise ValueError(f"extra column {name!r} clashes with a structure column")
        f[name] = feat
    return Features(f)


def arrow_schema(extra: Mapping[str, object] | None = None) -> pa.Schema:
    """The Arrow schema matching :func:`features`, carrying the ``datasets`` metadata
    so that ``load_dataset('parquet')`` gives back exactly these Features."""
    return features(extra).arrow_schema


#: The structure columns alone (what a predictions file must have).
STRUCTURE_FEATURES = features()
STRUCTURE_SCHEMA = STRUCTURE_FEATURES.arrow_schema


def crystal_system(spacegroup_number: int) -> str:
    """Crystal system of an international space-group number (1-230)."""
    n = int(spacegroup_number)
    if not 1 <= n <= 230:
        raise ValueError(f"space group number {n} is outside 1-230")
    for upper, name in ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"),
                        (142, "tetragonal"), (167, "trigonal"), (194, "hexagonal")):
        if n <= upper:
            return name
    return "cubic"
