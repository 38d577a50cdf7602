"""The shared relaxation engine: positions-only relaxation (lattice fixed) with the
M3GNet-MP-2021.2.8-PES universal potential through matgl.

Used by the interface builder and by the evaluation module (interface and a-Si tasks).

* :func:`load_potential` -- the relaxer from the hub model repo :data:`RELAXER_REPO`, else
  the packaged offline copy (``potential.dismai_source`` says which).
* :func:`relax_ase` -- the reference: one structure at a time, matgl's ASE calculator
  (:class:`matgl.ext.ase.PESCalculator`) driven by :class:`ase.optimize.FIRE`.
* :func:`relax_batch` -- several structures in one model call per step (one batched
  graph), each with its own FIRE state that follows ASE's FIRE update rule and
  parameters exactly; converged structures leave the batch and waiting ones take their
  place. The neighbour list is built once with a skin and only rebuilt when an atom has
  moved more than half the skin; every step keeps exactly the bonds within the model's
  cutoff, so the graph is the one ASE's calculator would build. The batched graph is
  evaluated with :class:`dismai_data.physics.matgl_compat.FastM3GNetPES` (the same M3GNet function
  and weights with less work: per-atom three-body moments instead of the line graph on the
  bonds within the three-body cutoff only, split first MLP layers, matrix products through
  oneDNN instead of MKL, which ran them 1.9-2.9x slower on one of this project's AMD CPUs and
  about as fast on another; equal to matgl's calculator in the tests);
  ``fast="compile"`` evaluates that path through ``torch.compile`` (after a compilation per
  process: about 1.15-1.2x less CPU per call again on the AMD dev CPUs; 1.54x on the Intel
  one, where the compiled products are torch's own mm (MKL), which inductor calls without the
  custom operator around oneDNN: ``matgl_compat.compiled_products_by_mkl``); ``fast=False``
  uses matgl's own forward.
* :func:`relax_many` -- many structures: batched, checkpointed in parquet shards
  (resumable after a kill), optionally distributed with Dask, with a progress bar that
  advances per finished structure.

Relaxation criterion everywhere: max per-atom force norm ``< fmax`` (ASE's criterion);
``steps`` counts optimizer steps (ASE's ``nsteps``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
import os
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Hub model repo of the relaxer (its files: model.json, model.pt, state.pt).
RELAXER_REPO = "dismai/m3gnet-mp-2021.2.8-pes"
_WEIGHTS_NAME = "M3GNet-MP-2021.2.8-PES"

#: FIRE parameters: ase.optimize.FIRE defaults (ase 3.29), used by both engines.
FIRE_PARAMS = dict(dt=0.1, maxstep=0.2, dtmax=1.0, Nmin=5, finc=1.1, fdec=0.5, astart=0.1, fa=0.99, a=0.1)

#: LBFGS parameters: ase.optimize.LBFGS defaults (ase 3.29), optional in the batched engine.
LBFGS_PARAMS = dict(maxstep=0.2, memory=100, damping=1.0, alpha=70.0)

OPTIMIZERS = ("FIRE", "LBFGS")

#: Neighbour-list skin (Å) of the batched engine: pairs are searched within cutoff + skin
#: and the list is rebuilt when an atom has moved more than skin / 2 since the last build.
DEFAULT_SKIN = 1.0

# A relaxation whose energy per atom leaves this range has exploded (M3GNet energies are
# a few eV/atom; atoms on top of each other give huge values).
_EXPLODED_EV_PER_ATOM = 1.0e3

_POTENTIALS: dict[tuple[str, str], Any] = {}
_POTENTIALS_LOCK = threading.Lock()


class RelaxInputError(ValueError):
    """An item given to the relaxation engine is invalid; the message names the item."""


# --------------------------------------------------------------------------- potential


def local_weights_dir() -> Path:
    """The packaged copy of the relaxer weights (see ``models/weights/SOURCES.md``)."""
    import importlib.resources

    return Path(str(importlib.resources.files("dismai_data.models"))) / "weights" / _WEIGHTS_NAME


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _load_folder(folder: Path, device: str, source: str):
    import matgl

    folder = Path(folder)
    missing = [f for f in ("model.json", "model.pt", "state.pt") if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"potential folder {folder} lacks {', '.join(missing)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        potential = matgl.load_model(folder)
    # matgl 4.1.2 sums M3GNet node messages into the source atom; the DGL-era weights were
    # trained summing into the destination (compounds wrong, elements fine): matgl_compat.
    from dismai_data.physics.matgl_compat import fix_potential

    potential = fix_potential(potential)
    potential = potential.to(device)
    potential.eval()
    potential.dismai_source = source
    potential.dismai_path = str(folder)
    potential.dismai_device = device
    return potential


def load_potential(source: str | os.PathLike | None = None, *, device: str | None = None):
    """The relaxer as a matgl ``Potential`` (cached per (source, device) in this process).

    ``source=None``: the hub model repo :data:`RELAXER_REPO` through
    ``huggingface_hub.snapshot_download`` (which follows ``HF_ENDPOINT``), unless
    ``HF_HUB_OFFLINE`` is set or the download fails; then the packaged local copy
    (:func:`local_weights_dir`). A folder path loads that folder; an ``owner/name`` string
    that is not a folder is downloaded from the hub (no fallback).

    The returned potential records where it came from: ``potential.dismai_source`` is
    ``'hub:<repo>@<commit>'`` or ``'local:<folder>'``; ``potential.dismai_path`` is the folder
    loaded; ``potential.dismai_fallback_reason`` says why the hub was not used (or None).
    Device: ``device`` if given, else CUDA when available, else CPU.
    """
    device = device or _default_device()
    key = ("<default>" if source is None else str(source), device)
    with _POTENTIALS_LOCK:
        if key in _POTENTIALS:
            return _POTENTIALS[key]
        fallback_reason = None
        if source is None:
            folder, label = None, None
            if _offline():
                fallback_reason = "HF_HUB_OFFLINE is set"
            else:
                try:
                    folder, label = _hub_snapshot(RELAXER_REPO)
                except Exception as exc:  # any hub failure: use the packaged copy
                    fallback_reason = f"hub download of {RELAXER_REPO} failed: {type(exc).__name__}: {exc}"
            if folder is None:
                folder = local_weights_dir()
                label = f"local:{folder}"
                logger.info("relaxer: packaged copy %s (%s)", folder, fallback_reason)
        elif Path(source).is_dir():
            folder = Path(source)
            label = f"local:{folder.resolve()}"
        elif isinstance(source, str) and source.count("/") == 1 and not source.startswith((".", "/")):
            folder, label = _hub_snapshot(source)
        else:
            raise FileNotFoundError(f"potential source {str(source)!r} is neither a folder nor a hub repo id")
        potential = _load_folder(folder, device, label)
        potential.dismai_fallback_reason = fallback_reason
        _POTENTIALS[key] = potential
        return potential


def _hub_snapshot(repo: str) -> tuple[Path, str]:
    from huggingface_hub import snapshot_download

    folder = Path(snapshot_download(repo_id=repo, repo_type="model",
                                    allow_patterns=["model.json", "model.pt", "state.pt", "*.md"]))
    # snapshot folders are named by the commit they hold
    return folder, f"hub:{repo}@{folder.name}"


def _no_stress(potential):
    """A view of ``potential`` that skips the stress (the lattice is fixed): same modules
    and weights, only the ``calc_stresses`` flag differs."""
    view = getattr(potential, "_dismai_no_stress", None)
    if view is None:
        view = potential
        if getattr(potential, "calc_stresses", False):
            view = copy.copy(potential)
            view.calc_stresses = False
        try:
            object.__setattr__(potential, "_dismai_no_stress", view)
        except Exception:  # pragma: no cover - exotic module subclasses
            pass
    return view


# --------------------------------------------------------------------------- results


@dataclass
class RelaxResult:
    """Outcome of one relaxation."""

    structure: Any  # pymatgen Structure (relaxed; last positions if not converged) or None if failed
    energy: float | None  # total energy, eV
    fmax: float | None  # final max per-atom force norm, eV/Å
    steps: int  # optimizer steps taken
    converged: bool
    error: str | None = None  # why it failed / did not converge


# --------------------------------------------------------------------------- inputs


def _as_items(items, *, caller: str) -> list[tuple[str, Any]]:
    """(id, Structure) pairs, checked: a list, not empty, Structures, ordered, finite,
    unique ids. Bare Structures take ``structure.properties['id']`` or their index."""
    from pymatgen.core import Structure

    if items is None or isinstance(items, (str, bytes)):
        raise RelaxInputError(f"{caller}: items must be a list of Structures or (id, Structure) pairs")
    if isinstance(items, Structure):
        items = [items]
    items = list(items)
    if not items:
        raise RelaxInputError(f"{caller}: no structures given (empty list)")
    out: list[tuple[str, Any]] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if isinstance(item, Structure):
            key, s = item.properties.get("id"), item
            key = str(i) if key is None else str(key)
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], Structure):
            key, s = str(item[0]), item[1]
            if item[0] is None or key == "":
                raise RelaxInputError(f"{caller}: item {i}: empty id")
        else:
            raise RelaxInputError(f"{caller}: item {i} is a {type(item).__name__}, "
                                  "not a pymatgen Structure or an (id, Structure) pair")
        where = f"{caller}: item {i} (id {key!r})"
        if key in seen:
            raise RelaxInputError(f"{where}: id repeated (also item {seen[key]})")
        seen[key] = i
        if len(s) == 0:
            raise RelaxInputError(f"{where}: structure has no sites")
        if not s.is_ordered:
            raise RelaxInputError(f"{where}: disordered sites (partial occupancy) cannot be relaxed")
        lat = np.asarray(s.lattice.matrix, dtype=float)
        frac = np.asarray(s.frac_coords, dtype=float)
        if not np.all(np.isfinite(lat)):
            raise RelaxInputError(f"{where}: lattice has a non-finite value")
        if not np.all(np.isfinite(frac)):
            bad = int(np.argwhere(~np.isfinite(frac))[0][0])
            raise RelaxInputError(f"{where}: site {bad} has a non-finite coordinate")
        if abs(np.linalg.det(lat)) < 1e-8:
            raise RelaxInputError(f"{where}: lattice is singular")
        out.append((key, s))
    return out


def _check_elements(pairs: Sequence[tuple[str, Any]], element_types: Sequence[str], caller: str) -> None:
    known = set(element_types)
    for i, (key, s) in enumerate(pairs):
        for el in s.composition.elements:
            if el.symbol not in known:
                raise RelaxInputError(f"{caller}: item {i} (id {key!r}): element {el.symbol} is not "
                                      "covered by the potential")


def input_hash(structure) -> str:
    """sha256 of a structure's species, fractional coordinates and lattice (float64 bytes):
    identifies the input a checkpointed result belongs to."""
    h = hashlib.sha256()
    h.update("\0".join(site.specie.symbol for site in structure).encode())
    h.update(np.ascontiguousarray(structure.frac_coords, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(structure.lattice.matrix, dtype="<f8").tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- ASE reference


def relax_ase(structure, potential=None, *, fmax: float = 0.05, max_steps: int = 1000,
              optimizer: str = "FIRE") -> RelaxResult:
    """Relax one structure the standard way: matgl's ASE calculator + ``ase.optimize.FIRE``
    (default parameters), positions only. The reference the batched engine is checked
    against."""
    from ase.optimize import FIRE, LBFGS
    from matgl.ext.ase import PESCalculator
    from pymatgen.io.ase import AseAtomsAdaptor

    [(key, structure)] = _as_items([structure], caller="relax_ase")
    potential = potential if potential is not None else load_potential()
    _check_elements([(key, structure)], potential.model.element_types, "relax_ase")
    atoms = AseAtomsAdaptor.get_atoms(structure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms.calc = PESCalculator(_no_stress(potential), stress_unit="eV/A3")
    opt = (LBFGS if _optimizer_name(optimizer) == "LBFGS" else FIRE)(atoms, logfile=None)
    try:
        with np.errstate(all="ignore"):
            converged = bool(opt.run(fmax=fmax, steps=max_steps))
        energy = float(atoms.get_potential_energy())
        forces = atoms.get_forces()
    except Exception as exc:  # calculator failure: report it as the result
        return RelaxResult(None, None, None, int(opt.nsteps), False, f"{type(exc).__name__}: {exc}")
    fm = float(np.linalg.norm(forces, axis=1).max())
    error = _physical_error(energy, forces, len(atoms), opt.nsteps)
    if error:
        return RelaxResult(None, None, None, int(opt.nsteps), False, error)
    relaxed = _structure_at(structure, atoms.get_positions())
    return RelaxResult(relaxed, energy, fm, int(opt.nsteps), converged,
                       None if converged else f"not converged in {max_steps} steps (fmax {fm:.4f} eV/Å)")


def _physical_error(energy: float, forces: np.ndarray, natoms: int, step: int) -> str | None:
    if not math.isfinite(energy):
        return f"non-finite energy ({energy}) at step {step}"
    if not np.all(np.isfinite(forces)):
        return f"non-finite forces at step {step}"
    if abs(energy) / natoms > _EXPLODED_EV_PER_ATOM:
        return f"exploded: {energy / natoms:.4g} eV/atom at step {step}"
    return None


def _structure_at(structure, positions: np.ndarray):
    """A copy of ``structure`` with new Cartesian positions (lattice kept)."""
    from pymatgen.core import Structure

    out = Structure(structure.lattice, [site.specie for site in structure], positions,
                    coords_are_cartesian=True, properties=dict(structure.properties))
    return out


# --------------------------------------------------------------------------- batched engine


class _Relaxation:
    """One structure being relaxed: positions, ASE-FIRE state, skin neighbour list."""

    def __init__(self, index: int, key: str, structure, node_type, cutoff: float, skin: float,
                 optimizer: str = "FIRE"):
        self.index = index
        self.key = key
        self.structure = structure
        self.cell = np.array(structure.lattice.matrix, dtype=np.float64)
        self.pos = np.array(structure.cart_coords, dtype=np.float64)
        self.n = len(structure)
        self.node_type = node_type
        self.cutoff = cutoff
        self.skin = skin
        # ASE FIRE state (ase/optimize/fire.py)
        p = FIRE_PARAMS
        self.dt, self.a, self.Nsteps, self.vel = p["dt"], p["a"], 0, None
        self.nsteps = 0
        self.optimizer = optimizer
        if optimizer == "LBFGS":
            from ase.optimize.lbfgs import LBFGSMethod, initial_inverse_position_hessian

            p = LBFGS_PARAMS
            self._lbfgs = LBFGSMethod(memory=p["memory"],
                                      initial_inverse_hessian=initial_inverse_position_hessian(3 * self.n,
                                                                                               p["alpha"]))
            self._r0 = self._f0 = None
        self._nl = None
        self._pos_at_build = None
        self.nl_builds = 0

    def graph_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(src, dst, images, frac_coords) of the bonds within the cutoff at the current positions."""
        if self._nl is None or np.max(np.sum((self.pos - self._pos_at_build) ** 2, axis=1)) > (self.skin / 2) ** 2:
            self._build_neighbors()
        src, dst, images, offsets = self._nl
        vec = self.pos[dst] + offsets - self.pos[src]
        keep = np.einsum("ij,ij->i", vec, vec) <= self.cutoff ** 2
        # exactly what matgl's Atoms2Graph keeps: pairs within the cutoff, minus an atom with itself
        keep &= self._not_self
        frac = np.linalg.solve(self.cell.T, self.pos.T).T  # ase.cell.Cell.scaled_positions
        return src[keep], dst[keep], images[keep], frac

    def bonds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(src, dst, vectors) of the bonds within the cutoff at the current positions; the
        vectors (float64) go from ``src`` to the periodic image of ``dst``. The same bonds as
        :meth:`graph_arrays` (what matgl's Atoms2Graph keeps)."""
        if self._nl is None or np.max(np.sum((self.pos - self._pos_at_build) ** 2, axis=1)) > (self.skin / 2) ** 2:
            self._build_neighbors()
        src, dst, _, offsets = self._nl
        vec = self.pos[dst] + offsets - self.pos[src]
        keep = (np.einsum("ij,ij->i", vec, vec) <= self.cutoff ** 2) & self._not_self
        return src[keep], dst[keep], vec[keep]

    def _build_neighbors(self) -> None:
        from pymatgen.optimization.neighbors import find_points_in_spheres

        src, dst, images, _ = find_points_in_spheres(
            self.pos, self.pos, r=self.cutoff + self.skin, pbc=np.array([1, 1, 1], dtype=np.int64),
            lattice=self.cell, tol=1e-8)
        images = np.asarray(images, dtype=np.float64)
        self._nl = (np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64), images, images @ self.cell)
        self._not_self = (self._nl[0] != self._nl[1]) | np.any(images != 0, axis=1)
        self._pos_at_build = self.pos.copy()
        self.nl_builds += 1

    def step(self, forces: np.ndarray) -> None:
        if self.optimizer == "LBFGS":
            self.lbfgs_step(forces)
        else:
            self.fire_step(forces)

    def lbfgs_step(self, forces: np.ndarray) -> None:
        """One ase.optimize.LBFGS step (default parameters, no line search), with ASE's own
        L-BFGS state object (``LBFGSMethod``) and the same step limiting."""
        p = LBFGS_PARAMS
        forces = forces.ravel()
        pos = self.pos.ravel().copy()
        if self._lbfgs.iteration > 0:
            self._lbfgs.update(pos, -forces, self._r0, -self._f0)
        dr = self._lbfgs.compute_step(-forces)
        longest = np.linalg.norm(dr.reshape(-1, 3), axis=1).max()
        if longest >= p["maxstep"]:
            dr *= p["maxstep"] / longest
        dr = dr * p["damping"]
        self.pos = (pos + dr).reshape(-1, 3)
        self._r0 = pos
        self._f0 = forces

    def fire_step(self, forces: np.ndarray) -> None:
        """One ase.optimize.FIRE step (default parameters, no downhill check), same
        arithmetic and dtypes as ASE: ``forces`` is the float32 force array."""
        p = FIRE_PARAMS
        gradient = forces.ravel()  # ASE: -optimizable.get_gradient() == forces
        if self.vel is None:
            self.vel = np.zeros(3 * self.n)
        else:
            vf = np.vdot(gradient, self.vel)
            grad2 = np.vdot(gradient, gradient)
            if vf > 0.0:
                self.vel = ((1.0 - self.a) * self.vel
                            + self.a * gradient / np.sqrt(grad2) * np.sqrt(np.vdot(self.vel, self.vel)))
                if self.Nsteps > p["Nmin"]:
                    self.dt = min(self.dt * p["finc"], p["dtmax"])
                    self.a *= p["fa"]
                self.Nsteps += 1
            else:
                self.vel[:] *= 0.0
                self.a = p["astart"]
                self.dt *= p["fdec"]
                self.Nsteps = 0
        self.vel += self.dt * gradient
        dr = self.dt * self.vel
        normdr = np.sqrt(np.vdot(dr, dr))
        if normdr > p["maxstep"]:
            dr = p["maxstep"] * dr / normdr
        self.pos = (self.pos.ravel() + dr).reshape(-1, 3)


def _fast_evaluator(potential, compile: bool = False):
    """The :class:`~dismai_data.physics.matgl_compat.FastM3GNetPES` of ``potential`` (cached on it;
    ``compile``: the one evaluated through ``torch.compile``, cached separately), or None
    where the potential is not an M3GNet it supports (then matgl's forward is used)."""
    attr = "_dismai_fast_compiled" if compile else "_dismai_fast"
    fast = getattr(potential, attr, None)
    if fast is None:
        from dismai_data.physics.matgl_compat import FastM3GNetPES

        try:
            fast = FastM3GNetPES(potential, compile=compile)
        except NotImplementedError as exc:
            logger.info("relax: matgl forward (fast M3GNet path not applicable: %s)", exc)
            fast = False
        try:
            object.__setattr__(potential, attr, fast)
        except Exception:  # pragma: no cover - exotic module subclasses
            pass
    return fast or None


def _fast_mode(fast):
    """Check an engine ``fast`` option: True (the fast exact path, eager), ``"compile"`` (the
    same path through torch.compile) or False (matgl's own forward)."""
    if fast is True or fast is False or fast == "compile":
        return fast
    raise ValueError(f"fast must be True, False or 'compile', got {fast!r}")


def _evaluate(potential, batch: Sequence[_Relaxation], compile: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies and float32 forces of every structure in ``batch`` from ONE evaluation of
    the batched graph: :class:`~dismai_data.physics.matgl_compat.FastM3GNetPES` (the same M3GNet
    function with less work, checked against matgl's calculator in the tests) when it
    supports the potential, else matgl's own forward (:func:`_evaluate_matgl`)."""
    import torch

    fast = _fast_evaluator(potential, compile=compile)
    if fast is None:
        return _evaluate_matgl(potential, batch)
    node_types, srcs, dsts, vecs, graph_of, offsets = [], [], [], [], [], []
    start = 0
    for k, r in enumerate(batch):
        src, dst, vec = r.bonds()
        node_types.append(r.node_type)
        srcs.append(src + start)
        dsts.append(dst + start)
        vecs.append(vec)
        graph_of.append(np.full(r.n, k, dtype=np.int64))
        if getattr(r, "_energy_offset", None) is None:  # element reference energy: fixed per structure
            r._energy_offset = (fast.element_offsets(r.node_type, torch.zeros(r.n, dtype=torch.long), 1)
                                if getattr(potential, "element_refs", None) is not None else torch.zeros(1))
        offsets.append(r._energy_offset.reshape(1))
        start += r.n
    energies, forces = fast.energies_forces(
        torch.cat(node_types), torch.from_numpy(np.concatenate(srcs)), torch.from_numpy(np.concatenate(dsts)),
        torch.from_numpy(np.concatenate(vecs)), torch.from_numpy(np.concatenate(graph_of)), len(batch),
        offsets=torch.cat(offsets))
    return _per_structure(energies, forces, batch)


def _per_structure(energies, forces, batch: Sequence[_Relaxation]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Batched model outputs (tensors) as numpy energies and one force array per structure."""
    energies = energies.detach().cpu().numpy().reshape(-1)
    forces = forces.detach().cpu().numpy()
    out, start = [], 0
    for r in batch:
        out.append(forces[start:start + r.n])
        start += r.n
    return energies, out


def _evaluate_matgl(potential, batch: Sequence[_Relaxation]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies (float32 values as Python floats) and float32 forces of every structure in
    ``batch`` from ONE call of matgl's potential on the batched graph."""
    import matgl
    import torch
    from torch_geometric.data import Batch, Data

    device = potential.data_mean.device
    datas, lats = [], []
    for r in batch:
        src, dst, images, frac = r.graph_arrays()
        d = Data(num_nodes=r.n, edge_index=torch.from_numpy(np.stack([src, dst])).to(matgl.int_th))
        d.pbc_offset = torch.from_numpy(images).to(matgl.float_th)
        d.node_type = r.node_type
        d.frac_coords = torch.from_numpy(frac).to(matgl.float_th)
        datas.append(d)
        lats.append(r.cell)
    g = Batch.from_data_list(datas)
    lat = torch.from_numpy(np.stack(lats)).to(matgl.float_th)
    if device.type != "cpu":
        g = g.to(device)
        lat = lat.to(device)
    state_attr = None
    if getattr(potential.model, "include_state", False):
        state_attr = torch.zeros((len(batch), 2), dtype=matgl.float_th, device=device)
    energies, forces = potential(g, lat, state_attr)[:2]
    return _per_structure(energies, forces, batch)


def _relax_stream(pairs: Iterable[tuple[int, str, Any]], potential, *, fmax: float, max_steps: int,
                  batch_size: int, skin: float = DEFAULT_SKIN, stats: dict | None = None,
                  optimizer: str = "FIRE", fast: bool | str = True) -> Iterator[tuple[int, RelaxResult]]:
    """Relax (index, id, Structure) items, up to ``batch_size`` at a time in one model call
    per step; yields ``(index, RelaxResult)`` as each structure finishes (converged,
    failed or out of steps), refilling the batch from ``pairs``.

    The loop mirrors ase's ``Optimizer.irun``: forces at the current positions, convergence
    check, then (if not converged and fewer than ``max_steps`` steps) one FIRE step.
    ``fast``: evaluate with :func:`_evaluate` (the fast exact M3GNet path where it applies;
    ``"compile"``: that path through torch.compile); False: always matgl's own forward
    (:func:`_evaluate_matgl`)."""
    import torch

    fast = _fast_mode(fast)

    def evaluate(pot, batch):  # looked up at call time (tests replace _evaluate)
        if not fast:
            return _evaluate_matgl(pot, batch)
        return _evaluate(pot, batch, compile=True) if fast == "compile" else _evaluate(pot, batch)

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    optimizer = _optimizer_name(optimizer)
    potential = _no_stress(potential)
    element_index = {el: i for i, el in enumerate(potential.model.element_types)}
    cutoff = float(potential.model.cutoff)
    source = iter(pairs)
    active: list[_Relaxation] = []
    exhausted = False
    calls = 0
    while True:
        while not exhausted and len(active) < batch_size:
            try:
                index, key, s = next(source)
            except StopIteration:
                exhausted = True
                break
            node_type = torch.tensor([element_index[site.specie.symbol] for site in s], dtype=torch.long)
            active.append(_Relaxation(index, key, s, node_type, cutoff, skin, optimizer))
        if not active:
            break
        try:
            energies, forces = evaluate(potential, active)
        except Exception as exc:
            if len(active) == 1:
                r = active.pop()
                yield r.index, RelaxResult(None, None, None, r.nsteps, False,
                                           f"model call failed: {type(exc).__name__}: {exc}")
                continue
            # isolate the culprit: evaluate one by one this step
            energies, forces = [], []
            for r in list(active):
                try:
                    e, f = evaluate(potential, [r])
                    energies.append(e[0])
                    forces.append(f[0])
                except Exception as exc1:
                    active.remove(r)
                    yield r.index, RelaxResult(None, None, None, r.nsteps, False,
                                               f"model call failed: {type(exc1).__name__}: {exc1}")
            energies = np.array(energies)
        calls += 1
        still = []
        for r, e, f in zip(active, energies, forces):
            e = float(e)
            error = _physical_error(e, f, r.n, r.nsteps)
            if error:
                yield r.index, RelaxResult(None, None, None, r.nsteps, False, error)
                continue
            fm = float(np.linalg.norm(f, axis=1).max())
            if fm < fmax or r.nsteps >= max_steps:
                converged = fm < fmax
                yield r.index, RelaxResult(
                    _structure_at(r.structure, r.pos), e, fm, r.nsteps, converged,
                    None if converged else f"not converged in {max_steps} steps (fmax {fm:.4f} eV/Å)")
                continue
            r.step(f)
            r.nsteps += 1
            still.append(r)
        active = still
    if stats is not None:
        stats["model_calls"] = stats.get("model_calls", 0) + calls


def _optimizer_name(optimizer) -> str:
    name = str(optimizer).upper()
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer {optimizer!r} is not supported (choose from {', '.join(OPTIMIZERS)})")
    return name


def relax_batch(structures, potential=None, *, fmax: float = 0.05, max_steps: int = 1000,
                optimizer: str = "FIRE", batch_size: int | None = None, fast: bool | str = True) -> list[RelaxResult]:
    """Relax several structures together: one model call per step on the batched graph,
    each structure with its own optimizer state; converged ones drop out of the batch.
    ``optimizer``: ``"FIRE"`` (ase.optimize.FIRE's update and defaults) or ``"LBFGS"``
    (ase.optimize.LBFGS's). ``batch_size`` (default: all) caps how many are in one call.
    ``fast``: the fast exact M3GNet evaluation (default), the same through torch.compile
    (``"compile"``) or matgl's own forward (False). Results in input order."""
    optimizer = _optimizer_name(optimizer)
    pairs = _as_items(structures, caller="relax_batch")
    potential = potential if potential is not None else load_potential()
    _check_elements(pairs, potential.model.element_types, "relax_batch")
    results: list[RelaxResult | None] = [None] * len(pairs)
    stream = ((i, key, s) for i, (key, s) in enumerate(pairs))
    for i, res in _relax_stream(stream, potential, fmax=fmax, max_steps=max_steps,
                                batch_size=batch_size or len(pairs), optimizer=optimizer, fast=fast):
        results[i] = res
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------- checkpoints


def _extra_features():
    from datasets import Value

    return {
        "energy": Value("float64"),
        "energy_per_atom": Value("float64"),
        "fmax": Value("float64"),
        "steps": Value("int32"),
        "converged": Value("bool"),
        "relaxed": Value("bool"),
        "error": Value("string"),
        "input_sha256": Value("string"),
    }


def _result_row(key: str, structure_in, res: RelaxResult) -> dict:
    from dismai_data.structure import row_from_structure

    s = res.structure if res.structure is not None else structure_in
    extra = {
        "energy": res.energy,
        "energy_per_atom": None if res.energy is None else res.energy / len(s),
        "fmax": res.fmax,
        "steps": int(res.steps),
        "converged": bool(res.converged),
        "relaxed": res.structure is not None,
        "error": res.error,
        "input_sha256": input_hash(structure_in),
    }
    return row_from_structure(s, id=key, extra=extra, symmetry=False)


def _row_result(row: dict) -> RelaxResult:
    from dismai_data.structure import row_to_structure

    structure = row_to_structure(row) if row["relaxed"] else None
    return RelaxResult(structure, row["energy"], row["fmax"], int(row["steps"]), bool(row["converged"]),
                       row["error"])


#: parquet key-value metadata key of a shard's ``shard_metadata`` (JSON)
SHARD_METADATA_KEY = b"dismai.relax_shard"


def _write_shard(folder: Path, name: str, rows: list[dict], metadata: dict | None = None) -> Path:
    """Write rows as one parquet shard atomically (temporary file, fsync, rename); ``metadata``
    (JSON-able) goes into the file's key-value metadata under :data:`SHARD_METADATA_KEY`."""
    import json

    import pyarrow.parquet as pq

    from dismai_data.structure import rows_to_table

    table = rows_to_table(rows, _extra_features())
    if metadata is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               SHARD_METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})
    path = folder / name
    tmp = folder / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def read_shard_metadata(path: str | os.PathLike) -> dict | None:
    """The ``shard_metadata`` a checkpoint shard was written with (None: written without)."""
    import json

    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(SHARD_METADATA_KEY)
    return None if raw is None else json.loads(raw)


def checkpoint_index(checkpoint_dir: str | os.PathLike) -> dict[str, dict]:
    """Id -> provenance (``shard_metadata['provenance']``, {} where none was written) of every
    result in a checkpoint folder, reading only the id column and the file metadata; where an
    id is in several shards the last one by name counts, as in :func:`read_checkpoints`."""
    import pyarrow.parquet as pq

    out: dict[str, dict] = {}
    folder = Path(checkpoint_dir)
    for path in sorted(folder.glob("shard-*.parquet")) if folder.is_dir() else []:
        prov = (read_shard_metadata(path) or {}).get("provenance") or {}
        for key in pq.read_table(path, columns=["id"]).column("id").to_pylist():
            out[key] = prov
    return out


def read_checkpoints(checkpoint_dir: str | os.PathLike, *, parameters: dict | None = None,
                     ids: set[str] | None = None) -> dict[str, tuple[str, RelaxResult]]:
    """Finished results in a checkpoint folder: id -> (input sha256, RelaxResult); with ``ids``,
    only those (the other rows are not turned into structures: a build that resumes in
    rounds reads a folder of thousands of results once per round).

    ``parameters``: every shard must have been written with ``shard_metadata['parameters']``
    equal to these (as JSON); a shard written with other parameters, or without any, is refused
    with an error that names the shard and the first parameter that differs."""
    import json

    import pyarrow.parquet as pq

    out: dict[str, tuple[str, RelaxResult]] = {}
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return out
    want = None if parameters is None else json.loads(json.dumps(parameters, sort_keys=True))
    for path in sorted(folder.glob("shard-*.parquet")):
        try:
            rows = pq.read_table(path).to_pylist()
            meta = read_shard_metadata(path)
        except Exception as exc:
            raise RuntimeError(f"checkpoint shard {path} is unreadable ({exc}); delete it to recompute") from exc
        if want is not None:
            got = (meta or {}).get("parameters")
            if got != want:
                if got is None:
                    why = "it records no parameters"
                else:
                    key = next(k for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k))
                    why = f"parameter {key!r} is {got.get(key)!r} there, {want.get(key)!r} here"
                raise RelaxInputError(f"checkpoint shard {path} was written by a run with other parameters ({why}); "
                                      "use another checkpoint folder or delete the shard to recompute")
        for i, row in enumerate(rows):
            for col in ("id", "input_sha256", "relaxed", "energy", "fmax", "steps", "converged", "error"):
                if col not in row:
                    raise RuntimeError(f"checkpoint shard {path}, row {i}: missing column '{col}'")
            if ids is None or row["id"] in ids:
                out[row["id"]] = (row["input_sha256"], _row_result(row))
    return out


def _shard_name(keys: Sequence[str]) -> str:
    digest = hashlib.sha256("\0".join(keys).encode()).hexdigest()[:16]
    return f"shard-{digest}.parquet"


# --------------------------------------------------------------------------- relax_many


def _potential_ref(potential):
    """What a Dask worker needs to get the same potential: its folder if known, else the object."""
    if potential is None:
        return ("default", None)
    path = getattr(potential, "dismai_path", None)
    if path:
        return ("path", path)
    return ("object", potential)


def _worker_potential(ref):
    kind, value = ref
    if kind == "default":
        return load_potential()
    if kind == "path":
        return load_potential(value)
    return value


#: glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse in this process instead of handing it
    back to the kernel; True where that was done (glibc), False elsewhere.

    Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536``; setting that
    variable also switches off glibc's adaptive mmap threshold, so every tensor over 128 KiB
    (a batch of 264-atom interfaces has bond tensors of 5-20 MB) is a fresh mmap that is
    page-faulted in and unmapped again on each of the hundreds of allocations of a force
    call. Measured on one force call of 2 interfaces: 0.73 s wall, 58 % of it in the kernel,
    against 0.33 s in a process without the variable. Raising the mmap threshold to glibc's
    maximum (32 MiB on 64-bit) and the trim threshold to 1 GiB restores the ordinary
    behaviour; the numbers computed are the same."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def _relax_shard_task(shard: list[tuple[int, str, Any]], ref, fmax: float, max_steps: int, batch_size: int,
                      topic: str | None, torch_threads: int | None, optimizer: str = "FIRE",
                      fast: bool | str = True) -> list[tuple[int, RelaxResult]]:
    """Dask task: relax one shard on a worker; reports each finished structure as an event."""
    import torch

    keep_freed_memory()  # Dask workers run with MALLOC_TRIM_THRESHOLD_ set: see keep_freed_memory
    if torch_threads:
        torch.set_num_threads(torch_threads)
    worker = None
    if topic:
        try:
            from distributed import get_worker

            worker = get_worker()
        except Exception:
            worker = None
    potential = _worker_potential(ref)
    out = []
    for index, res in _relax_stream(shard, potential, fmax=fmax, max_steps=max_steps, batch_size=batch_size,
                                    optimizer=optimizer, fast=fast):
        out.append((index, res))
        if worker is not None:
            worker.log_event(topic, 1)
    return out


def relax_many(items, *, potential=None, fmax: float = 0.05, max_steps: int = 1000, batch_size: int = 8,
               checkpoint_dir: str | os.PathLike | None = None, shard_size: int | None = None,
               scheduler: str | None = None, workers: int = 1, progress: bool = True,
               optimizer: str = "FIRE", fast: bool | str = True, stats: dict | None = None,
               shard_metadata: dict | None = None) -> list[RelaxResult]:
    """Relax many structures, batched, checkpointed, optionally on Dask.

    ``items``: pymatgen Structures or ``(id, Structure)`` pairs (ids unique; a bare
    Structure's id is ``properties['id']`` or its index). Results come back in input order.

    ``checkpoint_dir``: each finished shard (``shard_size`` structures, default
    ``batch_size``) is written there atomically as ``shard-<hash of its ids>.parquet``
    (structure rows of :mod:`dismai_data.structure` plus ``energy``, ``energy_per_atom``,
    ``fmax``, ``steps``, ``converged``, ``relaxed``, ``error``, ``input_sha256``). A rerun
    reads the shards first and relaxes only ids not in them, so a killed run resumes where
    it stopped; an id found there with a different input structure is an error.

    ``scheduler``: None relaxes in this process; ``"local"`` starts a
    ``dask.distributed.LocalCluster(n_workers=workers, threads_per_worker=1)``; any other
    string is the address of a running Dask scheduler. Each Dask task relaxes one shard.

    ``progress``: a tqdm bar over structures that advances as each one finishes.

    ``optimizer``: ``"FIRE"`` (default; the trajectory of ase.optimize.FIRE) or ``"LBFGS"``.
    Checkpointed results are reused whatever the ``fmax``/``max_steps``/``optimizer`` of
    the run that wrote them: use one folder per setting.

    ``fast``: evaluate with the fast exact M3GNet path
    (:class:`~dismai_data.physics.matgl_compat.FastM3GNetPES`, the default), with that path through
    ``torch.compile`` (``"compile"``: inductor's fused kernels, about 1.25x less CPU per
    force call on 264-atom interfaces, after a compilation of tens of seconds in each
    process; eager if compiling fails), or with matgl's own forward (False); same function,
    float32 rounding differs.

    ``stats``: a dict that receives ``model_calls`` (batched evaluations) for in-process runs.

    ``shard_metadata``: a JSON-able dict written into every new shard (:func:`read_shard_metadata`
    reads it back). Its ``parameters`` entry, if any, is checked against every shard already in
    the folder (:func:`read_checkpoints`): shards of a run with other parameters are refused;
    the rest (where and how a shard was relaxed) is provenance, not checked.
    """
    pairs = _as_items(items, caller="relax_many")
    optimizer = _optimizer_name(optimizer)
    fast = _fast_mode(fast)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    shard_size = int(shard_size or batch_size)
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if scheduler is None or scheduler == "local":
        pot_for_check = potential if potential is not None else load_potential()
        if scheduler is None:
            potential = pot_for_check
        _check_elements(pairs, pot_for_check.model.element_types, "relax_many")

    results: list[RelaxResult | None] = [None] * len(pairs)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    todo: list[int] = []
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        done = read_checkpoints(folder, parameters=None if shard_metadata is None
                                else shard_metadata.get("parameters"), ids={key for key, _ in pairs})
        for i, (key, s) in enumerate(pairs):
            if key in done:
                digest, res = done[key]
                if digest != input_hash(s):
                    raise RelaxInputError(
                        f"relax_many: item {i} (id {key!r}): checkpoint folder {folder} holds a result for "
                        "this id from a different input structure; use another folder or another id")
                results[i] = res
            else:
                todo.append(i)
    else:
        todo = list(range(len(pairs)))
    shards = [todo[k:k + shard_size] for k in range(0, len(todo), shard_size)]

    from tqdm.auto import tqdm

    bar = tqdm(total=len(pairs), initial=len(pairs) - len(todo), desc="relaxing", unit="structure",
               disable=not progress, smoothing=0.1)
    try:
        if not todo:
            pass
        elif scheduler is None:
            _relax_in_process(pairs, shards, results, potential, fmax, max_steps, batch_size, folder, bar,
                              optimizer, fast, stats, shard_metadata)
        else:
            _relax_dask(pairs, shards, results, potential, fmax, max_steps, batch_size, folder, bar,
                        scheduler, workers, optimizer, fast, shard_metadata)
    finally:
        bar.close()
    return results  # type: ignore[return-value]


def _finish_shard(pairs, shard, results, folder, metadata=None):
    if folder is None:
        return
    rows = [_result_row(pairs[i][0], pairs[i][1], results[i]) for i in shard]
    _write_shard(folder, _shard_name([pairs[i][0] for i in shard]), rows, metadata)


def _relax_in_process(pairs, shards, results, potential, fmax, max_steps, batch_size, folder, bar, optimizer,
                      fast=True, stats=None, metadata=None):
    shard_of = {i: k for k, shard in enumerate(shards) for i in shard}
    remaining = [len(shard) for shard in shards]
    stream = ((i, pairs[i][0], pairs[i][1]) for shard in shards for i in shard)
    for i, res in _relax_stream(stream, potential, fmax=fmax, max_steps=max_steps, batch_size=batch_size,
                                optimizer=optimizer, fast=fast, stats=stats):
        results[i] = res
        bar.update(1)
        k = shard_of[i]
        remaining[k] -= 1
        if remaining[k] == 0:
            _finish_shard(pairs, shards[k], results, folder, metadata)


#: torch threads per worker of the clusters started by :func:`local_cluster`, by address
_LOCAL_CLUSTER_THREADS: dict[str, int] = {}


@contextlib.contextmanager
def local_cluster(workers: int):
    """A ``dask.distributed.LocalCluster`` of ``workers`` one-thread worker processes on
    127.0.0.1 that lives for the ``with`` block; yields its scheduler address, which
    :func:`relax_many` takes as ``scheduler``. Several relax_many calls then share the same
    workers, which keep the loaded potential (and a ``fast="compile"`` evaluator compiled
    once) between calls instead of starting a cluster each time as ``scheduler="local"``
    does (the interface builder's rounds)."""
    from distributed import LocalCluster

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1")
    address = cluster.scheduler_address
    _LOCAL_CLUSTER_THREADS[address] = max(1, (os.cpu_count() or 1) // workers)
    try:
        yield address
    finally:
        _LOCAL_CLUSTER_THREADS.pop(address, None)
        cluster.close()


def _relax_dask(pairs, shards, results, potential, fmax, max_steps, batch_size, folder, bar, scheduler, workers,
                optimizer, fast=True, metadata=None):
    from distributed import Client, wait

    if scheduler == "local":  # a cluster for this call only
        with local_cluster(workers) as address:
            return _relax_dask(pairs, shards, results, potential, fmax, max_steps, batch_size, folder, bar, address,
                               workers, optimizer, fast, metadata)
    torch_threads = _LOCAL_CLUSTER_THREADS.get(scheduler)
    client = Client(scheduler)
    topic = f"dismai-relax-{uuid.uuid4().hex}"
    ticks = [0]
    lock = threading.Lock()

    def on_event(event):
        with lock:
            ticks[0] += 1

    try:
        client.subscribe_topic(topic, on_event)
        ref = _potential_ref(potential)
        futures = {}
        for k, shard in enumerate(shards):
            payload = [(i, pairs[i][0], pairs[i][1]) for i in shard]
            fut = client.submit(_relax_shard_task, payload, ref, fmax, max_steps, batch_size, topic,
                                torch_threads, optimizer, fast, pure=False, key=f"relax-shard-{k}-{topic}")
            futures[fut] = k
        pending = set(futures)
        shown = 0
        finished_from_shards = 0
        while pending:
            try:
                done, pending = wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:  # nothing finished in this interval: just refresh the bar
                done = set()
            for fut in done:
                k = futures[fut]
                for i, res in fut.result():
                    results[i] = res
                _finish_shard(pairs, shards[k], results, folder, metadata)
                finished_from_shards += len(shards[k])
            with lock:
                target = max(ticks[0], finished_from_shards)
            if target > shown:
                bar.update(target - shown)
                shown = target
        total = sum(len(s) for s in shards)
        if total > shown:
            bar.update(total - shown)
    finally:
        try:
            client.unsubscribe_topic(topic)
        except Exception:
            pass
        client.close()


__all__ = [
    "RELAXER_REPO",
    "FIRE_PARAMS",
    "RelaxResult",
    "RelaxInputError",
    "local_weights_dir",
    "load_potential",
    "relax_ase",
    "relax_batch",
    "relax_many",
    "local_cluster",
    "read_checkpoints",
    "read_shard_metadata",
    "checkpoint_index",
    "input_hash",
]
