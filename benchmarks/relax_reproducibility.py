"""How reproducible a relaxed score is across CPUs: what ``dismai leaderboard rescore`` can
demand of a relaxed row scored on other hardware.

    # the structures that enter the relaxation (after the 1.5 A rule), under each OpenBLAS kernel
    .venv/bin/python benchmarks/relax_reproducibility.py inputs \
        --predictions models/checkpoints/diffcsp-interface/predictions/seed0.parquet
    # two scoring runs' relaxation checkpoints (``baselines.py --relax-checkpoint DIR``), e.g. from two machines
    .venv/bin/python benchmarks/relax_reproducibility.py compare DIR_A/diffcsp-interface DIR_B/diffcsp-interface
    # the same machine: relax some of a run's structures again in this process and compare with its shards
    .venv/bin/python benchmarks/relax_reproducibility.py rerun DIR/random-interface \
        --predictions models/checkpoints/random-interface/predictions/seed0.parquet --ids 22 150 16 17

``inputs`` runs the 1.5 A rule on the first ``--n`` generated rows in one process per
``OPENBLAS_CORETYPE`` (numpy's matrix products; the kernel a CPU gets by default depends on
its instruction set) and prints a digest of the moved structures' ``input_sha256``: equal
digests, bit-identical inputs. ``compare`` matches the relaxed structures of two checkpoint
folders by id: equal input hashes, largest atom displacement between the two results, energy
difference, FIRE steps. ``rerun`` relaxes the given rows (ids of the checkpoint: the
row's position in the predictions file) again in this process, one thread, and compares
them with that run's shards.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys

import numpy as np

CORETYPES = ("", "Haswell", "SkylakeX", "Zen", "SapphireRapids")


def _digest(predictions: str, n: int) -> str:
    import pyarrow.parquet as pq

    from dismai_data.evaluation.disorder_prepare import move_apart_task
    from dismai_data.physics.relax.inputs import input_hash

    rows = pq.read_table(predictions).to_pylist()[:n]
    hashes = []
    for r in rows:
        res = move_apart_task(r)
        hashes.append(input_hash(res["structure"]) if res["ok"] else "failed")
    return f"{hashlib.sha256(''.join(hashes).encode()).hexdigest()[:16]} ({sum(h != 'failed' for h in hashes)} moved)"


def inputs(a) -> None:
    from _cpu import cpu_line  # benchmarks/ is on sys.path when a script there runs

    print(cpu_line())
    for core in CORETYPES:
        env = dict(os.environ, OPENBLAS_CORETYPE=core)
        out = subprocess.run([sys.executable, __file__, "_digest", a.predictions, str(a.n)], env=env,
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        print(f"OPENBLAS_CORETYPE={core or '(default)':15s} {out}")


def _load(folder: str) -> dict:
    """id -> (input sha256, RelaxResult) of a checkpoint folder (the evaluation's own reader)."""
    from dismai_data.physics.relax.shards import read_checkpoints

    out = read_checkpoints(folder)
    if not out:
        raise SystemExit(f"{folder}: no relaxation shards (shard-*.parquet)")
    return out


def _displacement(x, y) -> float:
    """Largest periodic distance (Å) between the same atom in two structures of one cell."""
    d = np.asarray(x.frac_coords) - np.asarray(y.frac_coords)
    d -= np.round(d)
    return float(np.linalg.norm(d @ x.lattice.matrix, axis=1).max())


def compare(a) -> None:
    A, B = _load(a.first), _load(a.second)
    common = sorted(set(A) & set(B))
    print(f"{len(A)} and {len(B)} relaxations, {len(common)} with the same id")
    print(f"same input_sha256 (bit-identical structure entering the relaxation): "
          f"{sum(A[k][0] == B[k][0] for k in common)} of {len(common)}")
    disp, de, steps = [], [], []
    for k in common:
        x, y = A[k][1], B[k][1]
        if x.error or y.error or x.structure is None or y.structure is None:
            continue
        disp.append(_displacement(x.structure, y.structure))
        de.append(abs(x.energy - y.energy) / len(x.structure))
        steps.append((x.steps, y.steps, x.converged, y.converged))
    if not disp:
        print("no pair relaxed in both")
        return
    disp, de = np.asarray(disp), np.asarray(de)
    print(f"relaxed in both: {len(disp)}; bit-identical results: {int(np.sum(disp == 0))}")
    print(f"largest atom displacement between the two results: median {np.median(disp):.3g} A, max {disp.max():.3g} A")
    print(f"energy difference: median {np.median(de):.3g}, max {de.max():.3g} eV/atom")
    print(f"same FIRE step count: {sum(s[0] == s[1] for s in steps)}; same converged flag: "
          f"{sum(s[2] == s[3] for s in steps)} of {len(steps)}")


def rerun(a) -> None:
    import pyarrow.parquet as pq
    import torch

    from dismai_data.evaluation.disorder_prepare import move_apart_task, relax_generated

    torch.set_num_threads(1)
    shards = _load(a.folder)
    rows = pq.read_table(a.predictions).to_pylist()
    moved = {i: move_apart_task(rows[int(i)])["structure"] for i in a.ids}
    res, _ = relax_generated(moved, {"engine": "m3gnet", "source": None, "optimizer": "FIRE"}, workers=1)
    for i in a.ids:
        r, s = shards[i][1], res[i]
        if s.get("structure") is None:
            print(f"{i}: not relaxed here ({s.get('reason')})")
            continue
        d = np.asarray(s["structure"].frac_coords) - np.asarray(r.structure.frac_coords)
        d = np.abs(d - np.round(d))
        print(f"{i}: steps {s['relax_steps']} here, {r.steps} in the run; energy equal to the bit: "
              f"{s['relax_energy_eV'] == r.energy}; positions: largest |d frac| {d.max():.2g}")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "_digest":  # the child of `inputs`
        print(_digest(sys.argv[2], int(sys.argv[3])))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("inputs")
    p.add_argument("--predictions", required=True)
    p.add_argument("--n", type=int, default=12)
    p = sub.add_parser("compare")
    p.add_argument("first")
    p.add_argument("second")
    p = sub.add_parser("rerun")
    p.add_argument("folder")
    p.add_argument("--predictions", required=True)
    p.add_argument("--ids", nargs="+", required=True)
    a = ap.parse_args()
    {"inputs": inputs, "compare": compare, "rerun": rerun}[a.cmd](a)


if __name__ == "__main__":
    main()
