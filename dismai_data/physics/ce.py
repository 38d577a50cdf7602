"""Fe-Ni-Cr cluster expansion (CE) of the Dismai-Bench alloys: lattice, counts, energy,
fingerprint, Warren-Cowley short-range order and a fast canonical Monte Carlo kernel.

Shared by the alloy builder (``dismai_data.builders.alloy``) and the alloy metrics of
the evaluation module. All physics comes from the two raw inputs
``builders/raw/fenicr_alloy/fenicr_ce_eci.json`` (46 ECIs, eV/atom, chemical terms of
Su et al. 2024 as used by Dismai-Bench) and ``alloy_ref_struc.extxyz`` (the 256-site
4x4x4 conventional FCC reference lattice, a = 3.6 Å).

Conventions
-----------
* Species codes: ``0 = Cr, 1 = Fe, 2 = Ni`` (:data:`SPECIES`, alphabetical, the order
  of the JSON labels); ``-1`` marks a vacant site (only from :func:`occupation_from_row`
  on generated structures; a vacancy takes part in no pair and in no point term).
* An *occupation* is an int8 array of length ``N_sites`` giving the species code of every
  reference site, in the site order of :func:`reference_lattice`.
* Pair counts ``n[s, A, B]`` (shell ``s`` = 1..7 stored at index ``s - 1``) are the JSON
  ``count_definition``: ordered (site, neighbour) pairs in shell ``s`` with species
  ``{A, B}``, divided by ``2 N_sites``; i.e. *unordered* pairs per site. The six pair
  keys of a shell sum to ``z_s / 2`` on a full lattice.
* CE formation energy per atom (JSON ``energy_formula``)::

      E = eci['constant'] + sum_X eci['0NN_X'] c_X + sum_s sum_{A<=B} eci['sNN_A-B'] n[s, A, B]

  so the *total* energy ``N E = N eci0 + sum_i point[sigma_i] + sum_{unordered pairs} J_s[sigma_i, sigma_j]``
  (the 1/N of the counts cancels). The Monte Carlo kernel works with this total energy.
* Cluster-probability fingerprint (45 numbers, :data:`FINGERPRINT_LABELS`):
  ``[c_Cr, c_Fe, c_Ni] + [n[s, pair] / (z_s / 2) for s in 1..7 for pair in PAIRS]``.
* Warren-Cowley SRO (the Dismai-Bench reference script's symmetrised form; see
  ``docs/benchmark-definitions.md``), from the pair counts of one shell, ``C`` the third
  species: for ``A != B``
  ``1 - 0.5 (n_AB / (2 n_BB + n_BC + n_AB) / c_A + n_AB / (2 n_AA + n_AC + n_AB) / c_B)``
  and for ``A = B`` ``1 - 2 n_AA / (2 n_AA + n_AB + n_AC) / c_A``; the denominators are
  the numbers of neighbours of all B (resp. A) atoms, so each term is ``1 - P(A|B)/c_A``.

Fast paths are numba kernels; :mod:`tests.test_alloy` checks them against brute-force
references (ASE neighbour lists, full-energy differences).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

#: Species of the alloy, in code order (0, 1, 2) = the alphabetical order of the JSON labels.
SPECIES: tuple[str, ...] = ("Cr", "Fe", "Ni")
SPECIES_CODE: dict[str, int] = {s: i for i, s in enumerate(SPECIES)}
#: The six unordered species pairs (codes), in the order of the JSON labels of each shell.
PAIRS: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
PAIR_NAMES: tuple[str, ...] = tuple(f"{SPECIES[a]}-{SPECIES[b]}" for a, b in PAIRS)
N_SHELLS = 7
#: FCC coordination numbers z_s of shells 1..7 and the multiplicities z_s / 2.
FCC_Z: tuple[int, ...] = (12, 6, 24, 12, 24, 8, 48)
FCC_MULTIPLICITY: tuple[int, ...] = tuple(z // 2 for z in FCC_Z)
#: Shell radii in units of the conventional lattice constant: sqrt(s / 2), s = 1..7.
FCC_SHELL_RADII_OVER_A: tuple[float, ...] = tuple(math.sqrt(s / 2) for s in range(1, N_SHELLS + 1))
#: Boltzmann constant, eV/K (CODATA 2018).
K_B = 8.617333262e-5
#: Labels of the 45-number cluster-probability fingerprint (JSON label order without "constant").
FINGERPRINT_LABELS: tuple[str, ...] = tuple(f"0NN_{s}" for s in SPECIES) + tuple(
    f"{s}NN_{p}" for s in range(1, N_SHELLS + 1) for p in PAIR_NAMES)
#: Labels of the Warren-Cowley values returned by :func:`warren_cowley` (shells 1, 2).
SRO_LABELS: tuple[str, ...] = tuple(f"{s}NN_{p}" for s in (1, 2) for p in PAIR_NAMES)

ECI_FILE = "fenicr_alloy/fenicr_ce_eci.json"
REFERENCE_FILE = "fenicr_alloy/alloy_ref_struc.extxyz"


# --------------------------------------------------------------------------- ECIs
@dataclass(frozen=True)
class ClusterExpansion:
    """The ECIs of ``fenicr_ce_eci.json`` unpacked for computation (all eV/atom)."""

    labels: tuple[str, ...]  # 46 labels, "constant" first
    eci: np.ndarray  # (46,) in label order
    constant: float
    point: np.ndarray  # (3,) eci['0NN_X'] by species code
    pair: np.ndarray  # (7, 3, 3) symmetric, eci['sNN_A-B'] by shell index and species codes

    def energy_from_counts(self, counts: np.ndarray) -> np.ndarray:
        """CE energy per atom from :func:`cluster_counts` vectors (..., 46)."""
        return np.asarray(counts, dtype=np.float64) @ self.eci


def _parse_label(label: str) -> tuple[int, tuple[int, ...]]:
    shell, rest = label.split("NN_")
    return int(shell), tuple(SPECIES_CODE[x] for x in rest.split("-"))


def cluster_expansion_from_json(data: Mapping[str, Any]) -> ClusterExpansion:
    labels = tuple(data["labels"])
    eci = np.asarray(data["eci"], dtype=np.float64)
    expected = ("constant",) + FINGERPRINT_LABELS
    if labels != expected:
        raise ValueError(f"unexpected ECI labels {labels[:5]}...; expected {expected[:5]}...")
    point = np.zeros(3)
    pair = np.zeros((N_SHELLS, 3, 3))
    for lab, v in zip(labels[1:], eci[1:]):
        shell, sp = _parse_label(lab)
        if shell == 0:
            point[sp[0]] = v
        else:
            a, b = sp
            pair[shell - 1, a, b] = pair[shell - 1, b, a] = v
    return ClusterExpansion(labels, eci, float(eci[0]), point, pair)


@functools.lru_cache(maxsize=1)
def load_cluster_expansion() -> ClusterExpansion:
    """The Fe-Ni-Cr ECIs from the verified raw input (sha256-checked)."""
    from dismai_data.raw import raw_file

    return cluster_expansion_from_json(json.loads(raw_file(ECI_FILE).read_text()))


# --------------------------------------------------------------------------- lattice
@dataclass(frozen=True)
class Lattice:
    """Sites of the reference cell and their neighbour shells 1..7.

    ``neighbors[i, k]`` is the k-th neighbour of site ``i``; the slots are grouped by
    shell, ``shell_of_slot[k]`` giving the shell index (0 = 1NN) and
    ``shell_slices[s]:shell_slices[s+1]`` the slots of shell index ``s``.
    ``shell_matrix[i, j]`` is the shell index of the pair (-1 when beyond shell 7).
    """

    cell: np.ndarray  # (3, 3) Å, rows are lattice vectors
    frac: np.ndarray  # (N, 3) fractional coordinates of the sites
    neighbors: np.ndarray  # (N, 134) int32
    shell_of_slot: np.ndarray  # (134,) int8
    shell_slices: np.ndarray  # (8,) int32
    shell_matrix: np.ndarray  # (N, N) int8
    reference_occupation: np.ndarray  # (N,) int8 species of the reference file

    @property
    def n_sites(self) -> int:
        return len(self.frac)

    @property
    def cart(self) -> np.ndarray:
        return self.frac @ self.cell


def fcc_shells(frac: np.ndarray, cell: np.ndarray, lattice_constant: float, n_shells: int = N_SHELLS,
               tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour shells of FCC sites in a periodic cell by minimum-image distances.

    Returns ``(neighbors, shell_of_slot, shell_slices, shell_matrix)`` as in :class:`Lattice`.
    Every site must have exactly ``z_s`` distinct neighbours at ``a sqrt(s/2)`` for each
    shell (the cell must be large enough that no neighbour is its own periodic image).
    """
    frac = np.asarray(frac, dtype=np.float64)
    n = len(frac)
    d = frac[None, :, :] - frac[:, None, :]
    d -= np.round(d)
    dist = np.linalg.norm(d @ cell, axis=-1)
    radii = lattice_constant * np.asarray(FCC_SHELL_RADII_OVER_A[:n_shells])
    shell_matrix = np.full((n, n), -1, dtype=np.int8)
    for s, r in enumerate(radii):
        shell_matrix[np.abs(dist - r) < tol] = s
    np.fill_diagonal(shell_matrix, -1)
    blocks = []
    for s in range(n_shells):
        counts = (shell_matrix == s).sum(axis=1)
        if not np.all(counts == FCC_Z[s]):
            raise ValueError(f"shell {s + 1}: sites have {sorted(set(counts.tolist()))} neighbours, "
                             f"expected {FCC_Z[s]} (not an FCC cell large enough for {n_shells} shells)")
        blocks.append(np.stack([np.flatnonzero(shell_matrix[i] == s) for i in range(n)]))
    neighbors = np.ascontiguousarray(np.concatenate(blocks, axis=1).astype(np.int32))
    shell_of_slot = np.concatenate([np.full(FCC_Z[s], s, dtype=np.int8) for s in range(n_shells)])
    shell_slices = np.concatenate([[0], np.cumsum(FCC_Z[:n_shells])]).astype(np.int32)
    return neighbors, shell_of_slot, shell_slices, shell_matrix


def lattice_from_atoms(atoms, lattice_constant: float = 3.6, snap: int = 8) -> Lattice:
    """:class:`Lattice` of an ASE ``Atoms`` on an FCC grid. Fractional coordinates are
    snapped to multiples of ``1/snap`` (exact for the 4x4x4 conventional cell) and cell
    entries below 1e-9 Å set to zero, after checking both are sub-1e-6 corrections."""
    cell = np.array(atoms.cell.array, dtype=np.float64)
    cell[np.abs(cell) < 1e-9] = 0.0
    frac = np.linalg.solve(cell.T, atoms.positions.T).T
    snapped = np.round(frac * snap) / snap
    if np.max(np.abs(snapped - frac)) > 1e-6:
        raise ValueError("sites are not on the 1/%d grid of the cell" % snap)
    frac = snapped % 1.0
    occ = encode(atoms.get_chemical_symbols())
    nb, sos, sl, sm = fcc_shells(frac, cell, lattice_constant)
    return Lattice(cell, frac, nb, sos, sl, sm, occ)


@functools.lru_cache(maxsize=1)
def reference_lattice() -> Lattice:
    """The 256-site Dismai-Bench reference lattice (sha256-checked raw input), site
    order as in ``alloy_ref_struc.extxyz``."""
    from ase.io import read

    from dismai_data.raw import raw_file

    return lattice_from_atoms(read(str(raw_file(REFERENCE_FILE)), format="extxyz"))


def encode(symbols: Sequence[str]) -> np.ndarray:
    """Species symbols -> int8 codes (``Cr, Fe, Ni -> 0, 1, 2``)."""
    try:
        return np.array([SPECIES_CODE[s] for s in symbols], dtype=np.int8)
    except KeyError as exc:
        raise ValueError(f"species {exc.args[0]!r} is not one of {SPECIES}") from None


def decode(occ: np.ndarray) -> list[str]:
    return [SPECIES[int(c)] if c >= 0 else "X" for c in occ]


# --------------------------------------------------------------------------- counts
@numba.njit(cache=True)
def _pair_counts_batch(occs, neighbors, shell_of_slot):
    """Integer numbers of unordered pairs per shell and species pair, (M, S, 3, 3)
    with both [a, b] and [b, a] filled for a != b. Vacancies (-1) skipped."""
    m, n = occs.shape
    nslot = neighbors.shape[1]
    out = np.zeros((m, N_SHELLS, 3, 3), dtype=np.int64)
    for t in range(m):
        for i in range(n):
            a = occs[t, i]
            if a < 0:
                continue
            for k in range(nslot):
                j = neighbors[i, k]
                if j <= i:
                    continue
                b = occs[t, j]
                if b < 0:
                    continue
                s = shell_of_slot[k]
                out[t, s, a, b] += 1
                if a != b:
                    out[t, s, b, a] += 1
    return out


def pair_counts(occs: np.ndarray, lattice: Lattice | None = None) -> np.ndarray:
    """Integer unordered pair numbers ``(M, 7, 3, 3)`` (symmetric in the last two axes)
    of occupations ``(M, N)`` or ``(N,)`` (then ``(7, 3, 3)``)."""
    lat = lattice if lattice is not None else reference_lattice()
    occs = np.asarray(occs, dtype=np.int8)
    single = occs.ndim == 1
    occs2 = np.ascontiguousarray(occs[None] if single else occs)
    if occs2.shape[1] != lat.n_sites:
        raise ValueError(f"occupation has {occs2.shape[1]} sites, the lattice {lat.n_sites}")
    out = _pair_counts_batch(occs2, lat.neighbors, lat.shell_of_slot)
    return out[0] if single else out


def cluster_counts(occs: np.ndarray, lattice: Lattice | None = None) -> np.ndarray:
    """The 46 counts of the JSON ``count_definition`` in label order (``constant`` = 1),
    shape ``(M, 46)`` (or ``(46,)`` for one occupation)."""
    lat = lattice if lattice is not None else reference_lattice()
    occs = np.asarray(occs, dtype=np.int8)
    single = occs.ndim == 1
    occs2 = occs[None] if single else occs
    n = lat.n_sites
    pc = pair_counts(occs2, lat).astype(np.float64) / n
    out = np.empty((len(occs2), 46))
    out[:, 0] = 1.0
    for x in range(3):
        out[:, 1 + x] = (occs2 == x).sum(axis=1) / n
    col = 4
    for s in range(N_SHELLS):
        for a, b in PAIRS:
            out[:, col] = pc[:, s, a, b]
            col += 1
    return out[0] if single else out


def cluster_counts_per_atom(occs: np.ndarray, lattice: Lattice | None = None, decimals: int | None = 5
                            ) -> np.ndarray:
    """:func:`cluster_counts` normalised as the Dismai-Bench reference counts them
    (``benchmark/alloy/cluster_counts/utils/count.py`` ``count_clusters``): divided by the
    number of atoms present (``AtomSum = len(struc)``; vacant sites are not atoms) instead
    of the number of sites, then rounded to ``decimals`` (``np.around(..., decimals=5)``).
    Without vacancies it differs from :func:`cluster_counts` only by the rounding."""
    lat = lattice if lattice is not None else reference_lattice()
    occs = np.asarray(occs, dtype=np.int8)
    single = occs.ndim == 1
    occs2 = occs[None] if single else occs
    n_atoms = (occs2 >= 0).sum(axis=1).astype(np.float64)[:, None]
    pc = pair_counts(occs2, lat).astype(np.float64)
    out = np.empty((len(occs2), 46))
    out[:, 0] = 1.0
    out[:, 1:4] = np.stack([(occs2 == x).sum(axis=1) for x in range(3)], axis=1) / n_atoms
    cols = [pc[:, s, a, b] for s in range(N_SHELLS) for a, b in PAIRS]
    out[:, 4:] = np.stack(cols, axis=1) / n_atoms
    if decimals is not None:
        out[:, 1:] = np.around(out[:, 1:], decimals=decimals)
    return out[0] if single else out


def formation_energy(occs: np.ndarray, lattice: Lattice | None = None,
                     ce: ClusterExpansion | None = None) -> np.ndarray | float:
    """CE formation energy, eV/atom (per reference site), of one or many occupations."""
    ce = ce if ce is not None else load_cluster_expansion()
    e = ce.energy_from_counts(cluster_counts(occs, lattice))
    return float(e) if np.ndim(e) == 0 else e


def fingerprint_from_counts(counts: np.ndarray) -> np.ndarray:
    """45-number cluster-probability fingerprint from :func:`cluster_counts` (..., 46)."""
    counts = np.asarray(counts, dtype=np.float64)
    mult = np.concatenate([np.ones(3), np.repeat(np.asarray(FCC_MULTIPLICITY, dtype=np.float64), 6)])
    return counts[..., 1:] / mult


def cluster_probabilities(occs: np.ndarray, lattice: Lattice | None = None) -> np.ndarray:
    """The 45-number fingerprint (:data:`FINGERPRINT_LABELS`) of one or many occupations."""
    return fingerprint_from_counts(cluster_counts(occs, lattice))


def warren_cowley_from_counts(counts: np.ndarray, shells: Sequence[int] = (1, 2)) -> np.ndarray:
    """Warren-Cowley SRO ``(..., len(shells) * 6)`` from :func:`cluster_counts` vectors,
    pairs in :data:`PAIR_NAMES` order for each shell (the reference script's formulas,
    module docstring). NaN where a species is absent."""
    counts = np.asarray(counts, dtype=np.float64)
    c = counts[..., 1:4]
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for s in shells:
            base = 4 + 6 * (s - 1)
            n = np.zeros(counts.shape[:-1] + (3, 3))
            for p, (a, b) in enumerate(PAIRS):
                n[..., a, b] = counts[..., base + p]
                n[..., b, a] = counts[..., base + p]
            # neighbours of all X atoms (per site): 2 n_XX + sum_{Y != X} n_XY
            tot = n.sum(axis=-1) + np.diagonal(n, axis1=-2, axis2=-1)
            for a, b in PAIRS:
                if a == b:
                    out.append(1.0 - 2.0 * n[..., a, a] / tot[..., a] / c[..., a])
                else:
                    out.append(1.0 - 0.5 * (n[..., a, b] / tot[..., b] / c[..., a]
                                            + n[..., a, b] / tot[..., a] / c[..., b]))
    return np.stack(out, axis=-1)


def warren_cowley(occs: np.ndarray, lattice: Lattice | None = None, shells: Sequence[int] = (1, 2)) -> np.ndarray:
    """Warren-Cowley SRO of one or many occupations (:data:`SRO_LABELS` order for shells 1, 2)."""
    return warren_cowley_from_counts(cluster_counts(occs, lattice), shells)


def analyze(occs: np.ndarray, lattice: Lattice | None = None, ce: ClusterExpansion | None = None
            ) -> dict[str, np.ndarray]:
    """Energy (eV/atom), fingerprint (45) and 1NN/2NN Warren-Cowley (12) of occupations (M, N)."""
    ce = ce if ce is not None else load_cluster_expansion()
    counts = cluster_counts(np.atleast_2d(occs), lattice)
    return {"energy": ce.energy_from_counts(counts), "fingerprint": fingerprint_from_counts(counts),
            "sro": warren_cowley_from_counts(counts), "counts": counts}


# --------------------------------------------------------------------------- mapping
def occupation_from_positions(cart: np.ndarray, symbols: Sequence[str], cell: np.ndarray | None = None,
                              lattice: Lattice | None = None, tol: float = 0.8
                              ) -> tuple[np.ndarray, int]:
    """Map atoms onto the reference sites: each site takes the nearest atom within
    ``tol`` Å (minimum image in the reference cell), each atom used at most once, sites
    visited in order of their nearest distance. Returns ``(occupation, n_unassigned_atoms)``
    with ``-1`` on vacant sites. ``cell`` (the structure's own cell) is only checked to
    match the reference cell within 1e-3 Å."""
    lat = lattice if lattice is not None else reference_lattice()
    if cell is not None and np.max(np.abs(np.asarray(cell) - lat.cell)) > 1e-3:
        raise ValueError("the structure's cell differs from the reference cell")
    cart = np.asarray(cart, dtype=np.float64)
    codes = encode(symbols)
    frac_atoms = np.linalg.solve(lat.cell.T, cart.T).T
    d = frac_atoms[None, :, :] - lat.frac[:, None, :]
    d -= np.round(d)
    dist = np.linalg.norm(d @ lat.cell, axis=-1)  # (sites, atoms)
    occ = np.full(lat.n_sites, -1, dtype=np.int8)
    used = np.zeros(len(cart), dtype=bool)
    pairs = np.argwhere(dist < tol)
    order = np.argsort(dist[pairs[:, 0], pairs[:, 1]], kind="stable")
    for site, atom in pairs[order]:
        if occ[site] < 0 and not used[atom]:
            occ[site] = codes[atom]
            used[atom] = True
    return occ, int((~used).sum())


def occupation_from_row(row: Mapping[str, Any], lattice: Lattice | None = None, tol: float = 0.8
                        ) -> tuple[np.ndarray, int]:
    """:func:`occupation_from_positions` of a dismai structure row."""
    frac = np.asarray(row["frac_coords"], dtype=np.float64)
    cell = np.asarray(row["lattice"], dtype=np.float64)
    return occupation_from_positions(frac @ cell, row["species"], cell, lattice, tol)


def structure_arrays(occ: np.ndarray, lattice: Lattice | None = None
                     ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(species, frac_coords, cell)`` of a full occupation, atoms sorted by species
    (Cr, Fe, Ni, as in ``alloy_ref_struc.extxyz``) and by site index within a species."""
    lat = lattice if lattice is not None else reference_lattice()
    occ = np.asarray(occ)
    if np.any(occ < 0):
        raise ValueError("occupation has vacancies")
    order = np.lexsort((np.arange(len(occ)), occ))
    return [SPECIES[int(c)] for c in occ[order]], lat.frac[order], lat.cell


# --------------------------------------------------------------------------- energies (total)
def total_energy(occ: np.ndarray, lattice: Lattice | None = None, ce: ClusterExpansion | None = None) -> float:
    """CE energy of the whole cell, eV (= N_sites x :func:`formation_energy`)."""
    lat = lattice if lattice is not None else reference_lattice()
    return float(formation_energy(occ, lat, ce)) * lat.n_sites


@numba.njit(cache=True)
def _local_fields(occ, neighbors, shell_of_slot, pair):
    """H[i, t] = sum over neighbours k of i of J_{shell}[t, sigma_k]: the pair energy of
    site i if it held species t."""
    n = occ.shape[0]
    h = np.zeros((n, 3))
    for i in range(n):
        for k in range(neighbors.shape[1]):
            b = occ[neighbors[i, k]]
            s = shell_of_slot[k]
            for t in range(3):
                h[i, t] += pair[s, t, b]
    return h


@numba.njit(cache=True)
def _swap_delta(occ, h, shell_matrix, pair, i, j):
    a = occ[i]
    b = occ[j]
    d = h[i, b] - h[i, a] + h[j, a] - h[j, b]
    s = shell_matrix[i, j]
    if s >= 0:
        d -= pair[s, a, a] + pair[s, b, b] - 2.0 * pair[s, a, b]
    return d


def swap_energy_change(occ: np.ndarray, i: int, j: int, lattice: Lattice | None = None,
                       ce: ClusterExpansion | None = None) -> float:
    """Total-energy change (eV) of swapping the species on sites ``i`` and ``j``, from
    the local environments only (the Monte Carlo kernel's formula)."""
    lat = lattice if lattice is not None else reference_lattice()
    ce = ce if ce is not None else load_cluster_expansion()
    occ = np.ascontiguousarray(occ, dtype=np.int8)
    h = _local_fields(occ, lat.neighbors, lat.shell_of_slot, ce.pair)
    return float(_swap_delta(occ, h, lat.shell_matrix, ce.pair, int(i), int(j)))


# --------------------------------------------------------------------------- Monte Carlo
@numba.njit(cache=True)
def _mc_kernel(occ, neighbors, shell_of_slot, shell_slices, shell_matrix, pair, betas, n_passes,
               snapshot_every, seed, snaps, accepted_out, energy_change_out):
    """Canonical Metropolis MC with Kawasaki swaps of two unlike atoms, in place on ``occ``.

    One trial: draw sites i, j uniformly (redrawing while they hold the same species, so
    the proposal is uniform over unlike pairs and symmetric), dE from the local fields,
    accept if dE <= 0 or u < exp(-beta dE). One pass = N trials. After every
    ``snapshot_every`` passes the occupation is copied into ``snaps``. ``betas[p]`` (1/eV,
    one per pass) multiplies the total-energy change. Local fields are rebuilt from scratch at
    every snapshot so no rounding error accumulates. The sum of the accepted dE is
    written to ``energy_change_out[0]`` (checked in the tests against full energies).
    """
    np.random.seed(seed)
    n = occ.shape[0]
    nshell = shell_slices.shape[0] - 1
    h = _local_fields(occ, neighbors, shell_of_slot, pair)
    n_acc = 0
    e_change = 0.0
    isnap = 0
    for p in range(n_passes):
        beta = betas[p]
        for _t in range(n):
            i = int(np.random.random() * n)
            j = int(np.random.random() * n)
            while occ[i] == occ[j]:
                i = int(np.random.random() * n)
                j = int(np.random.random() * n)
            a = occ[i]
            b = occ[j]
            d = _swap_delta(occ, h, shell_matrix, pair, i, j)
            if d > 0.0:
                if np.random.random() >= math.exp(-beta * d):
                    continue
            occ[i] = b
            occ[j] = a
            n_acc += 1
            e_change += d
            # neighbours of i see a -> b, neighbours of j see b -> a (the opposite change)
            for sk in range(nshell):
                d0 = pair[sk, 0, b] - pair[sk, 0, a]
                d1 = pair[sk, 1, b] - pair[sk, 1, a]
                d2 = pair[sk, 2, b] - pair[sk, 2, a]
                for k in range(shell_slices[sk], shell_slices[sk + 1]):
                    m = neighbors[i, k]
                    h[m, 0] += d0
                    h[m, 1] += d1
                    h[m, 2] += d2
                    m = neighbors[j, k]
                    h[m, 0] -= d0
                    h[m, 1] -= d1
                    h[m, 2] -= d2
        if (p + 1) % snapshot_every == 0:
            snaps[isnap, :] = occ
            isnap += 1
            h = _local_fields(occ, neighbors, shell_of_slot, pair)
    accepted_out[0] = n_acc
    energy_change_out[0] = e_change


@dataclass
class MCResult:
    """Output of :func:`run_mc`."""

    snapshots: np.ndarray  # (M, N) int8 occupations after passes snapshot_every, 2*snapshot_every, ...
    passes: np.ndarray  # (M,) pass number of each snapshot
    final: np.ndarray  # (N,) final occupation
    accepted: int  # accepted swaps
    trials: int  # attempted (unlike) swaps = n_passes * N
    energy_change: float  # sum of the accepted total-energy changes, eV (= E_total(final) - E_total(occ0))
    temperatures: np.ndarray  # (n_passes,) temperature of each pass, K


def anneal_temperatures(temperature: float, n_passes: int, anneal_from: float | None = None,
                        anneal_passes: int = 0) -> np.ndarray:
    """Temperature of every pass: ``anneal_from`` decreasing geometrically to
    ``temperature`` over the first ``anneal_passes`` passes (pass p < anneal_passes at
    ``anneal_from (temperature / anneal_from)^(p / anneal_passes)``), then ``temperature``."""
    temps = np.full(int(n_passes), float(temperature))
    if anneal_from is not None and anneal_passes > 0:
        m = min(int(anneal_passes), int(n_passes))
        temps[:m] = float(anneal_from) * (float(temperature) / float(anneal_from)) ** (np.arange(m) / anneal_passes)
    return temps


def run_mc(occ0: np.ndarray, temperature: float, n_passes: int, snapshot_every: int, seed: int,
           lattice: Lattice | None = None, ce: ClusterExpansion | None = None, *,
           anneal_from: float | None = None, anneal_passes: int = 0) -> MCResult:
    """Canonical Metropolis Monte Carlo (Kawasaki swaps) from ``occ0`` at ``temperature`` K.

    With ``anneal_from``, the first ``anneal_passes`` passes run at temperatures decreasing
    geometrically from ``anneal_from`` to ``temperature`` (:func:`anneal_temperatures`;
    an equilibration aid: discard those snapshots).

    The acceptance uses the change of the **total** CE energy of the cell,
    ``N_sites x`` the change of the per-atom energy (the physical canonical ensemble of
    the 256-atom cell); ``seed`` (< 2**32) seeds numba's Mersenne Twister.
    """
    lat = lattice if lattice is not None else reference_lattice()
    ce = ce if ce is not None else load_cluster_expansion()
    occ = np.array(occ0, dtype=np.int8, copy=True)
    if occ.shape != (lat.n_sites,) or np.any(occ < 0) or np.any(occ > 2):
        raise ValueError("occ0 must be a full occupation of the lattice")
    if len(np.unique(occ)) < 2:
        raise ValueError("occ0 needs at least two species to swap")
    temps = anneal_temperatures(temperature, n_passes, anneal_from, anneal_passes)
    betas = 1.0 / (K_B * temps)
    m = n_passes // snapshot_every
    snaps = np.zeros((m, lat.n_sites), dtype=np.int8)
    acc = np.zeros(1, dtype=np.int64)
    de = np.zeros(1, dtype=np.float64)
    _mc_kernel(occ, lat.neighbors, lat.shell_of_slot, lat.shell_slices, lat.shell_matrix, ce.pair, betas,
               int(n_passes), int(snapshot_every), int(seed) % (2**32), snaps, acc, de)
    passes = np.arange(1, m + 1, dtype=np.int64) * snapshot_every
    return MCResult(snaps, passes, occ, int(acc[0]), int(n_passes) * lat.n_sites, float(de[0]), temps)


def random_occupation(seed: int, lattice: Lattice | None = None) -> np.ndarray:
    """The reference composition (Fe154 Ni51 Cr51) placed at random on the sites
    (``numpy.random.default_rng(seed).permutation`` of the reference occupation)."""
    lat = lattice if lattice is not None else reference_lattice()
    return np.random.default_rng(seed).permutation(lat.reference_occupation).astype(np.int8)


__all__ = [
    "SPECIES", "SPECIES_CODE", "PAIRS", "PAIR_NAMES", "N_SHELLS", "FCC_Z", "FCC_MULTIPLICITY", "K_B",
    "FINGERPRINT_LABELS", "SRO_LABELS", "ClusterExpansion", "Lattice", "load_cluster_expansion",
    "cluster_expansion_from_json", "reference_lattice", "lattice_from_atoms", "fcc_shells", "encode",
    "decode", "pair_counts", "cluster_counts", "formation_energy", "fingerprint_from_counts",
    "cluster_probabilities", "warren_cowley_from_counts", "warren_cowley", "analyze",
    "occupation_from_positions", "occupation_from_row", "structure_arrays", "total_energy",
    "swap_energy_change", "MCResult", "anneal_temperatures", "run_mc", "random_occupation",
]
