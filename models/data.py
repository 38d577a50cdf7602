"""Reading a dataset split for the baselines: a local build folder (``dismai build``
output) or a hub dataset id read with the stock ``datasets.load_dataset`` (HF_ENDPOINT)."""

from __future__ import annotations

import os
from pathlib import Path

from dismai_data.errors import StructureError


def _local_files(folder: Path, config: str | None, split: str) -> list[Path]:
    data = folder / "data"
    base = data / config if config else data
    return sorted(base.glob(f"{split}-*.parquet"))


def load_split(dataset: str | os.PathLike, split: str, *, config: str | None = None, revision: str | None = None,
               columns: list[str] | None = None) -> list[dict]:
    """Rows (dicts) of one split. ``dataset``: a folder written by ``dismai build`` or a hub
    id ``owner/name`` (``revision``: a tag/branch/commit). Errors name the dataset and field."""
    path = Path(dataset).expanduser()
    if path.is_dir():
        files = _local_files(path, config, split)
        if not files:
            raise StructureError(f"no {split} parquet under {path / 'data' / (config or '')}", source=str(path),
                                 field="split" if not config else "config")
        import pyarrow.parquet as pq

        rows: list[dict] = []
        for f in files:
            cols = None if columns is None else [c for c in columns if c in pq.read_schema(f).names]
            rows.extend(pq.read_table(f, columns=cols).to_pylist())
        return rows
    if "/" not in str(dataset):
        raise StructureError("is neither a dataset folder nor a hub id owner/name", source=str(dataset),
                             field="dataset")
    import datasets

    try:
        ds = datasets.load_dataset(str(dataset), config, split=split, revision=revision)
    except Exception as exc:
        raise StructureError(f"cannot load {split!r} (config {config!r}, revision {revision!r}) from the hub: "
                             f"{type(exc).__name__}: {exc}", source=str(dataset), field="dataset") from None
    if columns:
        ds = ds.select_columns([c for c in columns if c in ds.column_names])
    return ds.to_list()


def dataset_name(dataset: str | os.PathLike) -> str:
    """``alloy`` for ``dismai/alloy`` or ``~/.cache/dismai-data/datasets/alloy``."""
    return Path(str(dataset).rstrip("/")).name
