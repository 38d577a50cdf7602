"""Build times and sizes of the crystalline datasets (the figures in the foundation
issue's note). Usage: python benchmarks/build_datasets.py [NAME ...]

Prints, per dataset: rows per split, build seconds (builder + writer incl. figures),
parquet bytes, total folder bytes, and whether a second write of the same rows is
byte-identical.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from dismai_data.build import summarize
from dismai_data.builders.write import write_dataset
from dismai_data.builders import DEFAULT_DATASETS, run_builder


def main(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'dataset':20s} {'rows':>28s} {'build_s':>8s} {'write_s':>8s} {'parquet_MB':>10s} "
              f"{'folder_MB':>9s} identical")
        for name in names:
            t0 = time.perf_counter()
            b = run_builder(name)
            t1 = time.perf_counter()
            out = write_dataset(b, Path(tmp) / name)
            t2 = time.perf_counter()
            again = write_dataset(b, Path(tmp) / f"{name}-again", figures=False)
            same = all(f.read_bytes() == (again / f.relative_to(out)).read_bytes()
                       for f in out.rglob("*.parquet"))
            s = summarize(out)
            rows = "/".join(str(n) for v in s["num_rows"].values() for n in v.values())
            print(f"{name:20s} {rows:>28s} {t1 - t0:8.1f} {t2 - t1:8.1f} {s['parquet_bytes'] / 1e6:10.2f} "
                  f"{s['bytes'] / 1e6:9.2f} {same}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(DEFAULT_DATASETS))
