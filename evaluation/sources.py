"""Reading predictions and reference splits, tolerant of bad rows.

File-level problems (missing file, empty file, missing column, duplicate ids, unknown
format) raise :class:`EvaluationInputError` naming the file and the field. Row-level
problems (NaN coordinates, unknown elements, singular lattices, unparsable POSCAR...)
do not stop the run: the row is kept as failed with the reason, which ends up in the
per-row table.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from dismai_data.errors import DismaiError, StructureError
from dismai_data.io import (guess_format, iter_extxyz, iter_jarvis_csv, iter_structure_files, read_parquet_rows,
                            row_from_text)
from dismai_data.structure import make_row

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?(@[\w.\-/]+)?$")


class EvaluationInputError(StructureError):
    """A file-level problem with an input (predictions, reference, task name)."""


@dataclass
class PredItem:
    """One submitted structure: a validated row, or the reason it failed."""

    id: str
    index: int
    row: dict | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.row is not None


@dataclass
class PredictionSet:
    source: str
    format: str
    column: str | None
    items: list[PredItem] = field(default_factory=list)
    revision: str | None = None

    def describe(self) -> dict:
        return {"source": self.source, "format": self.format, "column": self.column,
                "revision": self.revision, "rows": len(self.items)}


def _reason(exc: StructureError) -> str:
    return f"{exc.field}: {exc.reason}" if exc.field else exc.reason


def _row_from_value(value: Any, rid: str, index: int, source: str, symmetry: bool) -> dict:
    """Row from a predictions-column value: a POSCAR/CIF string or a mapping with the
    structure columns."""
    if value is None:
        raise StructureError("is empty (null)", field="prediction")
    if isinstance(value, (bytes, str)):
        return row_from_text(value, rid, index=index, source=source, symmetry=symmetry)
    if isinstance(value, Mapping):
        return make_row(value.get("species"), value.get("frac_coords"), value.get("lattice"), rid,
                        atomic_numbers=value.get("atomic_numbers"), index=index, symmetry=symmetry)
    raise StructureError(f"holds a {type(value).__name__}; expected a POSCAR/CIF string or a structure "
                         "mapping", field="prediction")


def _items_from_records(records: list[dict], source: str, column: str | None, symmetry: bool,
                        id_prefix: str) -> list[PredItem]:
    if not records:
        raise EvaluationInputError("holds no rows", source=source, field="file")
    cols = set(records[0].keys())
    if column is not None and column not in cols:
        raise EvaluationInputError(f"missing column (has {sorted(cols)})", source=source, field=column)
    if column is None:
        needed = ["frac_coords", "lattice"] + ([] if "atomic_numbers" in cols else ["species"])
        for c in needed:
            if c not in cols:
                raise EvaluationInputError(f"missing column (has {sorted(cols)}); pass --column for a column "
                                           "of POSCAR/CIF strings", source=source, field=c)
    items = []
    for i, rec in enumerate(records):
        rid = rec.get("id")
        rid = f"{id_prefix}-{i}" if rid is None or str(rid) == "" else str(rid)
        try:
            if column is not None:
                row = _row_from_value(rec[column], rid, i, source, symmetry)
            else:
                row = make_row(rec.get("species"), rec.get("frac_coords"), rec.get("lattice"), rid,
                               atomic_numbers=rec.get("atomic_numbers"), index=i, symmetry=symmetry)
            items.append(PredItem(rid, i, row))
        except StructureError as exc:
            items.append(PredItem(rid, i, None, _reason(exc)))
        except Exception as exc:  # a library failing on absurd input: the row fails, the run goes on
            items.append(PredItem(rid, i, None, f"{type(exc).__name__}: {exc}"))
    return items


def _input_error(exc: StructureError, path: Path) -> EvaluationInputError:
    """A reader's file-level error as an evaluation input error (same reason and location)."""
    return EvaluationInputError(exc.reason, source=exc.source or str(path), field=exc.field or "file",
                                row=exc.row, index=exc.index)


def _items(path: Path, results) -> list[PredItem]:
    """Items of a per-row reader of :mod:`dismai_data.io` (``(index, id, row or StructureError)``):
    a bad row is a failed item, a file-level error an :class:`EvaluationInputError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frames = list(results())
    except StructureError as exc:
        raise _input_error(exc, path) from None
    return [PredItem(rid, i, result) if isinstance(result, dict) else PredItem(rid, i, None, _reason(result))
            for i, rid, result in frames]


def _read_table_records(path: Path) -> list[dict]:
    try:
        return read_parquet_rows(path, arrow_files=True)
    except StructureError as exc:
        raise _input_error(exc, path) from None


def _read_csv(path: Path, column: str, symmetry: bool) -> list[PredItem]:
    return _items(path, lambda: iter_jarvis_csv(path, column=column, symmetry=symmetry))


def _read_extxyz(path: Path, symmetry: bool) -> list[PredItem]:
    """One item per frame (:func:`dismai_data.io.iter_extxyz`): a bad frame is a failed
    row; a file that cannot be cut into frames, or has none, is a file-level error. Info
    keys (energies...) are not read: a prediction is its structure."""
    return _items(path, lambda: iter_extxyz(path, symmetry=symmetry, info_columns=False))


def _read_files(path: Path, symmetry: bool) -> list[PredItem]:
    """One item per CIF/POSCAR file (:func:`dismai_data.io.iter_structure_files`)."""
    return _items(path, lambda: iter_structure_files(path, symmetry=symmetry))


def split_hub_id(source: str) -> tuple[str, str | None]:
    repo, _, rev = source.partition("@")
    return repo, (rev or None)


def load_hub(repo: str, revision: str | None, split: str, config: str | None, source: str) -> list[dict]:
    """Rows of one split of a hub dataset (``datasets.load_dataset``); ``source`` names it in errors."""
    try:
        import datasets
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = datasets.load_dataset(repo, config, revision=revision, split=split)
    except Exception as exc:
        raise EvaluationInputError(f"cannot load hub dataset ({type(exc).__name__}: {exc})", source=source,
                                   field="dataset") from None
    return ds.to_list()




def read_predictions(source: str | os.PathLike, *, column: str | None = None, split: str = "test",
                     symmetry: bool = True) -> PredictionSet:
    """All submitted structures of ``source`` (file, folder or ``hub-id@revision``)."""
    src = str(source)
    path = Path(src)
    if not path.exists():
        if _HUB_ID.match(src) and ("/" in src or "@" in src):
            repo, rev = split_hub_id(src)
            records = load_hub(repo, rev, split, None, src)
            ps = PredictionSet(src, "hub", column, revision=rev)
            ps.items = _items_from_records(records, src, column, symmetry, repo.split("/")[-1])
            _check_duplicates(ps)
            return ps
        raise EvaluationInputError("does not exist (and is not a hub id of the form owner/name@revision)",
                                   source=src, field="predictions")
    if path.is_file() and path.stat().st_size == 0:
        raise EvaluationInputError("is empty", source=src, field="file")
    try:
        fmt = guess_format(path)
    except StructureError as exc:
        raise EvaluationInputError(exc.reason, source=src, field="format") from None
    ps = PredictionSet(src, fmt, column)
    if fmt == "parquet":
        ps.items = _items_from_records(_read_table_records(path), src, column, symmetry, path.stem)
    elif fmt == "jarvis-csv":
        ps.column = column or "prediction"
        ps.items = _read_csv(path, ps.column, symmetry)
    elif fmt == "extxyz":
        ps.items = _read_extxyz(path, symmetry)
    else:
        ps.items = _read_files(path, symmetry)
    _check_duplicates(ps)
    return ps


def _check_duplicates(ps: PredictionSet) -> None:
    seen: dict[str, int] = {}
    for it in ps.items:
        if it.id in seen:
            raise EvaluationInputError(f"duplicate id {it.id!r} (rows {seen[it.id]} and {it.index})",
                                       source=ps.source, field="id")
        seen[it.id] = it.index


# --------------------------------------------------------------------------- reference
@dataclass
class Reference:
    id: str
    revision: str | None
    config: str | None
    split: str
    source: str
    rows: list[dict]
    build_info: dict | None = None  # the dataset's build_info.json (provenance), when it can be read


def _hub_build_info(repo: str, revision: str | None) -> dict | None:
    """``build_info.json`` of a hub dataset repo, or None when it has none / cannot be read."""
    try:
        from huggingface_hub import hf_hub_download

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = hf_hub_download(repo, "build_info.json", repo_type="dataset", revision=revision)
        info = json.loads(Path(path).read_text())
        return info if isinstance(info, dict) else None
    except Exception:
        return None


def default_dataset_dir(name: str) -> Path:
    """``$DISMAI_HOME/datasets/NAME`` (or the user cache dir), where ``dismai main`` builds."""
    from dismai_data.paths import default_home

    return default_home() / "datasets" / name


def load_reference(reference: str | os.PathLike | None, dataset: str, split: str,
                   config: str | None = None) -> Reference:
    """Rows of one split of a reference dataset: a folder written by ``dismai build``
    (``DIR/data[/CONFIG]/SPLIT-*.parquet``), a parquet file, or ``hub-id@revision``."""
    if reference is None:
        reference = default_dataset_dir(dataset)
        if not Path(reference).exists():
            raise EvaluationInputError(f"no reference given and the default {reference} does not exist; "
                                       f"pass --reference DIR or a hub id", source=str(reference),
                                       field="reference")
    src = str(reference)
    path = Path(src)
    if not path.exists():
        if _HUB_ID.match(src):
            repo, rev = split_hub_id(src)
            rows = load_hub(repo, rev, split, config, src)
            if not rows:
                raise EvaluationInputError(f"split {split!r} is empty", source=src, field="split")
            return Reference(repo, rev, config, split, src, rows, _hub_build_info(repo, rev))
        raise EvaluationInputError("does not exist", source=src, field="reference")
    name, revision, meta = dataset, None, None
    if path.is_dir():
        info = path / "build_info.json"
        if info.exists():
            try:
                meta = json.loads(info.read_text())
                if not isinstance(meta, dict):
                    meta = None
                else:
                    name = meta.get("name", name)
                    revision = f"v{meta['version']}" if meta.get("version") else None
            except (ValueError, KeyError):
                meta = None
        base = path / "data" if (path / "data").is_dir() else path
        if config:
            base = base / config if (base / config).is_dir() else base
        files = sorted(base.glob(f"{split}-*.parquet")) or sorted(base.glob(f"{split}*.parquet"))
        if not files:
            raise EvaluationInputError(f"holds no parquet files for split {split!r}"
                                       + (f" of config {config!r}" if config else ""), source=str(base),
                                       field="split")
    else:
        files = [path]
    import pyarrow.parquet as pq

    rows: list[dict] = []
    for f in files:
        try:
            rows.extend(pq.read_table(f).to_pylist())
        except Exception as exc:
            raise EvaluationInputError(f"cannot read ({type(exc).__name__}: {exc})", source=str(f),
                                       field="file") from None
    if not rows:
        raise EvaluationInputError(f"split {split!r} is empty", source=src, field="split")
    for c in ("id", "frac_coords", "lattice", "species"):
        if c not in rows[0]:
            raise EvaluationInputError("missing column", source=str(files[0]), field=c)
    return Reference(name, revision, config, split, src, rows, meta)


__all__ = ["EvaluationInputError", "load_hub", "split_hub_id", "PredItem", "PredictionSet", "Reference",
           "read_predictions", "load_reference", "default_dataset_dir", "DismaiError"]
