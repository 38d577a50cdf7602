"""Row-level physical checks shared by every task."""

from __future__ import annotations

import numpy as np

#: A structure is "absurd" (failed, not scored) outside these bounds.
MIN_VOLUME_PER_ATOM = 1.0      # Å^3
MAX_VOLUME_PER_ATOM = 1000.0   # Å^3
MAX_LATTICE_LENGTH = 1000.0    # Å
MIN_RELATIVE_VOLUME = 1e-3     # V / (a b c): cells flatter than this are rejected
#: Structural validity (review 003): every interatomic distance above this, volume above 0.1 Å^3.
VALID_MIN_DISTANCE = 0.5
VALID_MIN_VOLUME = 0.1

CHECK_SETTINGS = {
    "min_volume_per_atom_A3": MIN_VOLUME_PER_ATOM,
    "max_volume_per_atom_A3": MAX_VOLUME_PER_ATOM,
    "max_lattice_length_A": MAX_LATTICE_LENGTH,
    "min_relative_volume": MIN_RELATIVE_VOLUME,
}


def absurd_lattice_reason(row) -> str | None:
    """Why a row's cell is too absurd to score, or None."""
    lat = np.asarray(row["lattice"], dtype=float)
    lengths = np.linalg.norm(lat, axis=1)
    vol = abs(float(np.linalg.det(lat)))
    n = len(row["species"])
    if lengths.max() > MAX_LATTICE_LENGTH:
        return f"lattice: a lattice vector is {lengths.max():.3g} A long (> {MAX_LATTICE_LENGTH:g} A)"
    if vol / float(np.prod(lengths)) < MIN_RELATIVE_VOLUME:
        return f"lattice: cell is nearly flat (V/abc = {vol / float(np.prod(lengths)):.2g})"
    vpa = vol / n
    if not MIN_VOLUME_PER_ATOM <= vpa <= MAX_VOLUME_PER_ATOM:
        return (f"lattice: volume per atom {vpa:.3g} A^3 is outside [{MIN_VOLUME_PER_ATOM:g}, "
                f"{MAX_VOLUME_PER_ATOM:g}] A^3")
    return None


def min_distance(structure) -> float:
    """Smallest interatomic distance (periodic images included; a lone atom: the shortest
    lattice translation)."""
    if len(structure) == 1:
        return float(min(structure.lattice.abc))
    dm = structure.distance_matrix
    np.fill_diagonal(dm, np.inf)
    return float(dm.min())


def structurally_valid(structure) -> bool:
    """Review 003: every distance > 0.5 Å and cell volume > 0.1 Å^3."""
    return structure.volume > VALID_MIN_VOLUME and min_distance(structure) > VALID_MIN_DISTANCE
