"""Helpers shared by the builders of the real crystalline datasets."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dismai_data.build import SourceFile
from dismai_data.raw import SHA256, raw_file

#: Split names used by every dataset (the upstream "val" is stored as "validation").
SPLITS = ("train", "validation", "test")
UPSTREAM_SPLIT = {"train": "train", "val": "validation", "test": "test"}

#: BibTeX of the Dismai-Bench paper, cited by every Dismai-Bench dataset card.
DISMAI_BENCH_CITATION = """@article{yong2024dismai,
  title   = {Dismai-Bench: benchmarking and designing generative models using disordered materials and interfaces},
  author  = {Yong, Adrian Xiao Bin and Su, Tianyu and Ertekin, Elif},
  journal = {Digital Discovery},
  volume  = {3},
  pages   = {1889--1909},
  year    = {2024},
  doi     = {10.1039/d4dd00100a}
}
"""

ATOMGEN_SOURCE = ("usnistgov/jarvis_leaderboard commit 57afc55f94c8a6f4562f73a3173968cd4b2f83b1, "
                  "jarvis_leaderboard/benchmarks/AI/AtomGen/{file}")


def source_file(name: str, source: str, licence: str) -> SourceFile:
    return SourceFile(name=name, sha256=SHA256[name], source=source, licence=licence)


def read_atomgen_split(name: str, raw_root: Path | None = None) -> dict[str, dict[str, str]]:
    """``{split: {id: POSCAR}}`` of a JARVIS-Leaderboard AtomGen zip, splits renamed
    to train/validation/test, upstream order kept."""
    path = raw_file(name, raw_root)
    with zipfile.ZipFile(path) as z:
        members = [m for m in z.namelist() if m.endswith(".json")]
        if len(members) != 1:
            raise ValueError(f"{path}: expected one .json member, found {members}")
        data = json.loads(z.read(members[0]))
    unknown = set(data) - set(UPSTREAM_SPLIT)
    if unknown:
        raise ValueError(f"{path}: unexpected splits {sorted(unknown)}")
    return {UPSTREAM_SPLIT[k]: v for k, v in data.items()}


def parse_all(items: Iterable, parse: Callable, desc: str, total: int | None = None) -> list[dict]:
    """Parse items with a progress bar (rows keep the input order)."""
    return [parse(i, item) for i, item in enumerate(tqdm(items, desc=desc, total=total, unit="row",
                                                         leave=False, mininterval=1.0))]


def from_files_paths(spec) -> list[Path]:
    """The extxyz files named by a builder's ``from_files`` parameter: a file, a folder
    (searched recursively) or a comma-separated list / list of either."""
    items = spec if isinstance(spec, (list, tuple)) else [s for s in str(spec).split(",") if s.strip()]
    files: list[Path] = []
    for item in items:
        path = Path(str(item).strip()).expanduser()
        if path.is_dir():
            files += sorted(q for q in path.rglob("*") if q.is_file() and q.suffix.lower() in (".extxyz", ".xyz"))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"from_files: {path} does not exist")
    if not files:
        raise FileNotFoundError(f"from_files: no .extxyz files in {spec!r}")
    return files


def file_split(path: Path) -> str:
    """train or validation, from an original Dismai-Bench file name (``train``/``val``)."""
    name = path.name.lower()
    if re.search(r"(^|[^a-z])val", name):
        return "validation"
    if "train" in name:
        return "train"
    raise ValueError(f"{path}: cannot tell the split (train/val) from the file name")


def unique_ids(rows: list[dict]) -> list[dict]:
    """``rows``, after checking their ids are unique (one split of a builder's input files)."""
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate row ids within one split of the input files")
    return rows


def rows_from_files(spec, extra: Callable[[Path, int, dict], dict]) -> dict[str, list[dict]]:
    """Rows of the original Dismai-Bench extxyz files named by ``from_files``, by split (from
    each file name): every frame's structure as stored, with the columns ``extra(path, i,
    row)`` returns (it raises ValueError naming the frame when the structure is not of the
    builder's system); ids must be unique within a split."""
    from dismai_data.io import read_extxyz
    from dismai_data.structure import make_row

    splits: dict[str, list[dict]] = {}
    for path in from_files_paths(spec):
        split = file_split(path)
        for i, row in enumerate(read_extxyz(path, symmetry=False)):
            splits.setdefault(split, []).append(
                make_row(row["species"], row["frac_coords"], row["lattice"], row["id"], extra(path, i, row),
                         index=i, symmetry=False))
    for rows in splits.values():
        unique_ids(rows)
    return splits


def seeded_split(rows: list[dict], seed: int, train_fraction: float) -> dict[str, list[dict]]:
    """Train/validation split of generated rows by a seeded permutation
    (``default_rng([seed, 2])``; the first ``round(train_fraction * n)`` go to train), order kept."""
    n = len(rows)
    perm = np.random.default_rng([int(seed), 2]).permutation(n)
    train = set(perm[:int(round(train_fraction * n))].tolist())
    return {"train": [r for k, r in enumerate(rows) if k in train],
            "validation": [r for k, r in enumerate(rows) if k not in train]}
