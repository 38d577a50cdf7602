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


def looks_like_cif(text: str) -> bool:
    """Whether a structure text is CIF (else it is read as POSCAR)."""
    return "_cell_length_a" in text or text.lstrip().lower().startswith("data_")


def row_from_text(text: str | bytes, id: str, *, index: int | None = None, source: str | None = None,
                  symmetry: bool = True) -> dict:
    """Row of a CIF or POSCAR text (:func:`looks_like_cif` tells which)."""
    text = text.decode() if isinstance(text, bytes) else text
    reader = row_from_cif if looks_like_cif(text) else row_from_poscar
    return reader(text, id, index=index, source=source, symmetry=symmetry)


def cif_string(row: Mapping[str, Any]) -> str:
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(row_to_structure(row)))


# --------------------------------------------------------------------------- extxyz
def _extxyz_frames(path: Path) -> tuple[list[str], list[tuple[int, int]]]:
    """Lines of an extxyz file and the ``(first, end)`` line span of each frame.

    Frames are cut the way ASE's reader cuts them (an atom-count line, a comment line,
    that many atom lines, at most three ``VEC`` lines), so each frame can be parsed on
    its own and one bad frame does not take the others with it. What cannot be cut is a
    file-level :class:`StructureError` (field ``file``) naming the frame and the line: a
    count line that is not a number (an earlier frame's count does not match its atom
    lines), a file ending inside a frame, or a blank line with frames after it (ASE stops
    there and silently drops the rest).
    """
    src = str(path)
    try:
        lines = path.read_text().split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise StructureError(f"cannot read ({type(exc).__name__}: {exc})", source=src, field="file") from None
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    spans: list[tuple[int, int]] = []
    pos, n = 0, len(lines)
    while pos < n:
        k = len(spans)
        head = lines[pos]
        if not head.strip():
            more = next((j for j in range(pos + 1, n) if lines[j].strip()), None)
            if more is not None:
                raise StructureError(f"cannot parse extxyz: frame {k}, line {pos + 1} is blank but line {more + 1} "
                                     "holds more text (a reader stopping at the blank line would drop it)",
                                     source=src, field="file")
            break
        try:
            natoms = int(head)
        except ValueError:
            hint = (f" (does the atom count of frame {k - 1}, line {spans[-1][0] + 1}, match its atom lines?)"
                    if spans else "")
            raise StructureError(f"cannot parse extxyz: frame {k}, line {pos + 1}: expected the number of atoms, "
                                 f"got {head.strip()[:60]!r}{hint}", source=src, field="file") from None
        if natoms < 0:
            raise StructureError(f"cannot parse extxyz: frame {k}, line {pos + 1}: negative number of atoms "
                                 f"{natoms}", source=src, field="file")
        end = pos + 2 + natoms
        if end > n:
            raise StructureError(f"cannot parse extxyz: frame {k}, line {pos + 1}: says {natoms} atoms but the file "
                                 f"ends after {max(n - pos - 2, 0)} atom lines", source=src, field="file")
        nvec = 0
        while end < n and lines[end].lstrip().startswith("VEC"):
            nvec += 1
            end += 1
            if nvec > 3:
                raise StructureError(f"cannot parse extxyz: frame {k}, line {end}: more than 3 VEC lines",
                                     source=src, field="file")
        spans.append((pos, end))
        pos = end
    if not spans:
        raise StructureError("holds no frames", source=src, field="file")
    return lines, spans


def _info_columns(atoms) -> dict[str, Any]:
    """Extra columns of a frame: its scalar info keys (``id`` aside) and the scalar results
    ASE moved into a calculator (energy, free_energy...); numpy numbers become floats."""
    info = dict(atoms.info)
    if atoms.calc is not None:  # ASE moves energy/stress-like keys into a calculator
        info.update(atoms.calc.results)
    return {k: (float(v) if isinstance(v, (np.floating, np.integer)) else v) for k, v in info.items()
            if k != "id" and isinstance(v, (int, float, str, np.floating, np.integer))
            and not isinstance(v, bool)}


def _unknown_element(exc: Exception, frame_lines: list[str]) -> StructureError | None:
    """ASE raises ``KeyError(symbol)`` on a symbol it does not know: say so, with the site."""
    from ase.data import chemical_symbols

    if not (isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str)
            and exc.args[0] not in chemical_symbols):
        return None
    sym = exc.args[0]
    site = next((j for j, line in enumerate(frame_lines[2:]) if sym in line.split()), None)
    return StructureError((f"site {site}: " if site is not None else "") + f"unknown element {sym!r}",
                          field="species")


def iter_extxyz(path: str | os.PathLike, *, id_prefix: str | None = None, symmetry: bool = True,
                info_columns: bool = True) -> Iterator[tuple[int, str, dict | StructureError]]:
    """``(frame index, row id, row or StructureError)`` for every frame of an extxyz file.

    The one extxyz reader: :func:`read_extxyz` raises the first error, the evaluation
    keeps each bad frame as a failed row. A frame's error names the file, the row id, the
    frame (``index``, counted from 0) and the field: a frame ASE cannot parse (field
    ``frame``; unknown element symbols: field ``species``), a non-finite position, and
    everything :func:`dismai_data.structure.row_from_atoms` / ``make_row`` check (cell
    rank, singular lattice, unknown elements, NaN extra columns, clashing columns...).

    Row ids come from the frame's ``id`` info key, else ``{id_prefix or stem}-{index}``.
    With ``info_columns`` the frame's scalar info keys and calculator results become
    extra columns (checked like any extra column: a NaN fails the frame).

    File-level problems raise :class:`StructureError` (field ``path``/``file``) before
    any frame is yielded: a missing or empty file, one that cannot be cut into frames
    (see :func:`_extxyz_frames`) or one without frames.
    """
    path = Path(path)
    _check_file(path)
    lines, spans = _extxyz_frames(path)
    prefix = id_prefix if id_prefix is not None else path.stem
    return _extxyz_rows(path, lines, spans, prefix, symmetry, info_columns)


def _extxyz_rows(path: Path, lines: list[str], spans: list[tuple[int, int]], prefix: str, symmetry: bool,
                 info_columns: bool) -> Iterator[tuple[int, str, dict | StructureError]]:
    from ase.io import read
    from ase.io.extxyz import key_val_str_to_dict

    src = str(path)
    for i, (first, end) in enumerate(spans):
        frame_lines = lines[first:end]
        rid = f"{prefix}-{i}"
        result: dict | StructureError
        try:
            atoms = read(_io.StringIO("\n".join(frame_lines) + "\n"), index=0, format="extxyz")
        except Exception as exc:  # the frame's text: bad numbers, unknown symbols, short atom lines...
            try:  # the id of a frame whose atoms cannot be read, from its comment line
                info = key_val_str_to_dict(frame_lines[1])
                rid = str(info["id"]) if "id" in info else rid
            except Exception:
                pass
            err = _unknown_element(exc, frame_lines) or StructureError(
                f"cannot parse the frame at lines {first + 1}-{end} ({type(exc).__name__}: {exc})", field="frame")
            yield i, rid, err.located(row=rid, index=i, source=src)
            continue
        rid = str(atoms.info.get("id", rid))
        try:
            extra = _info_columns(atoms) if info_columns else None
            if not np.all(np.isfinite(atoms.positions)):
                raise StructureError("contains a non-finite position", field="positions")
            result = row_from_atoms(atoms, rid, extra, index=i, symmetry=symmetry)
        except StructureError as exc:
            result = exc.located(row=rid, index=i, source=src)
        except Exception as exc:  # a library failing on absurd input: this frame fails, not the file
            result = StructureError(f"{type(exc).__name__}: {exc}", row=rid, index=i, source=src)
        yield i, rid, result


def read_extxyz(path: str | os.PathLike, *, id_prefix: str | None = None, symmetry: bool = True) -> list[dict]:
    """Rows of every frame of an extxyz file (:func:`iter_extxyz`); the first bad frame
    raises its :class:`StructureError`. Row ids come from the frame's ``id`` info key,
    else ``{stem}-{index}``. Other scalar info keys become extra columns."""
    return _first_error(iter_extxyz(path, id_prefix=id_prefix, symmetry=symmetry))


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
def iter_jarvis_csv(path: str | os.PathLike, *, column: str = "prediction", symmetry: bool = True
                    ) -> Iterator[tuple[int, str, dict | StructureError]]:
    """``(row index, id, row or StructureError)`` for every row of a JARVIS-Leaderboard AtomGen CSV
    (``id,target,prediction``), from the POSCAR (or CIF) strings of ``column``.

    The one CSV reader: :func:`read_jarvis_csv` raises the first error, the evaluation keeps
    each bad row as a failed row. File-level problems raise before any row is yielded: a missing
    or empty file, no header, a missing ``id`` or ``column`` column, an empty id, no rows.
    Duplicate ids are the caller's to check."""
    path = Path(path)
    _check_file(path)
    src = str(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            raise StructureError("has no header line", source=src, field="header")
        for needed in ("id", column):
            if needed not in reader.fieldnames:
                raise StructureError(f"missing column (has {reader.fieldnames})", source=src, field=needed)
        records = list(reader)
    for i, rec in enumerate(records):
        if not (rec.get("id") or "").strip():
            raise StructureError("missing or empty", field="id", index=i, source=src)
    if not records:
        raise StructureError("holds no rows", source=src, field="file")
    return _csv_rows(records, column, src, symmetry)


def _csv_rows(records: list[dict], column: str, src: str, symmetry: bool
              ) -> Iterator[tuple[int, str, dict | StructureError]]:
    def read(value, rid, i):
        if value is None:
            raise StructureError("is empty (null)", field="prediction")
        return row_from_text(value, rid, index=i, source=src, symmetry=symmetry)

    for i, rec in enumerate(records):
        rid = rec["id"].strip()
        yield i, rid, _row_or_error(read, rec[column], rid, i, src)


def read_jarvis_csv(path: str | os.PathLike, *, column: str = "prediction", symmetry: bool = True
                    ) -> list[dict]:
    """Rows of a JARVIS-Leaderboard AtomGen CSV (:func:`iter_jarvis_csv`); the first bad row or
    duplicate id raises its :class:`StructureError`."""
    rows, seen = [], set()
    for i, rid, result in iter_jarvis_csv(path, column=column, symmetry=symmetry):
        if rid in seen:
            raise StructureError("duplicate id", field="id", row=rid, index=i, source=str(path))
        seen.add(rid)
        if isinstance(result, StructureError):
            raise result
        rows.append(result)
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
def read_parquet_rows(path: str | os.PathLike, *, columns: list[str] | None = None,
                      arrow_files: bool = False) -> list[dict]:
    """Rows of a parquet/arrow file or of every ``*.parquet`` under a folder (sorted; with
    ``arrow_files`` also every ``*.arrow``). Arrow files may be IPC streams or IPC files."""
    path = Path(path)
    _check_file(path)
    if path.is_dir():
        files = sorted(path.rglob("*.parquet")) + (sorted(path.rglob("*.arrow")) if arrow_files else [])
    else:
        files = [path]
    if not files:
        raise StructureError("holds no parquet" + (" or arrow" if arrow_files else "") + " files",
                             source=str(path), field="path")
    rows: list[dict] = []
    for f in files:
        if f.stat().st_size == 0:
            raise StructureError("is empty", source=str(f), field="file")
        try:
            table = _read_table(f, columns)
        except Exception as exc:
            raise StructureError(f"cannot read ({type(exc).__name__}: {exc})", source=str(f), field="file") from None
        rows.extend(table.to_pylist())
    return rows


def _read_table(f: Path, columns: list[str] | None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if f.suffix != ".arrow":
        return pq.read_table(f, columns=columns)
    with pa.memory_map(str(f)) as src:
        try:
            table = pa.ipc.open_stream(src).read_all()
        except pa.ArrowInvalid:
            table = pa.ipc.open_file(src).read_all()
    return table.select(columns) if columns is not None else table


# --------------------------------------------------------------------------- CIF / POSCAR files
def iter_structure_files(path: str | os.PathLike, *, symmetry: bool = True
                         ) -> Iterator[tuple[int, str, dict | StructureError]]:
    """``(index, row id, row or StructureError)`` of a CIF or POSCAR file, or of each such file
    in a folder (sorted by name; hidden files and files of other formats skipped). The row id is
    the file's stem. The one reader of structure files: :func:`read_structures` raises the first
    error, the evaluation keeps each bad file as a failed row. A folder without any raises."""
    path = Path(path)
    _check_file(path)
    files = [path] if path.is_file() else sorted(
        p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
        and _format_or_none(p) in ("cif", "poscar"))
    if not files:
        raise StructureError("holds no CIF or POSCAR files", source=str(path), field="path")
    return _file_rows(files, symmetry)


def _file_rows(files: list[Path], symmetry: bool) -> Iterator[tuple[int, str, dict | StructureError]]:
    def read(f, rid, i):
        if f.stat().st_size == 0:
            raise StructureError("is empty", field="file")
        reader = row_from_cif if guess_format(f) == "cif" else row_from_poscar
        return reader(f.read_text(errors="replace"), rid, index=i, source=str(f), symmetry=symmetry)

    for i, f in enumerate(files):
        yield i, f.stem, _row_or_error(read, f, f.stem, i, str(f))


def _row_or_error(read, item, rid: str, index: int, src: str) -> dict | StructureError:
    """``read(item, rid, index)``, or the error that makes this one row (file) fail, located;
    a library failing on absurd input fails the row, not the file (folder)."""
    try:
        return read(item, rid, index)
    except StructureError as exc:
        return exc.located(row=rid, index=index, source=src)
    except Exception as exc:
        return StructureError(f"{type(exc).__name__}: {exc}", row=rid, index=index, source=src)


# --------------------------------------------------------------------------- any
def read_structures(path: str | os.PathLike, fmt: str | None = None, *, column: str = "prediction",
                    symmetry: bool = True) -> list[dict]:
    """Validated rows from any supported source: an extxyz file, a CIF or POSCAR file,
    a folder of CIF/POSCAR files, a JARVIS-Leaderboard CSV, or parquet (file/folder)."""
    path = Path(path)
    _check_file(path)
    fmt = fmt or guess_format(path)
    if fmt == "extxyz":
        return read_extxyz(path, symmetry=symmetry)
    if fmt == "jarvis-csv":
        return read_jarvis_csv(path, column=column, symmetry=symmetry)
    if fmt == "parquet":
        rows = read_parquet_rows(path)
        return [_revalidate(r, i, str(path), symmetry) for i, r in enumerate(rows)]
    if fmt in ("cif", "poscar"):
        return _first_error(iter_structure_files(path, symmetry=symmetry))
    raise StructureError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})", source=str(path), field="format")


def _first_error(results: Iterable[tuple[int, str, dict | StructureError]]) -> list[dict]:
    rows = []
    for _, _, result in results:
        if isinstance(result, StructureError):
            raise result
        rows.append(result)
    return rows


def _revalidate(row: Mapping[str, Any], index: int, source: str, symmetry: bool) -> dict:
    extra = {k: v for k, v in row.items() if k not in _ROW_COLUMNS}
    try:
        return make_row(row.get("species"), row.get("frac_coords"), row.get("lattice"), row.get("id"), extra,
                        atomic_numbers=row.get("atomic_numbers"), index=index, symmetry=symmetry)
    except StructureError as exc:
        raise exc.located(source=source) from None


def _format_or_none(path: Path) -> str | None:
    try:
        return guess_format(path)
    except StructureError:
        return None


def guess_format(path: str | os.PathLike) -> str:
    """The format (one of :data:`FORMATS`) of a file, from its name, or of a folder, from its files."""
    path = Path(path)
    if path.is_dir():
        kinds = {guess_format(p) for p in path.iterdir() if p.is_file()}
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
    "iter_extxyz",
    "read_extxyz",
    "write_extxyz",
    "read_jarvis_csv",
    "write_jarvis_csv",
    "read_parquet_rows",
    "read_structures",
    "guess_format",
    "iter_jarvis_csv",
    "iter_structure_files",
    "looks_like_cif",
    "row_from_text",
]
