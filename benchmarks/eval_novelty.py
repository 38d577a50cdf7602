"""Novelty (and the other generic metrics) of 10 000 generated vs 10 000 training
structures, with the bucketed matcher. Prints the figures.

Data: Perov-5 from the raw JARVIS-Leaderboard split in builders/raw (train rows
0..9999 as the training set; generated = all val + test rows plus shaken copies of
the remaining training rows, so duplicates, near-duplicates and novel ones all occur).

    nice .venv/bin/python benchmarks/eval_novelty.py [--n 10000] [--workers 2] [--brute-sample 200]

``--brute-sample K`` also times plain ``StructureMatcher.fit`` of K generated
structures against every training structure (no bucketing) and extrapolates.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

os.environ.setdefault("DISMAI_NO_PROGRESS", "1")

ROOT = Path(__file__).resolve().parents[1]
ZIP = ROOT / "builders" / "raw" / "perov5" / "perov5_atomgen_split.json.zip"
CACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "dismai_eval_bench_perov5"


def _rows(n: int):
    import pyarrow.parquet as pq

    from dismai_data.io import row_from_poscar
    from dismai_data.structure import make_row, rows_to_table

    CACHE.mkdir(parents=True, exist_ok=True)
    tp, gp = CACHE / f"train{n}.parquet", CACHE / f"gen{n}.parquet"
    if tp.exists() and gp.exists():
        return pq.read_table(tp).to_pylist(), pq.read_table(gp).to_pylist()
    with zipfile.ZipFile(ZIP) as z:
        d = json.loads(z.read(z.namelist()[0]))
    train_items = sorted(d["train"].items())
    other = sorted(d["val"].items()) + sorted(d["test"].items())
    train = [row_from_poscar(p, i) for i, p in train_items[:n]]
    gen = [row_from_poscar(p, i) for i, p in other[:n]]
    rng = np.random.default_rng(0)
    k = 0
    for i, p in train_items[n:]:
        if len(gen) >= n:
            break
        r = row_from_poscar(p, i)
        frac = (np.asarray(r["frac_coords"]) + rng.normal(0, 0.03, (r["num_atoms"], 3))) % 1.0
        gen.append(make_row(r["species"], frac, r["lattice"], f"shaken-{i}"))
        k += 1
    while len(gen) < n:  # not enough rows: shaken copies of training rows
        r = train[len(gen) % len(train)]
        frac = (np.asarray(r["frac_coords"]) + rng.normal(0, 0.1, (r["num_atoms"], 3))) % 1.0
        gen.append(make_row(r["species"], frac, r["lattice"], f"shaken2-{len(gen)}"))
    pq.write_table(rows_to_table(train), tp)
    pq.write_table(rows_to_table(gen), gp)
    return train, gen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--brute-sample", type=int, default=0)
    ap.add_argument("--classes-sample", type=int, default=500,
                    help="also time the full metrics incl. substitution classes on this many generated")
    args = ap.parse_args()
    from dismai_data.evaluation.generic import generic_metrics

    t0 = time.perf_counter()
    train, gen = _rows(args.n)
    print(f"rows: {len(train)} train, {len(gen)} generated (prepared in {time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    res = generic_metrics(gen, len(gen), train, train[:2000], workers=args.workers, novelty_classes=False)
    dt = time.perf_counter() - t0
    m = res["metrics"]
    print(f"generic metrics without substitution classes (novelty, uniqueness, coverage vs 2000 rows, validity, "
          f"Wasserstein), {len(gen)} vs {len(train)}, workers={args.workers}: {dt:.1f} s")
    print("  stages (s):", res["settings"]["timings_s"])
    for k in ("novelty", "uniqueness", "coverage_recall", "validity_compositional"):
        print(f"  {k}: {m[k].value:.4f}")
    if args.classes_sample:
        k = args.classes_sample
        t0 = time.perf_counter()
        r2 = generic_metrics(gen[:k], k, train, train[:2000], workers=args.workers)
        print(f"with substitution classes, {k} generated vs {len(train)} train: {time.perf_counter() - t0:.1f} s; "
              f"stages (s): {r2['settings']['timings_s']}")
        for c in ("duplicate", "substitution", "unmatched"):
            print(f"  novelty_class_{c}: {r2['metrics'][f'novelty_class_{c}'].value:.4f}")
    if args.brute_sample:
        from pymatgen.analysis.structure_matcher import StructureMatcher

        from dismai_data.structure import row_to_structure

        sm = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)
        ts = [row_to_structure(r) for r in train]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for r in gen[:args.brute_sample]:
                g = row_to_structure(r)
                for t in ts:
                    if sm.fit(g, t):
                        break
        bt = time.perf_counter() - t0
        print(f"plain StructureMatcher.fit, {args.brute_sample} generated x {len(ts)} train (early exit): {bt:.1f} s"
              f" -> extrapolated {bt / args.brute_sample * len(gen) / 60:.1f} min for all, one process")


if __name__ == "__main__":
    main()
