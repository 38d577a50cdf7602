"""The batched engine: structures relaxed up to ``batch_size`` at a time, one model call per
step for the whole batch, each with its own optimiser state; finished structures leave the batch
and waiting ones take their place."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from dismai_data.physics.relax import forces
from dismai_data.physics.relax.fire import Relaxation, optimizer_name
from dismai_data.physics.relax.inputs import as_items, check_elements
from dismai_data.physics.relax.neighbors import DEFAULT_SKIN
from dismai_data.physics.relax.potential import load_potential, no_stress
from dismai_data.physics.relax.results import RelaxResult, not_converged, physical_error, structure_at


def relax_stream(pairs: Iterable[tuple[int, str, Any]], potential, *, fmax: float, max_steps: int,
                 batch_size: int, skin: float = DEFAULT_SKIN, stats: dict | None = None,
                 optimizer: str = "FIRE", fast: bool | str = True) -> Iterator[tuple[int, RelaxResult]]:
    """Relax (index, id, Structure) items, up to ``batch_size`` at a time in one model call
    per step; yields ``(index, RelaxResult)`` as each structure finishes (converged,
    failed or out of steps), refilling the batch from ``pairs``.

    The loop mirrors ase's ``Optimizer.irun``: forces at the current positions, convergence
    check, then (if not converged and fewer than ``max_steps`` steps) one optimiser step.
    ``optimizer="CG"`` (Dismai-Bench's fmin_cg, :mod:`.cg`) relaxes one structure at a time: its
    line searches do not keep structures in step.
    ``fast``: evaluate with :func:`~dismai_data.physics.relax.forces.evaluate` (the fast exact
    M3GNet path where it applies; ``"compile"``: that path through torch.compile); False: always
    matgl's own forward (:func:`~dismai_data.physics.relax.forces.evaluate_matgl`)."""
    import torch

    fast = forces.fast_mode(fast)

    def evaluate(pot, batch):  # looked up at call time (tests replace forces.evaluate)
        if not fast:
            return forces.evaluate_matgl(pot, batch)
        return forces.evaluate(pot, batch, compile=True) if fast == "compile" else forces.evaluate(pot, batch)

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    optimizer = optimizer_name(optimizer)
    potential = no_stress(potential)
    element_index = {el: i for i, el in enumerate(potential.model.element_types)}
    cutoff = float(potential.model.cutoff)

    def start(index, key, s) -> Relaxation:
        node_type = torch.tensor([element_index[site.specie.symbol] for site in s], dtype=torch.long)
        return Relaxation(index, key, s, node_type, cutoff, skin, optimizer)

    if optimizer == "CG":  # a line search per iteration: one structure at a time (:mod:`.cg`)
        from dismai_data.physics.relax.cg import relax_cg

        for index, key, s in pairs:
            yield index, relax_cg(start(index, key, s), evaluate, potential, fmax=fmax, max_steps=max_steps,
                                  stats=stats)
        return
    source = iter(pairs)
    active: list[Relaxation] = []
    exhausted = False
    calls = 0
    while True:
        while not exhausted and len(active) < batch_size:
            try:
                index, key, s = next(source)
            except StopIteration:
                exhausted = True
                break
            active.append(start(index, key, s))
        if not active:
            break
        failed: list[tuple[int, RelaxResult]] = []
        evaluated = _evaluate_isolating(evaluate, potential, active, failed)
        yield from failed
        if evaluated is None:  # the only structure failed: refill
            continue
        calls += 1
        still = []
        for r, e, f in zip(active, *evaluated):
            done = _finished(r, float(e), f, fmax, max_steps)
            if done is not None:
                yield r.index, done
                continue
            r.step(f)
            r.nsteps += 1
            still.append(r)
        active = still
    if stats is not None:
        stats["model_calls"] = stats.get("model_calls", 0) + calls


def _evaluate_isolating(evaluate, potential, active: list[Relaxation], failed: list):
    """``(energies, forces)`` of the batch ``active``. Where the batched call fails: with one
    structure, it is removed and failed (returns None); with several, they are evaluated one by
    one this step and those that fail are removed from ``active`` and failed."""
    try:
        return evaluate(potential, active)
    except Exception as exc:
        if len(active) == 1:
            r = active.pop()
            failed.append((r.index, RelaxResult(None, None, None, r.nsteps, False,
                                                f"model call failed: {type(exc).__name__}: {exc}")))
            return None
    # isolate the culprit: evaluate one by one this step
    energies, per_forces = [], []
    for r in list(active):
        try:
            e, f = evaluate(potential, [r])
            energies.append(e[0])
            per_forces.append(f[0])
        except Exception as exc1:
            active.remove(r)
            failed.append((r.index, RelaxResult(None, None, None, r.nsteps, False,
                                                f"model call failed: {type(exc1).__name__}: {exc1}")))
    return np.array(energies), per_forces


def _finished(r: Relaxation, e: float, f: np.ndarray, fmax: float, max_steps: int) -> RelaxResult | None:
    """The result of ``r`` if it is done at energy ``e`` and forces ``f`` (unphysical, converged
    or out of steps), else None."""
    error = physical_error(e, f, r.n, r.nsteps)
    if error:
        return RelaxResult(None, None, None, r.nsteps, False, error)
    fm = float(np.linalg.norm(f, axis=1).max())
    if fm < fmax or r.nsteps >= max_steps:
        converged = fm < fmax
        return RelaxResult(structure_at(r.structure, r.pos), e, fm, r.nsteps, converged,
                           None if converged else not_converged(max_steps, fm))
    return None


def relax_batch(structures, potential=None, *, fmax: float = 0.05, max_steps: int = 1000,
                optimizer: str = "FIRE", batch_size: int | None = None, fast: bool | str = True) -> list[RelaxResult]:
    """Relax several structures together: one model call per step on the batched graph,
    each structure with its own optimizer state; converged ones drop out of the batch.
    ``optimizer``: ``"FIRE"`` (ase.optimize.FIRE's update and defaults), ``"LBFGS"``
    (ase.optimize.LBFGS's) or ``"CG"`` (Dismai-Bench's fmin_cg, one structure at a time).
    ``batch_size`` (default: all) caps how many are in one call.
    ``fast``: the fast exact M3GNet evaluation (default), the same through torch.compile
    (``"compile"``) or matgl's own forward (False). Results in input order."""
    optimizer = optimizer_name(optimizer)
    pairs = as_items(structures, caller="relax_batch")
    potential = potential if potential is not None else load_potential()
    check_elements(pairs, potential.model.element_types, "relax_batch")
    results: list[RelaxResult | None] = [None] * len(pairs)
    stream = ((i, key, s) for i, (key, s) in enumerate(pairs))
    for i, res in relax_stream(stream, potential, fmax=fmax, max_steps=max_steps,
                               batch_size=batch_size or len(pairs), optimizer=optimizer, fast=fast):
        results[i] = res
    return results  # type: ignore[return-value]
