"""The outcome of one relaxation (:class:`RelaxResult`) and the checks that turn a blown-up
evaluation into a failed result."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# A relaxation whose energy per atom leaves this range has exploded (M3GNet energies are
# a few eV/atom; atoms on top of each other give huge values).
_EXPLODED_EV_PER_ATOM = 1.0e3


@dataclass
class RelaxResult:
    """Outcome of one relaxation."""

    structure: Any  # pymatgen Structure (relaxed; last positions if not converged) or None if failed
    energy: float | None  # total energy, eV
    fmax: float | None  # final max per-atom force norm, eV/Å
    steps: int  # optimizer steps taken
    converged: bool
    error: str | None = None  # why it failed / did not converge


def physical_error(energy: float, forces: np.ndarray, natoms: int, step: int) -> str | None:
    """Why an evaluation is unphysical (non-finite, exploded), or None."""
    if not math.isfinite(energy):
        return f"non-finite energy ({energy}) at step {step}"
    if not np.all(np.isfinite(forces)):
        return f"non-finite forces at step {step}"
    if abs(energy) / natoms > _EXPLODED_EV_PER_ATOM:
        return f"exploded: {energy / natoms:.4g} eV/atom at step {step}"
    return None


def structure_at(structure, positions: np.ndarray):
    """A copy of ``structure`` with new Cartesian positions (lattice kept)."""
    from pymatgen.core import Structure

    out = Structure(structure.lattice, [site.specie for site in structure], positions,
                    coords_are_cartesian=True, properties=dict(structure.properties))
    return out


def not_converged(max_steps: int, fm: float) -> str:
    """The error of a relaxation that ran out of steps."""
    return f"not converged in {max_steps} steps (fmax {fm:.4f} eV/Å)"
