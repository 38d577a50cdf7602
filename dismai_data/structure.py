"""The one conversion between a structure row and pymatgen ``Structure`` / ASE ``Atoms``.

A *row* is a plain mapping with the columns of :mod:`dismai_data.schema`. Rows are
made only by :func:`make_row` (directly or through :func:`row_from_structure` /
:func:`row_from_atoms`), which validates the input and computes the derived columns,
so every row in every dataset and prediction file has been checked the same way.

Round trips are exact: ``row -> Structure -> row`` and ``row -> Atoms -> row`` give
bit-identical fractional coordinates and lattice.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from dismai_data.errors import StructureError
from dismai_data.schema import (
    ANGLE_TOLERANCE,
    DERIVED_COLUMNS,
    STRUCTURE_COLUMNS,
    SYMPREC,
    crystal_system,
    features,
)

# spglib prints C-level warnings for cells it cannot refine; the result is still used.
os.environ.setdefault("SPGLIB_WARNING", "OFF")

# Name of the ASE per-atom array that carries the exact fractional coordinates of a
# row through an ``Atoms`` object (checked against the positions on the way back).
_ASE_FRAC_KEY = "dismai_frac_coords"

# Smallest |det(lattice)| / (a b c) accepted: below it the cell is (numerically) flat.
_MIN_RELATIVE_VOLUME = 1e-8

_ELEMENT_Z: dict[str, int] | None = None


def _element_table() -> dict[str, int]:
    global _ELEMENT_Z
    if _ELEMENT_Z is None:
        from pymatgen.core.periodic_table import Element

        _ELEMENT_Z = {el.symbol: el.Z for el in Element}
    return _ELEMENT_Z


def _species_symbols(species: Any, atomic_numbers: Any, n_hint: int | None) -> list[str]:
    table = _element_table()
    if species is None and atomic_numbers is None:
        raise StructureError("missing: give species or atomic_numbers", field="species")
    if species is None:
        z_to_symbol = {z: s for s, z in table.items()}
        out = []
        for i, z in enumerate(atomic_numbers):
            try:
                out.append(z_to_symbol[int(z)])
            except (KeyError, TypeError, ValueError):
                raise StructureError(f"site {i}: unknown atomic number {z!r}", field="atomic_numbers") from None
        return out
    if isinstance(species, (str, bytes)):
        raise StructureError("must be a list of element symbols, not one string", field="species")
    out = []
    for i, s in enumerate(species):
        sym = str(s)
        if sym not in table:
            raise StructureError(f"site {i}: unknown element {s!r}", field="species")
        out.append(sym)
    if atomic_numbers is not None:
        zs = list(atomic_numbers)
        if len(zs) != len(out):
            raise StructureError(
                f"has {len(zs)} entries but species has {len(out)}", field="atomic_numbers")
        for i, (sym, z) in enumerate(zip(out, zs)):
            if table[sym] != int(z):
                raise StructureError(
                    f"site {i}: atomic number {z} does not match species {sym!r}", field="atomic_numbers")
    return out


def _float_array(value: Any, shape: tuple[int | None, int], field: str) -> np.ndarray:
    if value is None:
        raise StructureError("missing", field=field)
    try:
        arr = np.array([np.asarray(v, dtype=np.float64) for v in value], dtype=np.float64) \
            if not isinstance(value, np.ndarray) else value.astype(np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise StructureError(f"not a numeric array ({exc})", field=field) from None
    rows, cols = shape
    if arr.ndim != 2 or arr.shape[1] != cols or (rows is not None and arr.shape[0] != rows):
        want = f"{rows if rows is not None else 'N'} x {cols}"
        raise StructureError(f"has shape {arr.shape}, expected {want}", field=field)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise StructureError(f"contains a non-finite value ({arr[tuple(bad)]}) at {tuple(int(x) for x in bad)}",
                             field=field)
    return arr


def validate(species: Any, frac_coords: Any, lattice: Any, atomic_numbers: Any = None
             ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Check one structure and return ``(symbols, frac_coords[N,3], lattice[3,3])``.

    Raises :class:`StructureError` naming the field: unknown elements, wrong shapes,
    NaN/inf, an empty structure, a singular lattice.
    """
    lat = _float_array(lattice, (3, 3), "lattice")
    lengths = np.linalg.norm(lat, axis=1)
    det = float(np.linalg.det(lat))
    if np.any(lengths <= 0) or abs(det) <= _MIN_RELATIVE_VOLUME * float(np.prod(lengths)):
        raise StructureError(f"is singular (volume {det:.3g} A^3)", field="lattice")
    frac = _float_array(frac_coords, (None, 3), "frac_coords")
    if frac.shape[0] == 0:
        raise StructureError("is empty: a structure needs at least one site", field="frac_coords")
    symbols = _species_symbols(species, atomic_numbers, frac.shape[0])
    if len(symbols) != frac.shape[0]:
        raise StructureError(f"has {len(symbols)} sites but frac_coords has {frac.shape[0]}", field="species")
    return symbols, frac, lat


def _symmetry(lat: np.ndarray, frac: np.ndarray, numbers: Sequence[int]) -> int | None:
    import warnings

    import spglib

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = spglib.get_symmetry_dataset((lat, frac, list(numbers)), symprec=SYMPREC,
                                             angle_tolerance=ANGLE_TOLERANCE)
    except Exception:  # spglib raises on overlapping atoms etc.: no symmetry reported
        return None
    return None if ds is None else int(ds.number)


def make_row(species: Any, frac_coords: Any, lattice: Any, id: str, extra: Mapping[str, Any] | None = None,
             *, atomic_numbers: Any = None, index: int | None = None, symmetry: bool = True) -> dict:
    """Validate a structure and return its complete row (structure + derived + extra columns).

    ``symmetry=False`` skips spglib (``spacegroup_number``/``crystal_system`` null), for
    large disordered cells where it is P1 anyway and costs time.
    """
    from pymatgen.core import Lattice, Structure

    if id is None or str(id) == "":
        raise StructureError("missing or empty", field="id", index=index)
    try:
        symbols, frac, lat = validate(species, frac_coords, lattice, atomic_numbers)
    except StructureError as exc:
        raise exc.located(row=str(id), index=index) from None
    table = _element_table()
    numbers = [table[s] for s in symbols]
    structure = Structure(Lattice(lat), symbols, frac, coords_are_cartesian=False)
    comp = structure.composition
    lattice_obj = structure.lattice
    a, b, c = (float(x) for x in lattice_obj.abc)
    alpha, beta, gamma = (float(x) for x in lattice_obj.angles)
    sg = _symmetry(lat, frac, numbers) if symmetry else None
    row = {
        "id": str(id),
        "species": symbols,
        "atomic_numbers": numbers,
        "frac_coords": frac.tolist(),
        "lattice": lat.tolist(),
        "formula": comp.formula,
        "reduced_formula": comp.reduced_formula,
        "elements": sorted(set(symbols)),
        "nelements": len(set(symbols)),
        "num_atoms": len(symbols),
        "a": a,
        "b": b,
        "c": c,
        "alpha": alpha,
        "beta": beta,
        "gamma": gamma,
        "volume": float(abs(lattice_obj.volume)),
        "density": float(structure.density),
        "spacegroup_number": sg,
        "crystal_system": crystal_system(sg) if sg is not None else None,
    }
    for key, value in (extra or {}).items():
        if key in row:
            raise StructureError("extra column clashes with a structure column", field=key,
                                 row=str(id), index=index)
        if isinstance(value, float) and math.isnan(value):
            raise StructureError("is NaN", field=key, row=str(id), index=index)
        row[key] = value
    return row


def _row_arrays(row: Mapping[str, Any], index: int | None = None) -> tuple[str, list[str], np.ndarray, np.ndarray]:
    if not isinstance(row, Mapping):
        raise StructureError(f"is a {type(row).__name__}, not a row mapping", index=index)
    missing = [c for c in ("frac_coords", "lattice") if c not in row]
    if "species" not in row and "atomic_numbers" not in row:
        missing.append("species")
    rid = row.get("id")
    if missing:
        raise StructureError("missing column", field=missing[0], row=rid, index=index)
    try:
        symbols, frac, lat = validate(row.get("species"), row["frac_coords"], row["lattice"],
                                      row.get("atomic_numbers"))
    except StructureError as exc:
        raise exc.located(row=rid, index=index) from None
    return rid, symbols, frac, lat


def row_to_structure(row: Mapping[str, Any], *, index: int | None = None):
    """pymatgen ``Structure`` of a row (fractional coordinates kept bit for bit)."""
    from pymatgen.core import Lattice, Structure

    rid, symbols, frac, lat = _row_arrays(row, index)
    s = Structure(Lattice(lat), symbols, frac, coords_are_cartesian=False)
    if rid is not None:
        s.properties["id"] = rid
    return s


def row_to_atoms(row: Mapping[str, Any], *, index: int | None = None):
    """ASE ``Atoms`` of a row (periodic). The exact fractional coordinates travel in
    ``atoms.arrays['dismai_frac_coords']`` so that :func:`row_from_atoms` is exact."""
    from ase import Atoms

    rid, symbols, frac, lat = _row_arrays(row, index)
    atoms = Atoms(symbols=symbols, scaled_positions=frac, cell=lat, pbc=True)
    atoms.arrays[_ASE_FRAC_KEY] = frac.copy()
    if rid is not None:
        atoms.info["id"] = rid
    return atoms


def row_from_structure(structure, id: str | None = None, extra: Mapping[str, Any] | None = None, *,
                       index: int | None = None, symmetry: bool = True) -> dict:
    """Row of a pymatgen ``Structure`` (must be ordered: one element per site)."""
    rid = id if id is not None else structure.properties.get("id")
    if not structure.is_ordered:
        raise StructureError("disordered sites (partial occupancy) are not supported", field="species",
                             row=rid, index=index)
    symbols = [site.specie.symbol if hasattr(site.specie, "symbol") else str(site.specie)
               for site in structure]
    return make_row(symbols, structure.frac_coords, structure.lattice.matrix, rid, extra,
                    index=index, symmetry=symmetry)


def atoms_frac_coords(atoms) -> np.ndarray:
    """Fractional coordinates of an ``Atoms``: the exact ones carried from a row if the
    positions still equal them times the cell, else solved from the positions."""
    stored = atoms.arrays.get(_ASE_FRAC_KEY)
    if stored is not None and np.array_equal(stored @ atoms.cell.array, atoms.positions):
        return stored.copy()
    return atoms.cell.scaled_positions(atoms.positions)


def row_from_atoms(atoms, id: str | None = None, extra: Mapping[str, Any] | None = None, *,
                   index: int | None = None, symmetry: bool = True) -> dict:
    """Row of an ASE ``Atoms`` (needs a full 3D cell)."""
    rid = id if id is not None else atoms.info.get("id")
    if atoms.cell.rank != 3:
        raise StructureError(f"cell has rank {atoms.cell.rank}; a periodic 3D cell is required",
                             field="lattice", row=rid, index=index)
    return make_row(atoms.get_chemical_symbols(), atoms_frac_coords(atoms), atoms.cell.array, rid, extra,
                    index=index, symmetry=symmetry)


def rows_to_table(rows: Iterable[Mapping[str, Any]], extra_features: Mapping[str, Any] | None = None) -> pa.Table:
    """Arrow table of rows with the declared schema (structure columns first)."""
    schema = features(extra_features).arrow_schema
    rows = list(rows)
    return pa.Table.from_pylist(rows, schema=schema)


__all__ = [
    "STRUCTURE_COLUMNS",
    "DERIVED_COLUMNS",
    "validate",
    "make_row",
    "row_to_structure",
    "row_to_atoms",
    "row_from_structure",
    "row_from_atoms",
    "atoms_frac_coords",
    "rows_to_table",
]
