"""The reference the batched engine is checked against: one structure at a time with matgl's ASE
calculator driven by ``ase.optimize.FIRE`` (or LBFGS, or ASE's ``SciPyFminCG``: the fmin_cg of
Dismai-Bench's interface relaxation), positions only."""

from __future__ import annotations

import warnings

import numpy as np

from dismai_data.physics.relax.fire import optimizer_name
from dismai_data.physics.relax.inputs import as_items, check_elements
from dismai_data.physics.relax.potential import load_potential, no_stress
from dismai_data.physics.relax.results import RelaxResult, not_converged, physical_error, structure_at


def relax_ase(structure, potential=None, *, fmax: float = 0.05, max_steps: int = 1000,
              optimizer: str = "FIRE") -> RelaxResult:
    """Relax one structure the standard way: matgl's ASE calculator + ``ase.optimize.FIRE``
    (default parameters), positions only. The reference the batched engine is checked
    against. ``optimizer="CG"``: ``ase.optimize.sciopt.SciPyFminCG``; its precision-loss error
    ends the run with the last positions, as Dismai-Bench's ``SciPyFminCG_no_crash`` does."""
    from ase.optimize import FIRE, LBFGS
    from ase.optimize.sciopt import OptimizerConvergenceError, SciPyFminCG
    from matgl.ext.ase import PESCalculator
    from pymatgen.io.ase import AseAtomsAdaptor

    [(key, structure)] = as_items([structure], caller="relax_ase")
    potential = potential if potential is not None else load_potential()
    check_elements([(key, structure)], potential.model.element_types, "relax_ase")
    atoms = AseAtomsAdaptor.get_atoms(structure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms.calc = PESCalculator(no_stress(potential), stress_unit="eV/A3")
    optimizer = optimizer_name(optimizer)
    opt = {"LBFGS": LBFGS, "CG": SciPyFminCG}.get(optimizer, FIRE)(atoms, logfile=None)
    try:
        with np.errstate(all="ignore"):
            try:
                opt.run(fmax=fmax, steps=max_steps)
            except OptimizerConvergenceError:
                pass
        energy = float(atoms.get_potential_energy())
        forces = atoms.get_forces()
    except Exception as exc:  # calculator failure: report it as the result
        return RelaxResult(None, None, None, int(opt.nsteps), False, f"{type(exc).__name__}: {exc}")
    fm = float(np.linalg.norm(forces, axis=1).max())
    converged = bool((forces ** 2).sum(axis=1).max() < fmax ** 2)  # ASE's test
    error = physical_error(energy, forces, len(atoms), opt.nsteps)
    if error:
        return RelaxResult(None, None, None, int(opt.nsteps), False, error)
    relaxed = structure_at(structure, atoms.get_positions())
    return RelaxResult(relaxed, energy, fm, int(opt.nsteps), converged,
                       None if converged else not_converged(max_steps, fm))
