"""Generated structures of the a-Si and interface tasks made ready to score (benchmark-definitions
3.1, 3.2): the 1.5 Å rule (:func:`move_apart`), then a positions-only relaxation to fmax 0.05 eV/Å
(:func:`relax_generated`: interface with the M3GNet relaxer of the shared engine
:mod:`dismai_data.physics.relax`; a-Si with the LAMMPS potential the dataset was built with,
:mod:`dismai_data.physics.lammps`).

:func:`move_apart`: per iteration find all unique pairs closer than 1.5 Å (periodic images
included) and, pair by pair in (i, j) order, move the second atom along the bond to 1.6 Å from
the first (positions updated as it goes); at most 100 iterations, still too close -> not ok.
"""

from __future__ import annotations

import numpy as np


def move_apart(structure, min_dist: float = 1.5, target: float = 1.6, max_iter: int = 100):
    """Copy of ``structure`` with close pairs pushed apart. Returns ``(structure, ok, iterations)``."""
    s = structure.copy()
    lat = s.lattice.matrix
    for it in range(max_iter + 1):
        centers, nbrs, images, dists = s.get_neighbor_list(min_dist)
        pairs = sorted({(int(i), int(j), tuple(int(x) for x in im)) for i, j, im, d in
                        zip(centers, nbrs, images, dists) if (i < j) and d < min_dist})
        if not pairs:
            return s, True, it
        if it == max_iter:
            return s, False, it
        cart = s.cart_coords.copy()
        for i, j, im in pairs:
            vj = cart[j] + np.asarray(im, float) @ lat
            v = vj - cart[i]
            d = float(np.linalg.norm(v))
            if d < 1e-12:
                v, d = np.array([1.0, 0.0, 0.0]), 1.0
            cart[j] = cart[i] + v / d * target - np.asarray(im, float) @ lat
        s = type(s)(s.lattice, s.species, cart, coords_are_cartesian=True)
    return s, False, max_iter


RELAX_FMAX = 0.05
M3GNET_MAX_STEPS = 1000
#: Dismai-Bench's relax_int.py discards a relaxed interface only where the final fmax exceeds
#: its ``f_max + 0.001``; the CG protocol (``optimizer="CG"``) accepts as it does.
REFERENCE_ACCEPT_SLACK = 0.001
#: the largest final fmax (eV/A) the CG protocol accepts
CG_ACCEPT_FMAX = RELAX_FMAX + REFERENCE_ACCEPT_SLACK
#: The M3GNet relaxations' optimisers: Dismai-Bench's fmin_cg protocol and FIRE (each task's
#: default is its registry protocol's ``optimizer_id``).
M3GNET_OPTIMIZERS = ("FIRE", "CG")


def move_apart_task(row) -> dict:
    """Step 1 of 3.1/3.2 for one generated row: the structure after the 1.5 A rule, or why not."""
    from dismai_data.structure import row_to_structure

    try:
        s, ok, it = move_apart(row_to_structure(row))
    except Exception as exc:  # a pathological structure fails alone
        return {"ok": False, "reason": f"move apart: {type(exc).__name__}: {exc}", "move_apart_iterations": None}
    if not ok:
        return {"ok": False, "reason": f"move apart: atoms still closer than 1.5 A after {it} iterations",
                "move_apart_iterations": it}
    return {"ok": True, "structure": s, "move_apart_iterations": it}


def lammps_relax_task(task) -> list:
    """LAMMPS positions-only relaxation of a chunk of structures (one LAMMPS instance)."""
    from dismai_data.physics.lammps import relax_structures

    structures, potential, fmax = task
    return relax_structures(structures, potential, fmax=fmax)


def accept_within(r, accept_fmax: float):
    """``r`` counted as relaxed where it stopped unconverged with fmax <= ``accept_fmax``."""
    import dataclasses

    if r.structure is None or r.converged or r.fmax is None or not r.fmax <= accept_fmax:
        return r
    return dataclasses.replace(r, converged=True, error=None)


def relax_generated(structures: dict, relax: dict, *, workers: int = 1, scheduler=None) -> tuple[dict, dict]:
    """Step 2 of 3.1/3.2: positions-only relaxation to ``fmax`` 0.05 eV/A.

    ``structures``: id -> moved-apart Structure. ``relax``: ``{"engine": "lammps",
    "potential": "sw-vink" | "sw" | "tersoff"}`` or ``{"engine": "m3gnet", "source": None |
    folder | hub repo, "checkpoint_dir": optional folder, "optimizer": "CG" | "FIRE"}``
    (CG: Dismai-Bench's fmin_cg, accepted at fmax <= 0.051 as its relax_int.py; the shared engine
    :mod:`dismai_data.physics.relax`; None = its default hub repo with the packaged offline copy
    as fallback; finished shards are kept in ``checkpoint_dir`` and reused by a rerun).
    Returns ``(results, settings)``:
    id -> ``{"ok", "reason", "structure", "relax_steps", "relax_fmax", "relax_energy_eV"}``
    and what relaxed them."""
    from .parallel import parallel_map

    ids = list(structures)
    out: dict = {}
    if relax["engine"] == "lammps":
        from dismai_data.physics.lammps import describe

        n_chunks = max(1, min(len(ids), (workers or 1) * 4 if (workers or 1) > 1 or scheduler else 1))
        chunks = [ids[k::n_chunks] for k in range(n_chunks)] if ids else []
        res_chunks = parallel_map(lammps_relax_task, [([structures[i] for i in c], relax["potential"], RELAX_FMAX)
                                                      for c in chunks], workers=workers, scheduler=scheduler,
                                  desc="relaxing (LAMMPS)", chunksize=1)
        results = {i: r for c, rs in zip(chunks, res_chunks) for i, r in zip(c, rs)}
        settings = {"engine": "LAMMPS", "potential": relax["potential"], "description": describe(relax["potential"]),
                    "why": relax.get("why"), "fmax_eV_per_A": RELAX_FMAX, "cell": "fixed",
                    "minimizer": "min_style cg, min_modify norm max, minimize 0.0 fmax 100000 1000000, "
                                 "up to 5 rounds (as the a-Si builder)"}
    elif relax["engine"] == "m3gnet":
        from dismai_data.physics import relax as engine

        try:
            potential = engine.load_potential(relax.get("source"))
        except Exception as exc:
            from .sources import EvaluationInputError

            raise EvaluationInputError(f"cannot load the relaxer ({type(exc).__name__}: {exc})",
                                       source=str(relax.get("source") or engine.RELAXER_REPO),
                                       field="relax_weights") from None
        # several local workers: a Dask LocalCluster of that many single-threaded processes
        where = scheduler if isinstance(scheduler, str) else "local" if (workers or 1) > 1 else None
        optimizer = relax["optimizer"]
        # the checkpoint folder keeps results of these settings only (a shard of other settings is refused)
        parameters = {"optimizer": optimizer, "fmax": RELAX_FMAX, "max_steps": M3GNET_MAX_STEPS}
        try:
            rs = engine.relax_many([(i, structures[i]) for i in ids], potential=potential,
                                   fmax=RELAX_FMAX, max_steps=M3GNET_MAX_STEPS, scheduler=where,
                                   workers=workers, progress=False, optimizer=optimizer,
                                   checkpoint_dir=relax.get("checkpoint_dir"),
                                   shard_metadata={"parameters": parameters}) if ids else []
        except engine.RelaxInputError as exc:  # e.g. a checkpoint shard of other settings
            from .sources import EvaluationInputError

            in_checkpoint = "checkpoint shard" in str(exc)
            raise EvaluationInputError(str(exc), source=relax.get("checkpoint_dir") if in_checkpoint else None,
                                       field="relax_checkpoint" if in_checkpoint else None) from None
        results = dict(zip(ids, rs))
        settings = {"engine": f"dismai_data.physics.relax (matgl M3GNet, {optimizer})",
                    "potential": engine.WEIGHTS_NAME,
                    "source": getattr(potential, "dismai_source", None),
                    "fallback_reason": getattr(potential, "dismai_fallback_reason", None),
                    "fmax_eV_per_A": RELAX_FMAX, "max_steps": M3GNET_MAX_STEPS, "cell": "fixed",
                    "optimizer": optimizer}
        if optimizer == "CG":
            results = {i: accept_within(r, CG_ACCEPT_FMAX) for i, r in results.items()}
            settings.update(optimizer="CG: scipy.optimize.fmin_cg as Dismai-Bench's relax_int.py drives it "
                                      "(dismai_data.physics.relax.cg); max_steps counts its iterations",
                            accept_fmax_eV_per_A=CG_ACCEPT_FMAX)
    else:
        raise ValueError(f"unknown relaxation engine {relax['engine']!r}")
    for i in ids:
        r = results[i]
        rec = {"relax_steps": int(r.steps) if r.steps is not None else None,
               "relax_fmax": None if r.fmax is None else float(r.fmax),
               "relax_energy_eV": None if r.energy is None else float(r.energy)}
        if r.structure is None or not r.converged:
            why = r.error or "no structure returned"
            if r.structure is not None and not r.converged:
                why = (f"did not reach fmax {RELAX_FMAX} eV/A in {r.steps} steps (max force "
                       f"{r.fmax if r.fmax is None else round(float(r.fmax), 4)} eV/A)"
                       + (f"; {r.error}" if r.error else ""))
            out[i] = {"ok": False, "reason": f"relaxation: {why}", **rec}
        else:
            out[i] = {"ok": True, "reason": None, "structure": r.structure, **rec}
    return out, settings
