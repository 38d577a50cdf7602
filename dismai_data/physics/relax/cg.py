"""Dismai-Bench's relaxation of generated interfaces (``benchmark/int/relax/relax_int.py``):
SciPy's Polak-Ribiere conjugate gradient, ``scipy.optimize.fmin_cg``, driven the way its
``SciPyFminCG_no_crash`` (an ASE ``SciPyOptimizer``) drives it, one structure at a time, with the
engine's forces.

What the reference does, and this follows step for step:

* the objective is ``E / H0`` and its gradient ``-F / H0`` with ``H0 = 70`` (the optimiser's
  ``alpha``: SciPy starts from the identity Hessian); ``gtol`` is ``0.1 * fmax / H0`` in the max
  norm, so fmin_cg does not stop on its own test;
* the positions are those of the last energy or force evaluation (the ASE calculator keeps one
  result, recomputed when the positions change), and SciPy's callback after each iteration
  stops the run when every atom's force norm there is below ``fmax``; the same check runs once
  before the first iteration;
* at most ``max_steps`` iterations (``maxiter``), each a line search of one or more force calls;
  SciPy's precision-loss flag ends the run without an error (the reference goes on to the next
  structure), and the result is the last evaluated positions.

``steps`` of the result counts iterations (the reference's ``n_steps``).
"""

from __future__ import annotations

import numpy as np

from dismai_data.physics.relax.results import RelaxResult, not_converged, physical_error, structure_at

#: ASE SciPyOptimizer's ``alpha`` (initial Hessian guess, eV/Å^2), by which the reference scales.
H0 = 70.0


class _Converged(Exception):
    pass


class _Unphysical(Exception):
    pass


def relax_cg(r, evaluate, potential, *, fmax: float, max_steps: int, stats: dict | None = None) -> RelaxResult:
    """Relax the :class:`~dismai_data.physics.relax.fire.Relaxation` ``r`` by fmin_cg as above.

    ``evaluate(potential, [r])`` gives ``(energies, forces)`` at ``r.pos`` (float32 forces, as
    matgl's calculator returns them). ``stats["model_calls"]`` counts the evaluations."""
    from scipy.optimize import fmin_cg

    last: dict = {}

    def at(x: np.ndarray) -> dict:
        if "x" not in last or not np.array_equal(x, last["x"]):  # the calculator's one-result cache
            r.pos = np.array(x, dtype=np.float64).reshape(-1, 3)
            energies, forces = evaluate(potential, [r])
            if stats is not None:
                stats["model_calls"] = stats.get("model_calls", 0) + 1
            e, f = float(energies[0]), np.asarray(forces[0])
            error = physical_error(e, f, r.n, r.nsteps)
            last.update(x=np.array(x, copy=True), e=e, f=f)
            if error:
                raise _Unphysical(error)
        return last

    def objective(x):
        return at(x)["e"] / H0

    def gradient(x):
        return -at(x)["f"].reshape(-1) / H0

    def callback(xk=None):  # SciPy calls it with the new iterate; before the first, with None
        if xk is not None:
            r.nsteps += 1
        f = last["f"]
        if (f ** 2).sum(axis=1).max() < fmax ** 2:  # ASE's test, on the forces as the calculator gives them
            raise _Converged

    x0 = r.pos.reshape(-1).copy()
    try:
        with np.errstate(all="ignore"):  # SciPy's line search compares against an infinite step bound
            at(x0)
            callback()
            fmin_cg(objective, x0, fprime=gradient, gtol=0.1 * fmax / H0, norm=np.inf, maxiter=max_steps,
                    full_output=True, disp=False, callback=callback)
    except _Converged:
        pass
    except _Unphysical as exc:
        return RelaxResult(None, None, None, r.nsteps, False, str(exc))
    except Exception as exc:  # a failed model call fails this structure alone
        return RelaxResult(None, None, None, r.nsteps, False, f"model call failed: {type(exc).__name__}: {exc}")
    fm = float(np.linalg.norm(last["f"], axis=1).max())
    converged = fm < fmax
    return RelaxResult(structure_at(r.structure, r.pos), last["e"], fm, r.nsteps, converged,
                       None if converged else not_converged(max_steps, fm))
