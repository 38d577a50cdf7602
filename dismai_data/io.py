"""Structure files in and out: extxyz, CIF, POSCAR, the JARVIS-Leaderboard CSV and
parquet/arrow. Everything goes through :mod:`dismai_data.structure`, so every row
read here is validated and complete.

Precision: POSCAR strings written here use Python's shortest round-trip float repr,
so ``row -> POSCAR -> row`` is exact. CIF (8 decimals, pymatgen ``CifWriter``) and
extxyz (ASE's 8 decimals) are lossy at the 1e-8 level by the formats' convention.
"""

from __future__ import annotations

import csv
import io as _io
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dismai_data.errors import StructureError
from dismai_data.schema import DERIVED_COLUMNS, STRUCTURE_COLUMNS
from dismai_data.structure import (
    make_row,
    row_from_atoms,
    row_from_structure,
    row_to_atoms,
    row_to_structure,
)

FORMATS = ("extxyz", "cif", "poscar", "jarvis-csv", "parquet")

_ROW_COLUMNS = set(STRUCTURE_COLUMNS) | set(DERIVED_COLUMNS)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise StructureError("does not exist", source=str(path), field="path")
    if path.is_file() and path.stat().st_size == 0:
        raise StructureError("is empty", source=str(path), field="file")


# --------------------------------------------------------------------------- POSCAR
def poscar_string(row: Mapping[str, Any], comment: str = "System") -> str:
    """VASP 5 POSCAR text of a row, in the JARVIS-Leaderboard layout, exact floats."""
    s = row_to_structure(row)
    symbols = [site.specie.symbol for site in s]
    groups: list[tuple[str, int]] = []
    for sym in symbols:
        if groups and groups[-1][0] == sym:
            groups[-1] = (sym, groups[-1][1] + 1)
        else:
            groups.append((sym, 1))
    lines = [comment, "1.0"]
    lines += [" ".join(repr(float(x)) for x in vec) for vec in s.lattice.matrix]
    lines.append(" ".join(g[0] for g in groups))
    lines.append(" ".join(str(g[1]) for g in groups))
    lines.append("direct")
    lines += [" ".join(repr(float(x)) for x in fc) + " " for fc in s.frac_coords]
    return "\n".join(lines) + "\n"


def row_from_poscar(text: str, id: str, extra: Mapping[str, Any] | None = None, *, index: int | None = None,
                    source: str | None = None, symmetry: bool = True) -> dict:
    """Row of a POSCAR string. Accepts the JARVIS-Leaderboard escaped form (literal ``\\n``)."""
    from pymatgen.io.vasp import Poscar

    if text is None or not str(text).strip():
        raise StructureError("POSCAR text is empty", field="poscar", row=id, index=index, source=source)
    text = str(text)
    if "\n" not in text.strip() and "\\n" in text:
        text = text.replace("\\n", "\n")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Poscar.from_str(text, read_velocities=False).structure
    except Exception as exc:  # pymatgen raises many types on bad text
        raise StructureError(f"cannot parse POSCAR ({type(exc).__name__}: {exc})", field="poscar",
                             row=id, index=index, source=source) from None
    try:
        return row_from_structure(structure, id, extra, index=index, symmetry=symmetry)
    except StructureError as exc:
        raise exc.located(source=source) from None


# --------------------------------------------------------------------------- CIF
def row_from_cif(text: str, id: str, extra: Mapping[str, Any] | None = None, *, index: int | None = None,
                 source: str | None = None, symmetry: bool = True) -> dict:
    """Row of a CIF text (the cell as written, no primitive reduction)."""
    from pymatgen.io.cif import CifParser

    if text is None or not str(text).strip():
        raise StructureError("CIF text is empty", field="cif", row=id, index=index, source=source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structures = CifParser.from_str(str(text)).parse_structures(primitive=False)
    except Exception as exc:
        raise StructureError(f"cannot parse CIF ({type(exc).__name__}: {exc})", field="cif",
                             row=id, index=index, source=source) from None
    if len(structures) != 1:
        raise StructureError(f"holds {len(structures)} structures, expected 1", field="cif", row=id,
                             index=index, source=source)
    try:
        return row_from_structure(structures[0], id, extra, index=index, symmetry=symmetry)
    except StructureError as exc:
        raise exc.located(source=source) from None


def cif_string(row: Mapping[str, Any]) -> str:
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(row_to_structure(row)))


# --------------------------------------------------------------------------- extxyz
def read_extxyz(path: str | os.PathLike, *, id_prefix: str | None = None, symmetry: bool = True) -> list[dict]:
    """Rows of every frame of an extxyz file. Row ids come from the frame's ``id`` info
    key, else ``{stem}-{index}``. Other scalar info keys become extra columns."""
    from ase.io import read

    path = Path(path)
    _check_file(path)
    try:
        frames = read(str(path), index=":", format="extxyz")
    except Exception as exc:
        raise StructureError(f"cannot parse extxyz ({type(exc).__name__}: {exc})", source=str(path),
                             field="file") from None
    if not frames:
        raise StructureError("holds no frames", source=str(path), field="file")
    prefix = id_prefix if id_prefix is not None else path.stem
    rows = []
    for i, atoms in enumerate(frames):
        rid = str(atoms.info.get("id", f"{prefix}-{i}"))
        info = dict(atoms.info)
        if atoms.calc is not None:  # ASE moves energy/stress-like keys into a calculator
            info.update(atoms.calc.results)
        extra = {k: (float(v) if isinstance(v, (np.floating, np.integer)) else v) for k, v in info.items()
                 if k != "id" and isinstance(v, (int, float, str, np.floating, np.integer))
                 and not isinstance(v, bool)}
        try:
            pos = atoms.positions
            if not np.all(np.isfinite(pos)):
                raise StructureError("contains a non-finite position", field="positions")
            rows.append(row_from_atoms(atoms, rid, extra, index=i, symmetry=symmetry))
        except StructureError as exc:
            raise exc.located(row=rid, index=i, source=str(path)) from None
    return rows


def write_extxyz(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike,
                 info_columns: Iterable[str] = ()) -> Path:
    """Write rows as one extxyz file; ``info_columns`` are copied into each frame's info."""
    from ase.io import write

    path = Path(path)
    frames = []
    for row in rows:
        atoms = row_to_atoms(row)
        del atoms.arrays["dismai_frac_coords"]
        for col in info_columns:
            atoms.info[col] = row[col]
        frames.append(atoms)
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp), frames, format="extxyz")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- JARVIS CSV
def read_jarvis_csv(path: str | os.PathLike, *, column: str = "prediction", symmetry: bool = True
                    ) -> list[dict]:
    """Rows of a JARVIS-Leaderboard AtomGen CSV (``id,target,prediction``) from the
    POSCAR strings of ``column`` (``prediction`` or ``target``)."""
    path = Path(path)
    _check_file(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            raise StructureError("has no header line", source=str(path), field="header")
        for needed in ("id", column):
            if needed not in reader.fieldnames:
                raise StructureError(f"missing column (has {reader.fieldnames})", source=str(path), field=needed)
        rows, seen = [], set()
        for i, rec in enumerate(reader):
            rid = (rec.get("id") or "").strip()
            if not rid:
                raise StructureError("missing or empty", field="id", index=i, source=str(path))
            if rid in seen:
                raise StructureError("duplicate id", field="id", row=rid, index=i, source=str(path))
            seen.add(rid)
            rows.append(row_from_poscar(rec[column], rid, index=i, source=str(path), symmetry=symmetry))
    if not rows:
        raise StructureError("holds no rows", source=str(path), field="file")
    return rows


def write_jarvis_csv(pairs: Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any]]],
                     path: str | os.PathLike) -> Path:
    """Write ``(id, target_row, prediction_row)`` triples as a JARVIS-Leaderboard CSV,
    POSCAR strings with escaped newlines."""
    path = Path(path)
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "target", "prediction"])
    for rid, target, pred in pairs:
        w.writerow([rid, poscar_string(target).replace("\n", "\\n"), poscar_string(pred).replace("\n", "\\n")])
    path.write_text(buf.getvalue())
    return path


# --------------------------------------------------------------------------- parquet
def read_parquet_rows(path: str | os.PathLike, *, columns: list[str] | None = None) -> list[dict]:
    """Rows of a parquet/arrow file or of every ``*.parquet`` under a folder (sorted)."""
    import pyarrow.parquet as pq

    path = Path(path)
    _check_file(path)
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise StructureError("holds no parquet files", source=str(path), field="path")
    rows: list[dict] = []
    for f in files:
        try:
            if f.suffix == ".arrow":
                import pyarrow as pa

                with pa.memory_map(str(f)) as src:
                    table = pa.ipc.open_stream(src).read_all()
            else:
                table = pq.read_table(f, columns=columns)
        except Exception as exc:
            raise StructureError(f"cannot read ({type(exc).__name__}: {exc})", source=str(f), field="file") from None
        rows.extend(table.to_pylist())
    return rows


# --------------------------------------------------------------------------- any
def read_structures(path: str | os.PathLike, fmt: str | None = None, *, column: str = "prediction",
                    symmetry: bool = True) -> list[dict]:
    """Validated rows from any supported source: an extxyz file, a CIF or POSCAR file,
    a folder of CIF/POSCAR files, a JARVIS-Leaderboard CSV, or parquet (file/folder)."""
    path = Path(path)
    _check_file(path)
    fmt = fmt or _guess_format(path)
    if fmt == "extxyz":
        return read_extxyz(path, symmetry=symmetry)
    if fmt == "jarvis-csv":
        return read_jarvis_csv(path, column=column, symmetry=symmetry)
    if fmt == "parquet":
        rows = read_parquet_rows(path)
        return [_revalidate(r, i, str(path), symmetry) for i, r in enumerate(rows)]
    if fmt in ("cif", "poscar"):
        files = [path] if path.is_file() else sorted(
            p for p in path.iterdir() if p.is_file() and _guess_format(p) in ("cif", "poscar"))
        if not files:
            raise StructureError("holds no CIF or POSCAR files", source=str(path), field="path")
        rows = []
        for i, f in enumerate(files):
            _check_file(f)
            text = f.read_text()
            reader = row_from_cif if _guess_format(f) == "cif" else row_from_poscar
            rows.append(reader(text, f.stem, index=i, source=str(f), symmetry=symmetry))
        return rows
    raise StructureError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})", source=str(path), field="format")


def _revalidate(row: Mapping[str, Any], index: int, source: str, symmetry: bool) -> dict:
    extra = {k: v for k, v in row.items() if k not in _ROW_COLUMNS}
    try:
        return make_row(row.get("species"), row.get("frac_coords"), row.get("lattice"), row.get("id"), extra,
                        atomic_numbers=row.get("atomic_numbers"), index=index, symmetry=symmetry)
    except StructureError as exc:
        raise exc.located(source=source) from None


def _guess_format(path: Path) -> str:
    if path.is_dir():
        kinds = {_guess_format(p) for p in path.iterdir() if p.is_file()}
        if "parquet" in kinds:
            return "parquet"
        if kinds & {"cif", "poscar"}:
            return "cif" if "cif" in kinds else "poscar"
        raise StructureError("cannot tell the format of this folder", source=str(path), field="format")
    name = path.name.lower()
    if name.endswith((".extxyz", ".xyz")):
        return "extxyz"
    if name.endswith(".cif"):
        return "cif"
    if name.endswith((".parquet", ".arrow")):
        return "parquet"
    if name.endswith(".csv"):
        return "jarvis-csv"
    if name.startswith(("poscar", "contcar")) or name.endswith((".vasp", ".poscar")):
        return "poscar"
    raise StructureError("cannot tell the format from the file name (use fmt=)", source=str(path),
                         field="format")

__all__ = [
    "FORMATS",
    "poscar_string",
    "row_from_poscar",
    "row_from_cif",
    "cif_string",
    "read_extxyz",
    "write_extxyz",
    "read_jarvis_csv",
    "write_jarvis_csv",
    "read_parquet_rows",
    "read_structures",
]
