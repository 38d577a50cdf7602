"""Novelty (and the other generic metrics) of 10 000 generated vs 10 000 training
structures, with the bucketed matcher. Prints the figures.

Data: Perov-5 from the raw JARVIS-Leaderboard split in builders/raw (train rows
0..9999 as the training set; generated = all val + test rows plus shaken copies of
the remaining training rows, so duplicates, near-duplicates and novel ones all occur).

    nice .venv/bin/python benchmarks/eval_novelty.py [--n 10000] [--workers 2] [--brute-sample 200]

``--brute-sample K`` also times plain ``StructureMatcher.fit`` of K generated
structures against every training structure (no bucketing) and extrapolates.
``--compare-pairs K`` times, in the same run, plain ``fit`` and the cached matcher of
``generic`` on K same-formula (generated, train) pairs and checks equal decisions.

Besides wall time it prints CPU seconds (this process + its worker processes): on a
shared machine the wall time depends on the other load, the CPU seconds much less;
CPU seconds / workers is the wall time on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def _cpu() -> float:
    """CPU seconds of this process and of its finished child processes."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _compare_pairs(gen, train, k: int):
    from collections import defaultdict

    from dismai_data.evaluation.generic import fits, matcher, plain_matcher, reduce_for_matching
    from dismai_data.structure import row_to_structure

    by = defaultdict(list)
    for r in train:
        by[r["reduced_formula"]].append(r)
    pairs = [(g, t) for g in gen for t in by.get(g["reduced_formula"], [])][:k]
    red = [(reduce_for_matching(row_to_structure(a)), reduce_for_matching(row_to_structure(b))) for a, b in pairs]
    out = {}
    for name, sm in (("plain StructureMatcher.fit", plain_matcher()), ("cached strict match", matcher())):
        c0 = time.process_time()
        out[name] = [fits(sm, a, b) for a, b in red]
        print(f"  {name}: {len(red)} same-formula pairs (pre-reduced), {time.process_time() - c0:.2f} CPU s, "
              f"{sum(out[name])} matches")
    a, b = out.values()
    print(f"  same decisions: {a == b}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--brute-sample", type=int, default=0)
    ap.add_argument("--classes-sample", type=int, default=500,
                    help="also time the full metrics incl. substitution classes on this many generated")
    ap.add_argument("--compare-pairs", type=int, default=0)
    args = ap.parse_args()
    from dismai_data.evaluation.generic import generic_metrics

    t0 = time.perf_counter()
    train, gen = _rows(args.n)
    print(f"rows: {len(train)} train, {len(gen)} generated (prepared in {time.perf_counter() - t0:.1f} s)")
    t0, c0 = time.perf_counter(), _cpu()
    res = generic_metrics(gen, len(gen), train, train[:2000], workers=args.workers, novelty_classes=False)
    dt, cpu = time.perf_counter() - t0, _cpu() - c0
    m = res["metrics"]
    print(f"generic metrics without substitution classes (novelty, uniqueness, coverage vs 2000 rows, validity, "
          f"Wasserstein), {len(gen)} vs {len(train)}, workers={args.workers}: {dt:.1f} s wall, {cpu:.1f} CPU s "
          f"(CPU s / workers = {cpu / max(1, args.workers):.1f} s); load average at the end "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
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
    if args.compare_pairs:
        _compare_pairs(gen, train, args.compare_pairs)
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
