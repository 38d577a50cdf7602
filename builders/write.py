"""Writing a built dataset folder: the parquet shards of every config and split, the
figures, the card (``dismai_data.cards``) and ``build_info.json``, replacing the folder
atomically. The layout and the shard writer are the contract of :mod:`dismai_data.build`.

Determinism: rows are written in the builder's order with fixed writer options and
no timestamps, so the same inputs give byte-identical parquet.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from dismai_data.build import DEFAULT_ROWS_PER_SHARD, DatasetBuild, build_info, data_files, write_parquet
from dismai_data.cards import render_dataset_card
from dismai_data.structure import rows_to_table


def write_dataset(build: DatasetBuild, out: str | os.PathLike, *, figures: bool = True,
                  rows_per_shard: int = DEFAULT_ROWS_PER_SHARD) -> Path:
    """Write ``build`` to ``out`` (replacing it atomically) and return the folder."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for config in build.configs:
            files = data_files(build, config, rows_per_shard)
            for split, paths in files.items():
                rows = build.configs[config][split]
                table = rows_to_table(rows, build.extra_features)
                for i, rel in enumerate(paths):
                    write_parquet(table.slice(i * rows_per_shard, rows_per_shard), staging / rel)
        fig_paths: list[str] = []
        if figures:
            from dismai_data.figures import dataset_figures

            fig_paths = dataset_figures(build, staging / "figures")
        (staging / "README.md").write_text(render_dataset_card(build, fig_paths, rows_per_shard))
        (staging / "build_info.json").write_text(json.dumps(build_info(build), indent=1) + "\n")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
