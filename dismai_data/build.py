"""The built-dataset contract: :class:`DatasetBuild` (what every builder returns), its
folder layout (:func:`data_files`), deterministic parquet shards (:func:`write_parquet`),
``build_info.json`` and :func:`summarize` of a written folder.

``dismai_data.builders.write.write_dataset`` turns a :class:`DatasetBuild` into the folder
layout the hub serves and ``datasets`` loads (it adds figures and the card, rendered by
``dismai_data.cards``, a layer above this module)::

    OUT/
      README.md                                  dataset card (YAML + prose)
      figures/*.png                              figures referenced from the card
      data/{split}-00000-of-00001.parquet        single-config datasets
      data/{config}/{split}-00000-of-0000N.parquet   multi-config datasets

Determinism: rows are written in the builder's order with fixed writer options and
no timestamps, so the same inputs give byte-identical parquet.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dismai_data.schema import features

#: Rows per parquet shard (all current datasets fit in one shard per split).
DEFAULT_ROWS_PER_SHARD = 100_000
#: Rows per parquet row group (small groups keep streaming and previews cheap).
ROW_GROUP_SIZE = 1_000
SPLIT_ORDER = ("train", "validation", "val", "test")


@dataclass
class Column:
    """Documentation of a dataset-specific column: its feature, unit and meaning."""

    feature: Any
    unit: str
    description: str


@dataclass
class SourceFile:
    """A raw input the dataset was built from."""

    name: str
    sha256: str
    source: str
    licence: str


@dataclass
class DatasetBuild:
    """Everything a builder produces; ``dismai_data.builders.write.write_dataset`` writes it out."""

    name: str  # hub name, e.g. "jarvis-supercon-3d"
    pretty_name: str
    version: str  # dataset version, tagged on the hub as v{version}
    builder_version: str
    license: str  # SPDX-like id for the card YAML, e.g. "cc-by-4.0"
    summary: str  # first paragraph of the card
    configs: dict[str, dict[str, list[dict]]]  # config -> split -> rows
    columns: dict[str, Column] = field(default_factory=dict)  # extra (non-structure) columns
    sources: list[SourceFile] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    citation: str = ""
    provenance: str = ""  # prose: where the data came from, how it was processed
    split_note: str = ""  # prose: how the splits were made
    tags: list[str] = field(default_factory=list)
    property_column: str | None = None  # column to histogram in the figures (e.g. "tc")
    property_label: str = ""
    rebuilt: bool = False  # True for datasets regenerated here rather than copied
    default_config: str | None = None
    card_template: str = "dataset_card.md.j2"
    checks: list[str] = field(default_factory=list)  # one line per consistency check passed
    # extra figure makers: callables (build, figures_folder) -> card-relative PNG path
    extra_figures: list = field(default_factory=list)

    @property
    def extra_features(self) -> dict[str, Any]:
        return {k: c.feature for k, c in self.columns.items()}

    @property
    def features(self):
        return features(self.extra_features)

    def split_names(self, config: str) -> list[str]:
        names = list(self.configs[config])
        return sorted(names, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else 99, s))

    @property
    def single_config(self) -> bool:
        return len(self.configs) == 1 and "default" in self.configs

    def num_rows(self) -> int:
        return sum(len(rows) for splits in self.configs.values() for rows in splits.values())


def data_files(build: DatasetBuild, config: str, rows_per_shard: int = DEFAULT_ROWS_PER_SHARD) -> dict[str, list[str]]:
    """split -> relative parquet paths of one config, in the layout described above."""
    out = {}
    for split in build.split_names(config):
        n = len(build.configs[config][split])
        shards = max(1, math.ceil(n / rows_per_shard))
        prefix = "data/" if build.single_config else f"data/{config}/"
        out[split] = [f"{prefix}{split}-{i:05d}-of-{shards:05d}.parquet" for i in range(shards)]
    return out


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write one shard deterministically (fixed options, atomic rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(
        table,
        tmp,
        row_group_size=ROW_GROUP_SIZE,
        compression="zstd",
        compression_level=3,
        use_dictionary=True,
        write_statistics=True,
        version="2.6",
        data_page_version="1.0",
        store_schema=True,
    )
    os.replace(tmp, path)


def build_info(build: DatasetBuild) -> dict:
    """Machine-readable provenance written next to the card (``build_info.json``)."""
    return {
        "name": build.name,
        "version": build.version,
        "builder_version": build.builder_version,
        "rebuilt": build.rebuilt,
        "parameters": build.parameters,
        "sources": [vars(s) for s in build.sources],
        "num_rows": {c: {s: len(r) for s, r in sp.items()} for c, sp in build.configs.items()},
        "checks": build.checks,
    }


def summarize(path: str | os.PathLike) -> dict:
    """Counts per config/split and size on disk of a written dataset folder."""
    path = Path(path)
    info = json.loads((path / "build_info.json").read_text())
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    parquet = sum(f.stat().st_size for f in path.rglob("*.parquet"))
    return {"name": info["name"], "version": info["version"], "path": str(path), "num_rows": info["num_rows"],
            "bytes": size, "parquet_bytes": parquet}


def split_rows(rows: Sequence[dict], assignment: Mapping[str, str], splits: Sequence[str]) -> dict[str, list[dict]]:
    """Partition rows by ``assignment[id] -> split``, keeping row order within a split."""
    out: dict[str, list[dict]] = {s: [] for s in splits}
    for r in rows:
        out[assignment[r["id"]]].append(r)
    return out
