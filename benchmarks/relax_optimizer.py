"""Does the optimiser decide the interface task's % failed? Up to evaluation 0.2.0 the interface
was relaxed with FIRE, at most 1000 steps (one force call each; ``dismai_data.physics.relax``;
now ``--relax-optimizer fire``); since 0.3.0 it is relaxed as Dismai-Bench relaxes it. Dismai-Bench's
``benchmark/int/relax/relax_int.py`` drives its M3GNet relaxer with SciPy's Polak-Ribiere
conjugate gradient (its ``SciPyFminCG_no_crash``: ``scipy.optimize.fmin_cg`` with
``maxiter=max_steps``, 1000), whose iterations each take a line search of several force calls.

For chosen generated structures, after the same 1.5 Å rule (``move_apart_task``), this prints
the FIRE result of a scoring run (the ``--relax-checkpoint`` shards of ``dismai evaluate
--relax-optimizer fire``) next to a relaxation with
ASE's ``SciPyFminCG`` (the same fmin_cg call; on SciPy's precision-loss flag the reference goes on
to the next structure, as this does) with the same potential, fmax 0.05 eV/Å and 1000 iterations:

    .venv/bin/python benchmarks/relax_optimizer.py \\
        --predictions models/checkpoints/diffcsp-interface/predictions/seed0.parquet \\
        --checkpoint DIR/diffcsp-interface [--ids 0 2 ...] [--max 6]

Without ``--ids``: the first ``--max`` structures that FIRE did not converge.

``--cg-checkpoint DIR``: also print the evaluation's own CG result for each structure, from the
relax checkpoint of ``dismai evaluate --relax-checkpoint DIR`` (the interface's default; the engine's
fmin_cg, :mod:`dismai_data.physics.relax.cg`, on the fast M3GNet path); ``--no-ase`` skips the ASE
relaxations and prints the checkpoints only (all structures in the CG checkpoint, or ``--ids``),
with the counts of structures accepted by each (CG: fmax <= 0.051 eV/Å, as relax_int.py).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def relax_cg(structure, potential, *, fmax: float = 0.05, max_steps: int = 1000) -> dict:
    """Positions-only relaxation as relax_int.py: fmin_cg through ASE's SciPyFminCG."""
    from ase.optimize.sciopt import OptimizerConvergenceError, SciPyFminCG
    from matgl.ext.ase import PESCalculator
    from pymatgen.io.ase import AseAtomsAdaptor

    from dismai_data.physics.relax.potential import no_stress

    atoms = AseAtomsAdaptor.get_atoms(structure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms.calc = PESCalculator(no_stress(potential), stress_unit="eV/A3")
    opt = SciPyFminCG(atoms, logfile=None)
    stop = "converged or 1000 iterations"
    t0 = time.perf_counter()
    try:
        opt.run(fmax=fmax, steps=max_steps)
    except OptimizerConvergenceError:
        stop = "precision loss (SciPy warnflag 2)"
    fm = float(np.linalg.norm(atoms.get_forces(), axis=1).max())
    return {"iterations": int(opt.nsteps), "force_calls": int(opt.force_calls), "fmax": fm,
            "converged": fm < fmax, "stop": stop, "seconds": time.perf_counter() - t0}


def main() -> None:
    import pyarrow.parquet as pq
    import torch
    from _cpu import cpu_line  # benchmarks/ is on sys.path when a script there runs

    from dismai_data.evaluation.disorder_prepare import RELAX_FMAX, M3GNET_MAX_STEPS, move_apart_task
    from dismai_data.physics.relax import load_potential, read_checkpoints

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--predictions", required=True)
    ap.add_argument("--checkpoint", required=True, help="the scoring run's relax-checkpoint folder (FIRE results)")
    ap.add_argument("--ids", nargs="*")
    ap.add_argument("--max", type=int, default=6)
    ap.add_argument("--cg-checkpoint", help="the relax checkpoint of a scoring run with CG (the interface default)")
    ap.add_argument("--no-ase", action="store_true", help="print the checkpoints only; relax nothing")
    a = ap.parse_args()
    torch.set_num_threads(1)
    fire = {i: r for i, (_, r) in read_checkpoints(a.checkpoint).items()}
    if a.no_ase:
        if not a.cg_checkpoint:
            ap.error("--no-ase needs --cg-checkpoint")
        _compare_checkpoints(fire, a.cg_checkpoint, a.ids)
        return
    ids = a.ids or [i for i in sorted(fire, key=int) if not fire[i].converged][:a.max]
    rows = pq.read_table(a.predictions).to_pylist()  # the checkpoint's ids are row positions
    potential = load_potential()
    engine = {i: r for i, (_, r) in read_checkpoints(a.cg_checkpoint).items()} if a.cg_checkpoint else {}
    print(cpu_line(), "| 1 torch thread | potential:", getattr(potential, "dismai_source", "?"))
    print(f"fmax {RELAX_FMAX} eV/Å; FIRE at most {M3GNET_MAX_STEPS} steps, CG at most {M3GNET_MAX_STEPS} iterations")
    n_conv = 0
    for i in ids:
        if i not in fire or not 0 <= int(i) < len(rows):
            print(f"{i}: not in the checkpoint or the predictions")
            continue
        moved = move_apart_task(rows[int(i)])
        f = fire[i]
        cg = relax_cg(moved["structure"], potential, fmax=RELAX_FMAX, max_steps=M3GNET_MAX_STEPS)
        n_conv += cg["converged"]
        print(f"{i}: FIRE {f.steps} steps, fmax {f.fmax:.3f}, converged {f.converged} | CG {cg['iterations']} "
              f"iterations, {cg['force_calls']} force calls, fmax {cg['fmax']:.3f}, converged {cg['converged']} "
              f"({cg['stop']}, {cg['seconds']:.0f} s)" + _engine_cg(engine, i), flush=True)
    print(f"{n_conv} of {len(ids)} converge under CG")


def _engine_cg(engine: dict, i: str) -> str:
    r = engine.get(i)
    return "" if r is None else f" | evaluation's CG {r.steps} iterations, fmax {r.fmax:.3f}, converged {r.converged}"


def _compare_checkpoints(fire: dict, cg_checkpoint: str, ids) -> None:
    """FIRE and the evaluation's CG, structure by structure, from the two scoring runs' checkpoints."""
    from dismai_data.evaluation.disorder_prepare import CG_ACCEPT_FMAX, accept_within
    from dismai_data.physics.relax import read_checkpoints

    cg = {i: r for i, (_, r) in read_checkpoints(cg_checkpoint).items()}
    ids = [i for i in (ids or sorted(cg, key=int)) if i in cg and i in fire]
    outcome = {}
    for i in ids:
        f, c = fire[i], cg[i]
        ok = accept_within(c, CG_ACCEPT_FMAX).converged  # the evaluation's CG acceptance
        key = ("both" if f.converged and ok else "CG only" if ok else "FIRE only" if f.converged else "neither")
        outcome[key] = outcome.get(key, 0) + 1
        print(f"{i}: FIRE {f.steps} steps, fmax {f.fmax:.3f}, converged {f.converged} | evaluation's CG {c.steps} "
              f"iterations, fmax {c.fmax if c.fmax is None else round(c.fmax, 3)}, accepted {ok}")
    print(f"{len(ids)} structures relaxed both ways; accepted by " +
          ", ".join(f"{k}: {v}" for k, v in sorted(outcome.items())))


if __name__ == "__main__":
    main()
