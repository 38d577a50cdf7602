"""Score the committed baselines with the evaluation module and write each
``models/checkpoints/<repo>/scores.json`` (what ``publish_baselines(evaluate=False)``
puts into the model cards' model-index). Prints one line per task.

    .venv/bin/python benchmarks/baselines.py [--datasets DIR] [--only NAME ...] [--n N] [--workers W]
        [--relax-checkpoint DIR]

Datasets default to ``$DISMAI_HOME/datasets``; baselines whose dataset is not built are
skipped with the reason. Single-threaded torch (shared machine). For the tasks the quick
start does not score (``dismai_data.mainjob.QUICK_START_SKIPS``) the scored predictions are kept
in ``models/checkpoints/<repo>/predictions/seed0.parquet``: the main job ships them with
these scores as leaderboard rows (``models.publish.shipped_record``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def main() -> None:
    from dismai_data import tasks
    from dismai_data.mainjob import QUICK_START_SKIPS
    from dismai_data.models.publish import BASELINES, score_baseline
    from dismai_data.paths import default_home

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", default=str(default_home() / "datasets"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--n", type=int, default=None, help="structures per baseline (default: each baseline's n)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1, help="local processes for scoring (and its relaxations)")
    ap.add_argument("--relax-checkpoint", default=None,
                    help="folder: each baseline's M3GNet relaxations are kept in DIR/<name>, so a stopped run "
                         "resumes with only the rest relaxed")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for b in BASELINES:
        if args.only and b.name not in args.only:
            continue
        if not (b.folder / "config.json").is_file():
            print(f"{b.name}: skipped (no checkpoint folder)")
            continue
        t0 = time.perf_counter()
        try:
            scores = score_baseline(b, args.datasets, seed=args.seed, n=args.n, workers=args.workers,
                                    keep_predictions=args.n is None and any(t in QUICK_START_SKIPS for t in b.tasks),
                                    relax_checkpoint=None if args.relax_checkpoint is None
                                    else Path(args.relax_checkpoint) / b.name,
                                    command=" ".join(["benchmarks/baselines.py", *sys.argv[1:]]))
        except (FileNotFoundError, RuntimeError) as exc:
            print(f"{b.name}: skipped ({exc})")
            continue
        (b.folder / "scores.json").write_text(json.dumps(scores, indent=1, sort_keys=True) + "\n")
        for task, s in scores.items():
            m = s["metrics"]
            # the task's leaderboard columns (headline first; dismai_data.tasks)
            keys = [k for k in tasks.get(task).columns if k in m and m[k]["value"] is not None]
            print(f"{b.name} {task}: " + ", ".join(f"{k}={m[k]['value']:.4g}" for k in keys)
                  + f" ({s['generated']} generated, {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
