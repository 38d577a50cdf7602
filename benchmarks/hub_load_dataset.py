"""Cold ``datasets.load_dataset`` of a dataset published on the local hub, against
``pyarrow.parquet.read_table`` of the same parquet files on disk, in the same run.

    python benchmarks/hub_load_dataset.py [--mb 60]

"Cold" = the data was never downloaded (fresh HF cache); the process has imported datasets
and already made one load_dataset call on a tiny warm-up dataset, so the lazy imports of
the first call (about 1 s here) are reported separately.

Also prints ``load_dataset("parquet", data_files=<local files>)`` (no hub at all), which
separates the hub's share from the datasets library's own parquet -> arrow cache cost.
Goal: hub load <= 2x read_table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from hub_upload import client, start_hub  # noqa: E402


def make_dataset(folder: Path, mb: float) -> int:
    (folder / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = int(mb * 1e6 / (8 * 6 + 12))
    splits = {"train": (rows * 8 // 10, 2), "test": (rows - rows * 8 // 10, 1)}
    for split, (n, shards) in splits.items():
        per = n // shards
        for s in range(shards):
            t = pa.table({f"f{j}": rng.standard_normal(per) for j in range(6)} |
                         {"material_id": [f"m-{split}-{s}-{i}" for i in range(per)]})
            pq.write_table(t, folder / "data" / f"{split}-{s:05d}-of-{shards:05d}.parquet", compression="none")
    (folder / "README.md").write_text(textwrap.dedent("""\
        ---
        configs:
        - config_name: default
          data_files:
          - split: train
            path: data/train-*.parquet
          - split: test
            path: data/test-*.parquet
        ---
        # load benchmark
        """))
    return sum(p.stat().st_size for p in (folder / "data").glob("*.parquet"))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "ds"
        size = make_dataset(folder, args.mb)
        warm_folder = tmp / "warm"
        make_dataset(warm_folder, 0.05)
        proc, url, token = start_hub(tmp / "store")
        try:
            client(url, token, tmp / "pub", f"""
            import json
            from huggingface_hub import HfApi
            api = HfApi()
            api.create_repo("dismai/load-bench", repo_type="dataset")
            api.upload_folder(repo_id="dismai/load-bench", repo_type="dataset", folder_path={str(folder)!r})
            api.create_tag("dismai/load-bench", tag="v1.0", repo_type="dataset")
            api.create_repo("dismai/warmup", repo_type="dataset")
            api.upload_folder(repo_id="dismai/warmup", repo_type="dataset", folder_path={str(warm_folder)!r})
            api.create_tag("dismai/warmup", tag="v1.0", repo_type="dataset")
            print(json.dumps({{}}))
            """)
            for attempt in range(2):
                r = client(url, token, tmp / f"cold{attempt}", f"""
                import json, time, glob
                t0 = time.perf_counter()
                import datasets, pyarrow.parquet as pq
                imp = time.perf_counter() - t0
                files = sorted(glob.glob({str(folder / 'data' / '*.parquet')!r}))
                rts = []
                for _ in range(3):  # first call includes pyarrow's lazy set-up: report the best of 3
                    t0 = time.perf_counter()
                    tables = [pq.read_table(f) for f in files]
                    rts.append(time.perf_counter() - t0)
                rt = min(rts)
                t0 = time.perf_counter()
                datasets.load_dataset("dismai/warmup", revision="v1.0")  # first call: lazy imports
                first = time.perf_counter() - t0
                t0 = time.perf_counter()
                d = datasets.load_dataset("dismai/load-bench", revision="v1.0")
                hub = time.perf_counter() - t0
                n = sum(d[k].num_rows for k in d)
                t0 = time.perf_counter()
                datasets.load_dataset("dismai/load-bench", revision="v1.0")
                warm = time.perf_counter() - t0
                t0 = time.perf_counter()
                datasets.load_dataset("parquet", data_files={{"train": [f for f in files if "train" in f],
                                                              "test": [f for f in files if "test" in f]}},
                                      cache_dir={str(tmp / f'localcache{attempt}')!r})
                local = time.perf_counter() - t0
                assert n == sum(t.num_rows for t in tables)
                print(json.dumps({{"import": imp, "read_table": rt, "hub": hub, "warm": warm, "local": local,
                                  "rows": n, "first": first}}))
                """)
                print(f"[run {attempt + 1}] {size / 1e6:.1f} MB parquet, {r['rows']} rows: "
                      f"pyarrow.read_table {r['read_table']:.3f} s (best of 3); "
                      f"cold load_dataset from the hub {r['hub']:.3f} s "
                      f"({r['hub'] / r['read_table']:.1f}x read_table, goal <= 2x); "
                      f"load_dataset('parquet', local files, no hub) {r['local']:.3f} s "
                      f"(hub/local {r['hub'] / r['local']:.1f}x); "
                      f"warm hub load {r['warm']:.3f} s; import datasets {r['import']:.2f} s, then the first "
                      f"load_dataset call of the process (tiny dataset, lazy imports) {r['first']:.2f} s")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
